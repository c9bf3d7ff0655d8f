"""django-axes lockout: five failures lock an account+IP on the web login, the admin login and authenticate() alike."""

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import authenticate
from django.test import RequestFactory
from django.urls import reverse

from accounts.lockout import lockout_clear, username_from_request
from accounts.models import AuditEvent
from accounts.tests.test_mfa import enable_mfa, login_verified

SECURITY_OFFICERS = "Security officers"


def security_officer_client(client_class, user):
    """A verified admin session for staff in the ready-made role that may clear lockouts."""
    from django.contrib.auth.models import Group

    user.groups.add(Group.objects.get(name=SECURITY_OFFICERS))
    enable_mfa(user)
    staff = client_class()
    login_verified(staff, user)
    return staff


LOCKED_TEXT = "Too many failed login attempts"


def web_login(client, email, password, ip="10.0.0.1"):
    return client.post("/login", {"login": email, "password": password}, REMOTE_ADDR=ip)


def admin_login(client, email, password, ip="10.0.0.1"):
    return client.post("/admin/login/?next=/admin/", {"username": email, "password": password}, REMOTE_ADDR=ip)


def fail_web(client, email, times, ip="10.0.0.1"):
    return [web_login(client, email, "wrong-password-123", ip=ip) for _ in range(times)]


# --- how axes names the account -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "credentials",
    [{"email": "Alice@Example.org "}, {"login": "alice@example.org"}, {"username": "ALICE@example.org"}],
)
def test_every_login_door_names_the_same_account(credentials):
    assert username_from_request(None, credentials) == "alice@example.org"


def test_account_name_falls_back_to_the_posted_form():
    request = RequestFactory().post("/login", {"login": "Alice@example.org", "password": "x"})
    assert username_from_request(request, None) == "alice@example.org"
    assert username_from_request(request, {"login": None}) == "alice@example.org"


def test_credentials_win_over_the_posted_form():
    request = RequestFactory().post("/admin/login/", {"username": "someone@else.org"})
    assert username_from_request(request, {"email": "alice@example.org"}) == "alice@example.org"


# --- web login ------------------------------------------------------------------------------------------------


def test_four_failures_leave_the_account_open(client, alice, password):
    responses = fail_web(client, alice.email, 4)
    assert all(response.status_code == 200 for response in responses)
    assert web_login(client, alice.email, password).status_code == 302


def test_fifth_failure_on_the_web_login_locks_and_says_so(client, alice, password):
    responses = fail_web(client, alice.email, 5)
    assert [r.status_code for r in responses] == [200, 200, 200, 200, 429]
    html = responses[-1].content.decode()
    assert LOCKED_TEXT in html
    assert "Try again in 30 minutes" in html
    assert "administrator" in html
    locked = web_login(client, alice.email, password)
    assert locked.status_code == 429
    assert LOCKED_TEXT in locked.content.decode()
    assert "_auth_user_id" not in client.session


def test_lockout_ignores_email_letter_case(client, alice, password):
    fail_web(client, "ALICE@example.org", 5)
    assert web_login(client, alice.email, password).status_code == 429


def test_a_successful_login_resets_the_count(client, alice, password):
    fail_web(client, alice.email, 4)
    assert web_login(client, alice.email, password).status_code == 302
    client.post("/logout")
    assert [r.status_code for r in fail_web(client, alice.email, 4)] == [200] * 4


def test_lockout_is_per_account_and_ip(client, alice, charlie, password):
    fail_web(client, alice.email, 5, ip="10.0.0.1")
    assert web_login(client, alice.email, password, ip="10.0.0.1").status_code == 429
    # Another network can still log in to alice, and alice's network can still log in to charlie.
    assert web_login(client, alice.email, password, ip="10.0.0.2").status_code == 302
    client.post("/logout")
    assert web_login(client, charlie.email, password, ip="10.0.0.1").status_code == 302


# --- admin login and authenticate() ---------------------------------------------------------------------------


def test_fifth_failure_on_the_admin_login_locks_and_says_so(client, bob, password):
    responses = [admin_login(client, bob.email, "wrong-password-123") for _ in range(5)]
    assert [r.status_code for r in responses] == [200, 200, 200, 200, 429]
    assert LOCKED_TEXT in responses[-1].content.decode()
    assert admin_login(client, bob.email, password).status_code == 429


def test_failures_on_every_door_count_against_one_lock(client, alice, password):
    fail_web(client, alice.email, 2)
    admin_login(client, alice.email, "wrong-password-123")
    admin_login(client, alice.email, "wrong-password-123")
    # The token endpoint authenticates with the email keyword: a fifth failure there completes the lockout.
    api_request = RequestFactory().post("/api/v1/auth/token/", REMOTE_ADDR="10.0.0.1")
    assert authenticate(request=api_request, email=alice.email, password="wrong-password-123") is None
    assert getattr(api_request, "axes_locked_out", False)
    assert AccessAttempt.objects.get(username=alice.email).failures_since_start == 5
    assert web_login(client, alice.email, password).status_code == 429


def test_a_locked_account_cannot_authenticate_even_with_the_right_password(alice, password):
    for _ in range(5):
        authenticate(
            request=RequestFactory().post("/x", REMOTE_ADDR="10.0.0.1"), email=alice.email, password="wrong-pass-1"
        )
    request = RequestFactory().post("/x", REMOTE_ADDR="10.0.0.1")
    assert authenticate(request=request, email=alice.email, password=password) is None


def test_lockout_is_audited(client, alice):
    fail_web(client, alice.email, 5)
    event = AuditEvent.objects.get(action=AuditEvent.Action.LOCKED_OUT)
    assert event.actor_email == alice.email
    assert event.ip_address == "10.0.0.1"


# --- unlocking ------------------------------------------------------------------------------------------------


def test_staff_unlock_by_deleting_the_attempt_in_the_admin(client, alice, bob, password):
    fail_web(client, alice.email, 5)
    attempt = AccessAttempt.objects.get(username=alice.email)
    staff = security_officer_client(client.__class__, bob)
    changelist = staff.get(reverse("admin:axes_accessattempt_changelist"))
    assert changelist.status_code == 200
    assert alice.email in changelist.content.decode()
    response = staff.post(reverse("admin:axes_accessattempt_delete", args=[attempt.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not AccessAttempt.objects.exists()
    unlocked = AuditEvent.objects.get(action=AuditEvent.Action.UNLOCKED)
    assert unlocked.actor == bob and unlocked.target_id == alice.email
    assert web_login(client, alice.email, password).status_code == 302


def test_staff_unlock_from_the_user_list(client, alice, bob, password):
    fail_web(client, alice.email, 5)
    staff = security_officer_client(client.__class__, bob)
    response = staff.post(
        reverse("admin:accounts_user_changelist"), {"action": "clear_lockouts", "_selected_action": [alice.pk]}
    )
    assert response.status_code == 302
    assert not AccessAttempt.objects.filter(username=alice.email).exists()
    assert AuditEvent.objects.filter(action=AuditEvent.Action.UNLOCKED, actor=bob).exists()
    assert web_login(client, alice.email, password).status_code == 302


def test_clearing_an_account_without_lockouts_records_nothing(alice):
    assert lockout_clear(email=alice.email) == 0
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.UNLOCKED).exists()
