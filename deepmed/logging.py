"""Request ids on every log line, so one request can be followed through web and worker logs.

In the web process RequestIdMiddleware sets the request and user ids. A task published while a request runs
carries both in its message headers; the worker puts them back (with the task id) while the task runs. Celery
workers use the project's LOGGING as they are (LOG_FORMAT=json included) instead of replacing the root logger.
"""

import contextvars
import logging
import logging.config
import threading

from celery import signals

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
user_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("user_id", default="-")
task_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("task_id", default="")

_DEFAULTS = {"request_id": "-", "user_id": "-", "task_id": ""}

REQUEST_ID_HEADER = "deepmed_request_id"
USER_ID_HEADER = "deepmed_user_id"


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        record.user_id = user_id_var.get()
        task_id = task_id_var.get()
        if task_id:
            record.task_id = task_id
        return True


@signals.celeryd_init.connect(dispatch_uid="deepmed.logging.celeryd_init")
@signals.setup_logging.connect(dispatch_uid="deepmed.logging.setup_logging")
def _celery_uses_our_logging(**kwargs):
    """Connecting to setup_logging stops Celery from installing its own root handler (text only, no request ids).

    celeryd_init comes earlier, before the worker's own start-up warnings, so those are log records too.
    """
    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)
    logging.captureWarnings(True)  # as django.setup() does: warnings become log records, JSON ones included


@signals.before_task_publish.connect(dispatch_uid="deepmed.logging.before_task_publish")
def _carry_request_id(headers=None, **kwargs):
    if headers is None:
        return
    request_id = request_id_var.get()
    if request_id != "-":
        headers.setdefault(REQUEST_ID_HEADER, request_id)
        headers.setdefault(USER_ID_HEADER, user_id_var.get())


_task_tokens: dict[str, list] = {}
_task_tokens_lock = threading.Lock()


def _header(request, name: str) -> str | None:
    value = getattr(request, name, None)
    if value is None:
        value = (getattr(request, "headers", None) or {}).get(name)
    return str(value) if value else None


@signals.task_prerun.connect(dispatch_uid="deepmed.logging.task_prerun")
def _task_context_enter(task_id=None, task=None, **kwargs):
    tokens = [(task_id_var, task_id_var.set(task_id or ""))]
    request = getattr(task, "request", None)
    # An eager task runs inside the request that started it and already has its ids.
    for var, header in ((request_id_var, REQUEST_ID_HEADER), (user_id_var, USER_ID_HEADER)):
        value = _header(request, header)
        if value:
            tokens.append((var, var.set(value)))
    with _task_tokens_lock:
        _task_tokens[task_id] = tokens


@signals.task_postrun.connect(dispatch_uid="deepmed.logging.task_postrun")
def _task_context_exit(task_id=None, **kwargs):
    with _task_tokens_lock:
        tokens = _task_tokens.pop(task_id, [])
    for var, token in reversed(tokens):
        try:
            var.reset(token)
        except ValueError:  # set in another context (a thread pool): clear it so the next task starts clean
            var.set(_DEFAULTS[var.name])


@signals.celeryd_after_setup.connect(dispatch_uid="deepmed.logging.celeryd_after_setup")
def _no_banner_in_json_logs(sender=None, instance=None, **kwargs):
    """The worker's start-up banner is multi-line text on stdout: with LOG_FORMAT=json every line must be JSON."""
    from django.conf import settings

    if settings.LOG_FORMAT == "json" and instance is not None:
        instance.quiet = True
