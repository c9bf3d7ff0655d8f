"""Fixtures for the attack tests: accounts with a confirmed authenticator app, and the two ways of signing in.

Every test here performs an attack over HTTP (Django's test client or DRF's APIClient), the way the attack on the
running platform did; the helpers only set up who is attacking and how far they got through the login.
"""

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from rest_framework.test import APIClient

from accounts.roles import SECURITY_OFFICERS
from accounts.tests.test_mfa import confirmed_device, enable_mfa, login_verified, totp_code


def current_code(user) -> str:
    """The next code the user's authenticator app shows (one step ahead, so set-up's code is not replayed)."""
    return totp_code(confirmed_device(user), steps_ahead=1)


def password_only_login(client: Client, user, password: str) -> Client:
    """Signs in through /login with the password and stops there: the session has not passed the OTP step."""
    response = client.post("/login", {"login": user.email, "password": password})
    assert response.status_code == 302, response.content[:500]
    assert str(client.session.get("_auth_user_id")) == str(user.pk)
    return client


def verified_login(client: Client, user) -> Client:
    """A session that passed both the password and the OTP step (the user must have an authenticator app)."""
    login_verified(client, user)
    return client


def token_pair(user, password: str, *, otp: str | None = None) -> dict:
    """A token pair from the real token endpoint; with `otp` the code goes in the second step."""
    body = {"email": user.email, "password": password}
    if otp is not None:
        body["otp"] = otp
    response = APIClient().post("/api/v1/auth/token/", body, format="json")
    assert response.status_code == 200, response.content[:500]
    return response.json()


def bearer_client(access: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client


@pytest.fixture
def alice_totp(alice):
    """alice, an ordinary user who turned on two-factor login (returns the user; her backup codes are unused)."""
    enable_mfa(alice)
    return alice


@pytest.fixture
def bob_totp(bob):
    """bob, staff, with a confirmed authenticator app."""
    enable_mfa(bob)
    return bob


def _verified_address(user) -> None:
    from allauth.account.models import EmailAddress

    EmailAddress.objects.update_or_create(user=user, email=user.email, defaults={"verified": True, "primary": True})


@pytest.fixture
def officer(db, password):
    """A member of the ready-made "Security officers" role: staff, not superuser, with an authenticator app."""
    from accounts.models import User

    user = User.objects.create_user(email="officer@example.org", password=password, is_staff=True, first_name="Olga")
    _verified_address(user)
    user.groups.add(Group.objects.get(name=SECURITY_OFFICERS))
    enable_mfa(user)
    return user


@pytest.fixture
def superuser(db, password):
    from accounts.models import User

    user = User.objects.create_superuser(email="root@example.org", password=password)
    _verified_address(user)
    enable_mfa(user)
    return user
