"""A real `celery -A deepmed worker -Q imaging` process trains one tiny image classifier against the test database.

The pattern of tests/test_tabular_training_worker.py: broker folders in tmp, the worker reads the test database
through DATABASE_URL, and it listens on the `imaging` queue only, so the run also proves the task is routed there.
"""

import os
import signal
import subprocess
import sys
import uuid

import pytest
from django.db import connection

from deepmed.celery import app
from imaging import services
from imaging.ml.training import ImageClassifierTrainer
from imaging.tests.conftest import shapes_entries, upload, zip_bytes
from modelhub.artifacts import artifact_verified_path
from modelhub.models import TrainingModel, TrainingRun

from .test_celery_worker import BASE_DIR, STARTUP_SECONDS, broker_folders, database_url, wait_until  # noqa: F401

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

RUN_SECONDS = 120


@pytest.fixture
def imaging_worker(transactional_db, broker_folders, settings, tmp_path):  # noqa: F811 - the imported fixture
    """A worker process on the `imaging` queue. Stopped (killed if it must be) whatever the test's outcome."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MEDIA_ROOT.mkdir()
    hostname = f"test-imaging-{uuid.uuid4().hex[:8]}@localhost"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "deepmed.settings",
        "DATABASE_URL": database_url(connection.settings_dict),
        "VAR_DIR": str(broker_folders),
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "CELERY_BROKER_URL": "filesystem://localhost/",
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "CACHE_URL": "locmemcache://",
        # One BLAS/OpenMP thread: the test machine is shared, and spinning threads slow a 32 px model down.
        "OMP_NUM_THREADS": "1",
    }
    log_path = broker_folders / "worker.log"
    command = [sys.executable, "-m", "celery", "-A", "deepmed", "worker", "--pool=solo", "-Q", "imaging"]
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


def test_a_real_imaging_worker_trains_an_image_classifier_to_succeeded_with_its_model_stored(imaging_worker, alice):
    archive = zip_bytes(shapes_entries(per_class=5, size=24))

    # transaction=True: the run is committed, so on_commit sends the task to the broker at once.
    run = services.image_training_start(
        user=alice, uploaded_file=upload(archive), architecture="resnet18", level=1, image_size=24
    )

    def finished():
        return TrainingRun.objects.get(pk=run.pk).is_terminal

    assert wait_until(finished, seconds=RUN_SECONDS, interval=0.5), f"the run did not finish:\n{imaging_worker.log()}"
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.SUCCEEDED, (run.error, imaging_worker.log())
    assert run.celery_task_id and run.progress == 1.0
    assert "imaging.tasks.train_image_classifier" in imaging_worker.log()
    model = TrainingModel.objects.get(run=run)
    assert model.model_name == "resnet18" and model.metric_name == "accuracy"
    assert 0.0 <= model.metric_value <= 1.0
    trainer = ImageClassifierTrainer.load(artifact_verified_path(model), device="cpu")
    assert list(trainer.class_names_) == ["circle", "square"] and trainer.image_size == 24
