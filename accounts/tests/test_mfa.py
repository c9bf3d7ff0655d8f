"""Two-factor login: set-up with a QR code, backup codes, the OTP step of login, and who the middleware stops."""

import time
from base64 import b32encode

import pytest
from django.test import override_settings
from django.urls import reverse
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import mfa
from accounts.models import AuditEvent

# --- helpers shared with the other account tests --------------------------------------------------------------


def totp_code(device: TOTPDevice, *, steps_ahead: int = 0) -> str:
    """The code an authenticator app would show; `steps_ahead` skips the 30-second window already used."""
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time() + steps_ahead * device.step
    return f"{totp.token():0{device.digits}d}"


def enable_mfa(user) -> list[str]:
    device = mfa.mfa_totp_start(user=user)
    return mfa.mfa_totp_confirm(user=user, code=totp_code(device))


def confirmed_device(user) -> TOTPDevice:
    return TOTPDevice.objects.get(user=user, confirmed=True)


def login_verified(client, user) -> None:
    """A session that passed both the password and the OTP step."""
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = confirmed_device(user).persistent_id
    session.save()


def password_login(client, user, password, path="/login"):
    return client.post(path, {"login": user.email, "password": password})


@pytest.fixture
def alice_codes(alice):
    return enable_mfa(alice)


# --- services -------------------------------------------------------------------------------------------------


def test_setup_keeps_the_same_secret_until_confirmed(alice):
    first = mfa.mfa_totp_start(user=alice)
    again = mfa.mfa_totp_start(user=alice)
    assert first.pk == again.pk
    assert not first.confirmed
    assert not mfa.user_has_confirmed_mfa(alice)


def test_wrong_code_does_not_confirm_the_device(alice):
    device = mfa.mfa_totp_start(user=alice)
    wrong = f"{(int(totp_code(device)) + 1) % 1_000_000:06d}"
    with pytest.raises(mfa.MFAError):
        mfa.mfa_totp_confirm(user=alice, code=wrong)
    device.refresh_from_db()
    assert not device.confirmed
    assert device.throttling_failure_count == 1
    assert AuditEvent.objects.filter(actor=alice, action=AuditEvent.Action.MFA_FAILED).exists()


def test_confirming_gives_ten_backup_codes_and_audits(alice):
    codes = enable_mfa(alice)
    assert len(codes) == 10 == len(set(codes))
    assert mfa.user_has_confirmed_mfa(alice)
    assert StaticToken.objects.filter(device__user=alice).count() == 10
    assert AuditEvent.objects.filter(actor=alice, action=AuditEvent.Action.MFA_ENABLED).count() == 1


def test_backup_code_works_once_only(alice, alice_codes):
    code = alice_codes[0]
    assert isinstance(mfa.mfa_match_code(user=alice, code=code.upper()), StaticDevice)
    assert mfa.mfa_match_code(user=alice, code=code) is None


def test_regenerating_backup_codes_requires_a_code_or_password(alice, alice_codes, password):
    with pytest.raises(mfa.MFAError):
        mfa.mfa_backup_codes_regenerate(user=alice, secret="not-my-password")
    new_codes = mfa.mfa_backup_codes_regenerate(user=alice, secret=password)
    assert set(new_codes).isdisjoint(alice_codes)
    assert not StaticToken.objects.filter(token__in=alice_codes).exists()
    assert mfa.mfa_match_code(user=alice, code=new_codes[0]) is not None
    assert AuditEvent.objects.filter(actor=alice, action=AuditEvent.Action.BACKUP_CODES_REGENERATED).exists()


def test_disabling_with_a_current_code_removes_every_device(alice, alice_codes):
    mfa.mfa_disable(user=alice, secret=totp_code(confirmed_device(alice), steps_ahead=1))
    assert not TOTPDevice.objects.filter(user=alice).exists()
    assert not StaticDevice.objects.filter(user=alice).exists()
    assert AuditEvent.objects.filter(actor=alice, action=AuditEvent.Action.MFA_DISABLED).exists()


def test_disabling_is_refused_with_a_wrong_secret(alice, alice_codes):
    with pytest.raises(mfa.MFAError):
        mfa.mfa_disable(user=alice, secret="123456")
    assert mfa.user_has_confirmed_mfa(alice)


# --- set-up pages ---------------------------------------------------------------------------------------------


