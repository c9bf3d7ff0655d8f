"""Prometheus /metrics: who may read it, and that our metrics measure what they claim to."""

import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from chatbot import services as chat_services
from deepmed.celery import app
from deepmed.metrics import QueueLengthCollector
from modelhub import tasks as modelhub_tasks
from modelhub.models import TrainingRun
from modelhub.tests.factories import TrainingRunFactory
from tabular import tasks as tabular_tasks

ROOT = Path(__file__).resolve().parent.parent
OUR_METRICS = (
    "deepmed_celery_task_duration_seconds",
    "deepmed_celery_task_failures_total",
    "deepmed_queue_length",
    "deepmed_training_runs",
    "deepmed_chat_response_seconds",
)


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """Every sample of an exposition page, keyed by (name, sorted labels)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(client) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200, response.status_code
    assert response["Content-Type"].startswith("text/plain")
    return response.content.decode()


def task_count(task: str, queue: str, state: str) -> float:
    labels = {"task": task, "queue": queue, "state": state}
    return REGISTRY.get_sample_value("deepmed_celery_task_duration_seconds_count", labels) or 0.0


def failure_count(task: str, queue: str) -> float:
    return REGISTRY.get_sample_value("deepmed_celery_task_failures_total", {"task": task, "queue": queue}) or 0.0


# --- access ------------------------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_anonymous_clients_get_the_same_404_as_an_unknown_page(client):
    unknown = client.get("/no-such-page")
    response = client.get("/metrics")

    assert response.status_code == 404
    assert response["Content-Type"] == unknown["Content-Type"]
    assert b"deepmed_" not in response.content and b"django_http" not in response.content


def test_signed_in_users_who_are_not_staff_get_404(client, charlie):
    client.force_login(charlie)

    assert client.get("/metrics").status_code == 404


def test_staff_read_request_metrics_and_every_deepmed_metric(client, bob, second_factor_login):
    second_factor_login(client, bob)
    client.get("/privacy")  # a routed view, so django-prometheus has a labelled sample for it

    text = scrape(client)

    assert "django_http_requests_latency_seconds_by_view_method_bucket" in text
    assert "django_http_responses_total_by_status_view_method_total" in text
    parsed = samples(text)
    assert any(
        name == "django_http_responses_total_by_status_view_method_total"
        and dict(labels).get("view") == "privacy"
        and dict(labels).get("status") == "200"
        for name, labels in parsed
    ), "no sample for the /privacy request"
    for name in OUR_METRICS:
        assert f"# TYPE {name}" in text, name


@pytest.mark.django_db
def test_an_allow_listed_scraper_reads_metrics_without_a_login(client, settings):
    settings.METRICS_ALLOWED_IPS = ["10.20.0.0/16", "192.0.2.7"]

    assert client.get("/metrics", REMOTE_ADDR="10.20.3.4").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.7").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.8").status_code == 404


@pytest.mark.django_db
def test_a_scraper_reaching_the_pod_by_its_ip_is_answered_although_that_host_is_not_allowed(client, settings):
    """Prometheus sends Host: <pod ip>:8000, which is in no ALLOWED_HOSTS."""
    settings.METRICS_ALLOWED_IPS = ["10.20.0.0/16"]

    scraped = client.get("/metrics", REMOTE_ADDR="10.20.3.4", HTTP_HOST="10.20.3.4:8000")
    outsider = client.get("/metrics", REMOTE_ADDR="192.0.2.8", HTTP_HOST="10.20.3.4:8000")
    other_page = client.get("/privacy", REMOTE_ADDR="10.20.3.4", HTTP_HOST="10.20.3.4:8000")

    assert scraped.status_code == 200
    assert b"deepmed_training_runs" in scraped.content
    assert outsider.status_code == 400  # Django's disallowed-host answer: nothing about metrics
    assert other_page.status_code == 400  # the exception is this path only


@pytest.mark.django_db
def test_a_forwarded_for_header_does_not_get_a_client_onto_the_allow_list(client, settings):
    settings.METRICS_ALLOWED_IPS = ["10.20.0.0/16"]

    response = client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="10.20.3.4")

    assert response.status_code == 404


def test_metrics_is_served_over_plain_http_to_the_scraper_with_the_https_redirect_on(
    client, bob, settings, second_factor_login
):
    settings.SECURE_SSL_REDIRECT = True
    second_factor_login(client, bob)

    assert client.get("/metrics").status_code == 200
    assert client.get("/privacy").status_code == 301


# --- training runs -----------------------------------------------------------------------------------------------
def test_training_runs_are_counted_by_kind_and_status_at_scrape_time(client, alice, bob, second_factor_login):
    second_factor_login(client, bob)
    TrainingRunFactory.create_batch(2, user=alice)
    TrainingRunFactory(user=alice, kind=TrainingRun.Kind.IMAGE, status=TrainingRun.Status.FAILED)

    parsed = samples(scrape(client))

    def runs(kind, status):
        return parsed[("deepmed_training_runs", (("kind", kind), ("status", status)))]

    assert runs("tabular", "queued") == 2
    assert runs("image", "failed") == 1
    assert runs("anomaly", "succeeded") == 0  # every pair is present, zero included

    TrainingRun.objects.filter(kind="tabular").update(status=TrainingRun.Status.RUNNING)
    parsed = samples(scrape(client))
    assert runs("tabular", "queued") == 0
    assert runs("tabular", "running") == 2


# --- Celery tasks ----------------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_a_task_run_eagerly_records_its_duration_as_succeeded_on_its_queue():
    before = task_count("modelhub.tasks.mark_stale_runs", "default", "succeeded")

    result = modelhub_tasks.mark_stale_runs.apply()

    assert result.successful()
    assert task_count("modelhub.tasks.mark_stale_runs", "default", "succeeded") == before + 1
    histogram_sum = REGISTRY.get_sample_value(
        "deepmed_celery_task_duration_seconds_sum",
        {"task": "modelhub.tasks.mark_stale_runs", "queue": "default", "state": "succeeded"},
    )
    assert histogram_sum > 0


@pytest.mark.django_db
def test_a_failing_task_counts_a_failure_and_a_failed_duration(client, bob, second_factor_login):
    name = "tabular.tasks.train_tabular_run"
    before_failures = failure_count(name, "tabular")
    before_failed = task_count(name, "tabular", "failed")

    result = tabular_tasks.train_tabular_run.apply(args=["not-a-run-id"], throw=False)

    assert result.failed()
    assert failure_count(name, "tabular") == before_failures + 1
    assert task_count(name, "tabular", "failed") == before_failed + 1
    second_factor_login(client, bob)
    parsed = samples(scrape(client))
    key = ("deepmed_celery_task_failures_total", (("queue", "tabular"), ("task", name)))
    assert parsed[key] == before_failures + 1


@pytest.mark.django_db
def test_an_eager_failure_that_propagates_to_the_caller_is_counted_too():
    """With task_eager_propagates Celery sends no task_failure signal: the post-run state tells us instead."""
    name = "tabular.tasks.train_tabular_run"
    before = failure_count(name, "tabular")

    with pytest.raises(ValueError):
        tabular_tasks.train_tabular_run.delay("not-a-run-id")

    assert failure_count(name, "tabular") == before + 1


# --- queue lengths ---------------------------------------------------------------------------------------------
def queue_lengths(text: str) -> dict[str, float]:
    return {
        dict(labels)["queue"]: value
        for (name, labels), value in samples(text).items()
        if name == "deepmed_queue_length"
    }


@pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored")  # send_task only publishes
def test_queue_lengths_count_the_messages_waiting_in_the_filesystem_broker(
    client, bob, broker_folders, second_factor_login
):
    second_factor_login(client, bob)
    app.send_task("modelhub.tasks.mark_stale_runs")
    app.send_task("modelhub.tasks.retention_sweep")
    app.send_task("tabular.tasks.train_tabular_run", args=[1])

    lengths = queue_lengths(scrape(client))

    assert lengths == {"default": 2, "tabular": 1, "imaging": 0, "chatbot": 0}


def test_an_unreachable_broker_leaves_out_the_queue_lengths_and_logs_a_warning(
    client, bob, caplog, second_factor_login
):
    second_factor_login(client, bob)
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    saved = app.conf.broker_url
    app.conf.broker_url = f"redis://127.0.0.1:{port}/0"
    try:
        with caplog.at_level(logging.WARNING, logger="deepmed.metrics"):
            started = time.monotonic()
            text = scrape(client)
    finally:
        app.conf.broker_url = saved

    assert time.monotonic() - started < 5
    assert queue_lengths(text) == {}
    assert "deepmed_training_runs{" in text  # the rest of the scrape is intact
    assert any("cannot read the broker" in record.getMessage() for record in caplog.records)


@pytest.fixture
def redis_url(tmp_path):
    """A throwaway redis-server on a free port (skipped where the Debian package is not installed)."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(  # noqa: S603 - a fixed command line of our own
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", tmp_path],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        import redis

        client = redis.Redis(port=port, socket_timeout=1)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored")
