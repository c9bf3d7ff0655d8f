"""Imaging JSON endpoints. Thin: validate, call a service, shape the answer."""

from django.db import transaction
from django.http import FileResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from deepmed.api_schema import error_response
from imaging import selectors, services

from .serializers import (
    AnomalyScoreResponseSerializer,
    AnomalyTrainRequestSerializer,
    AugmentationJobSerializer,
    AugmentPreviewRequestSerializer,
    AugmentPreviewSerializer,
    AugmentRequestSerializer,
    ImageDatasetSerializer,
    ImageFilesRequestSerializer,
    ImagingModelSerializer,
    ImagingRunSerializer,
    PipelineRequestSerializer,
    PredictResponseSerializer,
    RunCreatedSerializer,
    ThresholdRequestSerializer,
    TrainModelRequestSerializer,
)

TAGS = ["imaging"]


def _files(request) -> list:
    return request.FILES.getlist("file") + request.FILES.getlist("files")


class TrainModelView(APIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        operation_id="imaging_train_model",
        tags=TAGS,
        summary="Train an image classifier from a ZIP of class folders",
        description=(
            "The ZIP is checked before anything is stored: zip-slip paths, links, nested archives, encrypted "
            "entries and zip bombs are refused; at least 2 classes of at least 5 usable images each are needed. "
            "Corrupt files and exact duplicates are skipped and listed; DICOM is converted to PNG without its tags. "
            "Poll the run at `/api/v1/imaging/runs/{id}/`."
        ),
        request={"multipart/form-data": TrainModelRequestSerializer},
        responses={
            202: RunCreatedSerializer,
            400: error_response("The ZIP or an option was refused (code names why); nothing was stored."),
        },
    )
    def post(self, request):
        serializer = TrainModelRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        with transaction.atomic():
            run = services.image_training_start(
                user=request.user,
                uploaded_file=data["file"],
                architecture=data["architecture"],
                level=int(data["level"]),
                image_size=data.get("image_size"),
            )
        return Response({"id": run.id, "status": run.status}, status=status.HTTP_202_ACCEPTED)


class PredictImageView(APIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        operation_id="imaging_predict_image",
        tags=TAGS,
        summary="Classify images with one of your image models, with Grad-CAM heatmaps",
        request={"multipart/form-data": ImageFilesRequestSerializer},
        responses={
            200: PredictResponseSerializer,
            400: error_response(
                "No files, too many, over MAX_PREDICT_IMAGE_MB (`file_too_large`), an image over 64 megapixels "
                "or 1,000 frames (`too_many_pixels`, `too_many_frames`, from its header), or an unsafe ZIP."
            ),
            404: error_response("No image model of yours has this id."),
        },
    )
    def post(self, request):
        services.refuse_oversized_predict_request(request)
        serializer = ImageFilesRequestSerializer(
            data={"model_id": request.data.get("model_id"), "file": _files(request)}
        )
        serializer.is_valid(raise_exception=True)
        result = services.image_predict(
            user=request.user, model_id=serializer.validated_data["model_id"], files=serializer.validated_data["file"]
        )
        return Response(result)


class AnomalyTrainView(APIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        operation_id="imaging_anomaly_train",
        tags=TAGS,
        summary="Train an anomaly detector on a ZIP of normal images",
        description=(
            "`mode` picks the detector: `patchcore` (default), `autoencoder` or `ensemble`. The threshold is a "
            "percentile of the scores of held-out normal images; no anomalous image is needed. Poll the run at "
            "`/api/v1/imaging/runs/{id}/`."
        ),
        request={"multipart/form-data": AnomalyTrainRequestSerializer},
        responses={
            202: RunCreatedSerializer,
            400: error_response("The ZIP or an option was refused; nothing was stored."),
        },
    )
    def post(self, request):
        serializer = AnomalyTrainRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        with transaction.atomic():
            run = services.anomaly_training_start(
                user=request.user,
                uploaded_file=data["file"],
                level=int(data["level"]),
                image_size=int(data.get("image_size") or services.ANOMALY_IMAGE_SIZE),
                enhanced=data["enhanced"],
                mode=data.get("mode"),
            )
        return Response({"id": run.id, "status": run.status}, status=status.HTTP_202_ACCEPTED)


