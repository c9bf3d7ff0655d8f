"""Reads for account pages: two-factor status and the user's own recent security events."""

from dataclasses import dataclass

from django.db.models import Count
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from .models import AuditEvent


@dataclass(frozen=True)
class MFAStatus:
    enabled: bool
    setup_pending: bool
    backup_codes_left: int


def mfa_status_for_user(*, user) -> MFAStatus:
    totp_states = set(TOTPDevice.objects.filter(user=user).values_list("confirmed", flat=True))
    backup = (
        StaticDevice.objects.filter(user=user, confirmed=True)
        .annotate(codes=Count("token_set"))
        .values_list("codes", flat=True)
    )
    return MFAStatus(
        enabled=True in totp_states,
        setup_pending=False in totp_states and True not in totp_states,
        backup_codes_left=sum(backup),
    )


def audit_event_list_for_user(*, user, limit: int = 10) -> list[AuditEvent]:
    """The latest security events where this user acted, for the profile's "recent activity" list."""
    return list(AuditEvent.objects.filter(actor=user).order_by("-created_at", "-id")[:limit])