def test_queue_lengths_count_the_messages_waiting_in_redis_including_priorities(redis_url):
    from .celery_harness import forget_broker_connections

    saved = {key: app.conf[key] for key in ("broker_url", "broker_transport_options")}
    app.conf.broker_url = redis_url
    app.conf.broker_transport_options = {}
    forget_broker_connections()
    try:
        app.send_task("modelhub.tasks.mark_stale_runs")
        app.send_task("modelhub.tasks.mark_stale_runs", priority=6)  # kombu keeps it in a second list
        app.send_task("imaging.tasks.train_image_classifier", args=[1])
        (family,) = QueueLengthCollector(app).collect()
    finally:
        for key, value in saved.items():
            app.conf[key] = value
        forget_broker_connections()

    lengths = {sample.labels["queue"]: sample.value for sample in family.samples}
    assert lengths == {"default": 2, "tabular": 0, "imaging": 1, "chatbot": 0}


# --- chatbot ------------------------------------------------------------------------------------------------------
def test_a_chat_answer_is_timed_under_the_backend_that_gave_it(alice):
    before = REGISTRY.get_sample_value("deepmed_chat_response_seconds_count", {"backend": "safety"}) or 0.0
    conversation = chat_services.conversation_start(user=alice)

    message = chat_services.message_send(
        user=alice, conversation=conversation, text="What dose of insulin should I give my patient?"
    )

    assert message.refused and message.backend == "safety"
    assert REGISTRY.get_sample_value("deepmed_chat_response_seconds_count", {"backend": "safety"}) == before + 1


