"""Model hub: /my_models, selection, pin/unpin, days left, the models API, downloads and the model report."""

import io
import json
import zipfile
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import AuditEvent
from modelhub.hub import model_days_left
from modelhub.models import TrainingModel, TrainingRun
from modelhub.tests.factories import TrainingModelFactory, TrainingRunFactory


def _client(user):
    client = Client()
    client.force_login(user)
    return client


def _api(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def trained(alice, media_root):
    from tabular.tests.factories_models import trained_models

    return trained_models(alice, models=("logistic_regression",))[0]


# --- selection -----------------------------------------------------------------------------------------------


def _finished_run(user):
    return TrainingRunFactory(user=user, status=TrainingRun.Status.SUCCEEDED)


def test_select_model_picks_the_highest_roc_auc_of_the_run_and_unselects_the_previous(alice):
    run = _finished_run(alice)
    low = TrainingModelFactory(user=alice, run=run, model_name="random_forest", metrics={"roc_auc": 0.7, "brier": 0.1})
    high = TrainingModelFactory(
        user=alice, run=run, model_name="random_forest", metrics={"roc_auc": 0.90, "brier": 0.2}
    )
    other = TrainingModelFactory(user=alice, model_name="knn", metrics={"roc_auc": 0.95}, is_selected=True)
    response = _client(alice).post("/select_model/random_forest/roc_auc")
    assert response.status_code == 302
    high.refresh_from_db(), low.refresh_from_db(), other.refresh_from_db()
    assert high.is_selected and not low.is_selected
    assert not other.is_selected, "one selected tabular model at a time"
    event = AuditEvent.objects.get(action=AuditEvent.Action.MODEL_SELECTED)
    assert event.details["new_id"] == high.pk
    assert event.details["previous_ids"] == [other.pk]
    assert event.details["run_id"] == run.pk
    assert event.actor == alice


def test_select_model_by_brier_picks_the_lowest(alice):
    run = _finished_run(alice)
    low = TrainingModelFactory(user=alice, run=run, model_name="random_forest", metrics={"roc_auc": 0.7, "brier": 0.1})
    TrainingModelFactory(user=alice, run=run, model_name="random_forest", metrics={"roc_auc": 0.9, "brier": 0.2})
    response = _client(alice).post("/select_model/random_forest/brier", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert response.json()["id"] == low.pk


def test_select_model_unknown_metric_is_400(alice):
    TrainingModelFactory(user=alice, run=_finished_run(alice), model_name="random_forest")
    response = _client(alice).get("/select_model/random_forest/happiness", HTTP_ACCEPT="application/json")
    assert response.status_code == 400
    assert "happiness" in response.json()["detail"]


def test_select_model_with_no_such_model_is_404(alice, charlie):
    TrainingModelFactory(user=alice, run=_finished_run(alice), model_name="random_forest")
    assert _client(alice).get("/select_model/svm/roc_auc", HTTP_ACCEPT="application/json").status_code == 404
    # Charlie has no random forest of his own: alice's does not count.
    assert _client(charlie).post("/select_model/random_forest/roc_auc").status_code == 404
    assert not TrainingModel.objects.filter(is_selected=True).exists()


def test_selection_history_is_shown_on_my_models(alice):
    TrainingModelFactory(user=alice, run=_finished_run(alice), model_name="random_forest", metrics={"roc_auc": 0.8})
    client = _client(alice)
    client.post("/select_model/random_forest/roc_auc")
    html = client.get("/my_models").content.decode()
    assert "Selection history" in html
    assert f"{alice.email} selected" in html


# --- /my_models, pin, days left ---------------------------------------------------------------------------------


def test_days_left_counts_down_and_is_none_when_kept(alice, settings):
    settings.RETENTION_DAYS = 15
    model = TrainingModelFactory(user=alice, created_at=timezone.now() - timedelta(days=10, hours=1))
    assert model_days_left(model) == 5
    model.pinned = True
    assert model_days_left(model) is None


def test_my_models_lists_only_own_models_with_badges_and_days(alice, charlie):
    mine = TrainingModelFactory(user=alice, model_name="random_forest", pinned=True)
    TrainingModelFactory(user=alice, model_name="knn", is_selected=True)
    TrainingModelFactory(user=charlie, model_name="decision_tree")
    html = _client(alice).get("/my_models").content.decode()
    assert "random_forest" in html and "knn" in html
    assert "decision_tree" not in html
    assert "Pinned" in html and "Selected" in html
    assert "kept" in html
    assert f"/models/{mine.pk}/report" in html


def test_my_models_sorts_by_metric_best_first(alice):
    TrainingModelFactory(user=alice, model_name="first_low", metrics={"roc_auc": 0.6})
    TrainingModelFactory(user=alice, model_name="second_high", metrics={"roc_auc": 0.9})
    html = _client(alice).get("/my_models?sort=roc_auc").content.decode()
    assert html.index("second_high") < html.index("first_low")


def test_pin_and_unpin(alice):
    model = TrainingModelFactory(user=alice)
    client = _client(alice)
    assert client.post(f"/models/{model.pk}/pin", {"pinned": "1"}).status_code == 302
    model.refresh_from_db()
    assert model.pinned
    client.post(f"/models/{model.pk}/pin", {"pinned": "0"})
    model.refresh_from_db()
    assert not model.pinned


def test_pin_is_post_only_and_charlie_cannot_pin_alices_model(alice, charlie):
    model = TrainingModelFactory(user=alice)
    assert _client(alice).get(f"/models/{model.pk}/pin").status_code == 405
    assert _client(charlie).post(f"/models/{model.pk}/pin", {"pinned": "1"}).status_code == 404
    model.refresh_from_db()
    assert not model.pinned


# --- API ----------------------------------------------------------------------------------------------------------


def test_api_lists_own_models_with_days_left(alice, charlie):
    mine = TrainingModelFactory(user=alice, metrics={"roc_auc": 0.8, "threshold": 0.4})
    TrainingModelFactory(user=charlie)
    body = _api(alice).get("/api/v1/models/").json()
    assert [row["id"] for row in body] == [mine.pk]
    row = body[0]
    assert row["kind"] == "tabular"
    assert row["run"] == mine.run_id
    assert row["threshold"] == 0.4
    assert isinstance(row["days_left"], int)
    for key in ("model_name", "metric_name", "metric_value", "metrics", "is_selected", "pinned", "size", "sha256"):
        assert key in row


def test_api_detail_is_404_for_charlie(alice, charlie):
    model = TrainingModelFactory(user=alice)
    assert _api(alice).get(f"/api/v1/models/{model.pk}/").status_code == 200
    assert _api(charlie).get(f"/api/v1/models/{model.pk}/").status_code == 404


# --- download and report (real bundles) ------------------------------------------------------------------------


def test_download_is_a_zip_with_pipeline_schema_report_and_readme_and_is_audited(alice, trained):
    response = _client(alice).get(f"/download_model/{trained.pk}")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    names = set(archive.namelist())
    assert {"pipeline.joblib", "schema.json", "report.html", "README.txt", "requirements.txt"} <= names
    assert "checksums.json" in names
    assert {"deepmed_runtime/__init__.py", "deepmed_runtime/tabular_ml/calibration.py"} <= names
    assert not [name for name in names if not name.startswith("deepmed_runtime/") and "/" in name]
    schema = json.loads(archive.read("schema.json"))
    assert [column["name"] for column in schema["columns"]] == ["age", "bmi", "smoker"]
    readme = archive.read("README.txt").decode()
    assert "scikit-learn==" in readme
    import sklearn

    assert f"sklearn=={sklearn.__version__}" in readme
    import joblib

    pipeline = joblib.load(io.BytesIO(archive.read("pipeline.joblib")))
    assert set(pipeline.classes_) == {"sick", "well"}
    assert "Model report" in archive.read("report.html").decode()
    event = AuditEvent.objects.get(action=AuditEvent.Action.DOWNLOAD)
    assert event.target_id == str(trained.pk) and event.actor == alice


def test_charlie_gets_404_for_alices_download_and_report(charlie, trained):
    client = _client(charlie)
    assert client.get(f"/download_model/{trained.pk}").status_code == 404
    assert client.get(f"/models/{trained.pk}/report").status_code == 404
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.DOWNLOAD).exists()


def test_tampered_artifact_is_not_downloaded(alice, trained, media_root):
    path = media_root / trained.file_name
    path.write_bytes(path.read_bytes()[:-10])
    response = _client(alice).get(f"/download_model/{trained.pk}")
    assert response.status_code == 409
    assert "checksum" in response.content.decode()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.DOWNLOAD).exists()


