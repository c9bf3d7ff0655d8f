"""The audit log records logins, failures, logouts, lockouts, registration, password and two-factor changes."""

import re

import pytest
from django.core import mail

from accounts.models import AuditEvent
from accounts.tests.test_mfa import confirmed_device, enable_mfa, totp_code

Action = AuditEvent.Action
NEW_PASSWORD = "a-long-new-password-2024"  # noqa: S105


def actions_of(email):
    return list(AuditEvent.objects.filter(actor_email=email).order_by("id").values_list("action", flat=True))


def test_successful_login_records_who_where_and_with_what(client, alice, password):
    client.post("/login", {"login": alice.email, "password": password}, HTTP_USER_AGENT="WardPC/1.0")
    event = AuditEvent.objects.get(action=Action.LOGIN)
    assert event.actor == alice
    assert event.ip_address == "127.0.0.1"
    assert event.user_agent == "WardPC/1.0"
    assert event.request_id


def test_failed_login_records_the_attempted_email_but_never_the_password(client, alice):
    client.post("/login", {"login": alice.email, "password": "my-secret-guess-42"})
    event = AuditEvent.objects.get(action=Action.LOGIN_FAILED)
    assert event.actor is None
    assert event.actor_email == alice.email
    stored = " ".join(str(value) for value in AuditEvent.objects.values().get(pk=event.pk).values())
    assert "my-secret-guess-42" not in stored


def test_failed_admin_login_is_recorded_with_its_path(client, bob):
    client.post("/admin/login/", {"username": bob.email, "password": "wrong-password-1"})
    event = AuditEvent.objects.get(action=Action.LOGIN_FAILED)
    assert event.actor_email == bob.email
    assert event.details["path"] == "/admin/login/"


def test_logout_is_recorded(client, alice):
    client.force_login(alice)
    client.post("/logout")
    assert AuditEvent.objects.filter(action=Action.LOGOUT, actor=alice).count() == 1


def test_lockout_is_recorded_once_the_limit_is_reached(client, alice):
    for _ in range(5):
        client.post("/login", {"login": alice.email, "password": "wrong-password-1"})
    assert AuditEvent.objects.filter(action=Action.LOGIN_FAILED).count() == 5
    assert AuditEvent.objects.filter(action=Action.LOCKED_OUT, actor_email=alice.email).count() == 1


def test_registration_is_recorded(client, db):
    client.post("/register", {"email": "dana@example.org", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    event = AuditEvent.objects.get(action=Action.REGISTERED)
    assert event.actor_email == "dana@example.org"
    assert event.target_type == "accounts.user"


def test_password_change_is_recorded(client, alice, password):
    client.force_login(alice)
    response = client.post(
        "/accounts/password/change/",
        {"oldpassword": password, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert response.status_code == 302
    assert AuditEvent.objects.filter(action=Action.PASSWORD_CHANGED, actor=alice).exists()


def test_password_reset_is_recorded(client, alice):
    client.post("/password/reset", {"email": alice.email})
    link = re.search(r"http://testserver/accounts/password/reset/key/[^\s]+/", mail.outbox[-1].body).group(0)
    form_page = client.get(link, follow=True)
    client.post(form_page.redirect_chain[-1][0], {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert AuditEvent.objects.filter(action=Action.PASSWORD_RESET, actor=alice).exists()


def test_two_factor_lifecycle_is_recorded(client, alice, password):
    codes = enable_mfa(alice)
    client.post("/login", {"login": alice.email, "password": password})
    client.post("/mfa/verify", {"code": "999999"})
    client.post("/mfa/verify", {"code": codes[0]})
    client.post("/profile/mfa/backup-codes", {"secret": password})
    client.post("/profile/mfa/disable", {"secret": password})
    assert actions_of(alice.email) == [
        Action.MFA_ENABLED,
        Action.LOGIN,
        Action.MFA_FAILED,
        Action.MFA_VERIFIED,
        Action.BACKUP_CODES_REGENERATED,
        Action.MFA_DISABLED,
    ]


def test_totp_verification_records_the_method(client, alice, password):
    enable_mfa(alice)
    client.post("/login", {"login": alice.email, "password": password})
    client.post("/mfa/verify", {"code": totp_code(confirmed_device(alice), steps_ahead=1)})
    assert AuditEvent.objects.get(action=Action.MFA_VERIFIED).details == {"method": "totp"}


def test_audit_rows_cannot_be_changed_or_deleted(alice, client, password):
    client.post("/login", {"login": alice.email, "password": password})
    event = AuditEvent.objects.get(action=Action.LOGIN)
    event.action = Action.LOGOUT
    with pytest.raises(PermissionError):
        event.save()
    with pytest.raises(PermissionError):
        event.delete()
    assert AuditEvent.objects.get(pk=event.pk).action == Action.LOGIN
