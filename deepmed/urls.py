"""Top-level routes. Paths of DESIGN.md §4 are a contract: keep them exact."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from deepmed.metrics import metrics_view

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("accounts.urls")),
    path("", include("accounts.api.root_urls")),
    path("", include("deepmed.system_urls")),
    path("", include("deepmed.page_urls")),
    path("", include("modelhub.urls")),
    path("", include("tabular.urls")),
    path("", include("tabular.api.predict_urls")),
    path("", include("imaging.urls")),
    path("", include("chatbot.urls")),
    path("api/v1/", include("deepmed.api_router")),
    path("metrics", metrics_view, name="metrics"),  # staff or METRICS_ALLOWED_IPS; 404 for everyone else
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its start-up script from a URL instead of inline, so the page runs under our CSP.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
]

handler400 = "deepmed.pages.bad_request"
handler403 = "deepmed.pages.permission_denied"
handler404 = "deepmed.pages.page_not_found"
handler500 = "deepmed.pages.server_error"
# allauth's own rate limits answer through this handler: the same page (or JSON) as ours.
handler429 = "accounts.views.ratelimited"
