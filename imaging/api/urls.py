"""Imaging routes under /api/v1/ (DESIGN.md §4)."""

from django.urls import path

from . import pipeline_views, views

urlpatterns = [
    path("imaging/runs/<int:pk>/", views.ImagingRunDetailView.as_view(), name="api-imaging-run"),
    path("imaging/runs/<int:pk>/stop/", views.ImagingRunStopView.as_view(), name="api-imaging-run-stop"),
    path("imaging/models/<int:pk>/", views.ImagingModelDetailView.as_view(), name="api-imaging-model"),
    path("imaging/datasets/", views.ImageDatasetListView.as_view(), name="api-imaging-datasets"),
    path("imaging/datasets/<int:pk>/", views.ImageDatasetDetailView.as_view(), name="api-imaging-dataset"),
    path("anomaly/models/<int:pk>/threshold", views.AnomalyThresholdView.as_view(), name="api-anomaly-threshold"),
    path("anomaly/train", views.AnomalyTrainView.as_view(), name="api-anomaly-train"),
    path("anomaly/score", views.AnomalyScoreView.as_view(), name="api-anomaly-score"),
    path("augment/", views.AugmentCreateView.as_view(), name="api-augment"),
    path("augment/preview", views.AugmentPreviewView.as_view(), name="api-augment-preview"),
    path("augment/<int:pk>/", views.AugmentDetailView.as_view(), name="api-augment-job"),
    path("augment/<int:pk>/download", views.AugmentDownloadView.as_view(), name="api-augment-download"),
    path("imaging/pipeline/steps", pipeline_views.PipelineStepCatalogView.as_view(), name="api-pipeline-steps"),
    path("imaging/pipeline/validate", pipeline_views.PipelineCheckView.as_view(), name="api-pipeline-validate"),
    path(
        "imaging/runs/<int:pk>/steps/", pipeline_views.PipelineRunOutputsView.as_view(), name="api-pipeline-run-steps"
    ),
    path(
        "imaging/runs/<int:pk>/steps/<int:step>/samples/<path:name>",
        pipeline_views.PipelineSampleView.as_view(),
        name="api-pipeline-run-sample",
    ),
]
