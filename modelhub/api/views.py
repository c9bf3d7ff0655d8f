"""Model hub JSON endpoints: the caller's models, one model, its feature importance."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from deepmed.api_schema import ErrorSerializer
from modelhub.hub import model_feature_importance, model_get_for_user
from modelhub.selectors import training_model_list_for_user

from .serializers import FeatureImportanceSerializer, TrainingModelSerializer

_NOT_FOUND = OpenApiResponse(ErrorSerializer, description="No such model among yours.")


class ModelListView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="models_list",
        tags=["models"],
        summary="Your trained models, newest first",
        responses={200: TrainingModelSerializer(many=True)},
    )
    def get(self, request):
        models = training_model_list_for_user(user=request.user)
        return Response(TrainingModelSerializer(models, many=True).data)


class ModelDetailView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="models_retrieve",
        tags=["models"],
        summary="One of your models",
        responses={200: TrainingModelSerializer, 404: _NOT_FOUND},
    )
    def get(self, request, pk: int):
        return Response(TrainingModelSerializer(model_get_for_user(user=request.user, model_id=pk)).data)


class ModelFeatureImportanceView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="models_feature_importance",
        tags=["models"],
        summary="Feature importance of one of your models",
        description=(
            "`permutation`: drop in ROC AUC on the hold-out set when a column is shuffled (null when the model's "
            "file does not carry its hold-out rows); `model`: the model's own importances (tree impurity or "
            "|coefficients| on standardised inputs; null for models without them). `source` says which are given."
        ),
        responses={
            200: FeatureImportanceSerializer,
            404: _NOT_FOUND,
            409: OpenApiResponse(ErrorSerializer, description="The model's file failed its checksum."),
        },
    )
    def get(self, request, pk: int):
        return Response(model_feature_importance(user=request.user, model_id=pk))
