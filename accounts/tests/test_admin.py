"""Admin: users with their two-factor devices, the read-only audit log, roles, and createsuperuser."""

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import AuditEvent, User
from accounts.tests.test_mfa import confirmed_device, enable_mfa, login_verified

NEW_PASSWORD = "a-long-new-password-2024"  # noqa: S105


@pytest.fixture
def superuser(db):
    user = User.objects.create_superuser(email="root@example.org", password=NEW_PASSWORD)
    enable_mfa(user)
    return user


@pytest.fixture
def admin_client(superuser):
    client = Client()
    login_verified(client, superuser)
    return client


def test_non_staff_cannot_open_the_admin(client, alice):
    client.force_login(alice)
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_user_list_searches_and_filters_by_two_factor(admin_client, alice, charlie):
    enable_mfa(alice)
    response = admin_client.get(reverse("admin:accounts_user_changelist"), {"q": "alice"})
    html = response.content.decode()
    assert response.status_code == 200
    assert alice.email in html and charlie.email not in html
    with_mfa = admin_client.get(reverse("admin:accounts_user_changelist"), {"mfa": "on"}).content.decode()
    assert alice.email in with_mfa and charlie.email not in with_mfa


def test_user_page_shows_devices_without_their_secrets(admin_client, alice):
    enable_mfa(alice)
    device = confirmed_device(alice)
    html = admin_client.get(reverse("admin:accounts_user_change", args=[alice.pk])).content.decode()
    assert "authenticator app" in html.lower()
    assert device.key not in html
    assert not any(
        token in html for token in StaticDevice.objects.get(user=alice).token_set.values_list("token", flat=True)
    )


def test_device_admins_that_show_secrets_are_not_registered():
    assert not admin.site.is_registered(TOTPDevice)
    assert not admin.site.is_registered(StaticDevice)


def test_staff_can_add_a_user_with_an_email(admin_client):
    response = admin_client.post(
        reverse("admin:accounts_user_add"),
        {
            "email": "new.doctor@example.org",
            "usable_password": "true",
            "password1": NEW_PASSWORD,
            "password2": NEW_PASSWORD,
        },
    )
    assert response.status_code == 302
    assert User.objects.get(email="new.doctor@example.org").check_password(NEW_PASSWORD)


def test_reset_two_factor_action_removes_devices_and_is_audited(admin_client, superuser, alice):
    enable_mfa(alice)
    response = admin_client.post(
        reverse("admin:accounts_user_changelist"), {"action": "reset_two_factor", "_selected_action": [alice.pk]}
    )
    assert response.status_code == 302
    assert not TOTPDevice.objects.filter(user=alice).exists()
    event = AuditEvent.objects.get(action=AuditEvent.Action.MFA_DISABLED, target_id=str(alice.pk))
    assert event.actor == superuser
    assert event.details == {"by_staff": True}


def test_audit_log_is_listed_and_filterable(admin_client, alice):
    AuditEvent.objects.create(action=AuditEvent.Action.LOGIN, actor=alice, actor_email=alice.email)
    AuditEvent.objects.create(action=AuditEvent.Action.LOGOUT, actor=alice, actor_email=alice.email)
    url = reverse("admin:accounts_auditevent_changelist")
    assert admin_client.get(url, {"q": alice.email}).status_code == 200
    filtered = admin_client.get(url, {"action__exact": "logout"})
    assert filtered.context["cl"].result_count == AuditEvent.objects.filter(action="logout").count()


def test_audit_log_cannot_be_added_changed_or_deleted_even_by_a_superuser(admin_client, alice):
    event = AuditEvent.objects.create(action=AuditEvent.Action.LOGIN, actor=alice, actor_email=alice.email)
    assert admin_client.get(reverse("admin:accounts_auditevent_add")).status_code == 403
    change = admin_client.post(reverse("admin:accounts_auditevent_change", args=[event.pk]), {"action": "logout"})
    assert change.status_code == 403
    delete = admin_client.post(reverse("admin:accounts_auditevent_delete", args=[event.pk]), {"post": "yes"})
    assert delete.status_code == 403
    assert AuditEvent.objects.get(pk=event.pk).action == AuditEvent.Action.LOGIN


def test_roles_are_django_groups_with_a_security_officer_role(admin_client):
    assert admin_client.get(reverse("admin:auth_group_changelist")).status_code == 200
    officers = Group.objects.get(name="Security officers")
    codenames = set(officers.permissions.values_list("codename", flat=True))
    assert {"view_auditevent", "delete_accessattempt", "change_user"} <= codenames
    assert "delete_auditevent" not in codenames


def test_lockouts_are_listed_in_the_admin(admin_client):
    assert admin_client.get(reverse("admin:axes_accessattempt_changelist")).status_code == 200


def test_createsuperuser_works_with_the_email_user(db, monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", NEW_PASSWORD)
    call_command("createsuperuser", interactive=False, email="Admin@Example.org", verbosity=0)
    user = User.objects.get(email="admin@example.org")
    assert user.is_superuser and user.is_staff
    assert user.check_password(NEW_PASSWORD)


def test_deleting_a_device_on_the_user_page_is_audited(admin_client, superuser, alice):
    enable_mfa(alice)
    totp = confirmed_device(alice)
    static = StaticDevice.objects.get(user=alice)
    data = {
        "email": alice.email,
        "first_name": alice.first_name,
        "last_name": "",
        "is_active": "on",
        "totpdevice_set-TOTAL_FORMS": "1",
        "totpdevice_set-INITIAL_FORMS": "1",
        "totpdevice_set-0-id": str(totp.pk),
        "totpdevice_set-0-user": str(alice.pk),
        "totpdevice_set-0-DELETE": "on",
        "staticdevice_set-TOTAL_FORMS": "1",
        "staticdevice_set-INITIAL_FORMS": "1",
        "staticdevice_set-0-id": str(static.pk),
        "staticdevice_set-0-user": str(alice.pk),
    }
    response = admin_client.post(reverse("admin:accounts_user_change", args=[alice.pk]), data)
    assert response.status_code == 302
    assert not TOTPDevice.objects.filter(user=alice).exists()
    assert StaticDevice.objects.filter(user=alice).exists()
    event = AuditEvent.objects.get(action=AuditEvent.Action.MFA_DISABLED)
    assert event.actor == superuser and event.target_id == str(alice.pk)


def test_user_page_lists_failed_logins_with_a_link_to_clear_them(admin_client, alice):
    for _ in range(2):
        Client().post("/login", {"login": alice.email, "password": "wrong-password-1"})
    html = admin_client.get(reverse("admin:accounts_user_change", args=[alice.pk])).content.decode()
    assert "2 failures from 127.0.0.1" in html
    assert reverse("admin:axes_accessattempt_changelist") in html
