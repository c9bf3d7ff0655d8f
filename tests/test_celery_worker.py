"""A real `celery -A deepmed worker` process runs a task against the test database, and answers the status ping.

Everything else in the suite runs tasks eagerly; this is the one place the broker, the worker and the database
are separate, as in production. The worker gets its own filesystem broker folders and the test database's URL.
"""

import signal
from datetime import timedelta

import pytest
from django.utils import timezone

from modelhub import tasks
from modelhub.models import TrainingRun
from modelhub.tests.factories import RunningTrainingRunFactory

from .celery_harness import running_worker, wait_until

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

TASK_SECONDS = 60


@pytest.fixture
def worker(transactional_db, broker_folders, settings):
    """A worker process on the `default` queue. Stopped (killed if it must be) whatever the test's outcome."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    with running_worker(queue="default", var_dir=broker_folders, media_root=settings.MEDIA_ROOT) as process:
        yield process


def test_a_real_worker_runs_a_task_and_answers_the_status_ping(
    worker, alice, bob, client, settings, second_factor_login
):
    run = RunningTrainingRunFactory(user=alice, heartbeat_at=timezone.now() - timedelta(days=1))

    tasks.mark_stale_runs.apply_async()

    def run_failed():
        return TrainingRun.objects.get(pk=run.pk).status == TrainingRun.Status.FAILED

    assert wait_until(run_failed, seconds=TASK_SECONDS), f"the task did not run:\n{worker.log()}"
    run.refresh_from_db()
    assert "stopped reporting progress" in run.error
    assert "modelhub.tasks.mark_stale_runs" in worker.log()

    # Generous: on a loaded 2-core CI machine a busy worker can take over a second to answer.
    settings.CELERY_WORKER_PING_TIMEOUT = 3.0
    second_factor_login(client, bob)
    body = client.get("/service_status").json()
    assert body["services"]["worker"]["status"] == "ok", body
    assert worker.hostname in body["services"]["worker"]["workers"]
    assert body["services"]["broker"]["status"] == "ok"


def test_service_status_reports_the_worker_down_once_it_stops(worker, client, bob, settings, second_factor_login):
    settings.CELERY_WORKER_PING_TIMEOUT = 0.5
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=15)
    second_factor_login(client, bob)

    body = client.get("/service_status").json()

    assert body["services"]["worker"]["status"] == "down"
    assert body["status"] == "degraded"
