"""The training API and pages: shapes, refusals naming the field, owner-only access, stop, status and reset."""

import pytest

from modelhub.models import TrainingRun
from tabular.services import cleaning_plan_create

from .conftest import small_csv
from .test_training_service import tiny_breast_cancer_csv

pytestmark = pytest.mark.django_db

METRIC_KEYS = {"roc_auc", "pr_auc", "accuracy", "balanced_accuracy", "sensitivity", "specificity", "precision", "f1"}


@pytest.fixture
def cancer_dataset(alice, make_dataset):
    return make_dataset(alice, tiny_breast_cancer_csv(), name="wdbc.csv")


def body(dataset, **extra):
    data = {"dataset": dataset.pk, "target": "diagnosis", "models": ["logistic_regression", "decision_tree"]}
    data.update({"level": 1, "cv_folds": 3, **extra})
    return data


def test_post_trains_eagerly_and_the_run_shows_ranked_models_with_metrics(
    alice_api, cancer_dataset, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_api.post("/api/v1/training-runs/", body(cancer_dataset), format="json")
    assert response.status_code == 202, response.json()
    created = response.json()
    assert set(created) == {"id", "status"} and created["status"] == "queued"

    run = alice_api.get(f"/api/v1/training-runs/{created['id']}/").json()
    assert run["status"] == "succeeded", run
    assert run["kind"] == "tabular" and run["progress"] == 1.0
    assert {"id", "status", "progress", "message", "error", "models"} <= set(run)
    assert len(run["models"]) == 2
    values = [model["metric_value"] for model in run["models"]]
    assert values == sorted(values, reverse=True)
    for model in run["models"]:
        assert set(model) == {"id", "model_name", "metric_name", "metric_value", "metrics", "intervals", "threshold"}
        assert METRIC_KEYS | {"brier"} <= set(model["metrics"])
        assert len(model["intervals"]["roc_auc"]) == 2
        assert 0.0 < model["threshold"] < 1.0

    status = alice_api.get("/api/status/tabular_classification_training")
    assert status.status_code == 200 and status.json()["id"] == created["id"]


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"models": ["deep_forest"]}, "models"),
        ({"level": 6}, "level"),
        ({"level": 0}, "level"),
        ({"target": "nope"}, "target"),
        ({"imbalance": "oversample"}, "imbalance"),
        ({"group_column": "nope"}, "group_column"),
    ],
)
def test_a_refused_choice_is_a_400_naming_the_field_and_stores_nothing(alice_api, cancer_dataset, extra, field):
    response = alice_api.post("/api/v1/training-runs/", body(cancer_dataset, **extra), format="json")
    assert response.status_code == 400
    assert response.json()["field"] == field
    assert not TrainingRun.objects.exists()


