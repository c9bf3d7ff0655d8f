"""Audit receivers for authentication events raised by Django, allauth and django-axes.

Two-factor changes are audited by the services in accounts/mfa.py; here are only the events other libraries
announce through signals, and the one consequence of a new password: the API tokens of the old one end.
"""

from allauth.account.signals import password_changed, password_reset, password_set, user_signed_up
from axes.signals import user_locked_out
from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import post_save
from django.dispatch import receiver

from .audit import audit_record
from .lockout import username_from_request
from .models import AuditEvent


def _http_request(request):
    # The token endpoint hands django-axes a DRF Request; touching its `.user` would run DRF authentication.
    return getattr(request, "_request", request)


def _path(request) -> str:
    return getattr(request, "path", "") if request is not None else ""


@receiver(user_logged_in, dispatch_uid="accounts.audit.login")
def audit_login(sender, request, user, **kwargs):
    audit_record(action=AuditEvent.Action.LOGIN, request=request, actor=user, details={"path": _path(request)})


@receiver(user_login_failed, dispatch_uid="accounts.audit.login_failed")
def audit_login_failed(sender, credentials, request=None, **kwargs):
    # `credentials` arrive with the password already masked by Django; we keep only the account name.
    request = _http_request(request)
    attempted = username_from_request(None, credentials) or ""
    details = {"path": _path(request)}
    if request is not None and getattr(request, "axes_locked_out", False):
        details["locked_out"] = True
    audit_record(action=AuditEvent.Action.LOGIN_FAILED, request=request, actor_email=attempted, details=details)


@receiver(user_logged_out, dispatch_uid="accounts.audit.logout")
def audit_logout(sender, request, user, **kwargs):
    if user is None:
        return
    audit_record(action=AuditEvent.Action.LOGOUT, request=request, actor=user)


@receiver(user_locked_out, dispatch_uid="accounts.audit.locked_out")
def audit_locked_out(sender, request, username, ip_address, **kwargs):
    request = _http_request(request)
    audit_record(
        action=AuditEvent.Action.LOCKED_OUT,
        request=request,
        actor_email=username or "",
        details={"path": _path(request), "ip_address": ip_address},
    )


@receiver(user_signed_up, dispatch_uid="accounts.audit.registered")
def audit_registered(sender, request, user, **kwargs):
    audit_record(action=AuditEvent.Action.REGISTERED, request=request, actor=user, target=user)


@receiver(password_changed, dispatch_uid="accounts.audit.password_changed")
@receiver(password_set, dispatch_uid="accounts.audit.password_set")
def audit_password_changed(sender, request, user, **kwargs):
    audit_record(action=AuditEvent.Action.PASSWORD_CHANGED, request=request, actor=user, target=user)


@receiver(password_reset, dispatch_uid="accounts.audit.password_reset")
def audit_password_reset(sender, request, user, **kwargs):
    audit_record(action=AuditEvent.Action.PASSWORD_RESET, request=request, actor=user, target=user)


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="accounts.password_set.revoke_api_tokens")
def revoke_api_tokens_on_password_set(sender, instance, created, **kwargs):
    """A new password ends the API tokens obtained with the old one, however it was set.

    The profile's change and the e-mailed reset (allauth), the admin's password form and `manage.py changepassword`
    all call set_password() and save(). Django keeps the new raw password in `_password` from set_password() until
    that save has run its receivers; a hash upgraded at login is saved with `_password` already cleared, so it
    ends nothing.
    """
    if created or getattr(instance, "_password", None) is None:
        return
    from .services import user_api_tokens_revoke

    user_api_tokens_revoke(user=instance, reason="password_changed")
