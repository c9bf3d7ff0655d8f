"""Public pages, the dashboard, the user guide and the error pages: what a visitor and a clinician see."""

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.contrib.staticfiles import finders
from django.core.exceptions import PermissionDenied
from django.template.loader import render_to_string
from django.test import Client, RequestFactory, override_settings
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from deepmed import pages
from modelhub.tests.factories import TrainingModelFactory, TrainingRunFactory

PUBLIC_PAGES = ["/", "/privacy", "/terms", "/cookies", "/compliance", "/faq", "/support", "/docs/"] + [
    f"/docs/{section.slug}/" for section in pages.DOC_SECTIONS
]
ERROR_PAGES = ["/no-such-page"]

# src/href of every element that loads something: scripts, stylesheets and icons, images.
ASSET_URL = re.compile(r"<(?:script|link|img)\b[^>]*?\s(?:src|href)\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)
INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\ssrc\s*=)[^>]*>", re.IGNORECASE)
INLINE_HANDLER = re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.IGNORECASE)


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


def html(response) -> str:
    return response.content.decode()


def header(response) -> str:
    """The site header with the main navigation (page text may mention /login too)."""
    return html(response).split("</header>")[0]


# --- every page renders -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PUBLIC_PAGES)
def test_public_page_renders_for_a_visitor(client, db, path):
    response = client.get(path)

    assert response.status_code == 200
    body = html(response)
    assert '<html lang="en">' in body
    assert 'href="/login"' in header(response) and 'href="/register"' in header(response)
    assert 'action="/logout"' not in body


@pytest.mark.parametrize("path", [*PUBLIC_PAGES, "/dashboard"])
def test_page_renders_for_a_signed_in_user_with_a_logout_form(alice_client, path):
    response = alice_client.get(path)

    assert response.status_code == 200
    body = html(response)
    # Logging out changes state, so it is a POST with a CSRF token, never a link.
    assert re.search(
        r'<form method="post" action="/logout"[^>]*>\s*<input type="hidden" name="csrfmiddlewaretoken"', body
    )
    assert 'href="/login"' not in header(response)


def test_dashboard_sends_a_visitor_to_the_login_page(client, db):
    response = client.get("/dashboard")

    assert response.status_code == 302
    assert response["Location"] == "/login?next=/dashboard"


def test_docs_without_a_trailing_slash_redirect_to_the_guide(client, db):
    response = client.get("/docs")

    assert response.status_code == 301
    assert response["Location"] == "/docs/"


def test_favicon_points_at_the_logo(client, db):
    response = client.get("/favicon.ico")

    assert response.status_code == 302
    assert response["Location"] == "/static/img/logo.svg"


# --- layout and accessibility -----------------------------------------------------------------------------------


def test_layout_has_landmarks_skip_link_and_a_status_region(client, db):
    body = html(client.get("/"))

    assert '<a class="skip-link" href="#main">' in body
    assert '<main id="main"' in body
    assert '<nav class="container" aria-label="Main">' in body
    assert "<footer" in body
    assert re.search(r'<div id="messages"[^>]*role="status"', body)


def test_footer_links_to_the_legal_pages(client, db):
    body = html(client.get("/support"))

    for path, label in [
        ("/privacy", "Privacy"),
        ("/terms", "Terms"),
        ("/cookies", "Cookies"),
        ("/compliance", "Compliance"),
    ]:
        assert f'<a href="{path}">{label}</a>' in body


def test_current_page_is_marked_in_the_navigation(client, db):
    body = html(client.get("/faq"))

    assert '<a href="/faq" aria-current="page">FAQ</a>' in body
    assert '<a href="/support">Support</a>' in body


def test_admin_link_is_shown_to_staff_only(client, alice, bob):
    client.force_login(alice)
    assert 'href="/admin/"' not in html(client.get("/"))

    client.force_login(bob)
    assert 'href="/admin/"' in html(client.get("/"))


def test_messages_are_shown_in_the_status_region(alice_client):
    # Logging out leaves a one-time notice for the next page.
    response = alice_client.post("/logout", follow=True)

    region = re.search(r'<div id="messages"[^>]*>(.*?)</div>', html(response), re.DOTALL).group(1)
    assert 'class="message message-' in region


# --- the welcome page -------------------------------------------------------------------------------------------


def test_welcome_page_explains_the_privacy_stance_and_invites_visitors_to_sign_in(client, db):
    body = html(client.get("/"))

    assert "Your data stays with you" in body
    assert "No cloud AI" in body
    assert 'href="/login" role="button"' in body
    assert 'href="/register" role="button"' in body
    assert "Go to your dashboard" not in body


