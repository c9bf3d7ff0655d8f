"""Imaging pages, and the documented `/api/train_model` and `/api/predict_image` outside /api/v1/ (DESIGN.md §4)."""

from django.urls import path

from . import views
from .api import views as api_views

urlpatterns = [
    path("images", views.images_redirect, name="imaging-images"),
    path("pipeline", views.pipeline_page, name="imaging-pipeline"),
    path("anomaly_detection", views.anomaly_page, name="imaging-anomaly"),
    path("augment", views.augment_page, name="imaging-augment"),
    path("api/train_model", api_views.TrainModelView.as_view(), name="api-train-model"),
    path("api/predict_image", api_views.PredictImageView.as_view(), name="api-predict-image"),
    path("api/pipeline", api_views.PipelineView.as_view(), name="api-pipeline"),
]