def test_setup_page_shows_a_local_svg_qr_code_and_the_secret(client, alice):
    client.force_login(alice)
    response = client.get(reverse("mfa_setup"))
    assert response.status_code == 200
    html = response.content.decode()
    device = TOTPDevice.objects.get(user=alice, confirmed=False)
    assert "<svg" in html
    assert "<script" not in html.split("<main", 1)[1]
    assert "googleapis" not in html and "qrserver" not in html
    secret = b32encode(device.bin_key).decode()
    assert " ".join(secret[i : i + 4] for i in range(0, len(secret), 4)) in html


def test_confirming_on_the_page_shows_codes_and_keeps_the_session_verified(client, alice):
    client.force_login(alice)
    client.get(reverse("mfa_setup"))
    device = TOTPDevice.objects.get(user=alice, confirmed=False)
    response = client.post(reverse("mfa_setup"), {"code": totp_code(device)})
    assert response.status_code == 200
    codes = list(StaticToken.objects.filter(device__user=alice).values_list("token", flat=True))
    assert len(codes) == 10
    assert all(code in response.content.decode() for code in codes)
    assert "only time they are shown" in response.content.decode()
    assert client.get(reverse("profile")).status_code == 200


def test_setup_page_rejects_a_wrong_code_plainly(client, alice):
    client.force_login(alice)
    client.get(reverse("mfa_setup"))
    response = client.post(reverse("mfa_setup"), {"code": "000000x"})
    assert response.status_code == 200
    assert "did not match" in response.content.decode()
    assert not mfa.user_has_confirmed_mfa(alice)


def test_profile_shows_mfa_status(client, alice, alice_codes):
    login_verified(client, alice)
    html = client.get(reverse("profile")).content.decode()
    assert "Two-factor login" in html and "On" in html
    assert "Unused backup codes: <strong>10</strong>" in html


def test_regenerate_page_refuses_a_wrong_password_and_accepts_the_right_one(client, alice, alice_codes, password):
    login_verified(client, alice)
    refused = client.post(reverse("mfa_backup_codes"), {"secret": "wrong-password-here"})
    assert refused.status_code == 200
    assert "neither a current code" in refused.content.decode()
    accepted = client.post(reverse("mfa_backup_codes"), {"secret": password})
    assert "Your new backup codes" in accepted.content.decode()
    assert not StaticToken.objects.filter(token=alice_codes[0]).exists()


def test_disable_page_turns_mfa_off_with_password(client, alice, alice_codes, password):
    login_verified(client, alice)
    response = client.post(reverse("mfa_disable"), {"secret": password})
    assert response.status_code == 302
    assert not mfa.user_has_confirmed_mfa(alice)


# --- the OTP step of login ------------------------------------------------------------------------------------


def test_password_login_with_mfa_goes_to_the_otp_step(client, alice, alice_codes, password):
    response = password_login(client, alice, password, path="/login/profile")
    assert response.status_code == 302
    follow = client.get(response["Location"])
    assert follow.status_code == 302
    assert follow["Location"] == "/mfa/verify?next=%2Fprofile"


def test_unverified_user_cannot_reach_login_required_pages(client, alice, alice_codes, password):
    password_login(client, alice, password)
    for path in ("/profile", "/dashboard", "/profile/mfa/disable"):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response["Location"].startswith("/mfa/verify"), path


def test_wrong_otp_is_rejected_and_the_session_stays_unverified(client, alice, alice_codes, password):
    password_login(client, alice, password)
    response = client.post("/mfa/verify", {"code": "12345a", "next": "/profile"})
    assert response.status_code == 200
    assert "not accepted" in response.content.decode()
    assert client.get("/profile")["Location"].startswith("/mfa/verify")
    assert AuditEvent.objects.filter(actor=alice, action=AuditEvent.Action.MFA_FAILED).exists()


def test_right_totp_code_finishes_login(client, alice, alice_codes, password):
    password_login(client, alice, password)
    code = totp_code(confirmed_device(alice), steps_ahead=1)
    response = client.post("/mfa/verify", {"code": code, "next": "/profile"})
    assert response.status_code == 302
    assert response["Location"] == "/profile"
    assert client.get("/profile").status_code == 200
    event = AuditEvent.objects.get(actor=alice, action=AuditEvent.Action.MFA_VERIFIED)
    assert event.details["method"] == "totp"


