"""Issue 12 #11: everything a clinician does with a model, an integrator does with a JWT — download, select, pin,
delete, the input schema and the report — and every object endpoint refuses other users' objects (owner, other,
anonymous)."""

import io
import zipfile

import pytest
from django.test import Client
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.models import AuditEvent
from modelhub.models import PreprocessingData, TrainingModel, TrainingRun


def _bearer(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


def _browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def trained(alice, media_root):
    from tabular.tests.factories_models import trained_models

    return trained_models(alice, models=("logistic_regression",))[0]


# --- download ------------------------------------------------------------------------------------------------------


def test_download_model_accepts_a_bearer_token(alice, trained):
    response = _bearer(alice).get(f"/download_model/{trained.pk}")
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"] == "application/zip"
    assert "pipeline.joblib" in zipfile.ZipFile(io.BytesIO(response.content)).namelist()
    assert AuditEvent.objects.filter(action=AuditEvent.Action.DOWNLOAD, target_id=str(trained.pk)).exists()


def test_download_model_refuses_other_users_and_anonymous_callers(charlie, trained):
    assert _bearer(charlie).get(f"/download_model/{trained.pk}").status_code == 404
    assert _browser(charlie).get(f"/download_model/{trained.pk}").status_code == 404
    invalid = APIClient()
    invalid.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    assert invalid.get(f"/download_model/{trained.pk}").status_code == 401
    assert APIClient().get(f"/download_model/{trained.pk}", HTTP_ACCEPT="application/json").status_code == 401
    browser = Client().get(f"/download_model/{trained.pk}")
    assert browser.status_code == 302 and browser["Location"].startswith("/login")
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.DOWNLOAD).exists()


# --- pin -----------------------------------------------------------------------------------------------------------


def test_pin_and_unpin_over_the_api(alice, charlie, trained):
    url = f"/api/v1/models/{trained.pk}/pin/"
    assert _bearer(charlie).post(url, {}, format="json").status_code == 404
    assert APIClient().post(url, {}, format="json").status_code == 401
    trained.refresh_from_db()
    assert not trained.pinned
    client = _bearer(alice)
    response = client.post(url, {}, format="json")
    assert response.status_code == 200 and response.json()["pinned"] is True
    assert response.json()["days_left"] is None, "a pinned model is kept"
    assert client.post(url, {"pinned": False}, format="json").json()["pinned"] is False
    client.post(url, {"pinned": True}, format="json")
    assert client.delete(url).json()["pinned"] is False
    trained.refresh_from_db()
    assert not trained.pinned


# --- schema and report --------------------------------------------------------------------------------------------


def test_the_input_schema_lists_types_allowed_values_and_imputation(alice, trained):
    response = _bearer(alice).get(f"/api/v1/models/{trained.pk}/schema/")
    assert response.status_code == 200, response.content
    columns = {column["name"]: column for column in response.json()["columns"]}
    assert list(columns) == ["age", "bmi", "smoker"]
    assert columns["age"]["type"] == "number" and "allowed" not in columns["age"]
    assert columns["age"]["impute"]["method"] == "median"
    assert 20 <= columns["age"]["impute"]["value"] <= 90
    assert columns["smoker"]["type"] == "category"
    assert columns["smoker"]["allowed"] == ["no", "yes"]
    assert columns["smoker"]["impute"]["method"] == "most_frequent"


