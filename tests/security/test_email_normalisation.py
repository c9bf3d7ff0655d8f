"""Issue 11 #13: lockout keys and the user lookup disagreed, and guessing from many addresses was unbounded.

The lockout keyed on `email.lower()`, the lookup was `iexact` (accent- and width-insensitive under MariaDB's
utf8mb4_unicode_ci). Each spelling of one address (letter case, full-width letters, an accented letter on MariaDB)
opened a fresh five-guess bucket for the same account. Now one normal form (NFKC + casefold) is stored, looked up
exactly and locked on, on every database; and an account that collects LOGIN_ACCOUNT_FAILURE_LIMIT failures within
LOGIN_ACCOUNT_FAILURE_WINDOW_MINUTES, from any number of addresses, is locked, its owner told by e-mail.
"""

from datetime import timedelta

import pytest
from axes.models import AccessFailureLog
from django.core import mail
from rest_framework.test import APIClient

from accounts.lockout import lockout_clear
from accounts.models import AuditEvent, User, email_normalise

WRONG = "wrong-password-123"
TOKEN_URL = "/api/v1/auth/token/"
# The same address as alice@example.org once normalised: capitals and a full-width domain (which Django's e-mail
# validation accepts, as IDNA maps it to ASCII).
ALICE_WIDE = "Alice@ｅｘａｍｐｌｅ.ORG"
# Not the same address: MariaDB's collation alone would call it equal to alice@example.org.
ALICE_ACCENTED_DOMAIN = "alice@exämple.org"


def web_login(client, email, password, ip="10.0.0.1"):
    return client.post("/login", {"login": email, "password": password}, REMOTE_ADDR=ip)


def token(email, password, ip="10.0.0.1"):
    return APIClient().post(TOKEN_URL, {"email": email, "password": password}, format="json", REMOTE_ADDR=ip)


def register(client, email, password):
    return client.post("/register", {"email": email, "password1": password, "password2": password})


# --- one normal form --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("Alice@Example.ORG", "alice@example.org"),
        (" alice@example.org ", "alice@example.org"),
        (ALICE_WIDE, "alice@example.org"),
        ("STRASSE@example.org", "strasse@example.org"),
        ("Straße@example.org", "strasse@example.org"),
        (ALICE_ACCENTED_DOMAIN, ALICE_ACCENTED_DOMAIN),  # accents are kept: a different mailbox
    ],
)
def test_the_normal_form_is_nfkc_then_casefold(raw, normal):
    assert email_normalise(raw) == normal
    assert email_normalise(normal) == normal


def test_every_spelling_of_an_address_counts_against_one_lock(client, alice, password):
    for spelling in ("Alice@Example.org", "ALICE@EXAMPLE.ORG"):
        web_login(client, spelling, WRONG)
    codes = [token(ALICE_WIDE, WRONG).status_code for _ in range(3)]

    assert codes == [401, 401, 429]  # the fifth failure of one account+address locks it
    assert token(alice.email, password).status_code == 429
    assert web_login(client, alice.email, password).status_code == 429
    assert set(AccessFailureLog.objects.values_list("username", flat=True)) == {"alice@example.org"}


def test_a_spelling_of_the_address_signs_in_to_the_same_account(alice, password):
    assert token(ALICE_WIDE, password).status_code == 200


def test_an_address_that_only_the_database_collation_equates_finds_no_account(alice, password):
    # On MariaDB `iexact` (and `=` under utf8mb4_unicode_ci) matched alice here, under a lockout key of its own.
    response = token(ALICE_ACCENTED_DOMAIN, password)

    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"


def test_registration_refuses_an_address_that_normalises_to_an_existing_one(client, alice, password):
    response = register(client, ALICE_WIDE, "a-brand-new-passphrase-42")

    assert response.status_code == 302  # the same page as for a new address: no enumeration
    assert User.objects.count() == 1
    assert mail.outbox[-1].to == [alice.email]
    assert "already" in mail.outbox[-1].body


@pytest.mark.django_db
def test_registration_stores_the_normal_form(client):
    register(client, "Dana@ｅｘａｍｐｌｅ.ORG", "a-brand-new-passphrase-42")

    assert list(User.objects.values_list("email", flat=True)) == ["dana@example.org"]
    assert token("DANA@EXAMPLE.ORG", "a-brand-new-passphrase-42").json()["code"] == "email_unverified"


@pytest.mark.django_db
def test_accounts_differing_only_in_accents_are_distinct_on_every_database(password):
    plain = User.objects.create_user(email="elise@example.org", password=password)
    accented = User.objects.create_user(email="élise@example.org", password=password + "-2")

    assert User.objects.get_by_natural_key("ÉLISE@example.org") == accented
    assert User.objects.get_by_natural_key("Elise@Example.org") == plain


# --- the per-account limit across addresses -----------------------------------------------------------------------


@pytest.fixture
def account_limit(settings):
    settings.LOGIN_ACCOUNT_FAILURE_LIMIT = 6
    settings.LOGIN_ACCOUNT_FAILURE_WINDOW_MINUTES = 60
    return settings


