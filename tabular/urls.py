"""Tabular pages, and the documented `/api/extract_features` outside the /api/v1/ router (DESIGN.md §4)."""

from django.urls import path

from . import training_views, views
from .api import training_urls
from .api import views as api_views

urlpatterns = [
    path("upload", views.upload, name="tabular-upload"),
    path("datasets", views.dataset_list, name="tabular-datasets"),
    path("datasets/<int:pk>", views.dataset_detail, name="tabular-dataset"),
    path("datasets/<int:pk>/delete", views.dataset_delete, name="tabular-dataset-delete"),
    path("datasets/<int:pk>/profile", views.dataset_profile, name="tabular-profile"),
    path("datasets/<int:pk>/plan", views.plan_create, name="tabular-plan-create"),
    path("datasets/<int:pk>/plan/<int:plan_id>", views.plan_edit, name="tabular-plan"),
    path("datasets/<int:pk>/plan/<int:plan_id>/apply", views.plan_apply, name="tabular-plan-apply"),
    path("datasets/<int:pk>/plan/<int:plan_id>/report", views.plan_report, name="tabular-plan-report"),
    path("datasets/<int:pk>/plan/<int:plan_id>/features", views.feature_selection, name="tabular-features"),
    path("api/extract_features", api_views.ExtractFeaturesView.as_view(), name="api-extract-features"),
    path("training", training_views.training_start, name="tabular-training"),
    path("training/runs/<int:pk>", training_views.run_detail, name="tabular-run"),
    path("training/runs/<int:pk>/progress", training_views.run_progress, name="tabular-run-progress"),
    path("training/runs/<int:pk>/stop", training_views.run_stop, name="tabular-run-stop"),
    *training_urls.root_urlpatterns,
]
