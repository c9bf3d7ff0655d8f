"""One application error type, mapped to a 4xx JSON body `{"detail", "code"}` by the API handler."""

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler


class ApplicationError(Exception):
    """A refusal a user can act on: the message is shown to them as it is."""

    status_code = status.HTTP_400_BAD_REQUEST
    code = "invalid"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status_code: int | None = None,
        extra=None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        if status_code:
            self.status_code = status_code
        self.extra = extra or {}
        # e.g. Retry-After on a lockout, WWW-Authenticate on a 401
        self.headers = headers or {}


class NotFound(ApplicationError):
    status_code = status.HTTP_404_NOT_FOUND
    code = "not_found"


# DRF and simplejwt defaults that do not tell an integrator what to do next.
_PLAIN_MESSAGES = {
    "token_not_valid": (
        "The access token is expired, revoked or malformed. Get a new one with your refresh token at "
        "/api/v1/auth/token/refresh/, or sign in again at /api/v1/auth/token/."
    ),
    "not_authenticated": (
        "Sign in first: send `Authorization: Bearer <access token>` (from /api/v1/auth/token/) "
        "or use a browser session."
    ),
}


def _flatten(detail) -> str:
    if isinstance(detail, list):
        return " ".join(_flatten(item) for item in detail)
    if isinstance(detail, dict):
        parts = []
        for key, value in detail.items():
            text = _flatten(value)
            parts.append(text if key in ("detail", "non_field_errors") else f"{key}: {text}")
        return " ".join(parts)
    return str(detail)


def _first_code(codes) -> str:
    if isinstance(codes, str):
        return codes
    if isinstance(codes, list) and codes:
        return _first_code(codes[0])
    if isinstance(codes, dict) and codes:
        return _first_code(next(iter(codes.values())))
    return "invalid"


def api_exception_handler(exc, context):
    """Every API error becomes `{"detail": "...", "code": "..."}`; validation errors keep field details."""
    if isinstance(exc, ApplicationError):
        body = {"detail": exc.message, "code": exc.code, **exc.extra}
        return Response(body, status=exc.status_code, headers=exc.headers)
    if isinstance(exc, ValidationError):
        exc = drf_exceptions.ValidationError(exc.messages)
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    if isinstance(exc, PermissionDenied):
        exc = drf_exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, drf_exceptions.APIException):
        detail = exc.detail
        code = _first_code(exc.get_codes())
        if isinstance(detail, dict) and "detail" in detail:
            # simplejwt's shape: {"detail", "code", "messages": [per token class]}; the messages are internals.
            code = str(detail.get("code") or code)
            body = {"detail": _PLAIN_MESSAGES.get(code, str(detail["detail"])), "code": code}
        else:
            body = {"detail": _PLAIN_MESSAGES.get(code, _flatten(detail)), "code": code}
            if isinstance(detail, dict):
                body["errors"] = detail
        response.data = body
    return response
