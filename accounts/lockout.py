def username_from_request(request, credentials=None):
    """The account name axes locks on: the email, whatever form or API field carried it."""
    credentials = credentials or {}
    for key in ("email", "login", "username"):
        value = credentials.get(key) or (
            request.POST.get(key) if request is not None and hasattr(request, "POST") else None
        )
        if value:
            return str(value).strip().lower()
    return None
