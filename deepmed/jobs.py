"""Sending a job to the broker, and what happens when the broker is away.

A training run is a committed row before its task is sent (the task is sent on commit, so the worker finds it).
When Redis is unreachable at that moment, the row would stay "queued" for ever and the request would end in a
500. `send_job` instead marks the run failed with a message, and raises a 503 the client can retry. Rows that are
not training runs (an augmentation job, a knowledge document) pass `on_refused`, which records the failure their way.
"""

import logging
from collections.abc import Callable

from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rest_framework import status

from .exceptions import ApplicationError

logger = logging.getLogger(__name__)
BROKER_UNAVAILABLE = (BrokerError, RedisConnectionError, RedisTimeoutError)
BROKER_UNAVAILABLE_MESSAGE = (
    "The job queue is temporarily unavailable, so the job was not started. Nothing was lost: "
    "please start it again in a minute. If this keeps happening, ask an administrator to check the "
    "Service status page."
)


class BrokerUnavailable(ApplicationError):
    """The broker did not take the job: a 503 the client can retry."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    code = "service_unavailable"

    def __init__(self, message: str = BROKER_UNAVAILABLE_MESSAGE):
        super().__init__(message, headers={"Retry-After": "30"})


def send_job(task, *, args: list, run=None, on_refused: Callable[[str], None] | None = None, **options):
    """task.apply_async(args); when the broker is unreachable, fail `run` (a TrainingRun, if given), call
    `on_refused(message)` (if given, for any other row) and raise BrokerUnavailable."""
    try:
        return task.apply_async(args=args, **options)
    except BROKER_UNAVAILABLE as exc:
        logger.error("broker unavailable, %s not sent: %s", task.name, exc.__class__.__name__)
        if run is not None:
            from modelhub.models import TrainingRun

            run.finish(
                TrainingRun.Status.FAILED,
                error=BROKER_UNAVAILABLE_MESSAGE,
                message="Failed: the job queue was unavailable.",
            )
        if on_refused is not None:
            on_refused(BROKER_UNAVAILABLE_MESSAGE)
        raise BrokerUnavailable() from exc
