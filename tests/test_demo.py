"""`manage.py load_demo`: safe to re-run, prints the same working login, keeps the password file private."""

import io
import stat

import pytest
from allauth.account.models import EmailAddress
from django.core.management import call_command

from accounts.models import User

DEMO_EMAIL = "demo@deepmed.local"


@pytest.fixture
def demo_settings(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    settings.DEMO_USER_EMAIL = DEMO_EMAIL
    return settings


def load_demo() -> str:
    out = io.StringIO()
    call_command("load_demo", stdout=out)
    return out.getvalue()


def stored_password(settings) -> str:
    lines = dict(line.split(": ", 1) for line in (settings.VAR_DIR / "demo-login.txt").read_text().splitlines())
    assert lines["email"] == DEMO_EMAIL
    return lines["password"]


def test_load_demo_creates_a_verified_user_and_prints_its_login(db, demo_settings):
    output = load_demo()

    user = User.objects.get(email=DEMO_EMAIL)
    password = stored_password(demo_settings)
    assert DEMO_EMAIL in output
    assert password in output
    assert user.check_password(password)
    assert not user.is_staff
    address = EmailAddress.objects.get(user=user)
    assert (address.email, address.verified, address.primary) == (DEMO_EMAIL, True, True)


def test_load_demo_twice_keeps_one_user_and_the_same_password(db, demo_settings):
    first = load_demo()
    second = load_demo()

    assert User.objects.filter(email=DEMO_EMAIL).count() == 1
    assert EmailAddress.objects.filter(email=DEMO_EMAIL).count() == 1
    password = stored_password(demo_settings)
    assert password in first
    assert password in second


def test_the_login_file_is_readable_by_its_owner_only(db, demo_settings):
    load_demo()

    mode = stat.S_IMODE((demo_settings.VAR_DIR / "demo-login.txt").stat().st_mode)
    assert mode == 0o600


def test_a_reset_database_gets_the_stored_password_again(db, demo_settings):
    load_demo()
    password = stored_password(demo_settings)
    User.objects.filter(email=DEMO_EMAIL).delete()

    load_demo()

    assert User.objects.get(email=DEMO_EMAIL).check_password(password)


def test_a_lost_login_file_gets_a_new_password_that_works(db, demo_settings):
    load_demo()
    old_password = stored_password(demo_settings)
    (demo_settings.VAR_DIR / "demo-login.txt").unlink()

    output = load_demo()

    new_password = stored_password(demo_settings)
    assert new_password != old_password
    assert new_password in output
    assert User.objects.get(email=DEMO_EMAIL).check_password(new_password)


def test_the_demo_user_can_log_in_on_the_login_page(db, demo_settings, client):
    load_demo()

    response = client.post("/login", {"login": DEMO_EMAIL, "password": stored_password(demo_settings)})

    assert response.status_code == 302
    assert response["Location"] == "/dashboard"
    assert client.get("/dashboard").status_code == 200
