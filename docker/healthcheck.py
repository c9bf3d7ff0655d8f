"""Container health checks for the DeepMed images (Docker HEALTHCHECK, compose, Kubernetes exec probes).

    python docker/healthcheck.py http http://127.0.0.1:8000/healthz   web: the URL answers 200 (Host: the first
                                                                        ALLOWED_HOSTS name, as Django insists)
    python docker/healthcheck.py worker                                 this container's Celery worker answers a ping
    python docker/healthcheck.py beat                                   beat runs and its database answers
    python docker/healthcheck.py database                               every configured database answers (migrate)

The images have no curl (slim, no extra packages), so the checks are Python from the standard library and the app.
Exit status 0 is healthy, 1 unhealthy; one line on stdout says why.
"""

import os
import socket
import sys
import urllib.request
from pathlib import Path


def probe_host() -> str:
    """A name Django accepts: the first ALLOWED_HOSTS entry (a loopback address would get 400 DisallowedHost)."""
    for entry in os.environ.get("ALLOWED_HOSTS", "").split(","):
        name = entry.strip().lstrip(".")
        if name and name != "*":
            return name
    return "localhost"


def check_http(url: str) -> str:
    # The URL is the container's own loopback address, given on the command line by our Dockerfile.
    request = urllib.request.Request(url, headers={"Host": probe_host()})  # noqa: S310
    with urllib.request.urlopen(request, timeout=4) as response:  # noqa: S310
        if response.status != 200:
            raise RuntimeError(f"{url} answered {response.status}")
    return f"{url} answered 200"


def check_worker() -> str:
    """Ping only this container's worker (its node name is CELERY_WORKER_NAME@hostname), not any worker."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from deepmed.celery import app

    node = f"{os.environ.get('CELERY_WORKER_NAME', 'worker')}@{socket.gethostname()}"
    replies = app.control.ping(destination=[node], timeout=float(os.environ.get("HEALTHCHECK_PING_TIMEOUT", "5")))
    if not any(node in reply for reply in replies):
        raise RuntimeError(f"worker {node} did not answer a ping through the broker")
    return f"worker {node} answered"


def check_databases() -> str:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deepmed.settings")
    import django

    django.setup()
    from django.db import connections

    for alias in connections:
        connections[alias].ensure_connection()
    return f"databases answer: {', '.join(connections)}"


def check_beat() -> str:
    """A celery beat process must run in this container, and the database that holds its schedule must answer."""
    commands = []
    # HEALTHCHECK_PROC_DIR only for the tests, which cannot control what else runs on their machine.
    for cmdline in Path(os.environ.get("HEALTHCHECK_PROC_DIR", "/proc")).glob("[0-9]*/cmdline"):
        try:
            commands.append(cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue
    if not any("celery" in command and " beat" in command for command in commands):
        raise RuntimeError("no celery beat process in this container")
    check_databases()
    return "beat is running and its database answers"


def main(argv: list[str]) -> int:
    # The check runs inside a container whose environment may name a Prometheus multiprocess folder: importing the
    # app would leave metric files there under this short-lived pid, one more set per check, never cleaned up.
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    os.environ.pop("prometheus_multiproc_dir", None)
    try:
        if argv[:1] == ["http"] and len(argv) == 2:
            message = check_http(argv[1])
        elif argv == ["worker"]:
            message = check_worker()
        elif argv == ["beat"]:
            message = check_beat()
        elif argv == ["database"]:
            message = check_databases()
        else:
            print(__doc__)
            return 2
    except Exception as exc:  # any failure is "unhealthy", with its reason on one line
        print(f"unhealthy: {exc}")
        return 1
    print(f"healthy: {message}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
