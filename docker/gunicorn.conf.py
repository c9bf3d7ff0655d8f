"""gunicorn settings for DeepMed's web process: the Docker image and `make test-prod` both start gunicorn with it.

    gunicorn -c docker/gunicorn.conf.py deepmed.wsgi

Everything that differs between deployments comes from the environment:

| Variable | Default | Meaning |
|---|---|---|
| `GUNICORN_BIND` | `0.0.0.0:8000` | Address gunicorn listens on (nginx proxies to it). |
| `WEB_CONCURRENCY` | `3` | Sync worker processes (about 2 per core; each holds one request at a time). |
| `GUNICORN_TIMEOUT` | `120` | Seconds a worker may spend on one request before it is killed and replaced. |
| `GUNICORN_MAX_REQUESTS` | `1000` | Requests before a worker is recycled (jittered): a slow leak stays bounded. |
| `TORCH_NUM_THREADS` | `1` here | torch intra-op threads per worker (`post_fork`; README's settings table). |

Sync workers are enough because nginx sits in front: it reads slow clients' headers and bodies completely before
it passes a request on, so a gunicorn worker is only ever busy with a request that is ready to run.
"""

import os


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise SystemExit(f"{name} must be an integer, got {raw!r}") from exc
    if value < 1:
        raise SystemExit(f"{name} must be at least 1, got {value}")
    return value


bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")  # noqa: S104 - inside a container, behind nginx
workers = _env_int("WEB_CONCURRENCY", 3)
worker_class = "sync"
timeout = _env_int("GUNICORN_TIMEOUT", 120)
# On SIGTERM a worker finishes its request within this time (a rolling update waits for it).
graceful_timeout = 30
# Sync workers close the connection after each response (keep-alive is nginx's job towards clients).
max_requests = _env_int("GUNICORN_MAX_REQUESTS", 1000)
max_requests_jitter = max(1, max_requests // 10)
# Heartbeat files on tmpfs: on an overlay or network disk a slow fsync can make the arbiter kill healthy workers.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108 - gunicorn's documented advice
# Django's own access log (deepmed.middleware.RequestIdMiddleware) has the request id and user id: no second one.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# Behind nginx only: the proxy is the one that says which scheme the client used (Django reads X-Forwarded-Proto).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
proc_name = "deepmed-web"


def post_fork(server, worker):
    """One torch thread per worker unless TORCH_NUM_THREADS says otherwise: the workers share the cores, and more
    threads than cores only make every request slower (deepmed/torch_threads.py)."""
    from deepmed.torch_threads import apply_torch_threads

    try:
        apply_torch_threads(default=1)
    except ValueError as exc:
        raise SystemExit(str(exc)) from exc


def child_exit(server, worker):
    """Tell the Prometheus multiprocess collector that this worker is gone, so its gauges stop counting."""
    try:
        from deepmed.metrics import mark_process_dead
    except ImportError:
        return
    mark_process_dead(worker.pid)
