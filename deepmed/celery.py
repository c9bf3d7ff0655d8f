"""The Celery application. Queues: default, tabular, imaging (GPU workers listen here), chatbot."""

import os

from celery import Celery, signals
from celery.schedules import crontab
from django.conf import settings
from kombu import Exchange, Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deepmed.settings")

app = Celery("deepmed")
app.config_from_object("django.conf:settings", namespace="CELERY")
QUEUES = ("default", "tabular", "imaging", "chatbot")
# Explicit exchange and routing key per queue, so the bindings a worker prints (and a broker shows) are the ones
# used: one queue per kind of work, and GPU workers can listen on `imaging` alone.
app.conf.task_queues = [Queue(name, Exchange(name, type="direct"), routing_key=name) for name in QUEUES]
app.conf.task_default_exchange = "default"
app.conf.task_default_routing_key = "default"
app.conf.task_routes = {
    "tabular.tasks.*": {"queue": "tabular"},
    "imaging.tasks.*": {"queue": "imaging"},
    "chatbot.tasks.*": {"queue": "chatbot"},
}
# django_celery_beat's DatabaseScheduler copies these into its tables at start; the admin can then adjust them.
app.conf.beat_schedule = {
    "modelhub-retention-sweep": {
        "task": "modelhub.tasks.retention_sweep",
        "schedule": crontab(hour=3, minute=15),
        "options": {"queue": "default"},
    },
    # STALE_RUN_SWEEP_SECONDS (default 600): `make test-prod` sweeps every few seconds to fail a killed worker's run.
    "modelhub-mark-stale-runs": {
        "task": "modelhub.tasks.mark_stale_runs",
        "schedule": float(settings.STALE_RUN_SWEEP_SECONDS),
        "options": {"queue": "default", "expires": settings.STALE_RUN_SWEEP_SECONDS},
    },
}
app.autodiscover_tasks()

# Their Celery signal receivers: task timings and failures (metrics), JSON logs with task and request ids (logging).
from . import logging as _logging  # noqa: E402, F401
from . import metrics as _metrics  # noqa: E402, F401
from .torch_threads import apply_torch_threads, share_of_cores  # noqa: E402

_pool_processes: int | None = None


@signals.worker_init.connect
def remember_pool_size(sender, **kwargs):
    """The pool size, read in the main worker process before it forks the pool (the children inherit it)."""
    global _pool_processes
    _pool_processes = sender.concurrency if isinstance(sender.concurrency, int) else None


@signals.worker_process_init.connect
def limit_torch_threads(**kwargs):
    """Each pool process gets TORCH_NUM_THREADS torch threads, else its share of the cores, so that the pool's
    processes do not oversubscribe them (deepmed/torch_threads.py)."""
    apply_torch_threads(default=share_of_cores(_pool_processes) if _pool_processes else None)


@app.on_after_configure.connect
def ensure_broker_folders(sender, **kwargs):
    """The filesystem transport needs its folders to exist before the first message."""
    options = sender.conf.broker_transport_options or {}
    for key in ("data_folder_in", "data_folder_out", "control_folder", "processed_folder"):
        if options.get(key):
            os.makedirs(options[key], exist_ok=True)


@signals.worker_init.connect
@signals.beat_init.connect
def refuse_without_mail(**kwargs):
    """Workers send the account e-mails: production without a mail backend must not start them (deepmed/mail.py)."""
    from .mail import refuse_unconfigured_mail

    refuse_unconfigured_mail()
