"""Staff force logout: every session and token of a user ends; nobody else is touched; only staff may do it."""

import pytest
from django.contrib.sessions.models import Session
from django.test import Client
from rest_framework.test import APIClient
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken

from accounts.models import AuditEvent
from accounts.services import token_pair_issue, user_force_logout, user_sessions_end

FORCE_LOGOUT_URL = "/force_logout"
ME_URL = "/api/v1/me/"
REFRESH_URL = "/api/v1/auth/token/refresh/"


def bearer(access):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client


def signed_in(user):
    client = APIClient()
    client.force_login(user)
    return client


@pytest.fixture
def bob_client(bob, second_factor_token):
    """bob's token from a sign-in with his two-factor code: force logout is a staff power that needs one."""
    return bearer(second_factor_token(bob))


def force_logout(client, body, **kwargs):
    return client.post(FORCE_LOGOUT_URL, body, format="json", **kwargs)


def test_bob_logs_alice_out_of_every_session_and_token(bob_client, alice):
    browsers = [signed_in(alice), signed_in(alice)]
    pairs = [token_pair_issue(user=alice), token_pair_issue(user=alice)]

    response = force_logout(bob_client, {"user_id": alice.pk})

    assert response.status_code == 200
    body = response.json()
    assert body["sessions_ended"] == 2
    assert body["tokens_blacklisted"] == 2
    assert "alice@example.org" in body["detail"]
    for browser in browsers:
        assert browser.get(ME_URL).status_code in (401, 403)
    for pair in pairs:
        assert APIClient().post(REFRESH_URL, {"refresh": pair["refresh"]}, format="json").status_code == 401


def test_alices_earlier_access_token_stops_working(bob_client, alice):
    access = token_pair_issue(user=alice)["access"]
    assert bearer(access).get(ME_URL).status_code == 200

    force_logout(bob_client, {"user_id": alice.pk})

    refused = bearer(access).get(ME_URL)
    assert refused.status_code == 401
    assert refused.json()["code"] == "session_ended"


def test_alice_can_sign_in_again_afterwards(bob_client, alice, password):
    force_logout(bob_client, {"user_id": alice.pk})

    pair = APIClient().post("/api/v1/auth/token/", {"email": alice.email, "password": password}, format="json").json()

    assert bearer(pair["access"]).get(ME_URL).status_code == 200


def test_the_email_may_name_the_user_in_any_letter_case(bob_client, alice):
    signed_in(alice)

    response = force_logout(bob_client, {"email": "ALICE@example.org"})

    assert response.status_code == 200
    assert response.json()["sessions_ended"] == 1


def test_charlie_keeps_his_sessions_and_tokens_when_alice_is_forced_out(bob_client, alice, charlie):
    charlie_browser = signed_in(charlie)
    charlie_pair = token_pair_issue(user=charlie)
    signed_in(alice)

    force_logout(bob_client, {"user_id": alice.pk})

    assert charlie_browser.get(ME_URL).status_code == 200
    assert bearer(charlie_pair["access"]).get(ME_URL).status_code == 200
    refreshed = APIClient().post(REFRESH_URL, {"refresh": charlie_pair["refresh"]}, format="json")
    assert refreshed.status_code == 200


def test_it_is_recorded_in_the_audit_log_with_the_counts(bob_client, bob, alice):
    signed_in(alice)
    token_pair_issue(user=alice)

    force_logout(bob_client, {"user_id": alice.pk})

    event = AuditEvent.objects.get(action=AuditEvent.Action.FORCE_LOGOUT)
    assert event.actor == bob
    assert event.target_id == str(alice.pk)
    assert event.details == {"sessions_ended": 1, "tokens_blacklisted": 1}


def test_charlie_who_is_not_staff_is_refused_and_alice_stays_signed_in(charlie, alice):
    alice_browser = signed_in(alice)
    alice_pair = token_pair_issue(user=alice)

    response = force_logout(bearer(token_pair_issue(user=charlie)["access"]), {"user_id": alice.pk})

    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert alice_browser.get(ME_URL).status_code == 200
    assert not BlacklistedToken.objects.filter(token__user=alice).exists()
    assert bearer(alice_pair["access"]).get(ME_URL).status_code == 200
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.FORCE_LOGOUT).exists()


def test_an_anonymous_caller_is_a_401(api_client, alice):
    response = force_logout(api_client, {"user_id": alice.pk})

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_an_unknown_user_is_a_404(bob_client):
    response = force_logout(bob_client, {"email": "nobody@example.org"})

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_an_id_and_an_email_of_different_users_is_a_404(bob_client, alice, charlie):
    signed_in(alice)

    response = force_logout(bob_client, {"user_id": alice.pk, "email": charlie.email})

    assert response.status_code == 404
    assert Session.objects.count() == 1


def test_a_body_naming_nobody_is_a_400(bob_client):
    response = force_logout(bob_client, {})

    assert response.status_code == 400
    assert "user_id" in response.json()["detail"]


def test_a_form_encoded_body_is_a_415(bob_client, alice):
    response = bob_client.post(FORCE_LOGOUT_URL, {"user_id": alice.pk})

    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"


def test_a_staff_browser_session_needs_the_csrf_token(bob, alice, second_factor_login):
    browser = Client(enforce_csrf_checks=True)
    second_factor_login(browser, bob)
    csrf_secret = "a" * 32  # what the CSRF cookie would hold; Django accepts it unmasked in the header
    browser.cookies["csrftoken"] = csrf_secret
    signed_in(alice)

    without = browser.post(FORCE_LOGOUT_URL, {"user_id": alice.pk}, content_type="application/json")
    assert without.status_code == 403
    assert "CSRF" in without.json()["detail"]

    with_token = browser.post(
        FORCE_LOGOUT_URL, {"user_id": alice.pk}, content_type="application/json", HTTP_X_CSRFTOKEN=csrf_secret
    )
    assert with_token.status_code == 200
    assert with_token.json()["sessions_ended"] == 1


def test_ending_sessions_skips_other_users_and_anonymous_sessions(alice, charlie):
    from django.contrib.sessions.backends.db import SessionStore

    anonymous = SessionStore()
    anonymous["cart"] = "nothing"
    anonymous.create()
    signed_in(alice)
    signed_in(charlie)

    assert user_sessions_end(user=alice) == 1
    assert Session.objects.count() == 2


def test_a_second_force_logout_finds_nothing_left(alice, bob):
    signed_in(alice)
    token_pair_issue(user=alice)
    user_force_logout(user=alice, actor=bob)

    assert user_force_logout(user=alice, actor=bob) == {"sessions_ended": 0, "tokens_blacklisted": 0}