class AnomalyScoreView(APIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        operation_id="imaging_anomaly_score",
        tags=TAGS,
        summary="Score images with one of your anomaly detectors",
        request={"multipart/form-data": ImageFilesRequestSerializer},
        responses={
            200: AnomalyScoreResponseSerializer,
            400: error_response("No files, too many, or an unsafe ZIP."),
            404: error_response("No anomaly detector of yours has this id."),
        },
    )
    def post(self, request):
        services.refuse_oversized_predict_request(request)
        serializer = ImageFilesRequestSerializer(
            data={"model_id": request.data.get("model_id"), "file": _files(request)}
        )
        serializer.is_valid(raise_exception=True)
        result = services.anomaly_score(
            user=request.user, model_id=serializer.validated_data["model_id"], files=serializer.validated_data["file"]
        )
        return Response(result)


class ImagingRunDetailView(APIView):
    @extend_schema(
        operation_id="imaging_run_retrieve",
        tags=TAGS,
        summary="Status and progress of one of your image or anomaly runs",
        responses={200: ImagingRunSerializer, 404: error_response("No imaging run of yours has this id.")},
    )
    def get(self, request, pk: int):
        run = selectors.imaging_run_get_for_user(user=request.user, run_id=pk)
        return Response(ImagingRunSerializer(run).data)


class ImagingRunStopView(APIView):
    @extend_schema(
        operation_id="imaging_run_stop",
        tags=TAGS,
        summary="Ask one of your image or anomaly runs to stop after the current batch",
        request=None,
        responses={200: ImagingRunSerializer, 404: error_response("No imaging run of yours has this id.")},
    )
    def post(self, request, pk: int):
        run = selectors.imaging_run_get_for_user(user=request.user, run_id=pk)
        run.request_stop()
        return Response(ImagingRunSerializer(run).data)


class ImagingModelDetailView(APIView):
    @extend_schema(
        operation_id="imaging_model_retrieve",
        tags=TAGS,
        summary="Metrics of one of your image classifiers or anomaly detectors",
        responses={200: ImagingModelSerializer, 404: error_response("No imaging model of yours has this id.")},
    )
    def get(self, request, pk: int):
        model = selectors.imaging_model_get_for_user(user=request.user, model_id=pk)
        return Response(ImagingModelSerializer(model).data)


class AugmentCreateView(APIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        operation_id="imaging_augment_create",
        tags=TAGS,
        summary="Augment a ZIP of images: originals plus N variants each, as a ZIP",
        request={"multipart/form-data": AugmentRequestSerializer},
        responses={
            202: RunCreatedSerializer,
            400: error_response("The ZIP, preset or count was refused; nothing was stored."),
        },
    )
    def post(self, request):
        serializer = AugmentRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        with transaction.atomic():
            job = services.augmentation_start(
                user=request.user, uploaded_file=data["file"], preset=data["preset"], per_image=data["per_image"]
            )
        return Response({"id": job.id, "status": job.status}, status=status.HTTP_202_ACCEPTED)


class AugmentPreviewView(APIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        operation_id="imaging_augment_preview",
        tags=TAGS,
        summary="Preview a preset on a few of your images before running it",
        request={"multipart/form-data": AugmentPreviewRequestSerializer},
        responses={200: AugmentPreviewSerializer, 400: error_response("Unknown preset or unreadable image.")},
    )
    def post(self, request):
        serializer = AugmentPreviewRequestSerializer(
            data={"preset": request.data.get("preset"), "file": _files(request)}
        )
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        return Response({"preview": services.augmentation_preview(files=data["file"], preset=data["preset"])})