def test_welcome_page_sends_signed_in_users_to_their_dashboard(alice_client):
    body = html(alice_client.get("/"))

    assert '<a href="/dashboard" role="button">Go to your dashboard</a>' in body


# --- the dashboard ----------------------------------------------------------------------------------------------


def test_new_users_dashboard_shows_empty_states(alice_client):
    body = html(alice_client.get("/dashboard"))

    assert "No datasets yet." in body
    assert "No training runs yet." in body
    assert "No models yet." in body
    assert f"kept for {settings.RETENTION_DAYS} days" in body


def test_dashboard_lists_alices_runs_and_models(alice_client, alice):
    run = TrainingRunFactory(user=alice, run_name="Sepsis within 48 hours")
    TrainingModelFactory(user=alice, run=run, model_name="random_forest", metric_value=0.8123, is_selected=True)

    body = html(alice_client.get("/dashboard"))

    assert "Sepsis within 48 hours" in body
    assert "random_forest" in body and "0.812" in body and "Selected" in body
    assert "No training runs yet." not in body
    assert "No models yet." not in body


def test_charlie_does_not_see_alices_runs_or_models_on_his_dashboard(client, alice, charlie):
    run = TrainingRunFactory(user=alice, run_name="Alice's private cohort")
    TrainingModelFactory(user=alice, run=run, model_name="alice_model_hgb")
    client.force_login(charlie)

    body = html(client.get("/dashboard"))

    assert "Alice's private cohort" not in body
    assert "alice_model_hgb" not in body
    assert "No training runs yet." in body and "No models yet." in body


def test_dashboard_lists_alices_datasets_and_not_charlies(client, alice, charlie):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tabular.services import dataset_create

    csv = b"age;outcome\n61;yes\n45;no\n50;no\n"
    dataset_create(user=alice, uploaded_file=SimpleUploadedFile("ward.csv", csv), name="Ward 7 admissions")

    client.force_login(alice)
    body = html(client.get("/dashboard"))
    assert "Ward 7 admissions" in body
    assert "No datasets yet." not in body

    client.force_login(charlie)
    body = html(client.get("/dashboard"))
    assert "Ward 7 admissions" not in body
    assert "No datasets yet." in body


def test_dashboard_shows_only_the_most_recent_runs(alice_client, alice):
    for number in range(pages.DASHBOARD_RECENT_ROWS + 2):
        TrainingRunFactory(user=alice, run_name=f"cohort-run-{number:02d}")

    body = html(alice_client.get("/dashboard"))

    assert len(re.findall(r"cohort-run-\d\d", body)) == pages.DASHBOARD_RECENT_ROWS


def test_dashboard_nudges_users_without_two_factor_login(alice_client):
    body = html(alice_client.get("/dashboard"))

    assert "Protect your account with two-factor login" in body
    assert 'href="/profile/mfa/setup"' in body


def test_an_unconfirmed_authenticator_still_gets_the_nudge(alice_client, alice):
    TOTPDevice.objects.create(user=alice, name="half set up", confirmed=False)

    assert "Protect your account with two-factor login" in html(alice_client.get("/dashboard"))


def test_users_with_two_factor_login_are_not_nudged(client, alice):
    device = TOTPDevice.objects.create(user=alice, name="phone", confirmed=True)
    client.force_login(alice)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()

    response = client.get("/dashboard")

    assert response.status_code == 200
    assert "Protect your account with two-factor login" not in html(response)


def test_backup_codes_alone_do_not_count_as_two_factor_login(alice_client, alice):
    StaticDevice.objects.create(user=alice, name="backup", confirmed=True)

    assert "Protect your account with two-factor login" in html(alice_client.get("/dashboard"))


# --- legal pages, support and the guide ------------------------------------------------------------------------


@override_settings(SUPPORT_EMAIL="ict-help@hospital.example")
@pytest.mark.parametrize("path", ["/support", "/privacy", "/compliance", "/terms"])
def test_pages_give_the_configured_support_address(client, db, path):
    assert 'href="mailto:ict-help@hospital.example"' in html(client.get(path))


def test_support_page_warns_never_to_send_patient_data(client, db):
    body = html(client.get("/support"))

    assert "Never send patient data to support." in body
    assert "What to include" in body


@override_settings(RETENTION_DAYS=30, AXES_FAILURE_LIMIT=7)
def test_compliance_page_quotes_this_installations_settings(client, db):
    body = html(client.get("/compliance"))

    assert "deleted 30 days after creation" in body
    assert "After 7 failed attempts" in body


