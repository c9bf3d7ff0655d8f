"""System routes of DESIGN.md §4: exact paths, no trailing slash."""

from django.urls import path

from . import system_views

urlpatterns = [
    path("service_status", system_views.ServiceStatusView.as_view(), name="service-status"),
    path("check_downloads_dir", system_views.CheckDownloadsDirView.as_view(), name="check-downloads-dir"),
    path("healthz", system_views.healthz, name="healthz"),
    path("readyz", system_views.readyz, name="readyz"),
]
