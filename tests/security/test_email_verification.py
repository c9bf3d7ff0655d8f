"""Issue 11 #5: the API ignored mandatory e-mail verification.

An account whose address was never confirmed got tokens from /api/v1/auth/token/ and could upload data, although
the web login holds it at "confirm your address". While ACCOUNT_EMAIL_VERIFICATION=mandatory, the token endpoint
answers 401 `email_unverified` until the address is confirmed.
"""

import io

import pytest
from allauth.account.models import EmailAddress
from rest_framework.test import APIClient

from accounts.models import AuditEvent, User

TOKEN_URL = "/api/v1/auth/token/"
NEW_EMAIL = "mallory@example.org"

pytestmark = pytest.mark.django_db


def register(client, email: str, password: str) -> None:
    response = client.post("/register", {"email": email, "password1": password, "password2": password})
    assert response.status_code == 302, response.content[:500]


def obtain(email: str, password: str):
    return APIClient().post(TOKEN_URL, {"email": email, "password": password}, format="json")


def test_an_unconfirmed_account_gets_no_tokens_and_cannot_upload(client, password):
    register(client, NEW_EMAIL, password)
    assert not EmailAddress.objects.get(email=NEW_EMAIL).verified

    response = obtain(NEW_EMAIL, password)

    assert response.status_code == 401
    body = response.json()
    assert body["code"] == "email_unverified"
    assert "confirm" in body["detail"].lower()
    assert NEW_EMAIL in body["detail"]
    assert "access" not in body
    refused = AuditEvent.objects.filter(action=AuditEvent.Action.TOKEN_FAILED, actor_email=NEW_EMAIL).latest("pk")
    assert refused.details == {"reason": "email_unverified"}
    # Nothing it could have uploaded with: an upload without a token is refused.
    upload = APIClient().post("/api/v1/datasets/", {"file": io.BytesIO(b"a,b\n1,2\n")}, format="multipart")
    assert upload.status_code == 401


def test_the_same_account_gets_tokens_once_its_address_is_confirmed(client, password):
    register(client, NEW_EMAIL, password)
    EmailAddress.objects.filter(email=NEW_EMAIL).update(verified=True)

    response = obtain(NEW_EMAIL, password)

    assert response.status_code == 200
    assert set(response.json()) == {"access", "refresh"}


def test_an_account_without_any_address_record_is_refused_too(password):
    # e.g. made with createsuperuser: allauth's web login asks it to confirm its address as well.
    User.objects.create_user(email=NEW_EMAIL, password=password)

    assert obtain(NEW_EMAIL, password).json()["code"] == "email_unverified"


def test_a_wrong_password_still_says_only_wrong_credentials(client, password):
    register(client, NEW_EMAIL, password)

    response = obtain(NEW_EMAIL, "not-the-password-at-all")

    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"


@pytest.mark.parametrize("mode", ["optional", "none"])
def test_without_mandatory_verification_tokens_are_issued(client, settings, password, mode):
    settings.ACCOUNT_EMAIL_VERIFICATION = mode
    register(client, NEW_EMAIL, password)

    assert obtain(NEW_EMAIL, password).status_code == 200