def test_compliance_page_says_transport_is_not_enforced_in_a_development_configuration(client, db):
    # The test settings turn HTTPS redirects and secure cookies off, as a development machine would.
    body = html(client.get("/compliance"))

    assert "Not enforced on this installation" in body
    assert "Enforced on this installation" not in body


@override_settings(
    SECURE_SSL_REDIRECT=True, SECURE_HSTS_SECONDS=3600, SESSION_COOKIE_SECURE=True, CSRF_COOKIE_SECURE=True
)
def test_compliance_page_says_transport_is_enforced_in_production_settings(client, db):
    body = html(client.get("/compliance", secure=True))

    assert "Enforced on this installation" in body


def test_compliance_page_calls_dicom_de_identification_planned_not_done(client, db):
    body = html(client.get("/compliance"))

    planned = body.split("<h2>Planned</h2>")[1].split("<h2>")[0]
    assert "DICOM de-identification" in planned
    assert "DICOM" not in body.split("<h2>Planned</h2>")[0]


def test_guide_index_lists_every_section_and_marks_the_unbuilt_ones(client, db):
    body = html(client.get("/docs/"))

    for section in pages.DOC_SECTIONS:
        assert f'href="/docs/{section.slug}/"' in body
    unbuilt = [section for section in pages.DOC_SECTIONS if not section.available]
    assert body.count("Coming soon") == len(unbuilt)


def test_a_coming_soon_section_says_so(client, db, monkeypatch):
    # Mark a built section unbuilt, so the notice is checked whichever sections are still missing.
    sections = tuple(
        pages.DocSection(s.slug, s.title, s.summary, available=False) if s.slug == "training" else s
        for s in pages.DOC_SECTIONS
    )
    monkeypatch.setattr(pages, "DOC_SECTIONS", sections)
    monkeypatch.setattr(pages, "_DOC_SECTIONS_BY_SLUG", {section.slug: section for section in sections})
    body = html(client.get("/docs/training/"))

    assert "This part of DeepMed is not available yet." in body


def test_an_available_section_has_no_coming_soon_notice(client, db):
    body = html(client.get("/docs/accounts/"))

    assert "not available yet" not in body
    assert 'rel="prev"' in body and 'rel="next"' in body


def test_api_guide_shows_a_curl_token_request_against_this_server(client, db):
    body = html(client.get("/docs/api/"))

    assert "curl -s -X POST http://testserver/api/v1/auth/token/" in body
    assert "Authorization: Bearer $ACCESS" in body
    assert "/api/v1/auth/token/refresh/" in body
    assert "otp_required" in body


def test_an_unknown_guide_section_is_a_404_page(client, db):
    response = client.get("/docs/no-such-section/")

    assert response.status_code == 404
    assert "Page not found" in html(response)


def test_every_guide_section_has_its_own_template():
    # The chatbot ingests the guide section by section, so each one must stand alone as a file.
    template_dir = Path(settings.BASE_DIR) / "templates" / "docs"
    for section in pages.DOC_SECTIONS:
        assert (template_dir / f"{section.slug}.html").is_file(), section.slug


# --- assets: nothing from the internet, everything that is referenced exists ---------------------------------


@pytest.mark.parametrize("path", [*PUBLIC_PAGES, *ERROR_PAGES])
def test_no_asset_is_loaded_from_another_origin(client, db, path):
    urls = ASSET_URL.findall(html(client.get(path)))

    assert urls, "the page should at least load its stylesheet"
    offsite = [url for url in urls if re.match(r"^(?:[a-z][a-z0-9+.-]*:)?//", url, re.IGNORECASE)]
    assert offsite == []


def test_dashboard_loads_no_asset_from_another_origin(alice_client):
    urls = ASSET_URL.findall(html(alice_client.get("/dashboard")))

    assert urls and all(url.startswith("/") and not url.startswith("//") for url in urls)


@pytest.mark.parametrize("path", [*PUBLIC_PAGES, *ERROR_PAGES])
def test_every_static_file_a_page_references_exists(client, db, path):
    urls = [url for url in ASSET_URL.findall(html(client.get(path))) if url.startswith(settings.STATIC_URL)]

    assert any(url.endswith(".css") for url in urls) and any(url.endswith(".js") for url in urls)
    for url in urls:
        assert finders.find(url.removeprefix(settings.STATIC_URL)), url