def test_report_has_the_tripod_items_and_inline_svg_charts(alice, trained):
    from tabular.bundles import model_bundle_load

    bundle = model_bundle_load(trained)
    html = _client(alice).get(f"/models/{trained.pk}/report").content.decode()
    for heading in (
        "Intended use",
        "Data source",
        "Outcome and predictors",
        "Missing data",
        "Class balance",
        "Model and tuning",
        "Validation method",
        "95% bootstrap intervals",
        "Calibration",
        "Threshold and confusion matrix",
        "Warnings",
        "Lineage",
        "Library versions",
    ):
        assert heading in html, heading
    assert bundle["dataset"]["sha256"] in html
    assert f"{bundle['threshold']:.3f}" in html
    assert html.count("<svg") == 3
    assert "Only a few patients" in html
    assert "Missing ages filled with the median." in html
    assert "<script" not in html.split("<main", 1)[-1].split("</main>", 1)[0]


def test_dashboard_and_my_models_link_tabular_models_to_their_report(alice):
    model = TrainingModelFactory(user=alice)
    assert f'href="/models/{model.pk}/report"' in _client(alice).get("/dashboard").content.decode()
    assert f'href="/models/{model.pk}/report"' in _client(alice).get("/my_models").content.decode()


def test_nav_has_a_models_link(alice):
    assert 'href="/my_models"' in _client(alice).get("/my_models").content.decode()
