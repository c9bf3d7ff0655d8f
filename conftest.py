"""Shared fixtures. Personas: alice owns data, bob is staff, charlie must never see alice's things."""

import pytest
from rest_framework.test import APIClient

PASSWORD = "correct-horse-battery-staple"  # noqa: S105


@pytest.fixture
def password():
    return PASSWORD


def _make_user(email, *, staff=False):
    from accounts.models import User

    user = User.objects.create_user(email=email, password=PASSWORD, is_staff=staff, first_name=email.split("@")[0])
    _verify_email(user)
    return user


def _verify_email(user):
    from allauth.account.models import EmailAddress

    EmailAddress.objects.update_or_create(user=user, email=user.email, defaults={"verified": True, "primary": True})


@pytest.fixture
def alice(db):
    return _make_user("alice@example.org")


@pytest.fixture
def bob(db):
    return _make_user("bob@example.org", staff=True)


@pytest.fixture
def charlie(db):
    return _make_user("charlie@example.org")


@pytest.fixture
def api_client():
    return APIClient()


@pytest.fixture
def second_factor_login():
    """`login(client, user)`: a session that passed the two-factor step, as staff pages and endpoints require
    (MFA_REQUIRED_FOR_STAFF). Gives the user an authenticator app first if they have none."""
    from accounts.mfa import user_has_confirmed_mfa
    from accounts.tests.test_mfa import enable_mfa, login_verified

    def login(client, user):
        if not user_has_confirmed_mfa(user):
            enable_mfa(user)
        login_verified(client, user)
        return client

    return login


@pytest.fixture
def second_factor_token():
    """`issue(user)`: an access token as the token endpoint issues it after a two-factor code (its `otp` claim is
    what staff endpoints require). Gives the user an authenticator app first if they have none."""
    from accounts.mfa import user_has_confirmed_mfa
    from accounts.services import token_pair_issue
    from accounts.tests.test_mfa import enable_mfa

    def issue(user) -> str:
        if not user_has_confirmed_mfa(user):
            enable_mfa(user)
        return token_pair_issue(user=user, otp_verified=True)["access"]

    return issue


@pytest.fixture(autouse=True)
def _clear_cache():
    """Rate limits and lockouts live in the cache; every test starts with none."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()
