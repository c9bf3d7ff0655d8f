"""A real Celery worker process for the tests that need one: its own broker folders, the test database's URL.

Everything else in the suite runs tasks eagerly; these tests keep the broker, the worker and the database
separate, as in production. `running_worker` always stops the process (killing it if it must).
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import kombu.pools
from django.conf import settings as django_settings
from django.db import connection

from deepmed.celery import app

BASE_DIR = Path(django_settings.BASE_DIR)
STARTUP_SECONDS = 60
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
    # kombu keeps its own registry of producer pools per connection; a closed pool left there fails the next send
    # in this process ("Acquire on closed pool"), eager or not.
    kombu.pools.reset()
    app.amqp._producer_pool = None
    app.control.mailbox.__dict__.pop("producer_pool", None)


@contextlib.contextmanager
def celery_conf(**values):
    """Set Celery app settings for a block, then undo exactly that.

    app.conf reads the Django settings live, but a key assigned on it is kept in its `changes` layer and shadows
    the settings from then on: restoring by assignment would pin today's value (eager, say) for every later test in
    the process. So a key that was not overridden before is removed again, not re-assigned.
    """
    missing = object()
    before = {key: app.conf.changes.get(key, missing) for key in values}
    for key, value in values.items():
        app.conf[key] = value
    forget_broker_connections()
    try:
        yield
    finally:
        for key, value in before.items():
            if value is missing:
                app.conf.changes.pop(key, None)
            else:
                app.conf.changes[key] = value
        forget_broker_connections()


@contextlib.contextmanager
def unreachable_broker():
    """Not eager, and the broker a Redis port nobody listens on: what a Redis outage looks like to the web."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with celery_conf(broker_url=f"redis://127.0.0.1:{port}/0", broker_transport_options={}, task_always_eager=False):
        yield


@contextlib.contextmanager
def use_broker_folders(root: Path):
    """Point this process's Celery app at filesystem broker folders under `root`, shared with the worker only."""
    broker = root / "broker"
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
    with celery_conf(broker_url="filesystem://localhost/", broker_transport_options=options):
        yield root


@contextlib.contextmanager
def running_worker(*, queue: str, var_dir: Path, media_root: Path):
    """A `celery -A deepmed worker --pool=solo -Q <queue>` process reading the test database; yields the process."""
    hostname = f"test-{queue}-{uuid.uuid4().hex[:8]}@localhost"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "deepmed.settings",
        "DATABASE_URL": database_url(connection.settings_dict),
        "VAR_DIR": str(var_dir),  # the settings put the broker folders under VAR_DIR/broker
        "MEDIA_ROOT": str(media_root),
        "CELERY_BROKER_URL": "filesystem://localhost/",
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "CACHE_URL": "locmemcache://",
    }
    log_path = var_dir / f"worker-{queue}.log"
    command = [sys.executable, "-m", "celery", "-A", "deepmed", "worker", "--pool=solo", "-Q", queue]
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