def test_the_report_is_json_with_the_pages_figures(alice, trained):
    response = _bearer(alice).get(f"/api/v1/models/{trained.pk}/report/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["model_id"] == trained.pk and body["kind"] == "tabular" and body["target"] == "outcome"
    assert body["metrics"]["roc_auc"] == pytest.approx(trained.metric_value)
    assert set(body["intervals"]["roc_auc"]) and body["confusion_matrix"]["labels"]
    assert [column["name"] for column in body["predictors"]] == ["age", "bmi", "smoker"]
    assert body["run"]["id"] == trained.run_id
    assert body["versions"]["sklearn"]


@pytest.mark.parametrize("suffix", ["", "schema/", "report/", "feature-importance/", "select/", "pin/"])
def test_every_model_endpoint_refuses_other_users_and_anonymous_callers(alice, charlie, trained, suffix):
    url = f"/api/v1/models/{trained.pk}/{suffix}"
    method = "post" if suffix in ("select/", "pin/") else "get"
    assert getattr(_bearer(charlie), method)(url, {}, format="json").status_code == 404
    assert getattr(APIClient(), method)(url, {}, format="json").status_code == 401
    assert getattr(_bearer(alice), method)(url, {}, format="json").status_code == 200
    assert _bearer(charlie).delete(f"/api/v1/models/{trained.pk}/").status_code == 404
    assert APIClient().delete(f"/api/v1/models/{trained.pk}/").status_code == 401
    assert TrainingModel.objects.filter(pk=trained.pk).exists()


# --- deleting models and runs ---------------------------------------------------------------------------------------


def test_deleting_a_model_over_the_api_removes_its_file_and_is_audited(
    alice, charlie, trained, media_root, django_capture_on_commit_callbacks
):
    path = media_root / trained.file_name
    assert path.is_file()
    assert _bearer(charlie).delete(f"/api/v1/models/{trained.pk}/").status_code == 404
    with django_capture_on_commit_callbacks(execute=True):
        response = _bearer(alice).delete(f"/api/v1/models/{trained.pk}/")
    assert response.status_code == 204
    assert not TrainingModel.objects.filter(pk=trained.pk).exists()
    assert not path.exists()
    event = AuditEvent.objects.get(action=AuditEvent.Action.DELETED)
    assert event.target_id == str(trained.pk) and event.actor == alice
    assert event.details["kind"] == "training_model"
    assert TrainingRun.objects.filter(pk=trained.run_id).exists(), "the run and its other models stay"


@pytest.mark.parametrize("status", [TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING])
def test_a_model_or_run_is_not_deleted_while_its_run_is_active(alice, trained, media_root, status):
    TrainingRun.objects.filter(pk=trained.run_id).update(status=status)
    client = _bearer(alice)
    response = client.delete(f"/api/v1/models/{trained.pk}/")
    assert response.status_code == 409 and response.json()["code"] == "run_active"
    response = client.delete(f"/api/v1/training-runs/{trained.run_id}/")
    assert response.status_code == 409 and response.json()["code"] == "run_active"
    assert client.post("/api/delete_training_run", {"run_id": trained.run_id}, format="json").status_code == 409
    assert TrainingModel.objects.filter(pk=trained.pk).exists()
    assert (media_root / trained.file_name).is_file()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.DELETED).exists()


def test_deleting_a_run_over_the_api_removes_its_models_files_and_folder(
    alice, charlie, trained, media_root, django_capture_on_commit_callbacks
):
    run_id = trained.run_id
    PreprocessingData.objects.create(run_id=run_id, user=alice)
    folder = media_root / str(alice.pk) / "models" / str(run_id)
    assert folder.is_dir()
    assert _bearer(charlie).delete(f"/api/v1/training-runs/{run_id}/").status_code == 404
    assert APIClient().delete(f"/api/v1/training-runs/{run_id}/").status_code == 401
    with django_capture_on_commit_callbacks(execute=True):
        response = _bearer(alice).delete(f"/api/v1/training-runs/{run_id}/")
    assert response.status_code == 204
    assert not TrainingRun.objects.filter(pk=run_id).exists()
    assert not TrainingModel.objects.filter(run_id=run_id).exists()
    assert not PreprocessingData.objects.filter(run_id=run_id).exists()
    assert not folder.exists()
    event = AuditEvent.objects.get(action=AuditEvent.Action.DELETED)
    assert event.details["kind"] == "training_run" and event.details["model_ids"] == [trained.pk]


def test_the_original_delete_training_run_route_is_an_alias(
    alice, charlie, trained, media_root, django_capture_on_commit_callbacks
):
    assert (
        _bearer(charlie).post("/api/delete_training_run", {"run_id": trained.run_id}, format="json").status_code == 404
    )
    assert _bearer(alice).post("/api/delete_training_run", {}, format="json").status_code == 400
    with django_capture_on_commit_callbacks(execute=True):
        response = _bearer(alice).post("/api/delete_training_run", {"run_id": trained.run_id}, format="json")
    assert response.status_code == 200 and response.json()["run_id"] == trained.run_id
    assert not TrainingRun.objects.filter(pk=trained.run_id).exists()
    assert not (media_root / trained.file_name).exists()


def test_owners_delete_models_and_runs_from_pages_after_confirming(
    alice, charlie, trained, media_root, django_capture_on_commit_callbacks
):
    browser = _browser(alice)
    assert _browser(charlie).get(f"/models/{trained.pk}/delete").status_code == 404
    assert _browser(charlie).post(f"/models/{trained.pk}/delete").status_code == 404
    assert _browser(charlie).get(f"/runs/{trained.run_id}/delete").status_code == 404
    page = browser.get(f"/models/{trained.pk}/delete")
    assert page.status_code == 200 and b"cannot be undone" in page.content
    assert TrainingModel.objects.filter(pk=trained.pk).exists(), "GET only asks"
    assert f'href="/models/{trained.pk}/delete"' in browser.get("/my_models").content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        assert browser.post(f"/models/{trained.pk}/delete").status_code == 302
    assert not TrainingModel.objects.filter(pk=trained.pk).exists()
    assert not (media_root / trained.file_name).exists()

    page = browser.get(f"/runs/{trained.run_id}/delete")
    assert page.status_code == 200 and b"Delete run" in page.content
    with django_capture_on_commit_callbacks(execute=True):
        assert browser.post(f"/runs/{trained.run_id}/delete").status_code == 302
    assert not TrainingRun.objects.filter(pk=trained.run_id).exists()
    assert AuditEvent.objects.filter(action=AuditEvent.Action.DELETED).count() == 2
