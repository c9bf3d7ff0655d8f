"""The integrator's sign-in: token pairs, two-factor codes, lockout, throttling, refresh rotation, logout, /me."""

import time

import pytest
from django.conf import settings
from django.test import override_settings
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

from accounts.models import AuditEvent

TOKEN_URL = "/api/v1/auth/token/"
REFRESH_URL = "/api/v1/auth/token/refresh/"
LOGOUT_URL = "/api/v1/auth/logout/"
ME_URL = "/api/v1/me/"


def obtain(client, email, password, **extra):
    return client.post(TOKEN_URL, {"email": email, "password": password, **extra}, format="json")


def bearer(access):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client


def current_totp(device):
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time()
    return f"{totp.token():0{device.digits}d}"


@pytest.fixture
def alice_totp(alice):
    return TOTPDevice.objects.create(user=alice, name="Authenticator app", confirmed=True)


@pytest.fixture
def alice_backup_code(alice):
    device = StaticDevice.objects.create(user=alice, name="Backup codes", confirmed=True)
    StaticToken.objects.create(device=device, token="backupcode1")
    return "backupcode1"


# --- obtaining a pair ------------------------------------------------------------------------------


def test_alice_gets_a_token_pair_that_opens_the_api(api_client, alice, password):
    response = obtain(api_client, "alice@example.org", password)

    assert response.status_code == 200
    assert set(response.json()) == {"access", "refresh"}
    me = bearer(response.json()["access"]).get(ME_URL)
    assert me.status_code == 200
    assert me.json()["email"] == "alice@example.org"
    assert AuditEvent.objects.filter(action=AuditEvent.Action.TOKEN_ISSUED, actor=alice).count() == 1


def test_the_email_is_matched_whatever_its_letter_case(api_client, alice, password):
    assert obtain(api_client, "Alice@Example.ORG", password).status_code == 200


def test_a_wrong_password_is_refused_with_401_and_recorded(api_client, alice):
    response = obtain(api_client, "alice@example.org", "not-her-password")

    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"
    assert set(response.json()) == {"detail", "code"}
    assert response["WWW-Authenticate"].startswith("Bearer")
    failure = AuditEvent.objects.get(action=AuditEvent.Action.TOKEN_FAILED)
    assert failure.actor_email == "alice@example.org"
    assert failure.details == {"reason": "bad_credentials"}


def test_an_unknown_email_gets_the_same_answer_as_a_wrong_password(api_client, alice):
    unknown = obtain(api_client, "nobody@example.org", "whatever-password")
    wrong = obtain(api_client, "alice@example.org", "whatever-password")

    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json() == wrong.json()


def test_an_inactive_user_gets_no_tokens(api_client, alice, password):
    alice.is_active = False
    alice.save()

    response = obtain(api_client, "alice@example.org", password)

    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"


def test_missing_fields_are_a_400_naming_the_fields(api_client):
    response = api_client.post(TOKEN_URL, {"email": "alice@example.org"}, format="json")

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "required"
    assert "password" in body["errors"]


# --- two-factor login ------------------------------------------------------------------------------


def test_alice_with_an_authenticator_app_must_send_a_code(api_client, alice, alice_totp, password):
    response = obtain(api_client, "alice@example.org", password)

    assert response.status_code == 401
    assert response.json()["code"] == "otp_required"
    assert "access" not in response.json()


def test_a_wrong_code_is_refused_as_otp_invalid(api_client, alice, alice_totp, password):
    wrong = "000000" if current_totp(alice_totp) != "000000" else "111111"

    response = obtain(api_client, "alice@example.org", password, otp=wrong)

    assert response.status_code == 401
    assert response.json()["code"] == "otp_invalid"


def test_the_current_app_code_gives_a_pair(api_client, alice, alice_totp, password):
    response = obtain(api_client, "alice@example.org", password, otp=current_totp(alice_totp))

    assert response.status_code == 200
    assert bearer(response.json()["access"]).get(ME_URL).json()["mfa_enabled"] is True


# A long delay, so a slow test machine cannot outwait the throttle between two requests.
@override_settings(OTP_TOTP_THROTTLE_FACTOR=60)
def test_wrong_app_codes_in_quick_succession_are_slowed_down(api_client, alice, alice_totp, password):
    wrong = "000000" if current_totp(alice_totp) != "000000" else "111111"
    obtain(api_client, "alice@example.org", password, otp=wrong)

    # django-otp now makes the device wait; even the right code is refused until the wait is over.
    response = obtain(api_client, "alice@example.org", password, otp=current_totp(alice_totp))

    assert response.status_code == 429
    assert response.json()["code"] == "otp_throttled"
    assert "Wait" in response.json()["detail"]


