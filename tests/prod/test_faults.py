"""Fault drills on the production shape: each breaks one part for real and checks that nothing is lost.

1. A Celery worker is SIGKILLed during a training run: beat's stale-run sweep fails the run (never stuck
   "running"), rows and files stay consistent, and after the worker restarts a new run succeeds.
2. Redis stops mid-run: the running task ends cleanly, requests that need the broker get a 503 JSON, and after
   Redis is back new runs work.
3. MariaDB stops, then hangs (SIGSTOP): requests get a 503 JSON or wait, never a 500, and gunicorn recovers by
   itself.
4. Uploads over the limits are refused with a message (Django's own under nginx's limit, nginx's JSON 413 above
   it) and leave no file and no row.
5. A hundred slowloris connections do not starve gunicorn: nginx holds them and times them out.

Why the sweep and not Celery's redelivery for drill 1: the settings use acks_late, but a message unacknowledged by
a dead worker comes back only after Redis's visibility timeout, which must exceed the longest training (hours), and
a half-done run cannot resume anyway. The heartbeat sweep (STALE_RUN_TIMEOUT_MINUTES, here 1; every
STALE_RUN_SWEEP_SECONDS, here 10) fails it within a minute or so; a late redelivery finds the run finished and
does nothing (TrainingRun.start() claims only queued runs).
"""

import re
import socket
import ssl
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from .helpers import assert_storage_consistent, breast_cancer_csv, shapes_zip, wait_for_run

QUICK_RUN = {"target": "diagnosis", "models": ["logistic_regression"], "level": 1, "cv_folds": 3}
# Long enough to be killed in the middle: several models, a wider search, more folds, on all 569 rows.
LONG_RUN = {
    "target": "diagnosis",
    "models": ["random_forest", "svm", "knn", "hist_gradient_boosting", "logistic_regression", "decision_tree"],
    "level": 3,
    "cv_folds": 5,
}
RUN_COUNTS = (
    "import json; from modelhub.models import TrainingRun as R; from tabular.models import Dataset as D; "
    "print(json.dumps({'queued': R.objects.filter(status='queued').count(), "
    "'running': R.objects.filter(status='running').count(), 'runs': R.objects.count(), "
    "'datasets': D.objects.count()}))"
)

LATEST_RUN = (
    "import json; from modelhub.models import TrainingRun as R; "
    "print(json.dumps(R.objects.filter(kind='tabular').order_by('-id').values('id', 'status', 'error').first()))"
)


