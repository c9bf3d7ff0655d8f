"""The training services: validation before anything is queued, execution storing each model at once, stop, reset."""

import numpy as np
import pandas as pd
import pytest
from django.http import Http404
from sklearn.datasets import load_breast_cancer

from deepmed.exceptions import ApplicationError
from modelhub.models import PreprocessingData, TrainingModel, TrainingRun
from tabular import bundles, training
from tabular.ml import training as ml_training
from tabular.services import cleaning_plan_create

from .conftest import small_csv

pytestmark = pytest.mark.django_db


def tiny_breast_cancer_csv(n_rows: int = 150, seed: int = 3) -> bytes:
    """The breast-cancer data, a stratified-ish random subsample: enough for 3 folds, fast to train."""
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.drop(columns="target").iloc[:, :8]
    frame["diagnosis"] = np.where(data.target == 0, "malignant", "benign")
    return frame.sample(n=n_rows, random_state=seed).to_csv(index=False).encode()


@pytest.fixture
def cancer_dataset(alice, make_dataset):
    return make_dataset(alice, tiny_breast_cancer_csv(), name="wdbc.csv")


def start(user, dataset, **kwargs):
    options = {"target": "diagnosis", "models": ["logistic_regression", "naive_bayes"], "level": 1, "cv_folds": 3}
    options.update(kwargs)
    return training.training_run_start(user=user, dataset=dataset, **options)