def test_a_totp_code_cannot_be_replayed(client, alice, alice_codes, password):
    code = totp_code(confirmed_device(alice), steps_ahead=1)
    password_login(client, alice, password)
    assert client.post("/mfa/verify", {"code": code})["Location"] == "/dashboard"
    client.post("/logout")
    password_login(client, alice, password)
    replay = client.post("/mfa/verify", {"code": code})
    assert replay.status_code == 200


def test_backup_code_logs_in_once_only(client, alice, alice_codes, password):
    password_login(client, alice, password)
    assert client.post("/mfa/verify", {"code": alice_codes[3], "next": "/profile"}).status_code == 302
    client.post("/logout")
    password_login(client, alice, password)
    again = client.post("/mfa/verify", {"code": alice_codes[3], "next": "/profile"})
    assert again.status_code == 200
    assert client.get("/profile").status_code == 302


def test_repeated_wrong_codes_make_the_user_wait(client, alice, alice_codes, password):
    password_login(client, alice, password)
    client.post("/mfa/verify", {"code": "000000"})
    response = client.post("/mfa/verify", {"code": totp_code(confirmed_device(alice), steps_ahead=1)})
    assert response.status_code == 200
    assert "Wait" in response.content.decode()


def test_otp_step_refuses_an_open_redirect(client, alice, alice_codes, password):
    password_login(client, alice, password)
    code = totp_code(confirmed_device(alice), steps_ahead=1)
    response = client.post("/mfa/verify", {"code": code, "next": "https://evil.example.com/"})
    assert response["Location"] == "/dashboard"


def test_unverified_user_may_still_log_out(client, alice, alice_codes, password):
    password_login(client, alice, password)
    assert client.get("/logout").status_code == 200
    assert client.post("/logout").status_code == 302
    assert "_auth_user_id" not in client.session


def test_user_without_mfa_is_not_sent_to_the_otp_step(client, charlie, password):
    password_login(client, charlie, password)
    assert client.get("/profile").status_code == 200
    assert client.get("/mfa/verify?next=/profile")["Location"] == "/profile"


def test_unverified_session_gets_json_401_on_api_paths(client, alice, alice_codes, password):
    password_login(client, alice, password)
    for path in ("/api/v1/me/", "/chat/status"):
        response = client.get(path)
        assert response.status_code == 401, path
        assert response.json()["code"] == "otp_required"


def test_bearer_only_requests_are_left_to_jwt_authentication(client, alice, alice_codes):
    response = client.get("/api/v1/me/", HTTP_AUTHORIZATION="Bearer not-a-real-token")
    assert response.status_code == 401
    assert response.json()["code"] == "token_not_valid"


def test_a_bearer_header_does_not_release_a_password_only_session(client, alice, alice_codes, password):
    password_login(client, alice, password)
    response = client.get("/api/v1/me/", HTTP_AUTHORIZATION="Bearer not-a-real-token")
    assert response.json()["code"] == "otp_required"


# --- staff and the admin --------------------------------------------------------------------------------------


def test_staff_without_mfa_is_sent_to_setup_instead_of_the_admin(client, bob):
    client.force_login(bob)
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"] == reverse("mfa_setup")
    page = client.get(response["Location"])
    assert "must turn on two-factor login" in page.content.decode()


def test_staff_with_mfa_but_unverified_session_goes_to_the_otp_step(client, bob, password):
    enable_mfa(bob)
    password_login(client, bob, password)
    response = client.get("/admin/")
    assert response["Location"] == "/mfa/verify?next=%2Fadmin%2F"


def test_staff_with_verified_mfa_can_use_the_admin(client, bob):
    enable_mfa(bob)
    login_verified(client, bob)
    assert client.get("/admin/").status_code == 200


@override_settings(MFA_REQUIRED_FOR_STAFF=False)
def test_staff_mfa_requirement_can_be_switched_off(client, bob):
    client.force_login(bob)
    assert client.get("/admin/").status_code == 200


def test_new_backup_codes_keep_a_session_verified_by_a_backup_code(client, alice, alice_codes, password):
    password_login(client, alice, password)
    client.post("/mfa/verify", {"code": alice_codes[0]})
    response = client.post(reverse("mfa_backup_codes"), {"secret": password})
    assert "Your new backup codes" in response.content.decode()
    assert client.get(reverse("profile")).status_code == 200


def test_turning_mfa_on_twice_is_refused(alice, alice_codes):
    with pytest.raises(mfa.MFAError):
        mfa.mfa_totp_start(user=alice)