class AugmentDetailView(APIView):
    @extend_schema(
        operation_id="imaging_augment_retrieve",
        tags=TAGS,
        summary="Status of one of your augmentations",
        responses={200: AugmentationJobSerializer, 404: error_response("No augmentation of yours has this id.")},
    )
    def get(self, request, pk: int):
        job = selectors.augmentation_job_get_for_user(user=request.user, job_id=pk)
        return Response(AugmentationJobSerializer(job).data)

    @extend_schema(
        operation_id="imaging_augment_destroy",
        tags=TAGS,
        summary="Delete one of your augmentations and its result ZIP",
        responses={
            204: None,
            404: error_response("No augmentation of yours has this id."),
            409: error_response("Still running: wait for it to finish."),
        },
    )
    def delete(self, request, pk: int):
        services.augmentation_job_delete(user=request.user, job_id=pk, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AugmentDownloadView(APIView):
    @extend_schema(
        operation_id="imaging_augment_download",
        tags=TAGS,
        summary="Download the augmented ZIP",
        responses={
            (200, "application/zip"): OpenApiResponse(description="The ZIP."),
            404: error_response("No augmentation of yours has this id."),
            409: error_response("Not finished yet."),
        },
    )
    def get(self, request, pk: int):
        job = selectors.augmentation_job_get_for_user(user=request.user, job_id=pk)
        path = services.augmentation_result_path(job=job)
        return FileResponse(path.open("rb"), as_attachment=True, filename=f"augmented-{job.id}.zip")


class PipelineView(APIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        operation_id="imaging_pipeline_run",
        tags=TAGS,
        summary="Run preprocessing → augmentation → training as one job",
        description="The composition is validated first; a refusal lists every problem in `problems`.",
        request={"multipart/form-data": PipelineRequestSerializer},
        responses={
            202: RunCreatedSerializer,
            400: error_response("The pipeline or the ZIP was refused; nothing was stored."),
        },
    )
    def post(self, request):
        serializer = PipelineRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        with transaction.atomic():
            run = services.pipeline_start(user=request.user, uploaded_file=data["file"], steps=data["steps"])
        return Response({"id": run.id, "status": run.status}, status=status.HTTP_202_ACCEPTED)


class AnomalyThresholdView(APIView):
    @extend_schema(
        operation_id="imaging_anomaly_threshold",
        tags=TAGS,
        summary="Save a new threshold for one of your anomaly detectors",
        request=ThresholdRequestSerializer,
        responses={
            200: ImagingModelSerializer,
            400: error_response("Not a positive number."),
            404: error_response("No anomaly detector of yours has this id."),
        },
    )
    def post(self, request, pk: int):
        serializer = ThresholdRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        model = services.anomaly_threshold_set(
            user=request.user, model_id=pk, threshold=serializer.validated_data["threshold"]
        )
        return Response(ImagingModelSerializer(model).data)


class ImageDatasetListView(APIView):
    @extend_schema(
        operation_id="imaging_dataset_list",
        tags=TAGS,
        summary="Your image datasets (uploaded ZIPs) with their intake reports",
        responses={200: ImageDatasetSerializer(many=True)},
    )
    def get(self, request):
        datasets = selectors.image_dataset_list_for_user(user=request.user)
        return Response(ImageDatasetSerializer(datasets, many=True).data)


class ImageDatasetDetailView(APIView):
    @extend_schema(
        operation_id="imaging_dataset_retrieve",
        tags=TAGS,
        summary="One of your image datasets with its intake report",
        responses={200: ImageDatasetSerializer, 404: error_response("No image dataset of yours has this id.")},
    )
    def get(self, request, pk: int):
        dataset = selectors.image_dataset_get_for_user(user=request.user, dataset_id=pk)
        return Response(ImageDatasetSerializer(dataset).data)

    @extend_schema(
        operation_id="imaging_dataset_destroy",
        tags=TAGS,
        summary="Delete one of your image datasets and its stored images",
        description="Models already trained on it are kept. Refused while a queued or running run uses it.",
        responses={
            204: None,
            404: error_response("No image dataset of yours has this id."),
            409: error_response("A queued or running training run uses it (`runs` lists them)."),
        },
    )
    def delete(self, request, pk: int):
        services.image_dataset_delete(user=request.user, dataset_id=pk, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)
