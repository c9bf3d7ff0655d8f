"""Issue 11 #6: a password change or reset left the API tokens alive.

Someone who changes or resets a password does so to shut out whoever knew the old one. Before, that person's
access token still read /api/v1/me/ and their refresh token kept rotating for days. Now every refresh token is
blacklisted and every access token issued before the change is refused, as after a force logout.
"""

import re

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.core import mail
from rest_framework.test import APIClient

from accounts.models import AuditEvent

NEW_PASSWORD = "a-brand-new-passphrase-42"  # noqa: S105
TOKEN_URL = "/api/v1/auth/token/"


class QuickPBKDF2Hasher(PBKDF2PasswordHasher):
    """A new preferred hasher, cheap enough for a test: stored MD5 hashes are upgraded to it at the next login."""

    algorithm = "pbkdf2_quick"
    iterations = 2


def stolen_pair(user, password) -> dict:
    """What the attacker holds: a pair obtained with the old password."""
    response = APIClient().post(TOKEN_URL, {"email": user.email, "password": password}, format="json")
    assert response.status_code == 200, response.content[:500]
    return response.json()


def me(access: str):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client.get("/api/v1/me/")


def refresh(refresh_token: str):
    return APIClient().post("/api/v1/auth/token/refresh/", {"refresh": refresh_token}, format="json")


def assert_pair_is_dead(pair: dict) -> None:
    refused = me(pair["access"])
    assert refused.status_code == 401
    assert refused.json()["code"] == "session_ended"
    assert refresh(pair["refresh"]).status_code == 401


def change_password_on_the_profile(client, user, old_password: str) -> None:
    client.force_login(user)
    response = client.post(
        "/accounts/password/change/",
        {"oldpassword": old_password, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert response.status_code == 302, response.content[:500]


def reset_password_by_email(client, user) -> None:
    mail.outbox.clear()
    client.post("/password/reset", {"email": user.email})
    link = re.search(r"http://testserver/accounts/password/reset/key/[^\s]+/", mail.outbox[-1].body).group(0)
    form_page = client.get(link, follow=True)
    response = client.post(form_page.redirect_chain[-1][0], {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response.status_code == 302, response.content[:500]


def test_a_password_change_ends_the_old_tokens(client, alice, password):
    pair = stolen_pair(alice, password)
    assert me(pair["access"]).status_code == 200

    change_password_on_the_profile(client, alice, password)

    assert_pair_is_dead(pair)


def test_a_password_reset_ends_the_old_tokens(client, alice, password):
    pair = stolen_pair(alice, password)

    reset_password_by_email(client, alice)

    assert_pair_is_dead(pair)


def test_a_refreshed_pair_obtained_before_the_change_dies_too(client, alice, password):
    rotated = refresh(stolen_pair(alice, password)["refresh"]).json()

    change_password_on_the_profile(client, alice, password)

    assert_pair_is_dead(rotated)


def test_a_password_set_outside_the_web_pages_ends_them_too(alice, password):
    # The admin's password form, `manage.py changepassword` and a shell all end in set_password() and save().
    pair = stolen_pair(alice, password)

    alice.set_password(NEW_PASSWORD)
    alice.save()

    assert_pair_is_dead(pair)


def test_the_owner_signs_in_again_with_the_new_password(client, alice, password):
    stolen_pair(alice, password)
    change_password_on_the_profile(client, alice, password)

    fresh = stolen_pair(alice, NEW_PASSWORD)

    assert me(fresh["access"]).status_code == 200
    assert refresh(fresh["refresh"]).status_code == 200


def test_the_revocation_is_audited_with_the_number_of_tokens(client, alice, password):
    stolen_pair(alice, password)
    stolen_pair(alice, password)

    change_password_on_the_profile(client, alice, password)

    event = AuditEvent.objects.get(action=AuditEvent.Action.API_TOKENS_REVOKED)
    assert (event.target_id, event.details) == (str(alice.pk), {"reason": "password_changed", "tokens_revoked": 2})


@pytest.mark.django_db
def test_other_accounts_keep_their_tokens(client, alice, charlie, password):
    charlies = stolen_pair(charlie, password)

    change_password_on_the_profile(client, alice, password)

    assert me(charlies["access"]).status_code == 200
    assert refresh(charlies["refresh"]).status_code == 200


def test_a_login_that_upgrades_the_password_hash_ends_nothing(settings, alice, password):
    # Django re-hashes a stored password on login when the hasher changes; that is not a password change.
    pair = stolen_pair(alice, password)
    settings.PASSWORD_HASHERS = [
        f"{__name__}.QuickPBKDF2Hasher",
        "django.contrib.auth.hashers.MD5PasswordHasher",
    ]

    stolen_pair(alice, password)
    alice.refresh_from_db()

    assert alice.password.startswith("pbkdf2_quick$")
    assert me(pair["access"]).status_code == 200