def spread_failures(client, email, addresses=3, each=2):
    """Failures from several addresses, each below the per-address limit of five."""
    for n in range(addresses):
        for _ in range(each):
            web_login(client, email, WRONG, ip=f"198.51.100.{n + 1}")


def test_guessing_from_many_addresses_locks_the_account(client, account_limit, alice, password):
    spread_failures(client, alice.email)

    fresh_address = "203.0.113.9"
    locked = web_login(client, alice.email, password, ip=fresh_address)
    assert locked.status_code == 429
    assert "many addresses" in locked.content.decode()
    refused = token(alice.email, password, ip="203.0.113.10")
    assert refused.status_code == 429
    assert refused.json()["code"] == "locked_out"
    assert "many addresses" in refused.json()["detail"]


def test_the_owner_is_told_once_and_the_lock_is_audited(client, account_limit, alice):
    spread_failures(client, alice.email, addresses=4)  # eight failures, two over the limit

    notices = [message for message in mail.outbox if "locked" in message.subject.lower()]
    assert [message.to for message in notices] == [[alice.email]]
    assert "6 failed" in notices[0].body
    event = AuditEvent.objects.get(action=AuditEvent.Action.ACCOUNT_LOCKED)
    assert (event.target_id, event.details["failures"], event.details["addresses"]) == (str(alice.pk), 6, 3)


def test_other_accounts_are_not_affected(client, account_limit, alice, charlie, password):
    spread_failures(client, alice.email)

    assert web_login(client, charlie.email, password, ip="203.0.113.9").status_code == 302


def test_below_the_limit_the_account_stays_open(client, account_limit, alice, password):
    spread_failures(client, alice.email, addresses=5, each=1)

    assert web_login(client, alice.email, password, ip="203.0.113.9").status_code == 302
    assert not mail.outbox


def test_the_lock_ends_when_the_failures_leave_the_window(client, account_limit, alice, password):
    spread_failures(client, alice.email)
    earlier = AccessFailureLog.objects.first().attempt_time - timedelta(minutes=61)
    AccessFailureLog.objects.update(attempt_time=earlier)

    assert web_login(client, alice.email, password, ip="203.0.113.9").status_code == 302


def test_staff_can_lift_the_lock_at_once(client, account_limit, alice, bob, password):
    spread_failures(client, alice.email)

    lockout_clear(email="ALICE@example.org", staff=bob)

    assert web_login(client, alice.email, password, ip="203.0.113.9").status_code == 302
    assert AuditEvent.objects.filter(action=AuditEvent.Action.UNLOCKED, target_id=alice.email).exists()


def test_the_limit_and_window_are_read_from_the_environment(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    probe = (
        "from deepmed import settings as s;print(s.LOGIN_ACCOUNT_FAILURE_LIMIT, s.LOGIN_ACCOUNT_FAILURE_WINDOW_MINUTES)"
    )
    env = {"PATH": os.environ.get("PATH", ""), "DEBUG": "1", "VAR_DIR": str(tmp_path)}
    root = Path(__file__).resolve().parents[2]

    def load(**extra):
        return subprocess.run(  # noqa: S603  (our own interpreter and probe)
            [sys.executable, "-c", probe], cwd=root, env={**env, **extra}, capture_output=True, text=True, check=False
        )

    assert load().stdout.split() == ["50", "60"]
    assert load(LOGIN_ACCOUNT_FAILURE_LIMIT="20", LOGIN_ACCOUNT_FAILURE_WINDOW_MINUTES="15").stdout.split() == [
        "20",
        "15",
    ]
    refused = load(LOGIN_ACCOUNT_FAILURE_LIMIT="0")
    assert refused.returncode != 0 and "LOGIN_ACCOUNT_FAILURE_LIMIT" in refused.stderr


# --- the data migration -----------------------------------------------------------------------------------------


def migration():
    import importlib

    return importlib.import_module("accounts.migrations.0003_email_normal_form_and_account_lock")


def run_normalisation():
    from types import SimpleNamespace

    from django.apps import apps
    from django.db import connection

    migration().normalise_addresses(apps, SimpleNamespace(connection=connection))


def stored_as(user, spelling):
    """Write an address as an older version of the platform could have stored it (bypassing save())."""
    from allauth.account.models import EmailAddress

    User.objects.filter(pk=user.pk).update(email=spelling)
    EmailAddress.objects.filter(user=user).update(email=spelling)


def test_the_migration_rewrites_stored_addresses_in_the_normal_form(alice):
    from allauth.account.models import EmailAddress

    stored_as(alice, ALICE_WIDE)

    run_normalisation()

    assert User.objects.get(pk=alice.pk).email == "alice@example.org"
    assert list(EmailAddress.objects.filter(user=alice).values_list("email", flat=True)) == ["alice@example.org"]


def test_the_migration_refuses_two_accounts_that_become_one_address_and_changes_nothing(alice, charlie):
    stored_as(alice, "alice@example.org")
    stored_as(charlie, ALICE_WIDE)

    with pytest.raises(RuntimeError) as refused:
        run_normalisation()

    assert f"user {alice.pk} (alice@example.org)" in str(refused.value)
    assert f"user {charlie.pk} ({ALICE_WIDE})" in str(refused.value)
    assert User.objects.get(pk=charlie.pk).email == ALICE_WIDE
