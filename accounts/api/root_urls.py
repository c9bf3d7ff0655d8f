"""Account JSON endpoints that the original documentation places outside /api/v1/."""

from django.urls import path

from . import views

urlpatterns = [
    path("force_logout", views.ForceLogoutView.as_view(), name="force-logout"),
]
