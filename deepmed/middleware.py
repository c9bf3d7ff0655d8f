"""Request ids and the access log, extra security headers, and a clean 503 when the database is away."""

import logging
import re
import time
import uuid

from django.conf import settings
from django.db import OperationalError
from django.db.utils import InterfaceError
from django.http import HttpResponse, JsonResponse
from django.template.loader import render_to_string

from .logging import request_id_var, user_id_var

access_log = logging.getLogger("deepmed.access")
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def wants_json(request) -> bool:
    return request.path.startswith(("/api/", "/chat/")) or "application/json" in request.headers.get("Accept", "")


class RequestIdMiddleware:
    """Gives each request an id (or keeps a well-formed X-Request-ID) and logs one line when it ends."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        token = request_id_var.set(request_id)
        user_token = user_id_var.set("-")
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            user = getattr(request, "user", None)
            if user is not None and user.is_authenticated:
                user_id_var.set(str(user.pk))
            response["X-Request-ID"] = request_id
            duration_ms = round((time.perf_counter() - started) * 1000, 1)
            # request.path never holds the query string, which may carry identifiers; the body is never logged.
            access_log.info(
                "%s %s %s %.1fms",
                request.method,
                request.path,
                response.status_code,
                duration_ms,
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": duration_ms,
                },
            )
            return response
        finally:
            request_id_var.reset(token)
            user_id_var.reset(user_token)

    def process_view(self, request, view_func, view_args, view_kwargs):
        # Session users are known once the middlewares ran, so the view's own log lines carry the user id too.
        # API users authenticated by DRF (JWT) are known only after the view: the access line still has them.
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            user_id_var.set(str(user.pk))


class SecurityHeadersMiddleware:
    """Headers Django does not set itself (CSP comes from django-csp, the rest from SecurityMiddleware)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
        response.setdefault("Cross-Origin-Resource-Policy", "same-origin")
        response.setdefault("X-Content-Type-Options", "nosniff")
        response.setdefault("Referrer-Policy", "same-origin")
        if request.user.is_authenticated if hasattr(request, "user") else False:
            # Pages with patient data must not linger in shared caches or the back button of a ward PC.
            response.setdefault("Cache-Control", "no-store")
        return response


class DatabaseUnavailableMiddleware:
    """A database (or broker) outage is a 503 the client can retry, not a 500 with a stack trace."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        from .jobs import BROKER_UNAVAILABLE, BROKER_UNAVAILABLE_MESSAGE

        if isinstance(exception, OperationalError | InterfaceError):
            logging.getLogger("deepmed").error("database unavailable: %s", exception.__class__.__name__)
            message = "The database is temporarily unavailable. Please try again in a moment."
        elif isinstance(exception, BROKER_UNAVAILABLE):
            # A job sent without deepmed.jobs.send_job while Redis is away: still a 503, not a 500.
            logging.getLogger("deepmed").error("broker unavailable: %s", exception.__class__.__name__)
            message = BROKER_UNAVAILABLE_MESSAGE
        else:
            return None
        if wants_json(request):
            response = JsonResponse({"detail": message, "code": "service_unavailable"}, status=503)
        else:
            context = {"message": message, "SUPPORT_EMAIL": settings.SUPPORT_EMAIL}
            response = HttpResponse(render_to_string("503.html", context), status=503)
        response["Retry-After"] = "5"
        return response
