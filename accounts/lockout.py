"""How django-axes names the account it counts failures against.

Three doors lead to the same account: the web login (allauth's form field `login`), the admin login
(Django's field `username`, which holds the email here) and the token endpoint (`authenticate(email=...)`).
They must all land on the same lowercase email so that five failures spread over the three still lock the
account+IP pair.
"""

from axes.models import AccessAttempt

from .audit import audit_record
from .models import AuditEvent

_ACCOUNT_KEYS = ("email", "login", "username")


def _first_value(source, keys) -> str | None:
    if not source:
        return None
    for key in keys:
        value = source.get(key)
        if value:
            return str(value).strip().lower()
    return None


def username_from_request(request, credentials=None) -> str | None:
    """The account name axes locks on: the email, whatever form or API field carried it."""
    # Credentials win over the request body: they are what authenticate() actually checked.
    name = _first_value(credentials, _ACCOUNT_KEYS)
    if name:
        return name
    if request is None:
        return None
    data = getattr(request, "POST", None)
    return _first_value(data, _ACCOUNT_KEYS)


def lockout_clear(*, email: str, request=None, staff=None) -> int:
    """Forget the failed logins of an account on every IP, so it can log in again now; returns rows removed."""
    name = email.strip().lower()
    removed, _ = AccessAttempt.objects.filter(username=name).delete()
    if removed:
        audit_record(
            action=AuditEvent.Action.UNLOCKED,
            request=request,
            actor=staff,
            target_type="accounts.user",
            target_id=name,
            details={"attempts_removed": removed},
        )
    return removed
