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


def document_shared_refusals(result, generator, request, public):
    """drf-spectacular postprocessing hook: the refusals every operation of a kind can give, documented once.

    Any operation that needs a signed-in caller answers 401 without one (DEFAULT_PERMISSION_CLASSES), any
    operation that reads a body answers 400 when it cannot be parsed (DRF's ParseError), and every API view is
    throttled (429 with Retry-After), whatever its view says. Listing them per view would be noise; leaving them
    out makes the schema lie to integrators and fuzzers.
    """
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            security = operation.get("security")
            if security and {} not in security and "401" not in responses:
                responses["401"] = {**error, "description": "Not signed in, or the access token is not valid."}
            if "requestBody" in operation and "400" not in responses:
                responses["400"] = {**error, "description": "The body could not be read or a value is not valid."}
            if "429" not in responses:
                responses["429"] = {**error, "description": "Too many requests; Retry-After says when to try again."}
    return result
