"""Web login, /login/<action>, registration with email verification, logout, password reset and rate limits."""

import re

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.test import RequestFactory, override_settings

from accounts.models import User
from accounts.views import ratelimited

NEW_PASSWORD = "a-long-new-password-2024"  # noqa: S105


def login(client, email, password, path="/login", ip="127.0.0.1", **fields):
    return client.post(path, {"login": email, "password": password, **fields}, REMOTE_ADDR=ip)


def link_in_last_email(pattern):
    match = re.search(pattern, mail.outbox[-1].body)
    assert match, mail.outbox[-1].body
    return match.group(0)


# --- login ----------------------------------------------------------------------------------------------------


def test_login_page_has_labels_and_autocomplete(client, db):
    html = client.get("/login").content.decode()
    assert '<label for="id_login">' in html
    assert '<label for="id_password">' in html
    assert 'autocomplete="email"' in html
    assert 'autocomplete="current-password"' in html
    assert html.count("Forgot your password?") == 1


def test_alice_logs_in_and_goes_to_the_dashboard(client, alice, password):
    response = login(client, alice.email, password)
    assert response.status_code == 302
    assert response["Location"] == "/dashboard"
    assert client.session["_auth_user_id"] == str(alice.pk)


def test_wrong_password_is_refused_with_a_plain_message(client, alice):
    response = login(client, alice.email, "not-the-password")
    assert response.status_code == 200
    assert "The email address and/or password you specified are not correct." in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_login_action_continues_to_that_page(client, alice, password):
    assert client.get("/login/profile").status_code == 200
    response = login(client, alice.email, password, path="/login/profile")
    assert response["Location"] == "/profile"


def test_login_action_keeps_nested_paths_and_query(client, alice, password):
    response = login(client, alice.email, password, path="/login/my_models?page=2")
    assert response["Location"] == "/my_models?page=2"


@pytest.mark.parametrize(
    "path",
    [
        "/login//evil.example.com",
        "/login//evil.example.com/x",
        "/login/\\evil.example.com",
        "/login/%2F%2Fevil.example.com",
    ],
)
def test_login_action_refuses_to_leave_the_site(client, alice, password, path):
    response = login(client, alice.email, password, path=path)
    assert response.status_code == 302
    assert "evil" not in response["Location"]
    assert response["Location"] == "/dashboard"


def test_next_parameter_refuses_to_leave_the_site(client, alice, password):
    response = login(client, alice.email, password, next="https://evil.example.com/")
    assert response["Location"] == "/dashboard"


def test_logged_in_user_opening_login_action_is_sent_on(client, alice):
    client.force_login(alice)
    assert client.get("/login/profile")["Location"] == "/profile"


def test_login_required_pages_send_anonymous_users_to_login(client, db):
    response = client.get("/profile")
    assert response.status_code == 302
    assert response["Location"] == "/login?next=/profile"


def test_unverified_email_cannot_log_in(client, alice, password):
    EmailAddress.objects.filter(user=alice).update(verified=False)
    response = login(client, alice.email, password)
    assert response.status_code == 302
    assert response["Location"] == "/accounts/confirm-email/"
    assert "_auth_user_id" not in client.session
    assert "confirm" in mail.outbox[-1].subject.lower()


# --- registration and email verification ----------------------------------------------------------------------