def test_a_single_class_target_is_refused(alice_api, alice, make_dataset):
    dataset = make_dataset(alice, b"age,outcome\n1,x\n2,x\n3,x\n")
    response = alice_api.post("/api/v1/training-runs/", {"dataset": dataset.pk, "target": "outcome"}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "single_class_target"


def test_a_cleaning_plan_of_another_user_is_404(alice_api, cancer_dataset, charlie, make_dataset):
    charlies = make_dataset(charlie, small_csv())
    plan = cleaning_plan_create(user=charlie, dataset=charlies, target="outcome")
    response = alice_api.post("/api/v1/training-runs/", body(cancer_dataset, cleaning_plan=plan.pk), format="json")
    assert response.status_code == 404


def test_a_cleaning_plan_of_another_dataset_is_404(alice_api, alice, cancer_dataset, make_dataset):
    other = make_dataset(alice, small_csv())
    plan = cleaning_plan_create(user=alice, dataset=other, target="outcome")
    response = alice_api.post("/api/v1/training-runs/", body(cancer_dataset, cleaning_plan=plan.pk), format="json")
    assert response.status_code == 404


def test_charlie_gets_404_for_alices_run_everywhere(alice_api, charlie_api, cancer_dataset, client, charlie):
    run_id = alice_api.post("/api/v1/training-runs/", body(cancer_dataset), format="json").json()["id"]
    assert charlie_api.get(f"/api/v1/training-runs/{run_id}/").status_code == 404
    assert charlie_api.post(f"/api/v1/training-runs/{run_id}/stop/").status_code == 404
    assert charlie_api.get("/api/status/tabular_classification_training").status_code == 404
    assert charlie_api.post("/api/stop_classification_training").status_code == 404
    assert charlie_api.post("/api/reset/tabular_classification_training").status_code == 404
    client.force_login(charlie)
    assert client.get(f"/training/runs/{run_id}").status_code == 404
    assert client.get(f"/training/runs/{run_id}/progress").status_code == 404
    assert client.post(f"/training/runs/{run_id}/stop").status_code == 404
    assert TrainingRun.objects.get(pk=run_id).status == TrainingRun.Status.QUEUED
    assert charlie_api.post("/api/v1/training-runs/", body(cancer_dataset), format="json").status_code == 404


def test_charlie_cannot_train_on_alices_dataset(charlie_api, cancer_dataset):
    assert charlie_api.post("/api/v1/training-runs/", body(cancer_dataset), format="json").status_code == 404


def test_stop_endpoints_stop_a_queued_run_and_refuse_a_finished_one(alice_api, cancer_dataset):
    run_id = alice_api.post("/api/v1/training-runs/", body(cancer_dataset), format="json").json()["id"]
    response = alice_api.post(f"/api/v1/training-runs/{run_id}/stop/")
    assert response.status_code == 202 and response.json()["status"] == "stopped"
    assert alice_api.post(f"/api/v1/training-runs/{run_id}/stop/").status_code == 409
    assert alice_api.post("/api/stop_classification_training").status_code == 404

    second = alice_api.post("/api/v1/training-runs/", body(cancer_dataset), format="json").json()["id"]
    response = alice_api.post("/api/stop_classification_training")
    assert response.status_code == 202 and response.json()["id"] == second


def test_reset_hides_the_finished_run_from_the_status_view(alice_api, cancer_dataset):
    assert alice_api.get("/api/status/tabular_classification_training").status_code == 404
    run_id = alice_api.post("/api/v1/training-runs/", body(cancer_dataset), format="json").json()["id"]
    TrainingRun.objects.get(pk=run_id).finish(TrainingRun.Status.FAILED, error="x")
    response = alice_api.post("/api/reset/tabular_classification_training")
    assert response.status_code == 200 and response.json()["id"] == run_id
    assert alice_api.get("/api/status/tabular_classification_training").status_code == 404
    assert alice_api.get(f"/api/v1/training-runs/{run_id}/").status_code == 200


def test_reset_marks_a_stuck_running_run_stopped(alice_api, cancer_dataset):
    run_id = alice_api.post("/api/v1/training-runs/", body(cancer_dataset), format="json").json()["id"]
    TrainingRun.objects.get(pk=run_id).start()
    response = alice_api.post("/api/reset/tabular_classification_training")
    assert response.json()["status"] == "stopped"


def test_training_page_starts_a_run_and_the_run_page_shows_the_leaderboard(
    alice_web, cancer_dataset, django_capture_on_commit_callbacks
):
    page = alice_web.get(f"/training?dataset={cancer_dataset.pk}")
    assert page.status_code == 200
    assert b'value="diagnosis"' in page.content and b"Start training" in page.content
    form = {
        "dataset": cancer_dataset.pk,
        "target": "diagnosis",
        "models": ["logistic_regression", "naive_bayes"],
        "cv_folds": 3,
        "imbalance": "class_weight",
        "level": 1,
        "primary_metric": "roc_auc",
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_web.post(f"/training?dataset={cancer_dataset.pk}", form)
    assert response.status_code == 302
    run = TrainingRun.objects.get()
    assert response["Location"] == f"/training/runs/{run.pk}"
    page = alice_web.get(response["Location"])
    assert page.status_code == 200
    assert b"Leaderboard" in page.content and b'id="run-curves"' in page.content
    assert b"Gaussian naive Bayes" in page.content
    for model in run.models.all():  # each row's button selects that row's model
        assert f'action="/models/{model.pk}/select"'.encode() in page.content
    progress = alice_web.get(f"/training/runs/{run.pk}/progress")
    assert progress["HX-Refresh"] == "true"


def test_the_training_page_shows_a_refusal_naming_the_problem(alice_web, cancer_dataset):
    form = {"dataset": cancer_dataset.pk, "target": "diagnosis", "models": ["naive_bayes"], "cv_folds": 3}
    form.update({"imbalance": "none", "level": 1, "primary_metric": "roc_auc", "group_column": "diagnosis"})
    response = alice_web.post(f"/training?dataset={cancer_dataset.pk}", form)
    assert response.status_code == 400
    assert b"grouping column cannot be the target" in response.content
    assert not TrainingRun.objects.exists()


def test_an_active_run_page_polls_its_progress_and_offers_stop(alice_web, alice_api, cancer_dataset):
    run_id = alice_api.post("/api/v1/training-runs/", body(cancer_dataset), format="json").json()["id"]
    page = alice_web.get(f"/training/runs/{run_id}")
    assert b'hx-trigger="every 2s"' in page.content and b"Stop training" in page.content
    response = alice_web.post(f"/training/runs/{run_id}/stop")
    assert response.status_code == 302
    assert TrainingRun.objects.get(pk=run_id).status == TrainingRun.Status.STOPPED


@pytest.mark.django_db(transaction=True)
def test_when_the_broker_is_unreachable_the_post_is_a_503_and_the_run_is_failed_not_left_queued(
    alice_api, cancer_dataset
):
    # transaction=True: the run commits inside the request, so its on-commit send fails there, as in production.
    from unittest import mock

    from kombu.exceptions import OperationalError

    from tabular.tasks import train_tabular_run

    refused = OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
    with mock.patch.object(train_tabular_run, "apply_async", side_effect=refused):
        response = alice_api.post("/api/v1/training-runs/", body(cancer_dataset), format="json")

    assert response.status_code == 503, response.content
    assert response.json()["code"] == "service_unavailable" and "start it again" in response.json()["detail"]
    assert response["Retry-After"]
    run = TrainingRun.objects.get()
    assert run.status == TrainingRun.Status.FAILED and "job queue" in run.error
