"""A real `celery -A deepmed worker -Q imaging` process trains one tiny image classifier against the test database.

The pattern of tests/test_tabular_training_worker.py: broker folders in tmp, the worker reads the test database
through DATABASE_URL, and it listens on the `imaging` queue only, so the run also proves the task is routed there.
"""

import pytest

from imaging import services
from imaging.ml.training import ImageClassifierTrainer
from imaging.tests.conftest import shapes_entries, upload, zip_bytes
from modelhub.artifacts import artifact_verified_path
from modelhub.models import TrainingModel, TrainingRun

from .celery_harness import running_worker, wait_until

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

RUN_SECONDS = 120


@pytest.fixture
def imaging_worker(transactional_db, broker_folders, settings, tmp_path):
    """A worker process on the `imaging` queue. Stopped (killed if it must be) whatever the test's outcome."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MEDIA_ROOT.mkdir()
    with running_worker(queue="imaging", var_dir=broker_folders, media_root=settings.MEDIA_ROOT) as process:
        yield process


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
