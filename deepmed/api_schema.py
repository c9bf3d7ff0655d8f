"""Schema pieces every app's API shares: one component per shape, so the OpenAPI document names it once."""

from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    """The body of every API error (deepmed.exceptions.api_exception_handler)."""

    detail = serializers.CharField()
    code = serializers.CharField()


def error_response(description: str):
    """An OpenAPI response documented as the shared error body, for `extend_schema(responses=...)`."""
    from drf_spectacular.utils import OpenApiResponse

    return OpenApiResponse(ErrorSerializer, description=description)
