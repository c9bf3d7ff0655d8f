"""LOG_FORMAT=json: every line one JSON object with the request and user ids; never a body or a query string.

Covers the web process (session and JWT users), tasks run eagerly inside a request, and a real Celery worker
process started with LOG_FORMAT=json, which also serves its own metrics on CELERY_METRICS_PORT.
"""

import copy
import io
import json
import logging
import logging.config
import socket
import urllib.request
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from deepmed.logging import request_id_var, user_id_var
from modelhub import tasks as modelhub_tasks
from modelhub.tests.factories import RunningTrainingRunFactory

from .celery_harness import running_worker, wait_until

BODY_SENTINEL = "body-sentinel-5d41402abc"
QUERY_SENTINEL = "query-sentinel-7f3a9c2e"


@contextmanager
def json_logs():
    """The project's LOGGING with the console handler writing JSON into a buffer."""
    buffer = io.StringIO()
    config = copy.deepcopy(settings.LOGGING)
    config["handlers"]["console"].update(formatter="json", stream=buffer)
    logging.config.dictConfig(config)
    try:
        yield buffer
    finally:
        logging.config.dictConfig(settings.LOGGING)


def records(output: str) -> list[dict]:
    lines = [line for line in output.splitlines() if line.strip()]
    return [json.loads(line) for line in lines]  # a line that is not JSON fails the test here


def access_records(output: str, path: str) -> list[dict]:
    return [record for record in records(output) if record["logger"] == "deepmed.access" and record["path"] == path]


def test_a_session_users_request_logs_their_id_and_neither_body_nor_query_string(client, alice):
    client.force_login(alice)

    with json_logs() as buffer:
        response = client.post(f"/privacy?patient={QUERY_SENTINEL}", data={"note": BODY_SENTINEL})

    output = buffer.getvalue()
    (access,) = access_records(output, "/privacy")
    assert set(access) >= {"time", "level", "logger", "message", "request_id", "user_id"}
    assert access["user_id"] == str(alice.pk)
    assert access["request_id"] == response["X-Request-ID"]
    assert access["method"] == "POST"
    assert access["status"] == response.status_code
    assert isinstance(access["duration_ms"], float)
    assert BODY_SENTINEL not in output
    assert QUERY_SENTINEL not in output


def test_an_api_user_with_a_bearer_token_is_logged_with_their_id_and_the_password_is_not(api_client, alice, password):
    with json_logs() as buffer:
        tokens = api_client.post("/api/v1/auth/token/", {"email": alice.email, "password": password}, format="json")
        api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens.json()['access']}")
        me = api_client.get("/api/v1/me/")

    assert me.status_code == 200
    output = buffer.getvalue()
    (token_line,) = access_records(output, "/api/v1/auth/token/")
    (me_line,) = access_records(output, "/api/v1/me/")
    assert token_line["user_id"] == "-"  # not signed in while asking for a token
    assert me_line["user_id"] == str(alice.pk)
    assert password not in output
    assert tokens.json()["access"] not in output


def test_anonymous_requests_log_a_dash_for_the_user(client, db):
    with json_logs() as buffer:
        client.get("/privacy")

    (access,) = access_records(buffer.getvalue(), "/privacy")
    assert access["user_id"] == "-"


def test_a_task_run_inside_a_request_logs_with_its_task_id_and_the_requests_ids(alice):
    run = RunningTrainingRunFactory(user=alice, heartbeat_at=timezone.now() - timedelta(days=1))
    request_token = request_id_var.set("req-eager-12345678")
    user_token = user_id_var.set("42")
    try:
        with json_logs() as buffer:
            result = modelhub_tasks.mark_stale_runs.apply()
        after_task = request_id_var.get(), user_id_var.get()
    finally:
        request_id_var.reset(request_token)
        user_id_var.reset(user_token)

    assert result.get() == [run.pk]
    (sweep,) = [record for record in records(buffer.getvalue()) if "showed no progress" in record["message"]]
    assert sweep["task_id"] == result.id
    assert sweep["request_id"] == "req-eager-12345678"
    assert sweep["user_id"] == "42"
    assert after_task == ("req-eager-12345678", "42")  # the task leaves the request's ids as they were


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_logs_json_with_task_and_request_ids_and_serves_its_metrics(
    transactional_db, broker_folders, settings, monkeypatch
):
    """The worker inherits this environment: LOG_FORMAT=json and CELERY_METRICS_PORT as an operator sets them."""
    port = free_port()
    monkeypatch.setenv("LOG_FORMAT", "json")
    monkeypatch.setenv("CELERY_METRICS_PORT", str(port))
    settings.CELERY_TASK_ALWAYS_EAGER = False

    with running_worker(queue="default", var_dir=broker_folders, media_root=settings.MEDIA_ROOT) as worker:
        request_token = request_id_var.set("req-worker-87654321")
        user_token = user_id_var.set("7")
        try:
            task_id = modelhub_tasks.retention_sweep.apply_async().id
        finally:
            request_id_var.reset(request_token)
            user_id_var.reset(user_token)

        def swept():
            return "retention sweep freed" in worker.log()

        assert wait_until(swept, seconds=60), f"the task did not run:\n{worker.log()}"

        def metrics_page() -> str:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:  # noqa: S310
                    return response.read().decode()
            except OSError:
                return ""

        # The duration is recorded just after the task's last log line: wait for it, not for the port alone.
        wait_until(lambda: "deepmed_celery_task_duration_seconds_count{" in metrics_page(), seconds=15)
        page = metrics_page()
    log = (broker_folders / "worker-default.log").read_text()  # the whole log, as tests/celery_harness.py writes it

    assert page, f"no metrics on port {port}:\n{log}"
    counts = {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(page)
        for sample in family.samples
        if sample.name == "deepmed_celery_task_duration_seconds_count"
    }
    labels = (("queue", "default"), ("state", "succeeded"), ("task", "modelhub.tasks.retention_sweep"))
    assert counts.get(labels) == 1, counts

    # Celery's signal handler prints "worker: Warm shutdown (MainProcess)" straight to stdout (logging is not safe
    # in a signal handler); that line is the only one allowed not to be JSON. No banner: LOG_FORMAT=json hides it.
    lines = [line for line in log.splitlines() if line.strip() and not line.endswith("shutdown (MainProcess)")]
    parsed = [json.loads(line) for line in lines]
    (sweep,) = [record for record in parsed if "retention sweep freed" in record["message"]]
    assert sweep["task_id"] == task_id
    assert sweep["request_id"] == "req-worker-87654321"
    assert sweep["user_id"] == "7"
    assert any(record["logger"].startswith("celery") for record in parsed)
