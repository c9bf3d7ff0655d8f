"""System endpoints: service status (JSON, and a page for staff), storage integrity, liveness and readiness."""

from django.contrib.auth.views import redirect_to_login
from django.core.cache import cache
from django.http import JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import STAFF_ONLY, IsVerifiedStaff, request_has_staff_powers, staff_page_refusal
from deepmed.api_schema import error_response
from modelhub.selectors import media_storage_report

from . import health

# The worker ping waits its whole timeout, so anonymous callers share one recent result instead of each
# holding a web worker for a second.
PUBLIC_STATUS_CACHE_KEY = "deepmed:service_status"
PUBLIC_STATUS_CACHE_SECONDS = 10


def _wants_html(request) -> bool:
    return request.GET.get("format") != "json" and "text/html" in request.headers.get("Accept", "")


class JSONOnlyNegotiation(BaseContentNegotiation):
    """These endpoints speak JSON whatever the Accept header says; the status page is chosen before DRF renders."""

    def select_parser(self, request, parsers):
        return parsers[0]

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


def _page_rows(services: dict[str, dict]) -> list[dict]:
    rows = []
    for name, result in services.items():
        details = []
        for key, value in result.items():
            if key in ("status", "critical"):
                continue
            text = ", ".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
            details.append((key.replace("_", " "), text or "—"))
        rows.append({"name": name, "status": result["status"], "critical": result.get("critical"), "details": details})
    return rows


_STATUS_CHOICES = ["ok", "degraded", "down"]

SERVICE_STATUS_SCHEMA = extend_schema(
    summary="Status of the platform's services",
    description=(
        "Each registered service (database, broker, worker, and those other apps add) with its status: "
        '"ok", "degraded", "down" or "not_configured". Staff also get each check\'s details '
        "(latency, workers that answered, error texts). A browser (Accept: text/html) gets a page, staff only; "
        "`?format=json` forces JSON."
    ),
    auth=[],
    parameters=[OpenApiParameter("format", str, enum=["json"], required=False)],
    responses=inline_serializer(
        "ServiceStatus",
        {
            "status": serializers.ChoiceField(choices=_STATUS_CHOICES),
            "services": serializers.DictField(child=serializers.DictField(), help_text='{name: {"status", ...}}'),
            "checked_at": serializers.DateTimeField(),
        },
    ),
)

CHECK_DOWNLOADS_DIR_SCHEMA = extend_schema(
    summary="Storage use and integrity under MEDIA_ROOT (staff)",
    responses={
        200: inline_serializer(
            "StorageReport",
            {
                "status": serializers.ChoiceField(choices=["ok", "degraded"]),
                "media_root_exists": serializers.BooleanField(),
                "media_root_writable": serializers.BooleanField(),
                "total_bytes": serializers.IntegerField(),
                "file_count": serializers.IntegerField(),
                "bytes_by_folder": serializers.DictField(child=serializers.IntegerField()),
                "orphans": serializers.DictField(help_text='Files no row names: {"count", "bytes", "files"}'),
                "missing": serializers.DictField(help_text='Rows whose file is gone: {"count", "rows"}'),
                "unsafe": serializers.DictField(
                    help_text='Rows naming a path outside the owner\'s folder: {"count", "rows"}'
                ),
            },
        ),
        403: error_response(STAFF_ONLY),
    },
)


class ServiceStatusView(APIView):
    """Anyone sees each service's status; staff also see the details (latency, workers, error texts)."""

    permission_classes = [AllowAny]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = JSONOnlyNegotiation

    @SERVICE_STATUS_SCHEMA
    def get(self, request):
        # Details only for staff with a second factor (MFA_REQUIRED_FOR_STAFF); other staff see the public view.
        is_staff = request_has_staff_powers(request)
        if _wants_html(request):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            refusal = staff_page_refusal(request)
            if refusal is not None:
                return refusal

        if is_staff:
            results = health.run_checks()
            body = {**health.public_summary(results), "services": results, "checked_at": timezone.now().isoformat()}
        else:
            body = cache.get(PUBLIC_STATUS_CACHE_KEY)
            if body is None:
                body = {**health.public_summary(health.run_checks()), "checked_at": timezone.now().isoformat()}
                cache.set(PUBLIC_STATUS_CACHE_KEY, body, PUBLIC_STATUS_CACHE_SECONDS)

        if _wants_html(request):
            context = {
                "overall": body["status"],
                "rows": _page_rows(body["services"]),
                "checked_at": body["checked_at"],
            }
            return render(request, "system/service_status.html", context)
        response = Response(body)
        response["Cache-Control"] = "no-store"
        return response


class CheckDownloadsDirView(APIView):
    """Staff only: storage use under MEDIA_ROOT, files no row names, rows whose file is gone."""

    permission_classes = [IsVerifiedStaff]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = JSONOnlyNegotiation

    @CHECK_DOWNLOADS_DIR_SCHEMA
    def get(self, request):
        return Response(media_storage_report())


@never_cache
@require_GET
def healthz(request):
    """Liveness: the process answers. Touches nothing else, so a database outage does not restart the pods."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request):
    """Readiness: the critical dependencies (database, broker) answer; otherwise 503 so no traffic is sent here."""
    results = health.run_checks(critical_only=True)
    status = health.overall_status(results)
    body = {"status": status, "checks": {name: result["status"] for name, result in results.items()}}
    return JsonResponse(body, status=503 if status == health.DOWN else 200)