def test_register_then_verify_email_then_logged_in(client, db):
    page = client.get("/register").content.decode()
    assert 'autocomplete="new-password"' in page
    response = client.post(
        "/register", {"email": "Dana@Example.org", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
    )
    assert response.status_code == 302
    user = User.objects.get(email__iexact="dana@example.org")
    assert not EmailAddress.objects.get(user=user).verified
    assert "_auth_user_id" not in client.session
    link = link_in_last_email(r"http://testserver/accounts/confirm-email/[^/\s]+/")
    assert client.get(link).status_code == 200
    confirmed = client.post(link)
    assert confirmed.status_code == 302
    assert EmailAddress.objects.get(user=user).verified
    assert client.session["_auth_user_id"] == str(user.pk)


def test_registration_requires_a_password_of_twelve_characters(client, db):
    response = client.post(
        "/register", {"email": "dana@example.org", "password1": "Sh0rt-pass", "password2": "Sh0rt-pass"}
    )
    assert response.status_code == 200
    assert "at least 12 characters" in response.content.decode()
    assert not User.objects.filter(email="dana@example.org").exists()


def test_registration_with_a_taken_email_creates_nothing_and_tells_the_owner(client, alice):
    # The page looks the same as for a new address, so nobody can probe which emails have accounts.
    response = client.post("/register", {"email": alice.email, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response.status_code == 302
    assert User.objects.filter(email=alice.email).count() == 1
    assert mail.outbox[-1].to == [alice.email]
    assert "already" in mail.outbox[-1].body


# --- logout ---------------------------------------------------------------------------------------------------


def test_logout_asks_on_get_and_logs_out_on_post(client, alice):
    client.force_login(alice)
    page = client.get("/logout")
    assert page.status_code == 200
    assert "_auth_user_id" in client.session
    assert "Do you want to log out" in page.content.decode()
    response = client.post("/logout")
    assert response.status_code == 302
    assert "_auth_user_id" not in client.session


# --- password reset -------------------------------------------------------------------------------------------


def test_password_reset_by_email_link(client, alice):
    response = client.post("/password/reset", {"email": alice.email})
    assert response.status_code == 302
    link = link_in_last_email(r"http://testserver/accounts/password/reset/key/[^\s]+/")
    form_page = client.get(link, follow=True)
    assert form_page.status_code == 200
    action = form_page.redirect_chain[-1][0] if form_page.redirect_chain else link
    done = client.post(action, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert done.status_code == 302
    alice.refresh_from_db()
    assert alice.check_password(NEW_PASSWORD)


def test_password_reset_for_an_unknown_email_reveals_nothing(client, db):
    response = client.post("/password/reset", {"email": "nobody@example.org"})
    assert response.status_code == 302
    assert client.get(response["Location"]).status_code == 200


# --- rate limits ----------------------------------------------------------------------------------------------


@override_settings(RATE_LIMIT_LOGIN="3/m")
def test_login_posts_are_rate_limited_per_ip(client, alice, charlie, password):
    for _ in range(3):
        login(client, charlie.email, "wrong-password-1")
    response = login(client, alice.email, password)
    assert response.status_code == 429
    assert "Too many attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session
    # Another address is not affected.
    assert login(client, alice.email, password, ip="10.9.9.9").status_code == 302


@override_settings(RATE_LIMIT_LOGIN="2/m")
def test_allauth_login_url_shares_the_same_limit(client, alice):
    login(client, alice.email, "wrong-password-1")
    login(client, alice.email, "wrong-password-1", path="/accounts/login/")
    assert login(client, alice.email, "wrong-password-1", path="/accounts/login/").status_code == 429


@override_settings(RATE_LIMIT_LOGIN="1/m")
def test_viewing_the_login_page_is_not_limited(client, db):
    assert all(client.get("/login").status_code == 200 for _ in range(3))


@override_settings(RATE_LIMIT_REGISTER="2/h")
def test_registration_is_rate_limited(client, db):
    for number in range(2):
        client.post(
            "/register", {"email": f"user{number}@example.org", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
        )
    response = client.post(
        "/register", {"email": "late@example.org", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
    )
    assert response.status_code == 429
    assert not User.objects.filter(email="late@example.org").exists()


@override_settings(RATE_LIMIT_PASSWORD_RESET="2/h")
def test_password_reset_is_rate_limited(client, alice):
    for _ in range(2):
        client.post("/password/reset", {"email": alice.email})
    sent = len(mail.outbox)
    assert client.post("/password/reset", {"email": alice.email}).status_code == 429
    assert len(mail.outbox) == sent


def test_rate_limited_api_callers_get_json(db):
    response = ratelimited(RequestFactory().post("/api/v1/auth/token/"))
    assert response.status_code == 429
    assert response["Content-Type"] == "application/json"
    assert b'"code": "rate_limited"' in response.content


def test_emails_name_the_platform_not_the_default_site(client, alice):
    client.post("/password/reset", {"email": alice.email})
    message = mail.outbox[-1]
    assert message.subject.startswith("[DeepMed] ")
    assert "example.com" not in message.body
    assert "Hello from DeepMed!" in message.body


def test_allauth_pages_we_do_not_restyle_still_use_the_site_layout(client, alice):
    client.force_login(alice)
    response = client.get("/accounts/email/")
    html = response.content.decode()
    assert response.status_code == 200
    assert '<main id="main"' in html
    assert alice.email in html


def test_allauths_own_rate_limit_answers_with_our_page(db):
    from allauth.core.internal.ratelimit import respond_429
    from django.contrib.auth.models import AnonymousUser

    request = RequestFactory().post("/accounts/password/reset/")
    request.user = AnonymousUser()
    response = respond_429(request)
    assert response.status_code == 429
    assert b"Too many attempts" in response.content
