"""The client's address behind our proxies (TRUSTED_PROXY_COUNT): one rule for lockouts, rate limits and throttles.

Every request in these tests arrives from 127.0.0.1, as it does behind nginx; only X-Forwarded-For tells clients apart.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.test import RequestFactory

from deepmed.client_ip import client_ip

ROOT = Path(__file__).resolve().parent.parent
PROXY = "127.0.0.1"
CLIENT_A = "198.51.100.7"
CLIENT_B = "198.51.100.8"
WRONG_PASSWORD = "wrong-password-123"
TOKEN_URL = "/api/v1/auth/token/"


def behind_proxies(settings, count: int) -> None:
    """What TRUSTED_PROXY_COUNT=count makes of every consumer (deepmed/settings.py derives them the same way)."""
    settings.TRUSTED_PROXY_COUNT = count
    settings.ALLAUTH_TRUSTED_PROXY_COUNT = count
    settings.REST_FRAMEWORK = {**django_settings.REST_FRAMEWORK, "NUM_PROXIES": count}


def web_login(client, email, password, forwarded_for):
    return client.post(
        "/login", {"login": email, "password": password}, REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=forwarded_for
    )


def obtain_token(api_client, email, password, forwarded_for):
    return api_client.post(
        TOKEN_URL,
        {"email": email, "password": password},
        format="json",
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR=forwarded_for,
    )


# --- the rule -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("proxy_count", "forwarded_for", "expected"),
    [
        (0, None, PROXY),
        (0, CLIENT_A, PROXY),  # no proxy trusted: the header is ignored entirely
        (1, None, PROXY),  # a direct hit on the pod
        (1, "", PROXY),
        (1, CLIENT_A, CLIENT_A),
        (1, f"10.6.6.6, {CLIENT_A}", CLIENT_A),  # the client's own entry on the left is ignored
        (1, f"10.6.6.6,10.6.6.7,{CLIENT_A}", CLIENT_A),
        (2, f"{CLIENT_A}, 10.1.2.3", CLIENT_A),  # a load balancer in front of nginx appended 10.1.2.3
        (2, f"10.6.6.6, {CLIENT_A}, 10.1.2.3", CLIENT_A),
        (2, CLIENT_A, PROXY),  # fewer entries than proxies: the proxy's own address
        (1, "2001:DB8:0:0::1", "2001:db8::1"),
        (1, "not-an-address", PROXY),  # a count too high must not turn garbage into a key of its own
    ],
)
def test_it_picks_the_nth_forwarded_address_from_the_right(settings, proxy_count, forwarded_for, expected):
    settings.TRUSTED_PROXY_COUNT = proxy_count
    headers = {} if forwarded_for is None else {"HTTP_X_FORWARDED_FOR": forwarded_for}
    request = RequestFactory().get("/", REMOTE_ADDR=PROXY, **headers)

    assert client_ip(request) == expected


PROBE = """
import json
from deepmed import settings as s
print(json.dumps({
    "count": s.TRUSTED_PROXY_COUNT,
    "drf": s.REST_FRAMEWORK["NUM_PROXIES"],
    "allauth": s.ALLAUTH_TRUSTED_PROXY_COUNT,
    "axes": s.AXES_CLIENT_IP_CALLABLE,
    "ratelimit": s.RATELIMIT_IP_META_KEY,
}))
"""


def load_settings(tmp_path, **env):
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "VAR_DIR": str(tmp_path / "var"), "DEBUG": "1", **env}
    result = subprocess.run(  # noqa: S603  (our own interpreter and probe)
        [sys.executable, "-c", PROBE], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60, check=False
    )
    return result


@pytest.mark.parametrize(("env", "expected"), [({}, 0), ({"TRUSTED_PROXY_COUNT": "1"}, 1)])
def test_one_setting_drives_every_consumer(tmp_path, env, expected):
    loaded = json.loads(load_settings(tmp_path, **env).stdout.strip().splitlines()[-1])

    assert loaded == {
        "count": expected,
        "drf": expected,
        "allauth": expected,
        "axes": "deepmed.client_ip.client_ip",
        "ratelimit": "deepmed.client_ip.client_ip",
    }


@pytest.mark.parametrize("value", ["-1", "one"])
def test_a_bad_count_stops_the_start_naming_the_variable(tmp_path, value):
    result = load_settings(tmp_path, TRUSTED_PROXY_COUNT=value)

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "TRUSTED_PROXY_COUNT" in result.stderr


# --- django-axes lockout --------------------------------------------------------------------------------------


def test_a_lockout_behind_the_proxy_is_per_real_client(client, settings, alice, password):
    behind_proxies(settings, 1)
    failures = [web_login(client, alice.email, WRONG_PASSWORD, CLIENT_A).status_code for _ in range(5)]

    assert failures == [200, 200, 200, 200, 429]
    assert web_login(client, alice.email, password, CLIENT_A).status_code == 429
    # Writing another address on the left does not get client A out of its lockout.
    assert web_login(client, alice.email, password, f"203.0.113.50, {CLIENT_A}").status_code == 429
    # Another clinician's machine behind the same proxy still logs alice in.
    assert web_login(client, alice.email, password, CLIENT_B).status_code == 302


def test_the_lockout_records_the_real_clients_address(client, settings, alice):
    from axes.models import AccessAttempt

    behind_proxies(settings, 1)
    web_login(client, alice.email, WRONG_PASSWORD, f"203.0.113.50, {CLIENT_A}")

    assert list(AccessAttempt.objects.values_list("ip_address", flat=True)) == [CLIENT_A]


def test_without_trusted_proxies_the_forwarded_header_cannot_split_a_lockout(client, alice, password):
    assert django_settings.TRUSTED_PROXY_COUNT == 0  # the default
    for _ in range(5):
        web_login(client, alice.email, WRONG_PASSWORD, CLIENT_A)

    assert web_login(client, alice.email, password, CLIENT_B).status_code == 429


# --- django-ratelimit and allauth's own limits ----------------------------------------------------------------


def test_the_login_rate_limit_behind_the_proxy_is_per_real_client(client, settings, alice, charlie, password):
    behind_proxies(settings, 1)
    settings.RATE_LIMIT_LOGIN = "2/m"
    for spoofed in ("203.0.113.1", "203.0.113.2"):
        web_login(client, charlie.email, WRONG_PASSWORD, f"{spoofed}, {CLIENT_A}")

    limited = web_login(client, alice.email, password, f"203.0.113.3, {CLIENT_A}")
    assert limited.status_code == 429
    assert "Too many attempts" in limited.content.decode()
    assert web_login(client, alice.email, password, CLIENT_B).status_code == 302


def test_allauths_failed_login_limit_behind_the_proxy_is_per_real_client(client, settings, alice, charlie, password):
    behind_proxies(settings, 1)
    settings.ACCOUNT_RATE_LIMITS = {"login_failed": "3/m/ip"}
    # Three accounts' worth of failures from A (below axes' five per account): allauth's per-address limit trips.
    for spoofed in ("203.0.113.1", "203.0.113.2", "203.0.113.3"):
        web_login(client, charlie.email, WRONG_PASSWORD, f"{spoofed}, {CLIENT_A}")

    refused = web_login(client, alice.email, password, f"203.0.113.4, {CLIENT_A}")
    assert "Too many failed login attempts" in refused.content.decode()
    assert "_auth_user_id" not in client.session
    assert web_login(client, alice.email, password, CLIENT_B).status_code == 302


# --- DRF throttles --------------------------------------------------------------------------------------------


def token_rate(settings, rate):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "token": rate},
    }


def test_the_token_throttle_cannot_be_dodged_by_varying_a_left_forwarded_entry(api_client, settings, alice, password):
    behind_proxies(settings, 1)
    token_rate(settings, "2/min")
    codes = [
        obtain_token(api_client, alice.email, password, f"203.0.113.{n}, {CLIENT_A}").status_code for n in range(3)
    ]

    assert codes == [200, 200, 429]
    # A different client behind the same proxy has its own allowance.
    assert obtain_token(api_client, alice.email, password, CLIENT_B).status_code == 200


def test_without_trusted_proxies_varying_the_forwarded_header_does_not_dodge_the_token_throttle(
    api_client, settings, alice, password
):
    token_rate(settings, "2/min")
    codes = [obtain_token(api_client, alice.email, password, f"203.0.113.{n}").status_code for n in range(3)]

    assert codes == [200, 200, 429]


# --- /metrics stays on REMOTE_ADDR ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_forwarded_address_never_opens_metrics_even_behind_trusted_proxies(client, settings):
    behind_proxies(settings, 1)
    settings.METRICS_ALLOWED_IPS = ["10.20.0.0/16"]

    assert client.get("/metrics", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="10.20.3.4").status_code == 404
    assert client.get("/metrics", REMOTE_ADDR="10.20.3.4", HTTP_X_FORWARDED_FOR=CLIENT_A).status_code == 200


def test_the_audit_log_records_the_real_clients_address(api_client, settings, alice, password):
    from accounts.models import AuditEvent

    behind_proxies(settings, 1)
    assert obtain_token(api_client, alice.email, password, f"203.0.113.50, {CLIENT_A}").status_code == 200

    event = AuditEvent.objects.filter(actor=alice).latest("pk")
    assert event.ip_address == CLIENT_A
