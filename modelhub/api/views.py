"""Model hub JSON endpoints: the caller's models, one model (read, delete), select, pin, input schema, report and
feature importance, and the original system's `/api/delete_training_run`. Every object is looked up among the
caller's own, so another user's model or run is a 404, never a 403 that would confirm it exists."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from deepmed.api_schema import ErrorSerializer, error_response
from modelhub import hub, services
from modelhub.selectors import training_model_list_for_user

from .serializers import (
    DeletedSerializer,
    DeleteTrainingRunRequestSerializer,
    FeatureImportanceSerializer,
    ModelReportSerializer,
    ModelSchemaSerializer,
    PinRequestSerializer,
    TrainingModelSerializer,
)

_NOT_FOUND = OpenApiResponse(ErrorSerializer, description="No such model among yours.")
_RUN_NOT_FOUND = error_response("No training run of yours has this id.")
_RUN_ACTIVE = error_response("The run is still queued or running: stop it first.")
_CHECKSUM = error_response("The model's file failed its checksum, or is not a tabular model.")
_GONE = error_response("The model's file is gone (removed by retention).")


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
        return Response(TrainingModelSerializer(hub.model_get_for_user(user=request.user, model_id=pk)).data)

    @extend_schema(
        operation_id="models_destroy",
        tags=["models"],
        summary="Delete one of your models and its file",
        description="Audited. Refused with 409 while the model's run is still queued or running.",
        responses={204: None, 404: _NOT_FOUND, 409: _RUN_ACTIVE},
    )
    def delete(self, request, pk: int):
        services.training_model_delete(user=request.user, model_id=pk, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ModelSelectView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="models_select",
        tags=["models"],
        summary="Select this model (the previous selection of its kind is released)",
        description="Selected models are kept past retention. Audited with the model's run.",
        request=None,
        responses={200: TrainingModelSerializer, 404: _NOT_FOUND},
    )
    def post(self, request, pk: int):
        model = hub.model_select_by_id(user=request.user, model_id=pk, request=request)
        return Response(TrainingModelSerializer(model).data)


class ModelPinView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="models_pin",
        tags=["models"],
        summary="Pin (or, with pinned=false, unpin) one of your models",
        description="Pinned models are never removed by retention.",
        request=PinRequestSerializer,
        responses={200: TrainingModelSerializer, 404: _NOT_FOUND},
    )
    def post(self, request, pk: int):
        serializer = PinRequestSerializer(data=request.data if isinstance(request.data, dict) else {})
        serializer.is_valid(raise_exception=True)
        model = hub.model_pin(user=request.user, model_id=pk, pinned=serializer.validated_data["pinned"])
        return Response(TrainingModelSerializer(model).data)

    @extend_schema(
        operation_id="models_unpin",
        tags=["models"],
        summary="Unpin one of your models",
        responses={200: TrainingModelSerializer, 404: _NOT_FOUND},
    )
    def delete(self, request, pk: int):
        model = hub.model_pin(user=request.user, model_id=pk, pinned=False)
        return Response(TrainingModelSerializer(model).data)


class ModelSchemaView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="models_schema",
        tags=["models"],
        summary="The input columns of one of your tabular models",
        description=(
            "What `/api/predict_tabular` accepts, column by column: `type` (number, boolean, category, date, text), "
            "`allowed` values (categories and yes/no), `range` [lowest, highest] in the training rows, and "
            "`impute`: what an empty value becomes. Keys that do not apply to a column are left out."
        ),
        responses={200: ModelSchemaSerializer, 404: _NOT_FOUND, 409: _CHECKSUM, 410: _GONE},
    )
    def get(self, request, pk: int):
        return Response(hub.model_input_schema(user=request.user, model_id=pk))


class ModelReportView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="models_report",
        tags=["models"],
        summary="The model report of one of your models, as JSON",
        description="The figures of `/models/{id}/report`: metrics with intervals, curves, calibration, threshold, "
        "confusion matrix, validation, predictors, lineage, warnings and library versions.",
        responses={200: ModelReportSerializer, 404: _NOT_FOUND, 409: _CHECKSUM, 410: _GONE},
    )
    def get(self, request, pk: int):
        return Response(hub.model_report_data(user=request.user, model_id=pk))


class ModelFeatureImportanceView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="models_feature_importance",
        tags=["models"],
        summary="Feature importance of one of your models",
        description=(
            "Computed once, when the model is trained (for older models, on the first request), and stored with "
            "the model, so this reads it. `permutation`: drop in ROC AUC on the hold-out rows when a column is "
            "shuffled (null when they could not be recovered); `model`: the model's own importances (tree impurity "
            "or |coefficients| on standardised inputs; null for models without them). `source` says which."
        ),
        responses={
            200: FeatureImportanceSerializer,
            404: _NOT_FOUND,
            409: OpenApiResponse(ErrorSerializer, description="The model's file failed its checksum."),
        },
    )
    def get(self, request, pk: int):
        return Response(hub.model_feature_importance(user=request.user, model_id=pk))


class DeleteTrainingRunAliasView(APIView):
    """The original system's `/api/delete_training_run`; the same as `DELETE /api/v1/training-runs/{id}/`."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="delete_training_run",
        tags=["tabular training"],
        summary="Delete one of your training runs with its models and files (the original system's route)",
        description="Same as `DELETE /api/v1/training-runs/{id}/`. Audited.",
        request=DeleteTrainingRunRequestSerializer,
        responses={200: DeletedSerializer, 404: _RUN_NOT_FOUND, 409: _RUN_ACTIVE},
    )
    def post(self, request):
        serializer = DeleteTrainingRunRequestSerializer(data=request.data if isinstance(request.data, dict) else {})
        serializer.is_valid(raise_exception=True)
        run_id = serializer.validated_data["run_id"]
        services.training_run_delete(user=request.user, run_id=run_id, request=request)
        return Response(
            {"detail": f"Training run {run_id}, its models and their files were deleted.", "run_id": run_id}
        )
