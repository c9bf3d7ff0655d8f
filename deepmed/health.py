"""Health checks: a registry every app adds its checks to, and the built-in database, broker and worker checks.

An app registers its own check from its AppConfig.ready():

    from deepmed.health import register_check
    register_check("vector_store", check_vector_store)

A check returns a dict with at least {"status": "ok" | "degraded" | "down" | "not_configured"}; anything else it
adds (latency, counts, an error text) is shown to staff only. A check must bound its own waits: the status page
runs them one after another. A check that raises is reported as "down", never as a server error.
"""

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import connection

logger = logging.getLogger(__name__)

OK = "ok"
DEGRADED = "degraded"
DOWN = "down"
NOT_CONFIGURED = "not_configured"
STATUSES = frozenset({OK, DEGRADED, DOWN, NOT_CONFIGURED})

BROKER_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class HealthCheck:
    """One registered check. A critical check that is down makes the platform "down" and /readyz fail."""

    name: str
    func: Callable[[], dict]
    critical: bool = False


_registry: dict[str, HealthCheck] = {}


def register_check(name: str, func: Callable[[], dict], *, critical: bool = False) -> None:
    """Add (or replace, so a reloaded app does not register twice) the check called `name`."""
    _registry[name] = HealthCheck(name=name, func=func, critical=critical)


def registered_checks() -> list[HealthCheck]:
    return list(_registry.values())


def run_check(check: HealthCheck) -> dict:
    """Run one check; whatever goes wrong inside it becomes a "down" result naming the error."""
    started = time.perf_counter()
    try:
        result = check.func()
        if not isinstance(result, dict) or result.get("status") not in STATUSES:
            raise TypeError(f"check {check.name!r} returned {result!r}, not a dict with a known status")
        result = dict(result)
    except Exception as exc:
        logger.warning("health check %s failed: %s: %s", check.name, exc.__class__.__name__, exc)
        result = {"status": DOWN, "error": exc.__class__.__name__, "detail": str(exc)[:300]}
    result.setdefault("duration_ms", round((time.perf_counter() - started) * 1000, 1))
    result["critical"] = check.critical
    return result


def run_checks(*, critical_only: bool = False) -> dict[str, dict]:
    """Run every registered check (or only the critical ones, for /readyz), in registration order."""
    return {check.name: run_check(check) for check in registered_checks() if check.critical or not critical_only}


def overall_status(results: dict[str, dict]) -> str:
    """Down when a critical check is down; degraded when anything else is down or degraded; ok otherwise."""
    if any(result["status"] == DOWN and result.get("critical") for result in results.values()):
        return DOWN
    if any(result["status"] in (DOWN, DEGRADED) for result in results.values()):
        return DEGRADED
    return OK


def public_summary(results: dict[str, dict]) -> dict:
    """What anyone may see: the statuses, without latencies, hostnames or error texts."""
    return {
        "status": overall_status(results),
        "services": {name: {"status": result["status"]} for name, result in results.items()},
    }


# --- built-in checks ----------------------------------------------------------------------------------------------


def check_database() -> dict:
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"status": OK, "vendor": connection.vendor, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


def _celery_app():
    from .celery import app

    return app


def check_broker() -> dict:
    app = _celery_app()
    started = time.perf_counter()
    with app.connection_for_write(connect_timeout=BROKER_TIMEOUT_SECONDS) as conn:
        transport = conn.transport_cls
        if transport == "filesystem":
            # Connecting to the filesystem transport always succeeds; what can fail is a folder that is missing or
            # not writable, so check the folders themselves.
            options = conn.transport_options or {}
            folders = {key: options.get(key) for key in ("data_folder_in", "data_folder_out", "control_folder")}
            unusable = sorted(
                key
                for key, folder in folders.items()
                if not folder or not os.path.isdir(folder) or not os.access(folder, os.W_OK | os.X_OK)
            )
            if unusable:
                return {
                    "status": DOWN,
                    "transport": transport,
                    "detail": "Broker folders missing or not writable: " + ", ".join(unusable),
                }
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=BROKER_TIMEOUT_SECONDS)
    return {"status": OK, "transport": transport, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


def check_worker() -> dict:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return {
            "status": OK,
            "mode": "eager",
            "detail": "Jobs run inside the web process (CELERY_TASK_ALWAYS_EAGER=1); no worker is needed.",
        }
    timeout = settings.CELERY_WORKER_PING_TIMEOUT
    try:
        replies = _celery_app().control.ping(timeout=timeout)
    except ValueError:
        # The filesystem broker can hand over a reply file before it is fully written (a JSON decode error);
        # one more ping tells a live worker from a dead one.
        replies = _celery_app().control.ping(timeout=timeout)
    workers = sorted(hostname for reply in replies for hostname in reply)
    if not workers:
        return {
            "status": DOWN,
            "workers": [],
            "detail": f"No worker answered within {timeout:g} s: training jobs will wait in the queue. "
            "Start one with `celery -A deepmed worker`.",
        }
    return {"status": OK, "workers": workers}


register_check("database", check_database, critical=True)
register_check("broker", check_broker, critical=True)
register_check("worker", check_worker)
