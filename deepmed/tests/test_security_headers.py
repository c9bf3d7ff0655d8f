"""Security headers on every page: CSP, framing, MIME sniffing, referrer, caching and HSTS."""

import pytest
from django.test import Client, override_settings


def csp_directives(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    directives = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            directives[words[0]] = words[1:]
    return directives


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


@pytest.mark.parametrize("path", ["/", "/docs/api/", "/privacy", "/no-such-page"])
def test_pages_carry_the_basic_security_headers(client, db, path):
    response = client.get(path)

    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert "Content-Security-Policy" in response


def test_the_dashboard_carries_the_security_headers_too(alice_client):
    response = alice_client.get("/dashboard")

    assert response.status_code == 200
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" in response


def test_csp_allows_scripts_from_this_server_only(client, db):
    directives = csp_directives(client.get("/"))

    assert directives["script-src"] == ["'self'"]
    assert directives["default-src"] == ["'self'"]
    assert directives["object-src"] == ["'none'"]


def test_csp_allows_inline_styles_and_data_images_but_nothing_offsite(client, db):
    directives = csp_directives(client.get("/"))

    assert set(directives["style-src"]) == {"'self'", "'unsafe-inline'"}
    assert set(directives["img-src"]) == {"'self'", "data:"}
    for sources in directives.values():
        assert not any(source.startswith(("http:", "https:", "*")) for source in sources)


def test_csp_forbids_framing_and_foreign_form_targets(client, db):
    directives = csp_directives(client.get("/"))

    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["form-action"] == ["'self'"]
    assert directives["base-uri"] == ["'self'"]


def test_signed_in_pages_are_not_cached(alice_client):
    # Pages with patient data must not linger in a shared cache or the back button of a ward PC.
    assert "no-store" in alice_client.get("/dashboard")["Cache-Control"]


def test_the_csrf_failure_page_is_framed_by_no_one(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)

    response = client.post("/logout")

    assert response.status_code == 403
    assert response["X-Frame-Options"] == "DENY"
    assert "Content-Security-Policy" in response


@override_settings(SECURE_HSTS_SECONDS=31536000, SECURE_HSTS_INCLUDE_SUBDOMAINS=True)
def test_https_responses_carry_hsts_when_configured(client, db):
    response = client.get("/", secure=True)

    assert response["Strict-Transport-Security"].startswith("max-age=31536000; includeSubDomains")


@override_settings(SECURE_SSL_REDIRECT=True)
def test_plain_http_is_redirected_to_https_when_configured(client, db):
    response = client.get("/privacy")

    assert response.status_code == 301
    assert response["Location"] == "https://testserver/privacy"
