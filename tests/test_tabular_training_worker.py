"""A real `celery -A deepmed worker -Q tabular` process trains one tiny tabular run against the test database.

The pattern of tests/test_celery_worker.py (its broker folders and helpers are reused): the broker, the worker and
the database are separate, as in production; here the worker listens on the `tabular` queue only, so the run
also proves the task is routed there.
"""

import pytest

from modelhub.models import PreprocessingData, TrainingModel, TrainingRun
from tabular import bundles, training
from tabular.services import dataset_create
from tabular.tests.conftest import upload_file
from tabular.tests.test_training_service import tiny_breast_cancer_csv

from .celery_harness import running_worker, wait_until

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

RUN_SECONDS = 180


@pytest.fixture
def tabular_worker(transactional_db, broker_folders, settings, tmp_path):
    """A worker process on the `tabular` queue. Stopped (killed if it must be) whatever the test's outcome."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MEDIA_ROOT.mkdir()
    with running_worker(queue="tabular", var_dir=broker_folders, media_root=settings.MEDIA_ROOT) as process:
        yield process


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
