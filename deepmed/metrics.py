"""Prometheus metrics: the /metrics view, Celery task timings, queue lengths, training runs and chat latency.

Request latency and status by route come from django-prometheus (its two middlewares in settings.MIDDLEWARE).
The names below are read by the Grafana dashboard in docker/: rename nothing without changing it too.

Several processes (gunicorn workers, Celery pool children) each keep their own counters. When the standard
`PROMETHEUS_MULTIPROC_DIR` variable is set before the processes start, prometheus_client writes every value to
files in that folder and the scrape adds them up; gunicorn's `child_exit` hook must then call
`mark_process_dead(worker.pid)` (docker/gunicorn.conf.py does).

Nothing here imports models at module level: deepmed/celery.py imports this module before Django is set up.
"""

import ipaddress
import logging
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

from celery import signals
from django.conf import settings
from django.http import Http404, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily

logger = logging.getLogger("deepmed.metrics")

# Training can take hours; a health-check task takes milliseconds.
TASK_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, float("inf"))
# A local generator on a CPU can take a minute; extractive answers take tens of milliseconds.
CHAT_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, float("inf"))
# A scrape must not hang on a broker that is away.
BROKER_SOCKET_TIMEOUT = 1.0

CELERY_TASK_DURATION = Histogram(
    "deepmed_celery_task_duration_seconds",
    "Time a Celery task ran, by task, queue and outcome (succeeded or failed).",
    ["task", "queue", "state"],
    buckets=TASK_BUCKETS,
)
CELERY_TASK_FAILURES = Counter(
    "deepmed_celery_task_failures_total",
    "Celery tasks that ended with an error, by task and queue.",
    ["task", "queue"],
)
CHAT_RESPONSE_SECONDS = Histogram(
    "deepmed_chat_response_seconds",
    "Time to answer one chat message, by the backend that answered (safety = refused, retrieval = nothing found).",
    ["backend"],
    buckets=CHAT_BUCKETS,
)


def multiprocess_dir() -> str:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir") or ""


def mark_process_dead(pid: int) -> None:
    """gunicorn `child_exit` hook: drop the live-gauge files of a worker that exited (its counters stay summed)."""
    if multiprocess_dir():
        multiprocess.mark_process_dead(pid)


def observe_chat_response(*, backend: str, seconds: float) -> None:
    CHAT_RESPONSE_SECONDS.labels(backend=backend or "unknown").observe(seconds)


# --- scrape-time collectors ------------------------------------------------------------------------------------
class _ProcessRegistry:
    """This process's own metrics (single-process mode), wrapped so another registry can include them."""

    def collect(self):
        return REGISTRY.collect()


