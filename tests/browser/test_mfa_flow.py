"""What a clinician does in a real browser: register, confirm the email, turn on two-factor login from the profile,
log out, log in again with a code from the app; and what a locked-out user sees."""

import re
import time
from base64 import b32decode
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django_otp.oath import TOTP

pytestmark = pytest.mark.browser

EMAIL = "dana.clinician@example.org"
PASSWORD = "a-long-ward-password-2024"  # noqa: S105


def app_code(secret_shown: str, *, steps_ahead: int = 0) -> str:
    """What an authenticator app shows for the secret printed on the set-up page."""
    totp = TOTP(b32decode(secret_shown.replace(" ", "")), step=30, t0=0, digits=6)
    totp.time = time.time() + steps_ahead * 30
    return f"{totp.token():06d}"


def log_in(page, email, password):
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.locator("main").get_by_role("button", name="Log in").click()


def test_register_turn_on_two_factor_and_log_in_with_a_code(page, page_problems):
    page.goto("/register")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password (again)").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    page.get_by_role("heading", name="Confirm your email address").wait_for()

    link = re.search(r"https?://\S+/accounts/confirm-email/\S+/", mail.outbox[-1].body).group(0)
    page.goto(urlsplit(link).path)
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url("**/dashboard")

    page.goto("/profile")
    page.get_by_role("button", name="Turn on two-factor login").click()
    page.wait_for_url("**/profile/mfa/setup")
    assert page.locator("main svg").first.is_visible()
    secret = page.get_by_test_id("totp-secret").inner_text()
    page.get_by_label("Code from your app").fill(app_code(secret))
    page.get_by_role("button", name="Confirm and turn on").click()
    page.get_by_role("heading", name="Two-factor login is on").wait_for()
    assert page.get_by_test_id("backup-codes").locator("li").count() == 10

    page.goto("/logout")
    page.locator("main").get_by_role("button", name="Log out").click()
    page.wait_for_url(lambda url: urlsplit(url).path == "/")

    log_in(page, EMAIL, PASSWORD)
    page.wait_for_url("**/mfa/verify?next=%2Fdashboard")
    page.goto("/profile")
    assert urlsplit(page.url).path == "/mfa/verify", "a password alone must not open the profile"

    # The set-up already used the current 30-second window; the app's next code is still accepted.
    page.get_by_label("Authentication code").fill(app_code(secret, steps_ahead=1))
    page.get_by_role("button", name="Verify").click()
    page.wait_for_url("**/profile")
    assert page.get_by_text(EMAIL).first.is_visible()
    assert page_problems.external_requests == []
    assert page_problems.csp_violations(page) == []
    assert page_problems.page_errors == []


def test_a_wrong_code_is_refused_in_the_browser(page, alice, password):
    from accounts.tests.test_mfa import enable_mfa

    enable_mfa(alice)
    log_in(page, alice.email, password)
    page.wait_for_url("**/mfa/verify**")
    page.get_by_label("Authentication code").fill("000000")
    page.get_by_role("button", name="Verify").click()
    assert page.get_by_text("That code was not accepted").is_visible()
    assert urlsplit(page.url).path == "/mfa/verify"


def test_five_wrong_passwords_show_the_lockout_message(page, alice, password, page_problems):
    for _ in range(4):
        log_in(page, alice.email, "not-the-right-password")
        assert page.get_by_text("are not correct").is_visible()
    log_in(page, alice.email, "not-the-right-password")
    heading = page.get_by_role("heading", name="Too many failed login attempts")
    assert heading.is_visible()
    assert page.get_by_text("Try again in 30 minutes").is_visible()

    # Even the right password is refused while the lock lasts.
    log_in(page, alice.email, password)
    assert heading.is_visible()
    assert page_problems.csp_violations(page) == []
