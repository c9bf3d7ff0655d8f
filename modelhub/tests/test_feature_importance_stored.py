"""Issue 12 #8: feature importance is computed once, at training time, from the hold-out rows, and stored with the
model; `/feature_importance` and `GET /api/v1/models/{id}/feature-importance/` read it (well under 300 ms) instead of
computing it inside the request. Models trained before get it computed on their first request, then stored."""

import pytest
from django.test import Client

from modelhub.models import TrainingModel


def _browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _refuse_to_compute(monkeypatch):
    """Any permutation importance or hold-out rebuild from here on fails the request loudly."""

    def refuse(*args, **kwargs):
        raise AssertionError("feature importance was computed inside a request")

    monkeypatch.setattr("tabular.ml.explain.feature_importance", refuse)
    monkeypatch.setattr("modelhub.hub._holdout_from_run", refuse)


@pytest.fixture
def platform_model(alice, make_dataset, django_capture_on_commit_callbacks, settings, tmp_path):
    from tabular import training
    from tabular.tests.test_training_service import tiny_breast_cancer_csv

    dataset = make_dataset(alice, tiny_breast_cancer_csv(), name="wdbc.csv")
    with django_capture_on_commit_callbacks(execute=True):
        run = training.training_run_start(
            user=alice, dataset=dataset, target="diagnosis", models=["random_forest"], level=1, cv_folds=3
        )
    return TrainingModel.objects.get(run=run), dataset


@pytest.fixture
def make_dataset(settings, tmp_path):
    from tabular.services import dataset_create
    from tabular.tests.conftest import upload_file

    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MEDIA_ROOT.mkdir()

    def make(user, content: bytes, name: str):
        return dataset_create(user=user, uploaded_file=upload_file(content, name))

    return make


def test_training_stores_permutation_importance_on_the_hold_out_rows_and_input_ranges(platform_model):
    model, _dataset = platform_model
    stored = model.feature_importance
    n_test = sum(sum(row) for row in model.metrics["confusion_matrix"]["matrix"])
    assert stored["n_holdout_rows"] == n_test
    assert f"the {n_test} hold-out rows" in stored["source"]
    assert {item["feature"] for item in stored["permutation"]} == {
        "mean radius",
        "mean texture",
        "mean perimeter",
        "mean area",
        "mean smoothness",
        "mean compactness",
        "mean concavity",
        "mean concave points",
    }
    assert stored["model"], "a random forest has importances of its own"
    low, high = model.input_ranges["mean radius"]
    assert 5 < low < high < 30


def test_the_api_and_the_page_read_the_stored_figures_fast_without_computing(
    alice, charlie, alice_api_client, platform_model, monkeypatch
):
    model, dataset = platform_model
    _refuse_to_compute(monkeypatch)
    # Fast because nothing is computed (both computations refuse above); the time itself is a benchmark's business.
    response = alice_api_client.get(f"/api/v1/models/{model.pk}/feature-importance/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["permutation"] == model.feature_importance["permutation"]
    assert body["computed_at"] == model.feature_importance["computed_at"]

    browser = _browser(alice)
    page = browser.get(f"/feature_importance?model_id={model.pk}")
    assert page.status_code == 200
    assert "mean radius" in page.content.decode()
    assert _browser(charlie).get(f"/feature_importance?model_id={model.pk}").status_code == 404

    # Saved with the model: the dataset's deletion does not take the hold-out figures with it.
    dataset.delete()
    assert alice_api_client.get(f"/api/v1/models/{model.pk}/feature-importance/").json() == body


def test_a_model_trained_before_gets_it_computed_once_then_stored(alice, alice_api_client, media_root, monkeypatch):
    from tabular.tests.factories_models import trained_models

    model = trained_models(alice, models=("random_forest",))[0]
    assert model.feature_importance is None
    first = alice_api_client.get(f"/api/v1/models/{model.pk}/feature-importance/").json()
    model.refresh_from_db()
    assert model.feature_importance["model"] == first["model"]
    _refuse_to_compute(monkeypatch)
    assert alice_api_client.get(f"/api/v1/models/{model.pk}/feature-importance/").json() == first


def test_the_run_and_model_pages_link_to_the_feature_importance(alice, platform_model):
    model, _dataset = platform_model
    browser = _browser(alice)
    link = f'href="/feature_importance?model_id={model.pk}"'
    assert link in browser.get(f"/training/runs/{model.run_id}").content.decode()
    assert link in browser.get(f"/models/{model.pk}/report").content.decode()
    assert link in browser.get("/my_models").content.decode()


@pytest.fixture
def alice_api_client(alice):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(alice)
    return client