class QueueLengthCollector:
    """`deepmed_queue_length{queue}`: messages waiting in each Celery queue, read from the broker at scrape time."""

    def __init__(self, app=None):
        self._app = app

    @property
    def app(self):
        if self._app is None:
            from .celery import app

            self._app = app
        return self._app

    def queue_names(self) -> list[str]:
        queues = self.app.conf.task_queues or []
        return [queue.name for queue in queues] or [self.app.conf.task_default_queue]

    def collect(self):
        family = GaugeMetricFamily("deepmed_queue_length", "Messages waiting in a Celery queue.", labels=["queue"])
        broker_url = self.app.conf.broker_url or ""
        scheme = urlsplit(broker_url).scheme
        try:
            if scheme in {"redis", "rediss"}:
                lengths = self._redis_lengths(broker_url)
            elif scheme == "filesystem":
                lengths = self._filesystem_lengths()
            else:
                logger.warning("queue length: broker scheme %r is not supported; no deepmed_queue_length", scheme)
                lengths = {}
        except Exception as exc:  # a scrape must never fail because the broker is away
            logger.warning("queue length: cannot read the broker (%s: %s)", exc.__class__.__name__, exc)
            lengths = {}
        for queue, length in lengths.items():
            family.add_metric([queue], length)
        yield family

    def _redis_lengths(self, broker_url: str) -> dict[str, int]:
        import redis

        options = self.app.conf.broker_transport_options or {}
        prefix = options.get("global_keyprefix", "")
        separator = options.get("sep", "\x06\x16")
        # kombu keeps one list per priority step: `name` for the first, `name<sep><step>` for the others.
        steps = options.get("priority_steps", [0, 3, 6, 9])
        keys = {
            queue: [f"{prefix}{queue}"] + [f"{prefix}{queue}{separator}{step}" for step in steps if step]
            for queue in self.queue_names()
        }
        client = redis.Redis.from_url(
            broker_url, socket_timeout=BROKER_SOCKET_TIMEOUT, socket_connect_timeout=BROKER_SOCKET_TIMEOUT
        )
        try:
            pipeline = client.pipeline(transaction=False)
            for queue_keys in keys.values():
                for key in queue_keys:
                    pipeline.llen(key)
            counts = iter(pipeline.execute())
        finally:
            client.close()
        return {queue: sum(next(counts) for _ in queue_keys) for queue, queue_keys in keys.items()}

    def _filesystem_lengths(self) -> dict[str, int]:
        options = self.app.conf.broker_transport_options or {}
        folder = Path(options.get("data_folder_in") or ".")
        names = [entry.name for entry in os.scandir(folder) if entry.is_file()]
        # kombu's filesystem transport names each message `<time>_<uuid>.<queue>.msg`.
        return {queue: sum(name.endswith(f".{queue}.msg") for name in names) for queue in self.queue_names()}


class TrainingRunsCollector:
    """`deepmed_training_runs{kind,status}`: training runs in the database, one GROUP BY per scrape."""

    def collect(self):
        from django.db.models import Count

        from modelhub.models import TrainingRun

        family = GaugeMetricFamily(
            "deepmed_training_runs", "Training runs in the database by kind and status.", labels=["kind", "status"]
        )
        # Every pair is reported, zero included, so a dashboard shows 0 rather than "no data".
        counts = {(kind, status): 0 for kind in TrainingRun.Kind.values for status in TrainingRun.Status.values}
        try:
            rows = TrainingRun.objects.order_by().values_list("kind", "status").annotate(n=Count("id"))
            for kind, status, n in rows:
                counts[(kind, status)] = n
        except Exception as exc:  # the database being away is reported by /readyz, not by a failed scrape
            logger.warning("training runs: cannot count (%s: %s)", exc.__class__.__name__, exc)
            yield family
            return
        for (kind, status), n in sorted(counts.items()):
            family.add_metric([kind, status], n)
        yield family


def metrics_registry(*, include_database: bool = True) -> CollectorRegistry:
    """What one scrape returns: every process's metrics (multi-process mode) or this one's, plus scrape-time ones."""
    registry = CollectorRegistry()
    if multiprocess_dir():
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ProcessRegistry())
    registry.register(QueueLengthCollector())
    if include_database:
        registry.register(TrainingRunsCollector())
    return registry


# --- the /metrics view ----------------------------------------------------------------------------------------
def _allowed_networks(entries: Iterable[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(entry.strip(), strict=False) for entry in entries if entry.strip()]


def _address_allowed(request) -> bool:
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in network for network in _allowed_networks(settings.METRICS_ALLOWED_IPS))


def client_may_scrape(request) -> bool:
    """Staff with a session that passed the second factor (accounts.permissions), or a client whose REMOTE_ADDR is
    in METRICS_ALLOWED_IPS (IPs or CIDRs).

    REMOTE_ADDR only, never X-Forwarded-For: behind nginx every request comes from the proxy's address, so
    scrapers must reach gunicorn (the pod) directly and nginx must not pass /metrics on from outside.
    """
    from accounts.permissions import request_has_staff_powers

    return request_has_staff_powers(request) or _address_allowed(request)


