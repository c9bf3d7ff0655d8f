"""Settings come from the environment only; a bad value stops the start with the variable's name.

Each case imports deepmed.settings in a fresh interpreter with exactly the environment given, because the
module reads os.environ once at import time.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Production settings need a mail server (tests/security/test_email_backend.py); these tests are about the rest.
SMTP_URL = "smtp+tls://deepmed:pw@smtp.example.org:587"
PROBE = """
import json, sys
try:
    from deepmed import settings as s
except Exception as exc:
    print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
    sys.exit(0)
default = s.DATABASES["default"]
print(json.dumps({
    "debug": s.DEBUG,
    "secret_key": s.SECRET_KEY,
    "allowed_hosts": s.ALLOWED_HOSTS,
    "retention_days": s.RETENTION_DAYS,
    "engine": default["ENGINE"],
    "name": str(default["NAME"]),
    "host": default.get("HOST"),
    "port": default.get("PORT"),
    "user": default.get("USER"),
    "options": default.get("OPTIONS", {}),
    "test": default.get("TEST", {}),
    "databases": sorted(s.DATABASES),
    "session_cookie_secure": s.SESSION_COOKIE_SECURE,
    "csrf_cookie_secure": s.CSRF_COOKIE_SECURE,
    "ssl_redirect": s.SECURE_SSL_REDIRECT,
    "hsts_seconds": s.SECURE_HSTS_SECONDS,
    "celery_always_eager": s.CELERY_TASK_ALWAYS_EAGER,
    "access_minutes": s.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"].total_seconds() / 60,
}))
"""


def load_settings(tmp_path, **env):
    """deepmed.settings as a fresh process sees it with only `env` set (plus PATH, and VAR_DIR in tmp_path)."""
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "VAR_DIR": str(tmp_path / "var"), **env}
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_it_refuses_to_start_without_secret_key_when_debug_is_off(tmp_path):
    loaded = load_settings(tmp_path, DEBUG="0")

    assert loaded["error"] == "ImproperlyConfigured"
    assert "SECRET_KEY" in loaded["message"]


def test_it_reads_secret_key_from_a_file(tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text("a-key-from-a-docker-secret\n")

    loaded = load_settings(
        tmp_path, DEBUG="0", SECRET_KEY_FILE=str(secret_file), ALLOWED_HOSTS="example.org", EMAIL_URL=SMTP_URL
    )

    assert loaded["secret_key"] == "a-key-from-a-docker-secret"


def test_debug_mode_runs_without_secret_key_on_local_hosts_only(tmp_path):
    loaded = load_settings(tmp_path, DEBUG="1")

    assert loaded["debug"] is True
    assert loaded["secret_key"].startswith("django-insecure")
    assert set(loaded["allowed_hosts"]) <= {"localhost", "127.0.0.1", "[::1]"}


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("RETENTION_DAYS", "fifteen", "RETENTION_DAYS must be an integer"),
        ("RETENTION_DAYS", "0", "RETENTION_DAYS must be at least 1"),
        ("DEBUG", "maybe", "DEBUG must be a boolean"),
        ("JWT_ACCESS_MINUTES", "1.5", "JWT_ACCESS_MINUTES must be an integer"),
        ("LOG_FORMAT", "xml", "LOG_FORMAT must be 'text' or 'json'"),
        ("DATABASE_URL", "notadb://whatever", "DATABASE_URL must start with"),
        ("DATABASE_URL", "postgres://u@h:notaport/db", "DATABASE_URL is not a valid database URL"),
    ],
)
def test_a_bad_value_names_its_variable(tmp_path, name, value, expected):
    env = {"DEBUG": "1", name: value}

    loaded = load_settings(tmp_path, **env)

    assert loaded["error"] == "ImproperlyConfigured"
    assert expected in loaded["message"]


def test_integer_settings_are_read_from_the_environment(tmp_path):
    loaded = load_settings(tmp_path, DEBUG="1", RETENTION_DAYS="30", JWT_ACCESS_MINUTES="5")

    assert loaded["retention_days"] == 30
    assert loaded["access_minutes"] == 5


def test_default_database_is_sqlite_under_var_with_wal_immediate_and_a_busy_timeout(tmp_path):
    loaded = load_settings(tmp_path, DEBUG="1")

    assert loaded["engine"] == "django.db.backends.sqlite3"
    assert loaded["name"] == str(tmp_path / "var" / "deepmed.sqlite3")
    options = loaded["options"]
    assert options["transaction_mode"] == "IMMEDIATE"
    assert options["timeout"] >= 5
    assert "journal_mode=WAL" in options["init_command"]
    assert "busy_timeout" in options["init_command"]


def test_sqlite_pragmas_take_effect_on_a_real_connection(tmp_path):
    """Not just the config: a connection made from it is in WAL mode with a busy timeout."""
    script = (
        "import django, json; django.setup();"
        "from django.db import connection;"
        "c = connection.cursor();"
        "print(json.dumps({'journal': c.execute('PRAGMA journal_mode').fetchone()[0],"
        " 'busy': c.execute('PRAGMA busy_timeout').fetchone()[0]}))"
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DEBUG": "1",
        "VAR_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "deepmed.settings",
    }
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True
    )
    pragmas = json.loads(result.stdout.strip().splitlines()[-1])

    assert pragmas["journal"] == "wal"
    assert pragmas["busy"] >= 5000


def test_mysql_url_is_parsed_with_utf8mb4(tmp_path):
    loaded = load_settings(tmp_path, DEBUG="1", DATABASE_URL="mysql://deepmed:s3cret@db.internal:3307/deepmed")

    assert loaded["engine"] == "django.db.backends.mysql"
    where = (loaded["name"], loaded["host"], loaded["port"], loaded["user"])
    assert where == ("deepmed", "db.internal", 3307, "deepmed")
    assert loaded["options"]["charset"] == "utf8mb4"
    assert "STRICT_TRANS_TABLES" in loaded["options"]["init_command"]
    assert loaded["test"]["CHARSET"] == "utf8mb4"


def test_postgres_url_is_parsed(tmp_path):
    loaded = load_settings(tmp_path, DEBUG="1", DATABASE_URL="postgres://med:pw@pg.internal:5433/deepmed")

    assert loaded["engine"] == "django.db.backends.postgresql"
    assert (loaded["name"], loaded["host"], loaded["port"], loaded["user"]) == ("deepmed", "pg.internal", 5433, "med")


def test_vector_database_url_adds_a_second_database(tmp_path):
    loaded = load_settings(
        tmp_path,
        DEBUG="1",
        DATABASE_URL="mysql://root@127.0.0.1:3306/deepmed",
        VECTOR_DATABASE_URL="postgres://postgres@127.0.0.1:5432/vectors",
    )

    assert loaded["databases"] == ["default", "vectors"]


def test_production_defaults_are_secure(tmp_path):
    loaded = load_settings(
        tmp_path, DEBUG="0", SECRET_KEY="x" * 60, ALLOWED_HOSTS="deepmed.example.org", EMAIL_URL=SMTP_URL
    )

    assert loaded["session_cookie_secure"] is True
    assert loaded["csrf_cookie_secure"] is True
    assert loaded["ssl_redirect"] is True
    assert loaded["hsts_seconds"] >= 31536000
    assert loaded["allowed_hosts"] == ["deepmed.example.org"]
    assert loaded["celery_always_eager"] is False


def test_production_secure_defaults_can_be_turned_off_behind_a_proxy(tmp_path):
    loaded = load_settings(
        tmp_path,
        DEBUG="0",
        SECRET_KEY="x" * 60,
        SECURE_SSL_REDIRECT="0",
        CELERY_TASK_ALWAYS_EAGER="1",
        EMAIL_URL=SMTP_URL,
    )

    assert loaded["ssl_redirect"] is False
    assert loaded["celery_always_eager"] is True


def test_every_variable_the_settings_read_is_in_the_readme_table():
    """The README's table is the operator's reference: a variable added to settings.py must be documented."""
    source = (ROOT / "deepmed" / "settings.py").read_text()
    readers = r"(?:env_bool|env_int|env_secret|env\.str|env\.list|env\.int|env\.bool|env\.float)"
    names = set(re.findall(readers + r'\(\s*"([A-Z][A-Z0-9_]+)"', source))
    table = {
        line.split("|")[1].strip().strip("`")
        for line in (ROOT / "README.md").read_text().splitlines()
        if line.startswith("| `")
    }

    assert len(names) > 40  # the pattern still finds the readers
    assert sorted(names - table) == []