# --- several processes ------------------------------------------------------------------------------------------
RECORD_IN_CHILD = """
import os, sys
import deepmed.metrics as metrics
metrics.CELERY_TASK_DURATION.labels(task="t", queue="imaging", state="succeeded").observe(2.0)
metrics.CELERY_TASK_FAILURES.labels(task="t", queue="imaging").inc()
metrics.mark_process_dead(os.getpid())
"""
SCRAPE_IN_PARENT = """
from prometheus_client import generate_latest
import deepmed.metrics as metrics
print(generate_latest(metrics.metrics_registry(include_database=False)).decode())
"""


def test_with_a_multiprocess_dir_one_scrape_adds_up_every_process(tmp_path):
    """gunicorn workers and Celery pool children each write their own files; the scrape sums them."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DJANGO_SETTINGS_MODULE": "deepmed.test_settings",
        "VAR_DIR": str(tmp_path / "var"),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"),
    }
    (tmp_path / "prom").mkdir()

    def python(code: str) -> str:
        result = subprocess.run(  # noqa: S603 - our own interpreter and code
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    python(RECORD_IN_CHILD)
    python(RECORD_IN_CHILD)
    parsed = samples(python(SCRAPE_IN_PARENT))

    labels = (("queue", "imaging"), ("state", "succeeded"), ("task", "t"))
    assert parsed[("deepmed_celery_task_duration_seconds_count", labels)] == 2
    assert parsed[("deepmed_celery_task_duration_seconds_sum", labels)] == 4.0
    assert parsed[("deepmed_celery_task_failures_total", (("queue", "imaging"), ("task", "t")))] == 2
    assert ("deepmed_queue_length", (("queue", "default"),)) in parsed


def test_a_bad_allow_list_entry_stops_the_start_naming_the_variable(tmp_path):
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DEBUG": "1",
        "VAR_DIR": str(tmp_path),
        "METRICS_ALLOWED_IPS": "10.0.0.0/8,prometheus.local",
    }
    result = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", "import deepmed.settings"], cwd=ROOT, env=env, capture_output=True, text=True
    )

    assert result.returncode != 0
    assert "METRICS_ALLOWED_IPS must list IP addresses or CIDRs, got 'prometheus.local'" in result.stderr


def test_every_deepmed_metric_a_dashboard_reads_is_one_we_export():
    dashboards = sorted((ROOT / "docker").rglob("*.json")) if (ROOT / "docker").exists() else []
    used = set()
    for path in dashboards:
        used |= {re.sub(r"_(bucket|count|sum)$", "", name) for name in re.findall(r"deepmed_[a-z_]+", path.read_text())}
    if not used:
        pytest.skip("no Grafana dashboard in docker/ reads deepmed_* metrics yet")

    assert used <= set(OUR_METRICS), used - set(OUR_METRICS)
