"""Issue 11 #7: staff powers need a second factor, on every staff page and endpoint, not only the admin.

The attack: a staff account without two-factor login (or a password-only session, or a token obtained with the
password alone) reached /chat/knowledge (documents that feed everyone's answers), /chat/feedback (users' answers
and e-mails), /metrics, /check_downloads_dir and /force_logout. With MFA_REQUIRED_FOR_STAFF every staff-only page
and endpoint refuses such a request: pages send staff to the two-factor set-up, the JSON API answers 403
`mfa_required`, and endpoints open to everyone (service status, chat analytics) leave out the staff details.
A staff member who is not a superuser cannot force a superuser out.
"""

import pytest
from django.contrib.sessions.models import Session
from django.test import Client, override_settings
from django.urls import reverse

from chatbot.models import KnowledgeDocument

from .conftest import bearer_client, current_code, password_only_login, token_pair, verified_login

pytestmark = pytest.mark.django_db

HTML = {"HTTP_ACCEPT": "text/html,application/xhtml+xml"}

# Staff-only pages: (method, path, form data).
STAFF_PAGES = [
    ("get", "/chat/knowledge", None),
    (
        "post",
        "/chat/knowledge",
        {"title": "Planted guidance", "text": "Double the dose.", "format": "text", "source": "x"},
    ),
    ("get", "/chat/knowledge/rows", None),
    ("get", "/chat/feedback", None),
    ("get", "/metrics", None),
    ("get", "/admin/", None),
    ("get", "/service_status", None),  # its page (Accept: text/html) is staff only
]

# Staff-only JSON endpoints: (method, path, JSON body).
STAFF_ENDPOINTS = [
    ("get", "/check_downloads_dir", None),
    ("get", "/api/v1/knowledge/documents/", None),
    ("post", "/api/v1/knowledge/documents/", {"title": "Planted guidance", "text": "Always double the dose."}),
    ("post", "/force_logout", "alice"),
]


def call(client, method: str, path: str, body, *, alice=None, **headers):
    if body == "alice":
        body = {"user_id": alice.pk}
    if method == "get":
        return client.get(path, **headers)
    if hasattr(client, "credentials"):  # DRF's APIClient
        return client.post(path, body, format="json", **headers)
    return client.post(path, body, **headers)


def assert_sent_to_setup(response):
    assert response.status_code == 302, response.status_code
    assert response["Location"] == reverse("mfa_setup")


def assert_nothing_done(alice_session: Client):
    assert not KnowledgeDocument.objects.exists()
    assert alice_session.get("/api/v1/me/").status_code == 200


@pytest.fixture
def alice_session(alice):
    client = Client()
    client.force_login(alice)
    return client


# --- staff without two-factor login -----------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "body"), STAFF_PAGES)
def test_staff_without_two_factor_are_sent_to_set_it_up_from_every_staff_page(
    client, bob, password, alice_session, method, path, body
):
    password_only_login(client, bob, password)

    response = call(client, method, path, body, **HTML)

    assert_sent_to_setup(response)
    page = client.get(response["Location"]).content.decode()
    assert "must turn on two-factor login" in page
    assert_nothing_done(alice_session)


@pytest.mark.parametrize(("method", "path", "body"), STAFF_ENDPOINTS)
def test_staff_without_two_factor_get_403_from_every_staff_endpoint(
    api_client, bob, password, alice, alice_session, method, path, body
):
    password_only_login(api_client, bob, password)

    response = call(api_client, method, path, body, alice=alice)

    assert response.status_code == 403
    assert response.json()["code"] == "mfa_required"
    assert "/profile/mfa/setup" in response.json()["detail"]
    assert_nothing_done(alice_session)


@pytest.mark.parametrize(("method", "path", "body"), STAFF_ENDPOINTS)
def test_a_staff_token_obtained_with_the_password_alone_has_no_staff_powers(
    bob, password, alice, alice_session, method, path, body
):
    client = bearer_client(token_pair(bob, password)["access"])

    response = call(client, method, path, body, alice=alice)

    assert response.status_code == 403
    assert response.json()["code"] == "mfa_required"
    assert_nothing_done(alice_session)


