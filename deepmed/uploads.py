"""Upload size checks shared by every app: refuse by the declared length before Django parses the body."""

# Multipart framing and the other form fields add a little; a file just under its limit must still pass.
MULTIPART_ALLOWANCE = 64 * 1024


def declared_length(request) -> int:
    """The request's Content-Length, or 0 when it is absent or not a number (chunked bodies are capped elsewhere)."""
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def refuse_declared_over(request, *, limit_bytes: int, error) -> None:
    """Raise `error(declared)` when the declared length passes `limit_bytes`, so an oversized upload is never
    spooled to disk. `error` builds the clinician-facing 400 with the size it was given."""
    declared = declared_length(request)
    if declared > limit_bytes + MULTIPART_ALLOWANCE:
        raise error(declared)
