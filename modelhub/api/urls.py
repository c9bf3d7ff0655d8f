"""Model hub routes under /api/v1/ (DESIGN.md §4)."""

from django.urls import path

from . import views

urlpatterns = [
    path("models/", views.ModelListView.as_view(), name="api-models"),
    path("models/<int:pk>/", views.ModelDetailView.as_view(), name="api-model"),
    path("models/<int:pk>/select/", views.ModelSelectView.as_view(), name="api-model-select"),
    path("models/<int:pk>/pin/", views.ModelPinView.as_view(), name="api-model-pin"),
    path("models/<int:pk>/schema/", views.ModelSchemaView.as_view(), name="api-model-schema"),
    path("models/<int:pk>/report/", views.ModelReportView.as_view(), name="api-model-report"),
    path(
        "models/<int:pk>/feature-importance/",
        views.ModelFeatureImportanceView.as_view(),
        name="api-model-feature-importance",
    ),
]