@override_settings(OTP_TOTP_THROTTLE_FACTOR=60)
def test_throttled_codes_still_count_towards_the_lockout(api_client, alice, alice_totp, password):
    wrong = "000000" if current_totp(alice_totp) != "000000" else "111111"
    limit = settings.AXES_FAILURE_LIMIT
    attempts = [obtain(api_client, "alice@example.org", password, otp=wrong) for _ in range(limit)]
    codes = [attempt.json()["code"] for attempt in attempts]

    assert codes[:2] == ["otp_invalid", "otp_throttled"]
    assert codes[-1] == "locked_out"


def test_a_right_code_with_a_wrong_password_is_still_refused(api_client, alice, alice_totp):
    response = obtain(api_client, "alice@example.org", "not-her-password", otp=current_totp(alice_totp))

    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"


def test_a_backup_code_works_once(api_client, alice, alice_totp, alice_backup_code, password):
    first = obtain(api_client, "alice@example.org", password, otp=alice_backup_code)
    second = obtain(api_client, "alice@example.org", password, otp=alice_backup_code)

    assert first.status_code == 200
    assert second.status_code == 401
    assert second.json()["code"] == "otp_invalid"


def test_an_unconfirmed_app_does_not_ask_for_a_code(api_client, alice, password):
    TOTPDevice.objects.create(user=alice, name="Authenticator app", confirmed=False)

    assert obtain(api_client, "alice@example.org", password).status_code == 200


# --- lockout (django-axes, shared with the web login) ----------------------------------------------


def _fail_times(client, count, email="alice@example.org"):
    return [obtain(client, email, "not-her-password") for _ in range(count)]


def test_five_wrong_passwords_lock_the_token_endpoint(api_client, alice, password):
    limit = settings.AXES_FAILURE_LIMIT
    responses = _fail_times(api_client, limit)

    assert [r.status_code for r in responses[:-1]] == [401] * (limit - 1)
    locked = obtain(api_client, "alice@example.org", password)
    assert locked.status_code == 429
    assert locked.json()["code"] == "locked_out"
    assert int(locked["Retry-After"]) == int(settings.AXES_COOLOFF_TIME.total_seconds())
    assert "locked" in locked.json()["detail"]


def test_a_lockout_of_alice_leaves_charlie_free(api_client, alice, charlie, password):
    _fail_times(api_client, settings.AXES_FAILURE_LIMIT)

    assert obtain(api_client, "charlie@example.org", password).status_code == 200


def test_failures_at_the_admin_login_also_lock_the_token_endpoint(client, api_client, alice, password):
    # The admin login form posts the email as `username`; axes must count it against the same account.
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        client.post("/admin/login/", {"username": "alice@example.org", "password": "not-her-password"})

    assert obtain(api_client, "alice@example.org", "not-her-password").json()["code"] == "locked_out"
    assert obtain(api_client, "alice@example.org", password).status_code == 429


def test_failures_at_the_web_login_also_lock_the_token_endpoint(client, api_client, alice, password):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        client.post("/login", {"login": "alice@example.org", "password": "not-her-password"})

    assert obtain(api_client, "alice@example.org", "not-her-password").json()["code"] == "locked_out"


def test_wrong_codes_count_towards_the_lockout(api_client, alice, alice_totp, password):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert obtain(api_client, "alice@example.org", password, otp="not-a-code").json()["code"] == "otp_invalid"

    last = obtain(api_client, "alice@example.org", password, otp="not-a-code")

    assert last.status_code == 429
    assert last.json()["code"] == "locked_out"


def test_a_successful_sign_in_clears_earlier_failures(api_client, alice, password):
    _fail_times(api_client, settings.AXES_FAILURE_LIMIT - 1)
    assert obtain(api_client, "alice@example.org", password).status_code == 200

    responses = _fail_times(api_client, settings.AXES_FAILURE_LIMIT - 1)

    assert {r.json()["code"] for r in responses} == {"authentication_failed"}


# --- throttling ------------------------------------------------------------------------------------


