"""Two-factor login: an authenticator app (django-otp TOTP device) plus one-time backup codes (static device).

Services here are the only place that creates, confirms or removes a user's OTP devices, and each change is
written to the audit log. Views and the token API call them; they never touch the devices directly.
"""

import re
from datetime import datetime

import django_otp
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from deepmed.exceptions import ApplicationError

from .audit import audit_record
from .models import AuditEvent

TOTP_DEVICE_NAME = "Authenticator app"
BACKUP_DEVICE_NAME = "Backup codes"
_SEPARATORS = re.compile(r"[\s-]+")


class MFAError(ApplicationError):
    """A two-factor step the user can retry: wrong code, wrong password, or a wait after too many tries."""

    code = "invalid_otp"


def user_has_confirmed_mfa(user) -> bool:
    """True when the user finished setting up an authenticator app, so every login must ask for a code."""
    if user is None or not user.is_authenticated:
        return False
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def normalize_code(code: str) -> str:
    """Codes are read off phones and paper: ignore spaces, dashes and letter case."""
    return _SEPARATORS.sub("", code or "").lower()


def _candidate_devices(*, user, code: str) -> list[Device]:
    # A six-digit number can only be an app code; anything else can only be a backup code.
    if code.isdigit() and len(code) == 6:
        return list(TOTPDevice.objects.filter(user=user, confirmed=True))
    if code:
        return list(StaticDevice.objects.filter(user=user, confirmed=True))
    return []


def _throttled_until(devices: list[Device]) -> datetime | None:
    latest = None
    for device in devices:
        allowed, info = device.verify_is_allowed()
        if not allowed and info and info.get("locked_until"):
            latest = max(latest, info["locked_until"]) if latest else info["locked_until"]
    return latest


def _wait_message(until: datetime) -> str:
    seconds = max(1, int((until - timezone.now()).total_seconds()) + 1)
    return f"Too many wrong codes in a row. Wait {seconds} seconds, then enter the newest code from your app."


def mfa_match_code(*, user, code: str) -> Device | None:
    """The confirmed device that accepts this code (a used backup code is consumed), or None.

    Raises MFAError when the user's devices are throttled after repeated wrong codes, so the caller can say
    how long to wait instead of "wrong code".
    """
    cleaned = normalize_code(code)
    devices = _candidate_devices(user=user, code=cleaned)
    until = _throttled_until(devices)
    if until is not None:
        raise MFAError(_wait_message(until), code="otp_throttled")
    for device in devices:
        # verify_token locks the device row, so two requests cannot both spend one backup code.
        verified = django_otp.verify_token(user, device.persistent_id, cleaned)
        if verified is not None:
            return verified
    return None


def _record_failure(*, user, request, stage: str) -> None:
    audit_record(action=AuditEvent.Action.MFA_FAILED, request=request, actor=user, details={"stage": stage})


def mfa_totp_start(*, user) -> TOTPDevice:
    """The unconfirmed device shown on the setup page; reloading keeps the same secret until it is confirmed."""
    if user_has_confirmed_mfa(user):
        raise MFAError("Two-factor login is already on for your account.", code="mfa_already_enabled")
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("-id").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=TOTP_DEVICE_NAME, confirmed=False)
    return device


def _backup_codes_replace(*, user) -> list[str]:
    # Keep the device row and swap its tokens: a session verified with a backup code stays verified.
    device, _ = StaticDevice.objects.get_or_create(user=user, name=BACKUP_DEVICE_NAME, defaults={"confirmed": True})
    if not device.confirmed:
        device.confirmed = True
        device.save(update_fields=["confirmed"])
    StaticDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
    device.token_set.all().delete()
    device.throttle_reset(commit=True)
    codes: set[str] = set()
    while len(codes) < settings.MFA_BACKUP_CODES:
        codes.add(StaticToken.random_token())
    ordered = sorted(codes)
    StaticToken.objects.bulk_create([StaticToken(device=device, token=code) for code in ordered])
    return ordered