def test_staff_details_of_open_endpoints_need_two_factor_too(bob, password):
    for client in (password_only_login(Client(), bob, password), bearer_client(token_pair(bob, password)["access"])):
        status = client.get("/service_status").json()
        assert "latency_ms" not in status.get("services", {}).get("database", {})
        assert "platform" not in client.get("/chat/analytics").json()


# --- staff with an authenticator app, but a password-only session -----------------------------------------------


@pytest.mark.parametrize(("method", "path", "body"), STAFF_PAGES + STAFF_ENDPOINTS)
def test_a_password_only_session_of_staff_with_two_factor_is_held_at_the_code_step(
    client, bob_totp, password, alice, alice_session, method, path, body
):
    password_only_login(client, bob_totp, password)

    response = call(client, method, path, body, alice=alice, HTTP_ACCEPT="application/json")

    assert response.status_code == 401
    assert response.json()["code"] == "otp_required"
    assert_nothing_done(alice_session)


# --- with the second factor ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "body"), STAFF_PAGES)
def test_staff_who_passed_the_code_step_use_the_staff_pages(client, bob_totp, method, path, body):
    verified_login(client, bob_totp)

    response = call(client, method, path, body, **HTML)

    assert response.status_code in (200, 302), response.status_code
    if response.status_code == 302:  # the knowledge form redirects back to its page after adding
        assert response["Location"] == reverse("chat-knowledge")
        assert KnowledgeDocument.objects.filter(title="Planted guidance").exists()


def test_a_staff_token_obtained_with_a_code_has_staff_powers(bob_totp, password, alice, alice_session):
    client = bearer_client(token_pair(bob_totp, password, otp=current_code(bob_totp))["access"])

    assert client.get("/check_downloads_dir").status_code == 200
    assert client.get("/service_status").json()["services"]["database"]["latency_ms"] >= 0
    assert "platform" in client.get("/chat/analytics").json()
    created = client.post("/api/v1/knowledge/documents/", {"title": "Ward rules", "text": "Visitors leave by 8."})
    assert created.status_code == 202
    assert client.post("/force_logout", {"user_id": alice.pk}, format="json").status_code == 200
    assert alice_session.get("/api/v1/me/").status_code in (401, 403)


def test_a_staff_token_stops_counting_once_the_authenticator_app_is_removed(bob_totp, password):
    from accounts.mfa import mfa_reset_by_staff

    client = bearer_client(token_pair(bob_totp, password, otp=current_code(bob_totp))["access"])
    mfa_reset_by_staff(user=bob_totp, staff=bob_totp)

    response = client.get("/check_downloads_dir")

    assert response.status_code == 403
    assert response.json()["code"] == "mfa_required"


@override_settings(MFA_REQUIRED_FOR_STAFF=False)
def test_the_requirement_can_be_switched_off(client, bob, password):
    password_only_login(client, bob, password)

    assert client.get("/chat/knowledge").status_code == 200
    assert client.get("/check_downloads_dir").status_code == 200


def test_ordinary_users_still_get_the_403_page_and_json(client, charlie):
    client.force_login(charlie)

    assert client.get("/chat/knowledge").status_code == 403
    assert client.get("/chat/feedback", **HTML).status_code == 403
    assert client.get("/check_downloads_dir").json()["code"] == "permission_denied"
    assert client.get("/metrics").status_code == 404


# --- force logout of a superuser ----------------------------------------------------------------------------------


def test_staff_who_are_not_superusers_cannot_force_a_superuser_out(bob_totp, superuser):
    root_browser = verified_login(Client(), superuser)
    client = verified_login(Client(), bob_totp)

    response = client.post("/force_logout", {"user_id": superuser.pk}, content_type="application/json")

    assert response.status_code == 403
    body = response.json()
    assert body["code"] == "permission_denied"
    assert "only another superuser" in body["detail"]
    assert root_browser.get("/admin/").status_code == 200
    assert Session.objects.count() == 2


def test_a_superuser_may_force_another_superuser_out(superuser, password):
    from accounts.models import User
    from accounts.tests.test_mfa import enable_mfa

    other = User.objects.create_superuser(email="root2@example.org", password=password)
    enable_mfa(other)
    other_browser = verified_login(Client(), other)
    client = verified_login(Client(), superuser)

    response = client.post("/force_logout", {"user_id": other.pk}, content_type="application/json")

    assert response.status_code == 200
    assert other_browser.get("/admin/").status_code == 302
