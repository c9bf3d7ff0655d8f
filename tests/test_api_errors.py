"""Every API error is JSON `{"detail", "code"}` with a 4xx status (DESIGN.md §4), whatever went wrong."""

from datetime import timedelta

import pytest
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

ME_URL = "/api/v1/me/"
TOKEN_URL = "/api/v1/auth/token/"


def bearer(raw):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def assert_error(response, status, code):
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["code"] == code
    assert isinstance(body["detail"], str) and body["detail"]
    return body


def test_no_credentials_is_a_401_that_says_how_to_sign_in(api_client, db):
    response = api_client.get(ME_URL)

    body = assert_error(response, 401, "not_authenticated")
    assert "Bearer" in body["detail"]
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_garbage_bearer_token_is_a_401_without_library_internals(db):
    response = bearer("garbage").get(ME_URL)

    body = assert_error(response, 401, "token_not_valid")
    assert set(body) == {"detail", "code"}
    assert "/api/v1/auth/token/refresh/" in body["detail"]


def test_an_expired_access_token_is_a_401(alice):
    token = AccessToken.for_user(alice)
    token.set_exp(lifetime=-timedelta(seconds=1))

    assert_error(bearer(str(token)).get(ME_URL), 401, "token_not_valid")


def test_a_refresh_token_is_not_accepted_as_an_access_token(alice, api_client, password):
    pair = api_client.post(TOKEN_URL, {"email": alice.email, "password": password}, format="json").json()

    assert_error(bearer(pair["refresh"]).get(ME_URL), 401, "token_not_valid")


@pytest.mark.parametrize("path", ["/api/v1/no-such-thing/", "/api/v1/me/extra/", "/api/nothing-here"])
def test_an_unknown_api_address_is_a_json_404(api_client, db, path):
    assert_error(api_client.get(path), 404, "not_found")


def test_a_wrong_method_is_a_405(api_client, db):
    response = api_client.get(TOKEN_URL)

    assert_error(response, 405, "method_not_allowed")
    assert "POST" in response["Allow"]


def test_a_body_in_an_unsupported_format_is_a_415(api_client, db):
    response = api_client.post(TOKEN_URL, "email=a", content_type="text/plain")

    assert_error(response, 415, "unsupported_media_type")


def test_malformed_json_is_a_400_parse_error(api_client, db):
    response = api_client.post(TOKEN_URL, "{not json", content_type="application/json")

    assert_error(response, 400, "parse_error")


def test_invalid_fields_are_a_400_that_names_each_field(api_client, db):
    response = api_client.post(TOKEN_URL, {"email": "not-an-email"}, format="json")

    body = assert_error(response, 400, "invalid")
    assert set(body["errors"]) == {"email", "password"}
    assert "email:" in body["detail"] and "password:" in body["detail"]
