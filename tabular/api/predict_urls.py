"""Prediction routes at the root: the documented `/api/predict_tabular` (no /v1/) and the prediction pages."""

from django.urls import path

from tabular import predict_views

from .predict_views import PredictTabularView

urlpatterns = [
    path("api/predict_tabular", PredictTabularView.as_view(), name="api-predict-tabular"),
    path("predict", predict_views.predict_page, name="tabular-predict"),
    path("feature_importance", predict_views.feature_importance_page, name="tabular-feature-importance"),
]
