"""Issue 11 #14: X-Forwarded-For is believed only when the request comes from one of our proxies.

With TRUSTED_PROXY_COUNT=1 every request that reaches gunicorn is assumed to have passed nginx. Inside the cluster
(or on the compose network) anything can reach gunicorn directly and write its own X-Forwarded-For: each request
then names a fresh "client", dodging every per-client limit and locking other people out under their address. The
header counts only when REMOTE_ADDR is within TRUSTED_PROXY_IPS.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.test import RequestFactory

from deepmed.client_ip import client_ip

ROOT = Path(__file__).resolve().parents[2]
NGINX = "10.20.0.5"
INSIDER = "10.30.0.9"  # another pod or container that reaches gunicorn without going through nginx
CLIENT_A = "198.51.100.7"
CLIENT_B = "198.51.100.8"
WRONG_PASSWORD = "wrong-password-123"  # noqa: S105


@pytest.fixture
def behind_nginx(settings):
    settings.TRUSTED_PROXY_COUNT = 1
    settings.ALLAUTH_TRUSTED_PROXY_COUNT = 1
    settings.TRUSTED_PROXY_IPS = ["10.20.0.0/24"]
    settings.REST_FRAMEWORK = {**django_settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    return settings


def web_login(client, email, password, *, remote_addr, forwarded_for):
    return client.post(
        "/login", {"login": email, "password": password}, REMOTE_ADDR=remote_addr, HTTP_X_FORWARDED_FOR=forwarded_for
    )


@pytest.mark.parametrize(
    ("remote_addr", "forwarded_for", "expected"),
    [
        (NGINX, CLIENT_A, CLIENT_A),  # through nginx: the address nginx saw
        (INSIDER, CLIENT_A, INSIDER),  # a direct hit: its own header is ignored
        ("2001:db8::1", CLIENT_A, "2001:db8::1"),
        ("not-an-address", CLIENT_A, "not-an-address"),
    ],
)
def test_the_forwarded_header_counts_only_from_a_trusted_proxy(behind_nginx, remote_addr, forwarded_for, expected):
    request = RequestFactory().get("/", REMOTE_ADDR=remote_addr, HTTP_X_FORWARDED_FOR=forwarded_for)

    assert client_ip(request) == expected


def test_a_direct_hit_cannot_split_its_lockout_by_writing_its_own_header(client, behind_nginx, alice, password):
    codes = [
        web_login(client, alice.email, WRONG_PASSWORD, remote_addr=INSIDER, forwarded_for=f"203.0.113.{n}").status_code
        for n in range(5)
    ]

    assert codes == [200, 200, 200, 200, 429]
    # A sixth "client" from the same pod is still the same locked-out address.
    assert web_login(client, alice.email, password, remote_addr=INSIDER, forwarded_for=CLIENT_B).status_code == 429
    # A clinician coming through nginx is unaffected.
    assert web_login(client, alice.email, password, remote_addr=NGINX, forwarded_for=CLIENT_B).status_code == 302


def test_a_direct_hit_cannot_dodge_the_token_throttle(api_client, behind_nginx, alice, password):
    behind_nginx.REST_FRAMEWORK = {
        **behind_nginx.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**behind_nginx.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "token": "2/min"},
    }
    body = {"email": alice.email, "password": password}
    codes = [
        api_client.post(
            "/api/v1/auth/token/", body, format="json", REMOTE_ADDR=INSIDER, HTTP_X_FORWARDED_FOR=f"203.0.113.{n}"
        ).status_code
        for n in range(3)
    ]

    assert codes == [200, 200, 429]


def test_the_audit_log_records_the_direct_peer_not_its_claim(api_client, behind_nginx, alice, password):
    from accounts.models import AuditEvent

    response = api_client.post(
        "/api/v1/auth/token/",
        {"email": alice.email, "password": password},
        format="json",
        REMOTE_ADDR=INSIDER,
        HTTP_X_FORWARDED_FOR=CLIENT_A,
    )

    assert response.status_code == 200
    assert AuditEvent.objects.filter(actor=alice).latest("pk").ip_address == INSIDER


def _load(tmp_path, **env):
    probe = "from deepmed import settings as s; print(s.TRUSTED_PROXY_IPS)"
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "VAR_DIR": str(tmp_path / "var"), "DEBUG": "1", **env}
    return subprocess.run(  # noqa: S603  (our own interpreter and probe)
        [sys.executable, "-c", probe], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60, check=False
    )


def test_trusted_proxies_default_to_this_machine_and_are_read_as_cidrs(tmp_path):
    default = _load(tmp_path)
    listed = _load(tmp_path, TRUSTED_PROXY_IPS="10.20.0.5, 10.42.0.0/16")

    assert default.stdout.strip() == "['127.0.0.1/32', '::1/128']"
    assert listed.stdout.strip() == "['10.20.0.5/32', '10.42.0.0/16']"


def test_a_bad_trusted_proxy_entry_stops_the_start_naming_the_variable(tmp_path):
    result = _load(tmp_path, TRUSTED_PROXY_IPS="10.20.0.0/33")

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "TRUSTED_PROXY_IPS" in result.stderr
