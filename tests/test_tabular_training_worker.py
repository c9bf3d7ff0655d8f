"""A real `celery -A deepmed worker -Q tabular` process trains one tiny tabular run against the test database.

The pattern of tests/test_celery_worker.py (its broker folders and helpers are reused): the broker, the worker and
the database are separate, as in production; here the worker listens on the `tabular` queue only, so the run
also proves the task is routed there.
"""

import os
import signal
import subprocess
import sys
import uuid

import pytest
from django.db import connection

from deepmed.celery import app
from modelhub.models import PreprocessingData, TrainingModel, TrainingRun
from tabular import bundles, training
from tabular.services import dataset_create
from tabular.tests.conftest import upload_file
from tabular.tests.test_training_service import tiny_breast_cancer_csv

from .test_celery_worker import BASE_DIR, STARTUP_SECONDS, broker_folders, database_url, wait_until  # noqa: F401

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

RUN_SECONDS = 180


@pytest.fixture
def tabular_worker(transactional_db, broker_folders, settings, tmp_path):  # noqa: F811 - the imported fixture
    """A worker process on the `tabular` queue. Stopped (killed if it must be) whatever the test's outcome."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MEDIA_ROOT.mkdir()
    hostname = f"test-tabular-{uuid.uuid4().hex[:8]}@localhost"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "deepmed.settings",
        "DATABASE_URL": database_url(connection.settings_dict),
        "VAR_DIR": str(broker_folders),
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "CELERY_BROKER_URL": "filesystem://localhost/",
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "CACHE_URL": "locmemcache://",
    }
    log_path = broker_folders / "worker.log"
    command = [sys.executable, "-m", "celery", "-A", "deepmed", "worker", "--pool=solo", "-Q", "tabular"]
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
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)  # its own session, so only the worker and its children
                process.wait(timeout=5)


def test_a_real_tabular_worker_trains_a_run_to_succeeded_with_models_stored(tabular_worker, alice):
    dataset = dataset_create(user=alice, uploaded_file=upload_file(tiny_breast_cancer_csv(), "wdbc.csv"))

    # transaction=True: the run is committed, so on_commit sends the task to the broker at once.
    run = training.training_run_start(
        user=alice,
        dataset=dataset,
        target="diagnosis",
        models=["naive_bayes", "logistic_regression"],
        level=1,
        cv_folds=3,
    )

    def finished():
        return TrainingRun.objects.get(pk=run.pk).is_terminal

    assert wait_until(finished, seconds=RUN_SECONDS, interval=0.5), f"the run did not finish:\n{tabular_worker.log()}"
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.SUCCEEDED, (run.error, tabular_worker.log())
    assert run.celery_task_id
    assert "tabular.tasks.train_tabular_run" in tabular_worker.log()
    models = TrainingModel.objects.filter(run=run)
    assert sorted(models.values_list("model_name", flat=True)) == ["logistic_regression", "naive_bayes"]
    for model in models:
        assert bundles.model_bundle_load(model)["format"] == bundles.MODEL_BUNDLE_FORMAT
    assert PreprocessingData.objects.filter(run=run).exists()
