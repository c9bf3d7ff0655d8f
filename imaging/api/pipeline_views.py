"""JSON endpoints of the /pipeline composer: the step catalogue, a dry-run check, and a run's kept step outputs."""

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from deepmed.api_schema import error_response
from imaging import pipeline_outputs

TAGS = ["imaging"]


class PipelineStepParamSerializer(serializers.Serializer):
    name = serializers.CharField()
    label = serializers.CharField()
    kind = serializers.ChoiceField(choices=["int", "float", "bool", "choice", "str"])
    default = serializers.JSONField()
    min = serializers.FloatField(allow_null=True)
    max = serializers.FloatField(allow_null=True)
    choices = serializers.ListField(child=serializers.DictField(), allow_null=True)


class PipelineStepTypeSerializer(serializers.Serializer):
    type = serializers.CharField()
    label = serializers.CharField()
    group = serializers.ChoiceField(choices=["preprocessing", "augmentation", "training"])
    description = serializers.CharField()
    params = PipelineStepParamSerializer(many=True)


class PipelineCatalogSerializer(serializers.Serializer):
    steps = PipelineStepTypeSerializer(many=True)


class PipelineCheckRequestSerializer(serializers.Serializer):
    steps = serializers.JSONField(help_text='Ordered list of {"type", "params"}, as for POST /api/pipeline.')


class PipelineCheckedStepSerializer(serializers.Serializer):
    step = serializers.IntegerField()
    type = serializers.CharField()
    params = serializers.DictField(help_text="Every parameter, defaults filled in.")


class PipelineCheckSerializer(serializers.Serializer):
    valid = serializers.BooleanField()
    steps = PipelineCheckedStepSerializer(many=True)


class PipelineStepOutputSerializer(serializers.Serializer):
    step = serializers.IntegerField()
    type = serializers.CharField()
    label = serializers.CharField()
    params = serializers.DictField()
    state = serializers.ChoiceField(choices=["pending", "running", "done", "failed", "stopped", "not_run"])
    progress = serializers.FloatField()
    images = serializers.IntegerField(allow_null=True, help_text="Images this step wrote (or trained on).")
    classes = serializers.DictField(child=serializers.IntegerField(), help_text="Images per class folder.")
    samples = serializers.ListField(child=serializers.DictField(), help_text="A few outputs: name, class, url.")
    result = serializers.DictField(allow_null=True, help_text="A training step's headline result.")


class PipelineRunOutputsSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    progress = serializers.FloatField()
    message = serializers.CharField()
    error = serializers.CharField()
    model_id = serializers.IntegerField(allow_null=True)
    model_name = serializers.CharField(allow_null=True)
    models_url = serializers.CharField()
    steps = PipelineStepOutputSerializer(many=True)


class PipelineStepCatalogView(APIView):
    @extend_schema(
        operation_id="imaging_pipeline_steps",
        tags=TAGS,
        summary="The steps a pipeline can hold, with each parameter's kind, default and limits",
        responses={200: PipelineCatalogSerializer},
    )
    def get(self, request):
        return Response({"steps": pipeline_outputs.pipeline_step_catalog()})


class PipelineCheckView(APIView):
    @extend_schema(
        operation_id="imaging_pipeline_validate",
        tags=TAGS,
        summary="Check a composition without running it",
        description="A refusal lists every problem in `problems` and, beside the step it concerns, in "
        "`step_problems` (`step` is null for the composition as a whole).",
        request=PipelineCheckRequestSerializer,
        responses={200: PipelineCheckSerializer, 400: error_response("The composition cannot run.")},
    )
    def post(self, request):
        serializer = PipelineCheckRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        steps = pipeline_outputs.pipeline_check(steps=serializer.validated_data["steps"])
        return Response({"valid": True, "steps": steps})


class PipelineRunOutputsView(APIView):
    @extend_schema(
        operation_id="imaging_pipeline_run_steps",
        tags=TAGS,
        summary="Per-step progress and kept outputs of one of your pipeline runs",
        responses={200: PipelineRunOutputsSerializer, 404: error_response("No pipeline run of yours has this id.")},
    )
    def get(self, request, pk: int):
        run = pipeline_outputs.pipeline_run_get_for_user(user=request.user, run_id=pk)
        return Response(pipeline_outputs.pipeline_run_outputs(run=run))


class PipelineSampleView(APIView):
    @extend_schema(
        operation_id="imaging_pipeline_run_sample",
        tags=TAGS,
        summary="A thumbnail of one image a step of your pipeline run wrote",
        responses={
            (200, "image/png"): OpenApiResponse(description="PNG thumbnail."),
            404: error_response("No such run of yours, step or image."),
        },
    )
    def get(self, request, pk: int, step: int, name: str):
        run = pipeline_outputs.pipeline_run_get_for_user(user=request.user, run_id=pk)
        data = pipeline_outputs.pipeline_sample_thumbnail(run=run, position=step, name=name)
        response = HttpResponse(data, content_type="image/png")
        response["Cache-Control"] = "private, max-age=3600"
        return response