def metrics_response() -> HttpResponse:
    return HttpResponse(generate_latest(metrics_registry()), content_type=CONTENT_TYPE_LATEST)


class ScraperMiddleware:
    """Answers GET /metrics for an allow-listed scraper before the Host header is checked against ALLOWED_HOSTS.

    Prometheus scrapes each pod by its IP, so the Host it sends (`10.1.2.3:8000`) is in no ALLOWED_HOSTS. Only the
    allow-listed addresses skip the check, and only on this read-only path that builds no URL from the Host.
    Everyone else (staff in a browser) goes through the normal stack to `metrics_view`.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path_info == "/metrics" and request.method == "GET" and _address_allowed(request):
            response = metrics_response()
            response["Cache-Control"] = "no-store"
            return response
        return self.get_response(request)


@never_cache
@require_GET
def metrics_view(request):
    """Prometheus exposition for staff and allow-listed scrapers; a plain 404 for everyone else."""
    if not client_may_scrape(request):
        from accounts.permissions import StaffAccess, second_factor_setup_redirect, staff_access

        if staff_access(request) is StaffAccess.SECOND_FACTOR_MISSING:
            return second_factor_setup_redirect(request)
        raise Http404
    return metrics_response()


# --- Celery signals ---------------------------------------------------------------------------------------------
_task_started: dict[str, float] = {}
_task_started_lock = threading.Lock()


def _task_queue(task) -> str:
    delivery_info = getattr(task.request, "delivery_info", None) or {}
    queue = delivery_info.get("routing_key") or delivery_info.get("queue")
    if queue:
        return queue
    # Eager runs have no delivery: report the queue the router would have sent the task to.
    try:
        return task.app.amqp.router.route({}, task.name)["queue"].name
    except Exception:
        return task.app.conf.task_default_queue or "default"


@signals.task_prerun.connect(dispatch_uid="deepmed.metrics.task_prerun")
def _task_prerun(task_id=None, **kwargs):
    with _task_started_lock:
        _task_started[task_id] = time.perf_counter()


@signals.task_postrun.connect(dispatch_uid="deepmed.metrics.task_postrun")
def _task_postrun(task_id=None, task=None, state=None, **kwargs):
    with _task_started_lock:
        started = _task_started.pop(task_id, None)
    if started is None or task is None:
        return
    # state is None when an eager task's exception propagates to the caller; RETRY, IGNORED and REJECTED end
    # neither well nor badly and are not counted.
    if state == "SUCCESS":
        outcome = "succeeded"
    elif state in {"FAILURE", None}:
        outcome = "failed"
    else:
        return
    queue = _task_queue(task)
    CELERY_TASK_DURATION.labels(task=task.name, queue=queue, state=outcome).observe(time.perf_counter() - started)
    if outcome == "failed":
        CELERY_TASK_FAILURES.labels(task=task.name, queue=queue).inc()


@signals.worker_ready.connect(dispatch_uid="deepmed.metrics.worker_ready")
def _serve_worker_metrics(sender=None, **kwargs):
    """CELERY_METRICS_PORT: this worker serves its own /metrics (Kubernetes scrapes each worker pod)."""
    port = getattr(settings, "CELERY_METRICS_PORT", 0)
    if not port:
        return
    pool = getattr(sender, "pool", None)
    if not multiprocess_dir() and pool is not None and "prefork" in type(pool).__module__:
        logger.warning(
            "CELERY_METRICS_PORT with the prefork pool needs PROMETHEUS_MULTIPROC_DIR: tasks run in child "
            "processes whose metrics this process cannot see otherwise"
        )
    start_http_server(port, registry=metrics_registry(include_database=False))
    logger.info("worker metrics served on port %s", port)


@signals.worker_process_shutdown.connect(dispatch_uid="deepmed.metrics.worker_process_shutdown")
def _pool_child_exit(pid=None, **kwargs):
    mark_process_dead(pid or os.getpid())
