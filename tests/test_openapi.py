"""The OpenAPI schema and Swagger UI: accurate for the accounts endpoints, and usable on an offline network."""

import re

import pytest
from django.urls import include, path
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema

ACCOUNT_PATHS = {
    "/api/v1/auth/token/",
    "/api/v1/auth/token/refresh/",
    "/api/v1/auth/logout/",
    "/api/v1/me/",
    "/force_logout",
}


@pytest.fixture
def schema(client, db):
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def test_the_schema_lists_every_accounts_endpoint(schema):
    assert ACCOUNT_PATHS <= set(schema["paths"])


def test_the_token_endpoint_documents_the_otp_field_and_the_pair(schema):
    operation = schema["paths"]["/api/v1/auth/token/"]["post"]
    request_ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    response_ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    components = schema["components"]["schemas"]

    request_schema = components[request_ref.rsplit("/", 1)[1]]
    assert set(request_schema["properties"]) == {"email", "password", "otp"}
    assert set(request_schema["required"]) == {"email", "password"}
    assert set(components[response_ref.rsplit("/", 1)[1]]["properties"]) == {"access", "refresh"}
    assert {"401", "429"} <= set(operation["responses"])


def test_force_logout_documents_its_result_and_refusals(schema):
    operation = schema["paths"]["/force_logout"]["post"]
    ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]

    result = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert set(result["properties"]) == {"detail", "sessions_ended", "tokens_blacklisted"}
    assert {"400", "403", "404"} <= set(operation["responses"])


def test_bearer_tokens_are_described_as_a_security_scheme(schema):
    assert schema["components"]["securitySchemes"]["jwtAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    assert {"jwtAuth": []} in schema["paths"]["/api/v1/me/"]["get"]["security"]


def test_the_accounts_endpoints_generate_a_valid_schema_without_warnings(db):
    patterns = [
        path("api/v1/", include("accounts.api.urls")),
        path("", include("accounts.api.root_urls")),
    ]
    GENERATOR_STATS.reset()
    try:
        generated = SchemaGenerator(patterns=patterns).get_schema(request=None, public=True)
        warnings, errors = dict(GENERATOR_STATS._warn_cache), dict(GENERATOR_STATS._error_cache)
    finally:
        GENERATOR_STATS.reset()

    assert warnings == {}
    assert errors == {}
    validate_schema(generated)
    assert set(generated["paths"]) == ACCOUNT_PATHS


@pytest.fixture
def docs_page(client, db):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    return response.content.decode()


def test_the_docs_page_loads_nothing_from_the_internet(docs_page):
    assert re.search(r"https?://", docs_page) is None
    references = re.findall(r'(?:src|href)="([^"]+)"', docs_page)
    assert references, "the page should reference its Swagger UI files"
    for reference in references:
        assert reference.startswith(("/static/", "/api/docs/")), reference


def test_the_docs_page_has_no_inline_script_for_the_csp_to_block(client, docs_page):
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", docs_page, flags=re.S)

    assert scripts
    for attributes, body in scripts:
        assert "src=" in attributes
        assert body.strip() == ""
    assert "script-src 'self'" in client.get("/api/docs/")["Content-Security-Policy"]


def test_every_file_the_docs_page_needs_is_served_locally(client, docs_page):
    for reference in re.findall(r'(?:src|href)="([^"]+)"', docs_page):
        response = client.get(reference.replace("&amp;", "&"))
        assert response.status_code == 200, reference


def test_the_docs_script_points_at_the_local_schema_and_no_validator(client, db):
    script = client.get("/api/docs/", {"script": ""}).content.decode()

    assert '"/api/schema/"' in script
    assert '"validatorUrl": null' in script
    assert re.search(r"https?://", script) is None