def mfa_totp_confirm(*, user, code: str, request=None) -> list[str]:
    """Confirm the pending authenticator app with a code from it; returns the 10 new backup codes (shown once).

    The session that proved the code counts as verified, so turning MFA on does not log the user out.
    """
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("-id").first()
    if device is None:
        raise MFAError(
            "Start the set-up again: there is no authenticator app waiting to be confirmed.", code="no_device"
        )
    allowed, info = device.verify_is_allowed()
    if not allowed:
        raise MFAError(_wait_message(info["locked_until"]), code="otp_throttled")
    cleaned = normalize_code(code)
    # Its own transaction, so the throttle counter a wrong code increments is kept even though we raise below.
    with transaction.atomic():
        locked = TOTPDevice.objects.select_for_update().get(pk=device.pk)
        accepted = cleaned.isdigit() and locked.verify_token(cleaned)
    if not accepted:
        _record_failure(user=user, request=request, stage="setup")
        raise MFAError(
            "That code did not match. Enter the 6-digit code your app shows now "
            "(check that your phone's clock is set automatically)."
        )
    with transaction.atomic():
        locked.confirmed = True
        locked.save(update_fields=["confirmed"])
        TOTPDevice.objects.filter(user=user).exclude(pk=locked.pk).delete()
        codes = _backup_codes_replace(user=user)
        audit_record(action=AuditEvent.Action.MFA_ENABLED, request=request, actor=user, target=user)
    if request is not None and getattr(request, "user", None) == user:
        django_otp.login(request, locked)
    return codes


def _require_code_or_password(*, user, secret: str, request, stage: str) -> None:
    if secret and user.check_password(secret):
        return
    if mfa_match_code(user=user, code=secret) is not None:
        return
    _record_failure(user=user, request=request, stage=stage)
    raise MFAError(
        "That is neither a current code from your authenticator app, an unused backup code, nor your password.",
        code="reauthentication_failed",
    )


def mfa_backup_codes_regenerate(*, user, secret: str, request=None) -> list[str]:
    """New backup codes after re-checking the user (a current code or their password); old codes stop working."""
    if not user_has_confirmed_mfa(user):
        raise MFAError("Turn on two-factor login first.", code="mfa_not_enabled")
    _require_code_or_password(user=user, secret=secret, request=request, stage="regenerate_backup_codes")
    with transaction.atomic():
        codes = _backup_codes_replace(user=user)
        audit_record(action=AuditEvent.Action.BACKUP_CODES_REGENERATED, request=request, actor=user, target=user)
    return codes


def mfa_disable(*, user, secret: str, request=None) -> None:
    """Remove the authenticator app and backup codes after re-checking the user."""
    if not user_has_confirmed_mfa(user):
        raise MFAError("Two-factor login is already off.", code="mfa_not_enabled")
    _require_code_or_password(user=user, secret=secret, request=request, stage="disable")
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user).delete()
        StaticDevice.objects.filter(user=user).delete()
        audit_record(action=AuditEvent.Action.MFA_DISABLED, request=request, actor=user, target=user)


def mfa_verify_login(*, request, code: str) -> Device:
    """The OTP step of login: a code from the app or a backup code marks this session as verified."""
    user = request.user
    device = mfa_match_code(user=user, code=code)
    if device is None:
        _record_failure(user=user, request=request, stage="login")
        raise MFAError("That code was not accepted. Enter the 6-digit code your app shows now, or a backup code.")
    django_otp.login(request, device)
    details = {"method": "backup_code" if isinstance(device, StaticDevice) else "totp"}
    if isinstance(device, StaticDevice):
        details["backup_codes_left"] = device.token_set.count()
    audit_record(action=AuditEvent.Action.MFA_VERIFIED, request=request, actor=user, details=details)
    return device


def mfa_reset_by_staff(*, user, staff, request=None) -> bool:
    """Staff remove a user's two-factor devices (lost phone); the user sets it up again at next login."""
    with transaction.atomic():
        removed_totp, _ = TOTPDevice.objects.filter(user=user).delete()
        removed_static, _ = StaticDevice.objects.filter(user=user).delete()
        if not (removed_totp or removed_static):
            return False
        audit_record(
            action=AuditEvent.Action.MFA_DISABLED,
            request=request,
            actor=staff,
            target=user,
            details={"by_staff": True},
        )
    return True
