"""Tabular training routes: under /api/v1/ (`urlpatterns`) and the documented root paths (`root_urlpatterns`)."""

from django.urls import path

from . import training_views as views

urlpatterns = [
    path("training-runs/", views.TrainingRunCreateView.as_view(), name="api-training-runs"),
    path("training-runs/<int:pk>/", views.TrainingRunDetailView.as_view(), name="api-training-run"),
    path("training-runs/<int:pk>/stop/", views.TrainingRunStopView.as_view(), name="api-training-run-stop"),
]

root_urlpatterns = [
    path(
        "api/status/tabular_classification_training",
        views.TabularTrainingStatusView.as_view(),
        name="api-tabular-training-status",
    ),
    path(
        "api/reset/tabular_classification_training",
        views.TabularTrainingResetView.as_view(),
        name="api-tabular-training-reset",
    ),
    path("api/stop_classification_training", views.TabularTrainingStopView.as_view(), name="api-tabular-training-stop"),
]
