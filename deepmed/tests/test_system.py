"""System endpoints: /service_status, /check_downloads_dir, /healthz, /readyz, and the health-check registry."""

import pytest
from django.db import OperationalError

from deepmed import health
from modelhub.tests.factories import TrainingModelFactory


@pytest.fixture
def registry(monkeypatch):
    """A copy of the registry a test may add to; the real one is restored afterwards."""
    monkeypatch.setattr(health, "_registry", dict(health._registry))
    return health._registry


@pytest.fixture
def celery_conf():
    """Celery settings a test may change; restored afterwards (monkeypatch cannot undo Celery's Settings)."""
    from deepmed.celery import app

    keys = ("broker_url", "broker_transport_options")
    saved = {key: app.conf[key] for key in keys}
    yield app.conf
    for key, value in saved.items():
        app.conf[key] = value


@pytest.fixture
def staff_client(client, bob, second_factor_login):
    """bob signed in with his two-factor code: staff details and pages need it (MFA_REQUIRED_FOR_STAFF)."""
    return second_factor_login(client, bob)


def broken_check():
    raise OperationalError("connection refused by 10.0.0.5")


# --- the registry -----------------------------------------------------------------------------------------------


def test_builtin_checks_are_database_broker_and_worker():
    critical_by_name = {check.name: check.critical for check in health.registered_checks()}
    assert critical_by_name["database"] is True
    assert critical_by_name["broker"] is True
    assert critical_by_name["worker"] is False


def test_a_check_that_raises_reports_down_with_the_error_class(registry):
    health.register_check("vector_store", broken_check)

    result = health.run_checks()["vector_store"]

    assert result["status"] == "down"
    assert result["error"] == "OperationalError"


def test_a_check_returning_nonsense_reports_down(registry):
    health.register_check("generator", lambda: {"status": "splendid"})

    assert health.run_checks()["generator"]["status"] == "down"


def test_registering_twice_replaces_the_check(registry):
    health.register_check("embedding_model", lambda: {"status": "ok"})
    health.register_check("embedding_model", lambda: {"status": "not_configured"})

    assert [check.name for check in health.registered_checks()].count("embedding_model") == 1
    assert health.run_checks()["embedding_model"]["status"] == "not_configured"


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ({"a": ("ok", True), "b": ("not_configured", False)}, "ok"),
        ({"a": ("ok", True), "b": ("down", False)}, "degraded"),
        ({"a": ("degraded", True), "b": ("ok", False)}, "degraded"),
        ({"a": ("down", True), "b": ("ok", False)}, "down"),
    ],
)
def test_overall_status(statuses, expected):
    results = {name: {"status": status, "critical": critical} for name, (status, critical) in statuses.items()}
    assert health.overall_status(results) == expected


@pytest.mark.django_db
def test_database_check_reports_latency():
    result = health.check_database()
    assert result["status"] == "ok" and result["latency_ms"] >= 0


def test_broker_check_is_down_when_the_filesystem_folders_are_missing(celery_conf, tmp_path):
    missing = str(tmp_path / "nowhere")
    celery_conf.broker_transport_options = {
        "data_folder_in": missing,
        "data_folder_out": missing,
        "control_folder": missing,
    }

    result = health.check_broker()

    assert result["status"] == "down"
    assert "not writable" in result["detail"]


def test_broker_check_is_down_when_redis_does_not_answer(celery_conf):
    celery_conf.broker_url = "redis://127.0.0.1:1/0"
    celery_conf.broker_transport_options = {}

    result = health.run_check(health.HealthCheck("broker", health.check_broker, critical=True))

    assert result["status"] == "down"
    assert result["error"] == "OperationalError"


def test_worker_check_reports_eager_mode_without_pinging(settings, monkeypatch):
    from deepmed.celery import app

    settings.CELERY_TASK_ALWAYS_EAGER = True
    monkeypatch.setattr(app.control, "ping", lambda **kwargs: pytest.fail("no ping in eager mode"))

    result = health.check_worker()

    assert (result["status"], result["mode"]) == ("ok", "eager")


def test_worker_check_is_down_when_no_worker_answers(settings, monkeypatch):
    from deepmed.celery import app

    settings.CELERY_TASK_ALWAYS_EAGER = False
    monkeypatch.setattr(app.control, "ping", lambda **kwargs: [])

    result = health.check_worker()

    assert result["status"] == "down"
    assert "celery -A deepmed worker" in result["detail"]


def test_worker_check_lists_the_workers_that_answer(settings, monkeypatch):
    from deepmed.celery import app

    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_WORKER_PING_TIMEOUT = 0.25
    seen = {}

    def ping(timeout):
        seen["timeout"] = timeout
        return [{"celery@b": {"ok": "pong"}}, {"celery@a": {"ok": "pong"}}]

    monkeypatch.setattr(app.control, "ping", ping)

    assert health.check_worker() == {"status": "ok", "workers": ["celery@a", "celery@b"]}
    assert seen["timeout"] == 0.25


# --- /service_status --------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_service_status_shows_anyone_the_statuses_only(client, registry):
    health.register_check("vector_store", broken_check)

    response = client.get("/service_status")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert set(body["services"]) >= {"database", "broker", "worker", "vector_store"}
    assert body["services"]["database"] == {"status": "ok"}
    assert body["services"]["vector_store"] == {"status": "down"}
    assert "10.0.0.5" not in response.content.decode()


