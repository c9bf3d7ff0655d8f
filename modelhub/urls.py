"""Model hub pages (DESIGN.md §4: `/my_models`, `/download_model/<id>`, `/select_model/<name>/<metric>`)."""

from django.urls import path

from . import views
from .api.views import DeleteTrainingRunAliasView

urlpatterns = [
    path("my_models", views.my_models, name="modelhub-my-models"),
    path("download_model/<int:model_id>", views.DownloadModelView.as_view(), name="modelhub-download"),
    path("select_model/<str:model_name>/<str:metric>", views.SelectModelView.as_view(), name="modelhub-select"),
    path("models/<int:model_id>/report", views.model_report, name="modelhub-report"),
    path("models/<int:model_id>/pin", views.pin_model, name="modelhub-pin"),
    path("models/<int:model_id>/select", views.select_model_by_id, name="modelhub-select-id"),
    path("models/<int:model_id>/delete", views.delete_model, name="modelhub-delete-model"),
    path("runs/<int:run_id>/delete", views.delete_run, name="modelhub-delete-run"),
    # The original system's route, kept for its integrators: POST {"run_id"}.
    path("api/delete_training_run", DeleteTrainingRunAliasView.as_view(), name="api-delete-training-run"),
]
