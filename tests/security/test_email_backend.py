"""Issue 11 #10: with DEBUG=0 and no EMAIL_URL, password-reset links went to the logs (Django's console backend).

Production settings now refuse to start without a real way to send mail, naming EMAIL_URL; an operator who wants
mail kept on the machine says so with an explicit EMAIL_BACKEND (console or file). Development (DEBUG=1) keeps
the console backend by default.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONSOLE = "django.core.mail.backends.console.EmailBackend"
FILE = "django.core.mail.backends.filebased.EmailBackend"
SMTP = "django.core.mail.backends.smtp.EmailBackend"

# Reaching the WSGI application is what gunicorn does at start; a password reset through it is the attack.
PROBE = """
import json, sys
try:
    from deepmed.wsgi import application
except Exception as exc:
    print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
    sys.exit(0)
from django.conf import settings
print(json.dumps({"backend": settings.EMAIL_BACKEND, "host": settings.EMAIL_HOST}))
"""


def start(tmp_path, **env):
    """What a process with exactly `env` (plus production basics) makes of the e-mail settings."""
    clean = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "VAR_DIR": str(tmp_path / "var"),
        "DJANGO_SETTINGS_MODULE": "deepmed.settings",
        "SECRET_KEY": "x" * 60,
        "ALLOWED_HOSTS": "deepmed.example.org",
        **env,
    }
    result = subprocess.run(  # noqa: S603  (our own interpreter and probe)
        [sys.executable, "-c", PROBE], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_production_refuses_to_start_without_a_mail_server(tmp_path):
    started = start(tmp_path, DEBUG="0")

    assert started["error"] == "ImproperlyConfigured"
    assert "EMAIL_URL" in started["message"]


def test_production_sends_through_the_mail_server_it_is_given(tmp_path):
    started = start(tmp_path, DEBUG="0", EMAIL_URL="smtp+tls://deepmed:pw@smtp.hospital.example:587")

    assert started == {"backend": SMTP, "host": "smtp.hospital.example"}


@pytest.mark.parametrize("backend", [CONSOLE, FILE])
def test_an_operator_may_keep_mail_on_the_machine_by_saying_so(tmp_path, backend):
    assert start(tmp_path, DEBUG="0", EMAIL_BACKEND=backend)["backend"] == backend


def test_development_prints_mail_to_the_console_by_default(tmp_path):
    assert start(tmp_path, DEBUG="1")["backend"] == CONSOLE


def test_tools_that_only_read_the_urlconf_still_load_production_settings(tmp_path):
    """Route checks and schema exports import the settings without starting anything: they must not be refused,
    while the check every start runs (runserver, migrate, check --deploy) still names EMAIL_URL."""
    clean = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "VAR_DIR": str(tmp_path / "var"),
        "DJANGO_SETTINGS_MODULE": "deepmed.settings",
        "SECRET_KEY": "x" * 60,
        "DEBUG": "0",
    }
    probe = (
        "import django; django.setup(); from django.urls import resolve; print(resolve('/api/v1/me/').url_name); "
        "from django.core import mail; "
        "\ntry:\n    mail.send_mail('reset', 'https://x/reset/key', 'a@b.c', ['d@e.f'])\nexcept Exception as exc:\n"
        "    print(type(exc).__name__)"
    )
    result = subprocess.run(  # noqa: S603  (our own interpreter and probe)
        [sys.executable, "-c", probe], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.split() == ["api-me", "ImproperlyConfigured"]  # resolves; sending mail is still refused
    check = subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120
    )
    assert check.returncode != 0 and "EMAIL_URL" in check.stderr
