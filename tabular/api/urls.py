"""Tabular routes under /api/v1/ (DESIGN.md §4: the paths are a contract)."""

from django.urls import path

from . import views

urlpatterns = [
    path("datasets/", views.DatasetListCreateView.as_view(), name="api-datasets"),
    path("datasets/<int:pk>/", views.DatasetDetailView.as_view(), name="api-dataset"),
    path("datasets/<int:pk>/profile/", views.DatasetProfileView.as_view(), name="api-dataset-profile"),
    path(
        "datasets/<int:pk>/cleaning-plan/",
        views.DatasetCleaningPlanCreateView.as_view(),
        name="api-dataset-cleaning-plan",
    ),
    path("cleaning-plans/<int:pk>/", views.CleaningPlanDetailView.as_view(), name="api-cleaning-plan"),
    path("cleaning-plans/<int:pk>/apply/", views.CleaningPlanApplyView.as_view(), name="api-cleaning-plan-apply"),
    path(
        "cleaning-plans/<int:pk>/feature-selection/",
        views.FeatureSelectionView.as_view(),
        name="api-cleaning-plan-feature-selection",
    ),
]
