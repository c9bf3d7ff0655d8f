"""The one router of the JSON API under /api/v1/. Each app contributes its routes here."""

from django.urls import include, path

urlpatterns = [
    path("", include("accounts.api.urls")),
    path("", include("modelhub.api.urls")),
    path("", include("tabular.api.urls")),
    path("", include("tabular.api.training_urls")),
    path("", include("imaging.api.urls")),
]
