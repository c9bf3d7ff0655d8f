"""Writes for accounts: API tokens (issue, refresh, revoke) and force logout.

The token endpoint goes through `django.contrib.auth.authenticate`, so django-axes counts its failures against
the same account+IP as the web and admin logins: five wrong passwords anywhere lock all three doors.
"""

import logging
from importlib import import_module

from allauth.account import app_settings as allauth_settings
from allauth.account.utils import has_verified_email
from axes.conf import settings as axes_settings
from axes.helpers import get_cool_off
from axes.utils import reset as axes_reset
from django.conf import settings
from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.models import update_last_login
from django.contrib.auth.signals import user_login_failed
from django.contrib.sessions.models import Session
from django.core.mail import EmailMessage, EmailMultiAlternatives
from django.db import transaction
from django.utils import timezone
from rest_framework import status
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken

from deepmed.client_ip import client_ip
from deepmed.exceptions import ApplicationError
from deepmed.jobs import BROKER_UNAVAILABLE

from .api.authentication import AUTH_TIME_CLAIM, OTP_CLAIM
from .audit import audit_record
from .mfa import MFAError, mfa_match_code, user_has_confirmed_mfa
from .models import AuditEvent, User, email_normalise

logger = logging.getLogger(__name__)

_AUTHENTICATE_HEADER = {"WWW-Authenticate": 'Bearer realm="api"'}


class TokenRefused(ApplicationError):
    """The token endpoint said no: wrong credentials, a missing or wrong code, or a locked account."""

    status_code = status.HTTP_401_UNAUTHORIZED
    code = "authentication_failed"

    def __init__(self, message: str, *, code: str | None = None, status_code: int | None = None, headers=None):
        headers = {**_AUTHENTICATE_HEADER, **(headers or {})}
        super().__init__(message, code=code, status_code=status_code, headers=headers)