@pytest.mark.parametrize("path", [*PUBLIC_PAGES, *ERROR_PAGES])
def test_pages_have_no_inline_scripts_or_event_handlers(client, db, path):
    # The CSP allows scripts from this server only; inline code would be blocked in the browser.
    body = html(client.get(path))

    assert INLINE_SCRIPT.findall(body) == []
    assert INLINE_HANDLER.findall(body) == []


def test_vendored_libraries_ship_with_their_licences():
    vendor = Path(settings.BASE_DIR) / "static" / "vendor"
    libraries = [path for path in vendor.iterdir() if path.is_dir()]

    assert {path.name for path in libraries} >= {"pico", "htmx"}
    for library in libraries:
        assert list(library.glob("LICENSE*")), library.name


# --- error pages -----------------------------------------------------------------------------------------------


def test_unknown_path_gets_the_custom_404_page(client, db):
    response = client.get("/no-such-page")

    assert response.status_code == 404
    body = html(response)
    assert '<h1 id="error-title">Page not found</h1>' in body
    assert '<a href="/" role="button">Go to the home page</a>' in body
    assert 'class="skip-link"' in body  # the full layout, not Django's bare page


def test_unknown_api_path_with_json_accept_gets_json_404(client, db):
    response = client.get("/no-such-page", HTTP_ACCEPT="application/json")

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_permission_denied_gets_the_403_page_with_a_reference(db):
    request = RequestFactory().get("/somewhere")
    request.request_id = "abcdef0123456789"
    request.user = AnonymousUser()

    response = pages.permission_denied(request, PermissionDenied())

    assert response.status_code == 403
    body = html(response)
    assert "You do not have access to this page" in body
    assert "abcdef0123456789" in body


def test_bad_request_gets_the_400_page(db):
    request = RequestFactory().get("/somewhere")
    request.user = AnonymousUser()

    response = pages.bad_request(request)

    assert response.status_code == 400
    assert "The request could not be understood" in html(response)


def test_a_form_without_its_csrf_token_gets_the_friendly_403_page(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)

    response = client.post("/logout")

    assert response.status_code == 403
    body = html(response)
    assert "This form could not be accepted" in body
    assert "CSRF verification failed" not in body


class ExplodingUser:
    """Stands in for request.user when the database is down: any use of it fails the test."""

    def __getattr__(self, name):
        raise AssertionError(f"the 500 page touched request.user.{name}")


def test_500_page_renders_without_touching_the_database_or_the_user(db, django_assert_num_queries):
    request = RequestFactory().get("/dashboard")
    request.request_id = "feedc0ffee123456"
    request.user = ExplodingUser()
    request.session = ExplodingUser()

    with django_assert_num_queries(0):
        response = pages.server_error(request)

    assert response.status_code == 500
    body = html(response)
    assert "Something went wrong on our side" in body
    assert "feedc0ffee123456" in body
    assert f"mailto:{settings.SUPPORT_EMAIL}" in body
    assert 'href="/"' in body
    assert "Log out" not in body and "csrf" not in body.lower()


def test_500_for_an_api_path_is_json(db):
    request = RequestFactory().get("/api/v1/me/")
    request.request_id = "feedc0ffee123456"

    response = pages.server_error(request)

    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert b'"code": "server_error"' in response.content


def test_an_unhandled_error_is_served_by_the_500_handler(alice_client, monkeypatch):
    def boom(**kwargs):
        raise RuntimeError("unexpected")

    monkeypatch.setattr(pages, "training_run_list_for_user", boom)
    alice_client.raise_request_exception = False

    response = alice_client.get("/dashboard")

    assert response.status_code == 500
    assert "Something went wrong on our side" in html(response)


def test_503_page_renders_without_a_request():
    body = render_to_string("503.html", {"message": "The database is temporarily unavailable."})

    assert "The database is temporarily unavailable." in body
    assert 'href="/"' in body
    assert "Log out" not in body


def test_a_database_outage_is_a_503_page_not_a_500():
    from django.db import OperationalError

    from deepmed.middleware import DatabaseUnavailableMiddleware

    request = RequestFactory().get("/")
    response = DatabaseUnavailableMiddleware(lambda r: None).process_exception(request, OperationalError("gone"))
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert b"temporarily unavailable" in response.content

    api_request = RequestFactory().get("/api/v1/me/")
    api_response = DatabaseUnavailableMiddleware(lambda r: None).process_exception(api_request, OperationalError("x"))
    assert api_response.status_code == 503
    assert b'"code": "service_unavailable"' in api_response.content