@pytest.fixture(scope="module")
def dataset_id(api):
    response = api.post(
        f"{api.base_url}/api/v1/datasets/",
        files={"file": ("breast_cancer_full.csv", breast_cancer_csv(rows=569), "text/csv")},
        timeout=60,
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def start_run(api, dataset_id: int, config: dict) -> int:
    response = api.post(f"{api.base_url}/api/v1/training-runs/", json={"dataset": dataset_id, **config}, timeout=60)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def worker_holding(shape, task_name: str, run_id: int) -> str:
    """The worker (worker-a or worker-b) whose log shows it received `task_name` for this run."""
    pattern = re.compile(rf"{re.escape(task_name)}\[[0-9a-f-]+\] received.*?\"args\": \"[\[(]{run_id},?[\])]\"")
    for name in ("worker-a", "worker-b"):
        if pattern.search(shape.services[name].tail(2_000_000)):
            return name
    raise AssertionError(f"no worker log shows {task_name} for run {run_id}")


def assert_json_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["Content-Type"].startswith("application/json"), response.headers["Content-Type"]
    body = response.json()
    assert body["detail"] and body["code"], body
    if code:
        assert body["code"] == code, body
    return body


# ----------------------------------------------------------------------------------------------- 1. worker killed
def test_a_worker_killed_mid_run_leaves_a_failed_run_and_consistent_files(shape, api, dataset_id):
    run_id = start_run(api, dataset_id, LONG_RUN)
    running = wait_for_run(api, run_id, seconds=120, until=lambda run: run["status"] == "running" and run["progress"])
    assert running["status"] == "running", running
    victim = worker_holding(shape, "tabular.tasks.train_tabular_run", run_id)

    shape.kill(victim)  # the worker and its pool process, without any chance to clean up
    shape.start_worker(victim)  # a supervisor (systemd, Kubernetes) starts it again
    shape.wait_workers([victim])

    run = wait_for_run(api, run_id, seconds=shape.stale_run_minutes * 60 + shape.stale_sweep_seconds + 60)
    assert run["status"] == "failed", run
    assert "stopped reporting progress" in run["error"], run["error"]
    # Models finished before the kill are kept with their files; nothing half-written stays behind.
    assert_storage_consistent(shape)
    assert shape.django_json(RUN_COUNTS)["running"] == 0

    after = wait_for_run(api, start_run(api, dataset_id, QUICK_RUN), seconds=180)
    assert after["status"] == "succeeded", after


# ----------------------------------------------------------------------------------------------- 2. Redis restart
def test_redis_restarting_mid_run_ends_the_run_cleanly_and_refuses_new_work_with_503(shape, api, dataset_id):
    image_run = api.post(
        f"{api.base_url}/api/train_model",
        files={"file": ("shapes.zip", shapes_zip(per_class=12, size=32), "application/zip")},
        data={"architecture": "resnet18", "level": "3", "image_size": "32"},
        timeout=60,
    )
    assert image_run.status_code == 202, image_run.text
    image_run_id = image_run.json()["id"]
    wait_for_run(api, image_run_id, seconds=120, statuses=("running", "succeeded", "failed"))
    runs_before = shape.django_json(RUN_COUNTS)["runs"]

    shape.stop_service("redis")
    try:
        refused = api.post(
            f"{api.base_url}/api/v1/training-runs/", json={"dataset": dataset_id, **QUICK_RUN}, timeout=60
        )
        assert_json_error(refused, 503)
        # What needs no broker still works: liveness, reading one's own data.
        assert shape.get("/healthz", timeout=10).status_code == 200
        assert api.get(f"{api.base_url}/api/v1/datasets/{dataset_id}/", timeout=30).status_code == 200
        assert shape.get("/readyz", timeout=30).status_code == 503
        time.sleep(3)
    finally:
        shape.restart_service("redis")

    # The refused request left no run behind that nobody will ever start: it is failed, saying why.
    counts = shape.django_json(RUN_COUNTS)
    assert counts["queued"] == 0, counts
    if counts["runs"] > runs_before:
        refused_run = shape.django_json(LATEST_RUN)
        assert refused_run["status"] == "failed" and "job queue" in refused_run["error"], refused_run

    finished = wait_for_run(api, image_run_id, seconds=240)
    assert finished["status"] in ("succeeded", "failed"), finished
    if finished["status"] == "succeeded":
        assert finished["models"]
    shape.wait_workers(seconds=60)
    after = wait_for_run(api, start_run(api, dataset_id, QUICK_RUN), seconds=180)
    assert after["status"] == "succeeded", after
    assert_storage_consistent(shape)


# ----------------------------------------------------------------------------------------------- 3. database away
def test_the_database_stopping_gives_503_json_and_gunicorn_recovers_by_itself(shape, api, dataset_id):
    gunicorn_pid = shape.services["gunicorn"].pid
    assert api.get(f"{api.base_url}/api/v1/datasets/", timeout=30).status_code == 200

    shape.stop_service("mariadb")
    try:
        for _ in range(4):  # several requests: each of the three gunicorn workers, some with a pooled connection
            started = time.monotonic()
            response = api.get(f"{api.base_url}/api/v1/datasets/", timeout=30)
            assert_json_error(response, 503, "service_unavailable")
            assert response.headers.get("Retry-After")
            assert time.monotonic() - started < 10
        page = shape.get("/login", timeout=30)
        assert page.status_code in (200, 503), page.status_code
        assert shape.get("/readyz", timeout=30).status_code == 503
        assert shape.get("/healthz", timeout=10).status_code == 200
    finally:
        shape.restart_service("mariadb")

    recovered = [api.get(f"{api.base_url}/api/v1/datasets/{dataset_id}/", timeout=30).status_code for _ in range(6)]
    assert recovered == [200] * 6, recovered
    assert shape.services["gunicorn"].pid == gunicorn_pid and shape.services["gunicorn"].alive()


def test_a_hung_database_gives_503_or_a_late_answer_never_a_server_error(shape, api, dataset_id):
    """SIGSTOP: the server keeps its port but answers nothing (a hung host); connect timeouts bound the wait."""
    url = f"{api.base_url}/api/v1/datasets/{dataset_id}/"
    shape.pause("mariadb")
    try:
        with ThreadPoolExecutor(max_workers=6) as pool:
            futures = [pool.submit(api.get, url, timeout=60) for _ in range(6)]
            time.sleep(6)
            shape.resume("mariadb")
            statuses = [future.result().status_code for future in futures]
    finally:
        shape.resume("mariadb")
    assert set(statuses) <= {200, 503}, statuses
    recovered = [api.get(url, timeout=30).status_code for _ in range(6)]
    assert recovered == [200] * 6, recovered


# ----------------------------------------------------------------------------------------------- 4. upload limits
def _media_files(shape) -> set[str]:
    return {str(path.relative_to(shape.media_root)) for path in shape.media_root.rglob("*") if path.is_file()}


def test_uploads_over_the_limits_are_refused_with_a_message_and_leave_nothing(shape, api):
    files_before, counts_before = _media_files(shape), shape.django_json(RUN_COUNTS)
    header = breast_cancer_csv(rows=20)
    row = header.splitlines()[1] + b"\n"

    # Over MAX_UPLOAD_MB (5) but under nginx's limit (9 MB): Django refuses it itself.
    over_django = header + row * ((6 * 1024 * 1024) // len(row))
    response = api.post(
        f"{api.base_url}/api/v1/datasets/", files={"file": ("big.csv", over_django, "text/csv")}, timeout=120
    )
    body = assert_json_error(response, response.status_code)
    assert response.status_code in (400, 413) and "MB" in body["detail"], body

    # Over nginx's limit: refused before gunicorn sees a byte, with a JSON body for the API.
    over_nginx = header + row * ((12 * 1024 * 1024) // len(row))
    response = api.post(
        f"{api.base_url}/api/v1/datasets/", files={"file": ("huge.csv", over_nginx, "text/csv")}, timeout=120
    )
    body = assert_json_error(response, 413, "upload_too_large")
    assert "MB" in body["detail"]
    # And a readable page for the browser form.
    page = shape.session().post(shape.url("/upload"), files={"file": ("huge.csv", over_nginx)}, timeout=120)
    assert page.status_code == 413 and "too large" in page.text

    assert _media_files(shape) == files_before
    assert shape.django_json(RUN_COUNTS) == counts_before
    assert_storage_consistent(shape)


# ----------------------------------------------------------------------------------------------- 5. slowloris
SLOW_CONNECTIONS = 100


def _slow_client(port: int, context: ssl.SSLContext, stop: threading.Event, closed: list, opened: list) -> None:
    """Send a request header one byte a second, never finishing it; note when the server hangs up."""
    try:
        raw = socket.create_connection(("127.0.0.1", port), timeout=30)
        connection = context.wrap_socket(raw, server_hostname="127.0.0.1")
        connection.sendall(b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        opened.append(time.monotonic())
        started = time.monotonic()
        while not stop.is_set():
            connection.sendall(b"X")
            time.sleep(1)
        connection.close()
    except OSError:
        closed.append(time.monotonic() - started if "started" in locals() else -1)


def test_slowloris_connections_do_not_starve_gunicorn(shape, api, dataset_id):
    context = ssl.create_default_context(cafile=str(shape.cert_path))
    stop, closed, opened = threading.Event(), [], []
    threads = [
        threading.Thread(target=_slow_client, args=(shape.ports["nginx"], context, stop, closed, opened), daemon=True)
        for _ in range(SLOW_CONNECTIONS)
    ]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 30
        while len(opened) + len(closed) < SLOW_CONNECTIONS and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(opened) >= SLOW_CONNECTIONS * 0.9, f"only {len(opened)} slow connections opened"

        # Meanwhile, ordinary clients: pages and API calls that go through to gunicorn's three workers.
        latencies = []
        for index in range(30):
            started = time.monotonic()
            if index % 2:
                response = api.get(f"{api.base_url}/api/v1/datasets/{dataset_id}/", timeout=30)
            else:
                response = shape.get("/login", timeout=30)
            latencies.append(time.monotonic() - started)
            assert response.status_code == 200, response.status_code
        p95 = statistics.quantiles(latencies, n=20)[-1]
        assert p95 < 1.0, f"p95 {p95:.2f} s with {SLOW_CONNECTIONS} slow clients: {sorted(latencies)}"

        # nginx's client_header_timeout (10 s) hangs up on them: they hold nothing for long.
        deadline = time.monotonic() + 25
        while len(closed) < len(opened) * 0.9 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert len(closed) >= len(opened) * 0.9, f"{len(closed)} of {len(opened)} slow connections were cut off"
        assert all(seconds < 20 for seconds in closed), sorted(closed)[-5:]
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=5)