@pytest.mark.django_db
def test_service_status_shows_staff_the_details(staff_client, registry):
    health.register_check("vector_store", broken_check)

    body = staff_client.get("/service_status").json()

    assert body["services"]["database"]["latency_ms"] >= 0
    assert body["services"]["worker"]["mode"] == "eager"
    assert body["services"]["vector_store"]["error"] == "OperationalError"
    assert "10.0.0.5" in body["services"]["vector_store"]["detail"]


@pytest.mark.django_db
def test_service_status_accepts_a_bearer_token_for_staff_details(api_client, bob, password):
    from accounts.tests.test_mfa import confirmed_device, enable_mfa, totp_code

    enable_mfa(bob)
    code = totp_code(confirmed_device(bob), steps_ahead=1)
    credentials = {"email": bob.email, "password": password, "otp": code}
    tokens = api_client.post("/api/v1/auth/token/", credentials, format="json").json()

    body = api_client.get("/service_status", HTTP_AUTHORIZATION=f"Bearer {tokens['access']}").json()

    assert "latency_ms" in body["services"]["database"]


@pytest.mark.django_db
def test_service_status_is_down_when_a_critical_check_fails(client, registry):
    health.register_check("database", broken_check, critical=True)

    response = client.get("/service_status")

    assert response.status_code == 200
    assert response.json()["status"] == "down"


@pytest.mark.django_db
def test_service_status_page_is_rendered_for_staff_browsers(staff_client):
    response = staff_client.get("/service_status", HTTP_ACCEPT="text/html,application/xhtml+xml")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert "Service status" in page and "database" in page and "eager" in page


@pytest.mark.django_db
def test_format_json_wins_over_a_browser_accept_header(staff_client):
    response = staff_client.get("/service_status?format=json", HTTP_ACCEPT="text/html")

    assert response["Content-Type"] == "application/json"


@pytest.mark.django_db
def test_service_status_page_refuses_non_staff(client, alice):
    client.force_login(alice)

    response = client.get("/service_status", HTTP_ACCEPT="text/html")

    assert response.status_code == 403


@pytest.mark.django_db
def test_service_status_page_sends_anonymous_browsers_to_login(client):
    response = client.get("/service_status", HTTP_ACCEPT="text/html")

    assert response.status_code == 302
    assert response["Location"].startswith("/login?next=/service_status")


@pytest.mark.django_db
def test_public_status_is_cached_briefly_so_pings_cannot_pile_up(client, registry):
    calls = []
    health.register_check("generator", lambda: calls.append(1) or {"status": "ok"})

    client.get("/service_status")
    client.get("/service_status")

    assert len(calls) == 1


# --- /check_downloads_dir ---------------------------------------------------------------------------------------


@pytest.fixture
def media_root(settings, tmp_path):
    root = tmp_path / "media"
    root.mkdir()
    settings.MEDIA_ROOT = root
    return root


def test_check_downloads_dir_reports_use_orphans_and_missing_to_staff(staff_client, alice, media_root):
    (media_root / str(alice.pk)).mkdir()
    (media_root / str(alice.pk) / "stray.bin").write_bytes(b"1234")
    row = TrainingModelFactory(user=alice, file_name=f"{alice.pk}/models/1/gone.joblib")

    response = staff_client.get("/check_downloads_dir")

    assert response.status_code == 200
    body = response.json()
    assert (body["total_bytes"], body["file_count"]) == (4, 1)
    assert body["orphans"]["files"] == [{"name": f"{alice.pk}/stray.bin", "size": 4}]
    assert body["missing"]["rows"][0]["id"] == row.pk
    assert body["status"] == "degraded"


def test_check_downloads_dir_refuses_non_staff(client, alice, media_root):
    client.force_login(alice)

    response = client.get("/check_downloads_dir")

    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"


@pytest.mark.django_db
def test_check_downloads_dir_refuses_anonymous(client, media_root):
    response = client.get("/check_downloads_dir")

    assert response.status_code in (401, 403)
    assert response.json()["code"] == "not_authenticated"


# --- /healthz and /readyz ---------------------------------------------------------------------------------------


def test_healthz_answers_without_touching_the_database(client):
    # No django_db mark: any query here would raise.
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_is_ready_when_database_and_broker_answer(client):
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}


@pytest.mark.django_db
def test_readyz_is_503_when_a_critical_check_fails(client, registry):
    health.register_check("broker", broken_check, critical=True)

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"]["broker"] == "down"
    assert "10.0.0.5" not in response.content.decode()


@pytest.mark.django_db
def test_readyz_ignores_a_failing_non_critical_check(client, registry):
    health.register_check("generator", broken_check)

    response = client.get("/readyz")

    assert response.status_code == 200
    assert "generator" not in response.json()["checks"]


@pytest.mark.parametrize("path", ["/service_status/", "/healthz/", "/readyz/", "/check_downloads_dir/"])
@pytest.mark.django_db
def test_paths_have_no_trailing_slash(client, path):
    assert client.get(path).status_code == 404