def _lockout_refusal(request) -> TokenRefused:
    if getattr(request, "axes_account_locked", False):
        # accounts.lockout: the account-wide limit, reached from many addresses.
        window = settings.LOGIN_ACCOUNT_FAILURE_WINDOW_MINUTES
        return TokenRefused(
            "Too many failed sign-in attempts on this account from many addresses: it is locked for everyone for "
            f"up to {window} minutes, and its owner was told by e-mail. An administrator can unlock it sooner.",
            code="locked_out",
            status_code=axes_settings.AXES_HTTP_RESPONSE_CODE,
            headers={"Retry-After": str(window * 60)},
        )
    cool_off = get_cool_off()
    minutes = int(cool_off.total_seconds() // 60) if cool_off else None
    wait = f"Try again in {minutes} minutes" if minutes else "Ask an administrator to unlock it"
    headers = {"Retry-After": str(int(cool_off.total_seconds()))} if cool_off else {}
    return TokenRefused(
        f"Too many failed sign-in attempts: this account is locked from your address. {wait}, "
        "or ask an administrator to unlock it sooner.",
        code="locked_out",
        status_code=axes_settings.AXES_HTTP_RESPONSE_CODE,
        headers=headers,
    )


def _is_locked_out(request) -> bool:
    return bool(getattr(request, "axes_locked_out", False))


def _token_failed(*, request, email: str, reason: str, user=None) -> None:
    audit_record(
        action=AuditEvent.Action.TOKEN_FAILED,
        request=request,
        actor=user,
        actor_email=email,
        target=user,
        details={"reason": reason},
    )


def token_pair_issue(*, user: User, otp_verified: bool = False) -> dict[str, str]:
    """A new refresh token (recorded as outstanding, so it can be blacklisted) and its access token.

    `otp_verified`: the caller accepted the user's two-factor code; only such tokens carry OTP_CLAIM, which accounts
    with an authenticator app and staff powers require.
    """
    refresh = RefreshToken.for_user(user)
    refresh[AUTH_TIME_CLAIM] = timezone.now().timestamp()
    if otp_verified:
        refresh[OTP_CLAIM] = True
    # for_user stored the token text before the claim was added; keep the stored copy identical to what we hand out.
    OutstandingToken.objects.filter(jti=refresh[jwt_settings.JTI_CLAIM]).update(token=str(refresh))
    return {"access": str(refresh.access_token), "refresh": str(refresh)}


def token_pair_obtain(*, request, email: str, password: str, otp: str | None = None) -> dict[str, str]:
    """Check email, password and (when the user has an authenticator app) a code; return a token pair.

    `request` must be the object passed to authenticate(): django-axes marks it when the account+IP is locked.
    Raises TokenRefused with code authentication_failed, otp_required, otp_invalid, otp_throttled, locked_out or
    email_unverified.
    """
    email = email_normalise(email)
    user = authenticate(request=request, email=email, password=password)
    if user is None:
        # Inactive users and unknown emails land here too: the answer must not tell them apart.
        locked = _is_locked_out(request)
        _token_failed(request=request, email=email, reason="locked_out" if locked else "bad_credentials")
        if locked:
            raise _lockout_refusal(request)
        raise TokenRefused("The email address or password is not correct.")

    uses_mfa = user_has_confirmed_mfa(user)
    if uses_mfa:
        _token_otp_check(request=request, email=email, user=user, otp=otp)
    _token_email_verified_check(request=request, email=email, user=user)

    if axes_settings.AXES_RESET_ON_SUCCESS:
        axes_reset(ip=getattr(request, "axes_ip_address", None) or client_ip(request), username=email)
    if jwt_settings.UPDATE_LAST_LOGIN:
        update_last_login(None, user)
    tokens = token_pair_issue(user=user, otp_verified=uses_mfa)
    details = {"mfa": uses_mfa}
    audit_record(action=AuditEvent.Action.TOKEN_ISSUED, request=request, actor=user, target=user, details=details)
    return tokens


def _token_email_verified_check(*, request, email: str, user: User) -> None:
    """While verification is mandatory, an unconfirmed address gets no tokens, as the web login lets it in nowhere.

    Checked only after the password (and code) were right, so the answer tells nothing to someone without them.
    """
    mandatory = allauth_settings.EMAIL_VERIFICATION == allauth_settings.EmailVerificationMethod.MANDATORY
    if not mandatory or has_verified_email(user):
        return
    _token_failed(request=request, email=email, reason="email_unverified", user=user)
    raise TokenRefused(
        f"Confirm your e-mail address first: open the link in the e-mail we sent to {user.email}. "
        "Signing in on the website sends a new link if it was lost or has expired.",
        code="email_unverified",
    )


def _token_otp_check(*, request, email: str, user: User, otp: str | None) -> None:
    """Second step for accounts with an authenticator app; raises TokenRefused unless `otp` is accepted."""
    if not otp:
        # The first half of a two-step exchange, not a failure: the client now asks its user for the code.
        _token_failed(request=request, email=email, reason="otp_required", user=user)
        raise TokenRefused(
            "This account uses two-factor login. Send the 6-digit code from the authenticator app "
            "(or a backup code) in the `otp` field.",
            code="otp_required",
        )
    throttled = None
    try:
        if mfa_match_code(user=user, code=otp) is not None:
            return
    except MFAError as exc:  # django-otp's growing delay after wrong codes
        throttled = exc
    # A refused code after a right password counts towards the lockout: the password may be stolen.
    user_login_failed.send(sender=__name__, credentials={"email": email}, request=request)
    if _is_locked_out(request):
        _token_failed(request=request, email=email, reason="locked_out", user=user)
        raise _lockout_refusal(request)
    if throttled is not None:
        _token_failed(request=request, email=email, reason=throttled.code, user=user)
        raise TokenRefused(throttled.message, code=throttled.code, status_code=status.HTTP_429_TOO_MANY_REQUESTS)
    _token_failed(request=request, email=email, reason="otp_invalid", user=user)
    raise TokenRefused(
        "That code was not accepted. Send the code your authenticator app shows now, or an unused backup code.",
        code="otp_invalid",
    )


def _refresh_token_load(raw: str) -> RefreshToken:
    try:
        return RefreshToken(raw)
    except TokenError as exc:
        raise TokenRefused(
            "This refresh token is expired, revoked or malformed. Request a new pair at /api/v1/auth/token/.",
            code="token_not_valid",
        ) from exc


def _token_reused() -> TokenRefused:
    return TokenRefused(
        "This refresh token has already been used. Request a new pair at /api/v1/auth/token/.",
        code="token_not_valid",
    )


def _token_user(token: RefreshToken) -> User | None:
    user_id = token.get(jwt_settings.USER_ID_CLAIM)
    return get_user_model().objects.filter(**{jwt_settings.USER_ID_FIELD: user_id}).first()


def token_pair_refresh(*, refresh: str) -> dict[str, str]:
    """Exchange a refresh token for a new pair; the old refresh token is blacklisted (rotation)."""
    token = _refresh_token_load(refresh)
    user = _token_user(token)
    if user is None or not user.is_active:
        raise TokenRefused("This account no longer exists or has been deactivated.", code="user_inactive")
    with transaction.atomic():
        # Blacklisting first means a token replayed in parallel fails the unique constraint or the check above.
        _, created = token.blacklist()
        if not created:
            raise _token_reused()
        access = token.access_token
        token.set_jti()
        token.set_exp()
        token.set_iat()
        token.outstand()
    return {"access": str(access), "refresh": str(token)}


def refresh_token_revoke(*, refresh: str, user: User | None, request=None) -> None:
    """Blacklist one refresh token (API logout). A signed-in caller may only revoke their own tokens."""
    token = _refresh_token_load(refresh)
    owner = _token_user(token)
    if user is not None and user.is_authenticated and (owner is None or owner.pk != user.pk):
        raise ApplicationError(
            "This refresh token belongs to another account; you can only revoke your own tokens.",
            code="permission_denied",
            status_code=status.HTTP_403_FORBIDDEN,
        )
    token.blacklist()
    audit_record(
        action=AuditEvent.Action.TOKEN_REVOKED,
        request=request,
        actor=owner,
        target=owner,
        details={"jti": token[jwt_settings.JTI_CLAIM]},
    )


def user_sessions_end(*, user: User) -> int:
    """Delete every unexpired session of `user`; returns how many there were.

    Sessions are found by decoding rows of the database session table, so this needs a database-backed
    SESSION_ENGINE (db or cached_db, the only ones this platform configures). Deleting through the engine's
    SessionStore also clears the cached copy under cached_db.
    """
    store_class = import_module(settings.SESSION_ENGINE).SessionStore
    user_id = str(user.pk)
    ended = 0
    unexpired = Session.objects.filter(expire_date__gt=timezone.now())
    for session in unexpired.iterator():
        if str(session.get_decoded().get("_auth_user_id")) == user_id:
            store_class(session_key=session.session_key).delete()
            ended += 1
    return ended


def user_refresh_tokens_blacklist(*, user: User) -> int:
    """Blacklist every unexpired refresh token of `user` not already blacklisted; returns how many."""
    outstanding = list(
        OutstandingToken.objects.filter(user=user, expires_at__gt=timezone.now(), blacklistedtoken__isnull=True)
    )
    revoked = [BlacklistedToken(token=token) for token in outstanding]
    BlacklistedToken.objects.bulk_create(revoked, ignore_conflicts=True)
    return len(outstanding)


def user_api_tokens_revoke(*, user: User, reason: str, request=None) -> int:
    """Blacklist every refresh token of `user` and end the access tokens issued before now; returns how many
    refresh tokens were revoked.

    For a password change or reset: whoever knew the old password must not keep an API session. Access tokens are
    refused by accounts.api.authentication, which compares their auth time with the event recorded here.
    """
    with transaction.atomic():
        revoked = user_refresh_tokens_blacklist(user=user)
        audit_record(
            action=AuditEvent.Action.API_TOKENS_REVOKED,
            request=request,
            actor=user,
            target=user,
            details={"reason": reason, "tokens_revoked": revoked},
        )
    return revoked


def user_force_logout(*, user: User, actor: User, request=None) -> dict[str, int]:
    """End every session and revoke every refresh token of `user`.

    Access tokens issued earlier are refused from now on by accounts.api.authentication, which compares their
    auth time with the FORCE_LOGOUT event recorded here: the event must be written, not just logged.
    Only a superuser may force a superuser out: otherwise any staff member could lock out those above them.
    """
    if user.is_superuser and not actor.is_superuser:
        raise ApplicationError(
            f"{user.email} is a superuser: only another superuser can force them out. Nothing was changed.",
            code="permission_denied",
            status_code=status.HTTP_403_FORBIDDEN,
        )
    with transaction.atomic():
        sessions_ended = user_sessions_end(user=user)
        tokens_blacklisted = user_refresh_tokens_blacklist(user=user)
        audit_record(
            action=AuditEvent.Action.FORCE_LOGOUT,
            request=request,
            actor=actor,
            target=user,
            details={"sessions_ended": sessions_ended, "tokens_blacklisted": tokens_blacklisted},
        )
    logger.info("force logout of user %s by %s", user.pk, actor.pk)
    return {"sessions_ended": sessions_ended, "tokens_blacklisted": tokens_blacklisted}


def email_payload(*, message: EmailMessage) -> dict:
    """A rendered e-mail as JSON-safe data for a Celery job (attachments are not part of the platform's mail)."""
    return {
        "subject": message.subject,
        "body": message.body,
        "content_subtype": message.content_subtype,
        "from_email": message.from_email,
        "to": list(message.to),
        "cc": list(message.cc),
        "bcc": list(message.bcc),
        "reply_to": list(message.reply_to),
        "headers": dict(message.extra_headers),
        "alternatives": [[str(content), mimetype] for content, mimetype in getattr(message, "alternatives", [])],
    }


def email_send(*, payload: dict) -> None:
    """Send an e-mail made by email_payload (the accounts.tasks.email_send job, or the fallback below)."""
    alternatives = payload.get("alternatives", [])
    message = EmailMultiAlternatives(
        subject=payload["subject"],
        body=payload["body"],
        from_email=payload["from_email"],
        to=payload["to"],
        cc=payload.get("cc") or None,
        bcc=payload.get("bcc") or None,
        reply_to=payload.get("reply_to") or None,
        headers=payload.get("headers") or None,
    )
    message.content_subtype = payload.get("content_subtype", "plain")
    for content, mimetype in alternatives:
        message.attach_alternative(content, mimetype)
    message.send()


def email_send_later(*, message: EmailMessage) -> None:
    """Hand a rendered e-mail to a Celery job, so that no request waits for (or is timed by) the mail server.

    Every account e-mail goes this way: registration with a new or a taken address then does the same work in the
    request. When the broker is away the e-mail is sent at once instead of being lost: a confirmation or reset link
    that never arrives is worse than one slow answer while the queue is down.
    """
    from . import tasks

    payload = email_payload(message=message)
    try:
        tasks.email_send.apply_async(args=[payload])
    except BROKER_UNAVAILABLE as exc:
        logger.warning("broker unavailable (%s): e-mail sent from the request instead", exc.__class__.__name__)
        email_send(payload=payload)