def test_the_token_endpoint_is_throttled(api_client, alice, password):
    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "token": "2/min"}
    with override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}):
        codes = [obtain(api_client, "alice@example.org", password).status_code for _ in range(3)]
        throttled = obtain(api_client, "alice@example.org", password)

    assert codes == [200, 200, 429]
    assert throttled.json()["code"] == "throttled"
    assert "Retry-After" in throttled


# --- refresh rotation ------------------------------------------------------------------------------


@pytest.fixture
def alice_pair(api_client, alice, password):
    return obtain(api_client, "alice@example.org", password).json()


def test_a_refresh_token_gives_a_new_working_pair(api_client, alice_pair):
    response = api_client.post(REFRESH_URL, {"refresh": alice_pair["refresh"]}, format="json")

    assert response.status_code == 200
    pair = response.json()
    assert set(pair) == {"access", "refresh"}
    assert pair["refresh"] != alice_pair["refresh"]
    assert bearer(pair["access"]).get(ME_URL).json()["email"] == "alice@example.org"


def test_reusing_a_rotated_refresh_token_is_refused(api_client, alice_pair):
    api_client.post(REFRESH_URL, {"refresh": alice_pair["refresh"]}, format="json")

    replay = api_client.post(REFRESH_URL, {"refresh": alice_pair["refresh"]}, format="json")

    assert replay.status_code == 401
    assert replay.json()["code"] == "token_not_valid"


def test_an_access_token_cannot_be_used_as_a_refresh_token(api_client, alice_pair):
    response = api_client.post(REFRESH_URL, {"refresh": alice_pair["access"]}, format="json")

    assert response.status_code == 401
    assert response.json()["code"] == "token_not_valid"


def test_a_garbage_refresh_token_is_a_401(api_client, db):
    response = api_client.post(REFRESH_URL, {"refresh": "not.a.token"}, format="json")

    assert response.status_code == 401
    assert set(response.json()) == {"detail", "code"}


def test_a_deactivated_user_cannot_refresh(api_client, alice, alice_pair):
    alice.is_active = False
    alice.save()

    response = api_client.post(REFRESH_URL, {"refresh": alice_pair["refresh"]}, format="json")

    assert response.status_code == 401
    assert response.json()["code"] == "user_inactive"


# --- logout ---------------------------------------------------------------------------------------


def test_logout_revokes_the_refresh_token(api_client, alice, alice_pair):
    response = api_client.post(LOGOUT_URL, {"refresh": alice_pair["refresh"]}, format="json")

    assert response.status_code == 205
    assert response.content == b""
    after = api_client.post(REFRESH_URL, {"refresh": alice_pair["refresh"]}, format="json")
    assert after.status_code == 401
    assert AuditEvent.objects.filter(action=AuditEvent.Action.TOKEN_REVOKED, target_id=str(alice.pk)).exists()


def test_alice_can_log_out_with_her_own_bearer_token(alice_pair):
    response = bearer(alice_pair["access"]).post(LOGOUT_URL, {"refresh": alice_pair["refresh"]}, format="json")

    assert response.status_code == 205


def test_charlie_cannot_revoke_alices_refresh_token(api_client, charlie, alice_pair, password):
    charlie_access = obtain(api_client, "charlie@example.org", password).json()["access"]

    response = bearer(charlie_access).post(LOGOUT_URL, {"refresh": alice_pair["refresh"]}, format="json")

    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    still_works = api_client.post(REFRESH_URL, {"refresh": alice_pair["refresh"]}, format="json")
    assert still_works.status_code == 200


def test_logging_out_twice_is_refused(api_client, alice_pair):
    api_client.post(LOGOUT_URL, {"refresh": alice_pair["refresh"]}, format="json")

    again = api_client.post(LOGOUT_URL, {"refresh": alice_pair["refresh"]}, format="json")

    assert again.status_code == 401


# --- /me -------------------------------------------------------------------------------------------


def test_me_describes_the_caller(alice_pair, alice):
    body = bearer(alice_pair["access"]).get(ME_URL).json()

    assert set(body) == {"id", "email", "first_name", "last_name", "is_staff", "mfa_enabled", "date_joined"}
    assert body["id"] == alice.pk
    assert body["is_staff"] is False
    assert body["mfa_enabled"] is False


def test_me_works_with_a_browser_session(alice):
    client = APIClient()
    client.force_login(alice)

    assert client.get(ME_URL).json()["email"] == "alice@example.org"


def test_me_without_credentials_is_a_401(api_client, db):
    response = api_client.get(ME_URL)

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
