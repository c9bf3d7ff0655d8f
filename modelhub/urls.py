"""Model hub pages (DESIGN.md §4: `/my_models`, `/download_model/<id>`, `/select_model/<name>/<metric>`)."""

from django.urls import path

from . import views

urlpatterns = [
    path("my_models", views.my_models, name="modelhub-my-models"),
    path("download_model/<int:model_id>", views.download_model, name="modelhub-download"),
    path("select_model/<str:model_name>/<str:metric>", views.select_model, name="modelhub-select"),
    path("models/<int:model_id>/report", views.model_report, name="modelhub-report"),
    path("models/<int:model_id>/pin", views.pin_model, name="modelhub-pin"),
]
