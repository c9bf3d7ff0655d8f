"""A real `celery -A deepmed worker` process runs a task against the test database, and answers the status ping.

Everything else in the suite runs tasks eagerly; this is the one place the broker, the worker and the database
are separate, as in production. The worker gets its own filesystem broker folders and the test database's URL.
"""

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.utils import timezone

from deepmed.celery import app
from modelhub import tasks
from modelhub.models import TrainingRun
from modelhub.tests.factories import RunningTrainingRunFactory

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

BASE_DIR = Path(django_settings.BASE_DIR)
STARTUP_SECONDS = 60
TASK_SECONDS = 30
_SCHEMES = {"postgresql": "postgres", "mysql": "mysql"}


def database_url(settings_dict: dict) -> str:
    """The URL of the database this test process is connected to (the test database, not the configured one)."""
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings_dict['NAME']}"
    credentials = quote(settings_dict["USER"] or "", safe="")
    if settings_dict["PASSWORD"]:
        credentials += ":" + quote(settings_dict["PASSWORD"], safe="")
    host = settings_dict["HOST"] or "127.0.0.1"
    port = f":{settings_dict['PORT']}" if settings_dict["PORT"] else ""
    return f"{_SCHEMES[connection.vendor]}://{credentials}@{host}{port}/{settings_dict['NAME']}"


def wait_until(predicate, *, seconds: float, interval: float = 0.1):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def forget_broker_connections():
    """Celery and kombu cache pools built from the broker settings: drop them so the settings in force are used."""
    if app._pool is not None:
        app._pool.force_close_all()
    app._pool = None
    app.amqp._producer_pool = None
    app.control.mailbox.__dict__.pop("producer_pool", None)


@pytest.fixture
def broker_folders(tmp_path):
    """Point this process's Celery app at folders of its own, shared with the worker only."""
    broker = tmp_path / "broker"
    options = {
        "data_folder_in": str(broker / "out"),
        "data_folder_out": str(broker / "out"),
        "control_folder": str(broker / "control"),
        "processed_folder": str(broker / "processed"),
        "store_processed": False,
        "polling_interval": 0.1,
    }
    for key in ("data_folder_in", "control_folder", "processed_folder"):
        Path(options[key]).mkdir(parents=True, exist_ok=True)
    saved = {key: app.conf[key] for key in ("broker_url", "broker_transport_options")}
    app.conf.broker_url = "filesystem://localhost/"
    app.conf.broker_transport_options = options
    forget_broker_connections()
    yield tmp_path
    for key, value in saved.items():
        app.conf[key] = value
    forget_broker_connections()


@pytest.fixture
def worker(transactional_db, broker_folders, settings):
    """A worker process on the `default` queue. Stopped (killed if it must be) whatever the test's outcome."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    hostname = f"test-{uuid.uuid4().hex[:8]}@localhost"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "deepmed.settings",
        "DATABASE_URL": database_url(connection.settings_dict),
        "VAR_DIR": str(broker_folders),  # the settings put the broker folders under VAR_DIR/broker
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "CELERY_BROKER_URL": "filesystem://localhost/",
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "CACHE_URL": "locmemcache://",
    }
    log_path = broker_folders / "worker.log"
    command = [sys.executable, "-m", "celery", "-A", "deepmed", "worker", "--pool=solo", "-Q", "default"]
    command += ["--without-mingle", "--without-gossip", "--without-heartbeat", "-n", hostname, "-l", "info"]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(  # noqa: S603 - a fixed command line of our own
            command, cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    process.hostname = hostname
    process.log = lambda: log_path.read_text(errors="replace")[-5000:]
    try:
        answered = wait_until(
            lambda: process.poll() is not None or app.control.ping(destination=[hostname], timeout=0.5),
            seconds=STARTUP_SECONDS,
        )
        assert process.poll() is None, f"the worker exited with {process.returncode}:\n{process.log()}"
        assert answered, f"the worker did not answer a ping within {STARTUP_SECONDS} s:\n{process.log()}"
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # warm shutdown: finish the current task, close connections
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)  # its own session, so only the worker and its children
                process.wait(timeout=5)


def test_a_real_worker_runs_a_task_and_answers_the_status_ping(worker, alice, bob, client, settings):
    run = RunningTrainingRunFactory(user=alice, heartbeat_at=timezone.now() - timedelta(days=1))

    tasks.mark_stale_runs.apply_async()

    def run_failed():
        return TrainingRun.objects.get(pk=run.pk).status == TrainingRun.Status.FAILED

    assert wait_until(run_failed, seconds=TASK_SECONDS), f"the task did not run:\n{worker.log()}"
    run.refresh_from_db()
    assert "stopped reporting progress" in run.error
    assert "modelhub.tasks.mark_stale_runs" in worker.log()

    settings.CELERY_WORKER_PING_TIMEOUT = 1.0
    client.force_login(bob)
    body = client.get("/service_status").json()
    assert body["services"]["worker"]["status"] == "ok", body
    assert worker.hostname in body["services"]["worker"]["workers"]
    assert body["services"]["broker"]["status"] == "ok"


def test_service_status_reports_the_worker_down_once_it_stops(worker, client, bob, settings):
    settings.CELERY_WORKER_PING_TIMEOUT = 0.5
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=15)
    client.force_login(bob)

    body = client.get("/service_status").json()

    assert body["services"]["worker"]["status"] == "down"
    assert body["status"] == "degraded"
