"""How django-axes names the account it counts failures against, and the account-wide limit across addresses.

Three doors lead to the same account: the web login (allauth's form field `login`), the admin login
(Django's field `username`, which holds the email here) and the token endpoint (`authenticate(email=...)`).
They must all land on the same name, the address's normal form (accounts.models.email_normalise), which is also
what the user lookup compares exactly: five failures spread over the three doors and over every spelling of the
address lock the account+IP pair.

axes locks an account+address pair (LOGIN_FAILURE_LIMIT); someone guessing from many addresses would never reach
it. `LockoutHandler` adds a limit per account whatever the address: LOGIN_ACCOUNT_FAILURE_LIMIT failures within
LOGIN_ACCOUNT_FAILURE_WINDOW_MINUTES lock the account until the failures of the window fall below the limit (or
staff unlock it), and tell its owner by e-mail once. The failures are axes' own failure log (AccessFailureLog),
kept in the database like every other lock, so all processes and restarts agree on them.
"""

from datetime import timedelta

from allauth.account.adapter import get_adapter
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username
from axes.models import AccessAttempt, AccessFailureLog
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from .audit import audit_record
from .models import AuditEvent, User, email_normalise

_ACCOUNT_KEYS = ("email", "login", "username")
_USER_TYPE = "accounts.user"


def _first_value(source, keys) -> str | None:
    if not source:
        return None
    for key in keys:
        value = source.get(key)
        if value:
            return email_normalise(str(value))
    return None


def username_from_request(request, credentials=None) -> str | None:
    """The account name axes locks on: the email's normal form, whatever form or API field carried it."""
    # Credentials win over the request body: they are what authenticate() actually checked.
    name = _first_value(credentials, _ACCOUNT_KEYS)
    if name:
        return name
    if request is None:
        return None
    data = getattr(request, "POST", None)
    return _first_value(data, _ACCOUNT_KEYS)


def _account_window_start(*, name: str):
    """Failures count from the start of the window, or from the last time staff unlocked the account if later."""
    start = timezone.now() - timedelta(minutes=settings.LOGIN_ACCOUNT_FAILURE_WINDOW_MINUTES)
    unlocked = (
        AuditEvent.objects.filter(action=AuditEvent.Action.UNLOCKED, target_type=_USER_TYPE, target_id=name)
        .order_by("-created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    return max(start, unlocked) if unlocked else start


def account_failures(*, name: str):
    """The failed logins of the account `name` (a normal form) that count towards its account-wide limit."""
    return AccessFailureLog.objects.filter(username=name, attempt_time__gte=_account_window_start(name=name))


def account_lock_active(*, name: str) -> bool:
    """True while the account has LOGIN_ACCOUNT_FAILURE_LIMIT failures in the window, from any addresses."""
    return account_failures(name=name).count() >= settings.LOGIN_ACCOUNT_FAILURE_LIMIT


def _http_request(request):
    # The token endpoint hands axes a DRF Request; its attributes are the Django request's.
    return getattr(request, "_request", request)


def _account_lock_announce(*, request, name: str, failures) -> None:
    """Audit the lock and tell the owner, once per lock (an account with no owner needs neither)."""
    user = User.objects.filter(email=name).first()
    if user is None:
        return
    already = AuditEvent.objects.filter(
        action=AuditEvent.Action.ACCOUNT_LOCKED,
        target_type=_USER_TYPE,
        target_id=str(user.pk),
        created_at__gte=_account_window_start(name=name),
    ).exists()
    if already:
        return
    count = failures.count()
    addresses = failures.values("ip_address").distinct().count()
    window = settings.LOGIN_ACCOUNT_FAILURE_WINDOW_MINUTES
    http_request = _http_request(request)
    audit_record(
        action=AuditEvent.Action.ACCOUNT_LOCKED,
        request=http_request,
        actor_email=name,
        target=user,
        details={"failures": count, "addresses": addresses, "window_minutes": window},
    )
    reset_path = reverse("account_reset_password")
    context = {
        "user": user,
        "failures": count,
        "addresses": addresses,
        "window_minutes": window,
        "reset_url": http_request.build_absolute_uri(reset_path) if http_request is not None else reset_path,
        "support_email": settings.SUPPORT_EMAIL,
    }
    get_adapter(http_request).send_mail("account/email/account_locked", user.email, context)


class LockoutHandler(AxesDatabaseHandler):
    """axes' database handler (account+address lockout) plus the account-wide limit across addresses."""

    def is_locked(self, request, credentials=None) -> bool:
        if super().is_locked(request, credentials):
            return True
        name = get_client_username(request, credentials)
        if not name or not account_lock_active(name=name):
            return False
        if request is not None:
            request.axes_account_locked = True
        return True

    def user_login_failed(self, sender, credentials: dict, request=None, **kwargs):
        super().user_login_failed(sender, credentials, request, **kwargs)
        if request is None:
            return
        name = get_client_username(request, credentials)
        if not name:
            return
        failures = account_failures(name=name)
        if failures.count() < settings.LOGIN_ACCOUNT_FAILURE_LIMIT:
            return
        # This failure reached the limit (or came while locked): the answer is the lockout, as at the fifth failure.
        request.axes_locked_out = True
        request.axes_account_locked = True
        _account_lock_announce(request=request, name=name, failures=failures)


def lockout_clear(*, email: str, request=None, staff=None) -> int:
    """Let an account log in again now: forget its failed logins on every address and lift its account-wide lock.

    Returns how many locks were lifted (one per address, plus one for the account-wide lock).
    """
    name = email_normalise(email)
    account_locked = account_lock_active(name=name)
    removed, _ = AccessAttempt.objects.filter(username=name).delete()
    if removed or account_locked:
        # From this event on, the account-wide limit counts afresh (_account_window_start).
        audit_record(
            action=AuditEvent.Action.UNLOCKED,
            request=request,
            actor=staff,
            target_type=_USER_TYPE,
            target_id=name,
            details={"attempts_removed": removed, "account_lock_lifted": account_locked},
        )
    return removed + int(account_locked)
