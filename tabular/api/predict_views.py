"""`POST /api/predict_tabular`: JSON rows or a CSV upload → predictions (DESIGN.md §4; outside /api/v1/)."""

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from deepmed.api_schema import ErrorSerializer
from deepmed.exceptions import ApplicationError
from tabular.prediction import predict_csv, predict_rows, refuse_oversized_predict_request


class TabularExplanationSerializer(serializers.Serializer):
    feature = serializers.CharField()
    contribution = serializers.FloatField()


class TabularPredictionSerializer(serializers.Serializer):
    label = serializers.JSONField()
    confidence = serializers.FloatField()
    probabilities = serializers.DictField(child=serializers.FloatField())
    explanation = TabularExplanationSerializer(many=True)


class TabularPredictRequestSerializer(serializers.Serializer):
    model_id = serializers.IntegerField()
    rows = serializers.ListField(child=serializers.DictField(), required=False)
    file = serializers.FileField(required=False, help_text="A CSV with a header row (multipart) instead of rows.")


class TabularPredictResponseSerializer(serializers.Serializer):
    model_id = serializers.IntegerField()
    model_name = serializers.CharField()
    threshold = serializers.FloatField(allow_null=True)
    positive_label = serializers.JSONField()
    predictions = TabularPredictionSerializer(many=True)
    ignored_columns = serializers.ListField(child=serializers.CharField())
    explanation_note = serializers.CharField(required=False)


class PredictTabularView(APIView):
    permission_classes = [IsAuthenticated]
    parser_classes = [JSONParser, MultiPartParser]

    @extend_schema(
        operation_id="predict_tabular",
        tags=["prediction"],
        summary="Predict with one of your tabular models",
        description=(
            'JSON `{"model_id", "rows": [{column: value}]}` answers with one prediction per row: the label (binary '
            "models use the threshold shown in the model report), its confidence, every class probability and the "
            "top features that pushed it. Extra columns are ignored and listed in `ignored_columns`. A multipart "
            "upload (`model_id` + `file`, a CSV) answers with the same CSV, `text/csv`, with the columns "
            "`predicted_label`, `confidence` and `probability_<class>` appended; a cell or column name that starts "
            "with `=`, `+`, `-`, `@`, a tab or a carriage return (and is not a number) gets a leading `'`, so no "
            "spreadsheet runs it as a formula. The CSV may be `MAX_PREDICT_CSV_MB` (400 `file_too_large`). Missing "
            "required columns and values of the wrong type are a 400 naming the columns, row and column."
        ),
        request={
            "application/json": TabularPredictRequestSerializer,
            "multipart/form-data": TabularPredictRequestSerializer,
        },
        responses={
            200: TabularPredictResponseSerializer,
            400: OpenApiResponse(ErrorSerializer, description="Rows that do not fit the model's input schema."),
            404: OpenApiResponse(ErrorSerializer, description="No such model among yours."),
            409: OpenApiResponse(ErrorSerializer, description="The model's file failed its checksum."),
        },
    )
    def post(self, request):
        refuse_oversized_predict_request(request)
        if not isinstance(request.data, dict):  # a JSON list, string or number; QueryDict (multipart) is a dict
            raise ApplicationError(
                'Send a JSON object: {"model_id": <id>, "rows": [{column: value}, ...]}.', code="invalid_body"
            )
        model_id = request.data.get("model_id")
        if model_id in (None, ""):
            raise ApplicationError('Send "model_id": the id of one of your models (see /my_models).')
        uploaded = request.FILES.get("file")
        if uploaded is not None:
            content, _answer = predict_csv(user=request.user, model_id=model_id, uploaded=uploaded)
            response = HttpResponse(content, content_type="text/csv")
            response["Content-Disposition"] = 'attachment; filename="predictions.csv"'
            return response
        rows = request.data.get("rows")
        if rows is None:
            raise ApplicationError('Send "rows" (a list of objects, one per patient) or upload a CSV as "file".')
        return Response(predict_rows(user=request.user, model_id=model_id, rows=rows))