def test_start_queues_a_run_with_the_automatic_plan_and_runs_it_eagerly(
    alice, cancer_dataset, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        run = start(alice, cancer_dataset)

    run.refresh_from_db()
    assert run.status == TrainingRun.Status.SUCCEEDED, (run.message, run.error)
    assert run.config["plan"]["target"] == "diagnosis"
    models = list(run.models.all())
    assert sorted(model.model_name for model in models) == ["logistic_regression", "naive_bayes"]
    for model in models:
        assert model.metric_name == "roc_auc"
        assert 0.5 < model.metric_value <= 1.0
        for key in ("roc_auc", "pr_auc", "accuracy", "balanced_accuracy", "sensitivity", "specificity", "brier"):
            assert key in model.metrics
        assert model.metrics["intervals"]["roc_auc"][0] <= model.metric_value
        assert model.sha256 and model.size > 0
        bundle = bundles.model_bundle_load(model)
        assert bundle["format"] == bundles.MODEL_BUNDLE_FORMAT
        assert bundle["dataset"]["sha256"] == cancer_dataset.sha256
        assert bundle["threshold"] == model.metrics["threshold"]
        frame = pd.read_csv(pd.io.common.BytesIO(tiny_breast_cancer_csv()))
        predictions = bundle["pipeline"].predict(frame[bundle["schema"].names].head(5))
        assert set(predictions) <= {"benign", "malignant"}
    preprocessing = PreprocessingData.objects.get(run=run)
    assert preprocessing.cleaner_config == run.config["plan"]
    assert "diagnosis" not in preprocessing.selected_columns
    assert "Done" in run.message and run.progress == 1.0


def test_start_with_an_unknown_model_is_refused_naming_the_field(alice, cancer_dataset):
    with pytest.raises(ApplicationError) as caught:
        start(alice, cancer_dataset, models=["deep_forest"])
    assert caught.value.extra["field"] == "models"
    assert "deep_forest" in caught.value.message
    assert not TrainingRun.objects.exists()


@pytest.mark.parametrize("level", [0, 6])
def test_start_with_a_level_outside_1_to_5_is_refused(alice, cancer_dataset, level):
    with pytest.raises(ApplicationError) as caught:
        start(alice, cancer_dataset, level=level)
    assert caught.value.extra["field"] == "level"


def test_start_with_a_target_that_is_not_a_column_is_refused(alice, cancer_dataset):
    with pytest.raises(ApplicationError) as caught:
        start(alice, cancer_dataset, target="outcome")
    assert caught.value.extra["field"] == "target"


def test_start_with_a_single_class_target_is_refused(alice, make_dataset):
    frame = pd.DataFrame({"age": range(20), "outcome": ["well"] * 20})
    dataset = make_dataset(alice, frame.to_csv(index=False).encode())
    with pytest.raises(ApplicationError) as caught:
        training.training_run_start(user=alice, dataset=dataset, target="outcome")
    assert caught.value.code == "single_class_target"
    assert not TrainingRun.objects.exists()


def test_a_cleaning_plan_of_another_dataset_is_not_found(alice, cancer_dataset, make_dataset):
    other = make_dataset(alice, small_csv())
    plan = cleaning_plan_create(user=alice, dataset=other, target="outcome")
    with pytest.raises(Http404):
        start(alice, cancer_dataset, cleaning_plan=plan)


def test_a_stop_after_the_first_model_keeps_it_and_ends_stopped(
    alice, cancer_dataset, django_capture_on_commit_callbacks, monkeypatch
):
    real = ml_training.train_models
    calls = []

    def train_then_ask_to_stop(*args, **kwargs):
        result = real(*args, **kwargs)
        calls.append(kwargs["models"])
        TrainingRun.objects.filter(kind=TrainingRun.Kind.TABULAR).update(stop_requested=True)
        return result

    monkeypatch.setattr(ml_training, "train_models", train_then_ask_to_stop)
    with django_capture_on_commit_callbacks(execute=True):
        run = start(alice, cancer_dataset)

    run.refresh_from_db()
    assert run.status == TrainingRun.Status.STOPPED
    assert calls == [["logistic_regression"]]
    kept = TrainingModel.objects.get(run=run)
    assert kept.model_name == "logistic_regression"
    assert bundles.model_bundle_load(kept)["pipeline"] is not None
    assert "1 finished model" in run.message


def test_a_failing_model_is_named_and_the_others_are_kept(
    alice, cancer_dataset, django_capture_on_commit_callbacks, monkeypatch
):
    real = ml_training.train_models

    def naive_bayes_breaks(*args, **kwargs):
        if kwargs["models"] == ["naive_bayes"]:
            raise RuntimeError("out of memory")
        return real(*args, **kwargs)

    monkeypatch.setattr(ml_training, "train_models", naive_bayes_breaks)
    with django_capture_on_commit_callbacks(execute=True):
        run = start(alice, cancer_dataset)

    run.refresh_from_db()
    assert run.status == TrainingRun.Status.SUCCEEDED
    assert list(run.models.values_list("model_name", flat=True)) == ["logistic_regression"]
    assert "naive_bayes" in run.error and "out of memory" in run.error
    assert "naive_bayes" in run.message


def test_stop_of_a_queued_run_stops_it_at_once(alice, cancer_dataset):
    run = start(alice, cancer_dataset)  # on_commit never fires in this test transaction: the run stays queued
    training.training_run_stop(run=run)
    assert run.status == TrainingRun.Status.STOPPED


def test_stop_of_a_finished_run_is_refused(alice, cancer_dataset):
    run = start(alice, cancer_dataset)
    run.finish(TrainingRun.Status.SUCCEEDED)
    with pytest.raises(ApplicationError) as caught:
        training.training_run_stop(run=run)
    assert caught.value.status_code == 409


def test_reset_stops_a_stuck_run_and_hides_it_from_the_status_view(alice, cancer_dataset):
    run = start(alice, cancer_dataset)
    run.start()
    reset = training.training_run_reset(user=alice)
    assert reset.pk == run.pk
    assert reset.status == TrainingRun.Status.STOPPED
    assert training.training_run_latest_for_user(user=alice) is None
    assert training.training_run_reset(user=alice) is None


def test_charlie_cannot_get_alices_run(alice, charlie, cancer_dataset):
    run = start(alice, cancer_dataset)
    with pytest.raises(Http404):
        training.training_run_get_for_user(user=charlie, run_id=run.pk)


def test_progress_messages_name_the_model_and_fold_with_elapsed_time_and_an_estimate(
    alice, cancer_dataset, django_capture_on_commit_callbacks, monkeypatch
):
    messages = []
    real = TrainingRun.set_progress

    def record(self, progress, message=None):
        messages.append((progress, message))
        return real(self, progress, message)

    monkeypatch.setattr(TrainingRun, "set_progress", record)
    with django_capture_on_commit_callbacks(execute=True):
        start(alice, cancer_dataset)

    searching = [message for _progress, message in messages if "fold" in message]
    assert searching, messages
    assert any("logistic_regression (1 of 2)" in message and "fold 1/3" in message for message in searching)
    assert all("elapsed" in message and "left" in message for _progress, message in messages)
    fractions = [progress for progress, _message in messages]
    assert fractions == sorted(fractions) and max(fractions) < 1.0
    assert any(progress >= 0.5 for progress in fractions)  # the second model's share is counted after the first


def test_parallel_fits_give_the_same_models_as_serial_ones(
    alice, cancer_dataset, django_capture_on_commit_callbacks, settings
):
    figures = []
    for n_jobs in (1, 2):
        settings.TABULAR_TRAINING_N_JOBS = n_jobs
        with django_capture_on_commit_callbacks(execute=True):
            run = start(alice, cancer_dataset, models=["logistic_regression"])
        run.refresh_from_db()
        assert run.status == TrainingRun.Status.SUCCEEDED, run.error
        model = run.models.get()
        figures.append((model.metric_value, model.metrics["best_params"], model.metrics["threshold"]))
    assert figures[0] == figures[1]
