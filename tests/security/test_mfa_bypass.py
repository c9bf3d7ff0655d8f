"""Issue 11 #1: an `Authorization: Bearer` header must not stand in for the two-factor step.

The attack: sign in with the password only as a user who has an authenticator app, then send the session cookie
together with `Authorization: Bearer x`. The middleware used to wave such requests through, so the admin answered
200 and /profile/mfa/disable removed the second factor. A session is judged by its session, whatever headers it
carries; only a request that DRF's JWT authentication accepted skips the session's OTP step, and a token counts
as two-factor only when the token endpoint issued it after a code.
"""

import pytest
from django.test import Client
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework_simplejwt.tokens import AccessToken

from accounts.api.authentication import OTP_CLAIM
from accounts.mfa import user_has_confirmed_mfa
from accounts.services import token_pair_issue
from accounts.tests.test_mfa import enable_mfa

from .conftest import bearer_client, current_code, password_only_login, token_pair

pytestmark = pytest.mark.django_db

FAKE_BEARER = {"HTTP_AUTHORIZATION": "Bearer x"}


def test_a_bearer_header_does_not_open_the_admin_to_a_password_only_session(client, bob_totp, password):
    password_only_login(client, bob_totp, password)

    response = client.get("/admin/accounts/user/", **FAKE_BEARER)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("mfa_verify"))


def test_a_bearer_header_does_not_let_a_password_only_session_turn_off_two_factor(client, alice_totp, password):
    password_only_login(client, alice_totp, password)

    response = client.post(reverse("mfa_disable"), {"secret": password}, **FAKE_BEARER)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("mfa_verify"))
    assert user_has_confirmed_mfa(alice_totp)


def test_even_a_valid_two_factor_token_does_not_verify_a_password_only_session(client, alice_totp, password):
    """Plain Django views never read the Bearer header: a real token of the same user is no proof there either."""
    tokens = token_pair(alice_totp, password, otp=current_code(alice_totp))
    password_only_login(client, alice_totp, password)

    real_bearer = {"HTTP_AUTHORIZATION": f"Bearer {tokens['access']}"}
    response = client.post(reverse("mfa_disable"), {"secret": password}, **real_bearer)

    assert response["Location"].startswith(reverse("mfa_verify"))
    assert user_has_confirmed_mfa(alice_totp)


def test_a_bearer_header_does_not_skip_the_staff_two_factor_requirement(client, bob, password):
    password_only_login(client, bob, password)

    response = client.get("/admin/", **FAKE_BEARER)

    assert response.status_code == 302
    assert response["Location"] == reverse("mfa_setup")


@pytest.mark.parametrize("path", ["/api/v1/me/", "/chat/history"])
def test_an_api_call_with_a_password_only_session_and_a_junk_bearer_is_held(client, alice_totp, password, path):
    password_only_login(client, alice_totp, password)

    response = client.get(path, **FAKE_BEARER)

    assert response.status_code == 401
    assert response.json()["code"] == "otp_required"


def test_a_token_obtained_with_a_code_carries_the_claim_and_works_without_a_session(alice_totp, password):
    tokens = token_pair(alice_totp, password, otp=current_code(alice_totp))

    assert AccessToken(tokens["access"])[OTP_CLAIM] is True
    response = bearer_client(tokens["access"]).get("/api/v1/me/")
    assert response.status_code == 200
    assert response.json()["email"] == alice_totp.email


def test_a_refreshed_access_token_keeps_the_two_factor_claim(alice_totp, password):
    tokens = token_pair(alice_totp, password, otp=current_code(alice_totp))

    refreshed = Client().post("/api/v1/auth/token/refresh/", {"refresh": tokens["refresh"]}, "application/json")

    assert refreshed.status_code == 200
    assert bearer_client(refreshed.json()["access"]).get("/api/v1/me/").status_code == 200


def test_a_token_issued_before_two_factor_was_turned_on_is_refused(alice, password):
    """Tokens minted with the password alone must not outlive the user's decision to require a code."""
    old = token_pair(alice, password)
    assert OTP_CLAIM not in AccessToken(old["access"])
    enable_mfa(alice)

    response = bearer_client(old["access"]).get("/api/v1/me/")

    assert response.status_code == 401
    assert response.json()["code"] == "otp_required"
    assert "two-factor" in response.json()["detail"]


def test_a_password_only_token_is_refused_for_an_account_with_two_factor(alice_totp):
    access = token_pair_issue(user=alice_totp)["access"]

    response = bearer_client(access).get("/api/v1/me/")

    assert response.status_code == 401
    assert response.json()["code"] == "otp_required"


def test_tokens_of_users_without_two_factor_keep_working(alice, password):
    tokens = token_pair(alice, password)

    assert OTP_CLAIM not in AccessToken(tokens["access"])
    assert bearer_client(tokens["access"]).get("/api/v1/me/").status_code == 200
    assert not TOTPDevice.objects.filter(user=alice).exists()
