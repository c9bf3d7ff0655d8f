"""Image classifiers and anomaly detectors in the model hub: listing, the download ZIP, selection by accuracy."""

import io
import json
import zipfile

import numpy as np
import pytest
import torch
import torchvision
from django.conf import settings
from django.test import Client

from accounts.models import AuditEvent
from imaging.ml.export import load_torchscript
from imaging.ml.synthetic import shape_image
from modelhub.models import TrainingModel, TrainingRun

from .conftest import shapes_entries, upload, zip_bytes

pytestmark = pytest.mark.django_db


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def image_model(alice_api, django_capture_on_commit_callbacks) -> TrainingModel:
    data = {"file": upload(zip_bytes(shapes_entries())), "architecture": "resnet18", "level": 1, "image_size": 32}
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_api.post("/api/train_model", data, format="multipart")
    assert response.status_code == 202, response.json()
    return TrainingModel.objects.get(run_id=response.json()["id"])


@pytest.fixture
def anomaly_model(alice_api, django_capture_on_commit_callbacks) -> TrainingModel:
    normal = shapes_entries(shapes=("circle",), per_class=12, size=32)
    flat = {name.split("/")[-1]: data for name, data in normal.items()}
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_api.post(
            "/api/v1/anomaly/train",
            {"file": upload(zip_bytes(flat)), "level": 1, "image_size": 32, "mode": "autoencoder"},
            format="multipart",
        )
    assert response.status_code == 202, response.json()
    return TrainingModel.objects.get(run_id=response.json()["id"])


def test_image_classifier_download_has_checkpoint_torchscript_metrics_and_a_pinned_readme(alice, image_model):
    response = _client(alice).get(f"/download_model/{image_model.pk}")
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert set(archive.namelist()) == {"model.pt", "model_torchscript.pt", "metrics.json", "README.txt"}
    assert archive.read("model.pt") == (settings.MEDIA_ROOT / image_model.file_name).read_bytes()
    metrics = json.loads(archive.read("metrics.json"))
    assert metrics["class_names"] == ["circle", "square"] and metrics["metric_name"] == "accuracy"
    readme = archive.read("README.txt").decode()
    assert f"torch=={torch.__version__.split('+')[0]}" in readme
    assert f"torchvision=={torchvision.__version__.split('+')[0]}" in readme
    assert image_model.sha256 in readme and "circle, square" in readme
    # The export is the trained model: it loads with torch alone and predicts a real label.
    exported = settings.MEDIA_ROOT / "export-check.pt"
    exported.write_bytes(archive.read("model_torchscript.pt"))
    classifier = load_torchscript(exported)
    assert classifier.class_names == ["circle", "square"] and classifier.image_size == 32
    probabilities = classifier.predict_proba([shape_image("circle", 32, np.random.default_rng(3))])
    assert probabilities.shape == (1, 2) and abs(probabilities.sum() - 1) < 1e-5
    event = AuditEvent.objects.get(action=AuditEvent.Action.DOWNLOAD)
    assert event.target_id == str(image_model.pk) and event.actor == alice


def test_anomaly_detector_download_has_checkpoint_metrics_and_readme_without_torchscript(alice, anomaly_model):
    response = _client(alice).get(f"/download_model/{anomaly_model.pk}")
    assert response.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert set(archive.namelist()) == {"model.pt", "metrics.json", "README.txt"}
    assert json.loads(archive.read("metrics.json"))["metric_name"] == "threshold"
    assert "AutoencoderAnomalyDetector.load" in archive.read("README.txt").decode()
    assert AuditEvent.objects.filter(action=AuditEvent.Action.DOWNLOAD, target_id=str(anomaly_model.pk)).exists()


def test_charlie_gets_404_for_alices_image_model_download(charlie, image_model):
    assert _client(charlie).get(f"/download_model/{image_model.pk}").status_code == 404
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.DOWNLOAD).exists()


def test_tampered_image_checkpoint_is_not_downloaded(alice, image_model):
    path = settings.MEDIA_ROOT / image_model.file_name
    path.write_bytes(path.read_bytes()[:-10])
    response = _client(alice).get(f"/download_model/{image_model.pk}")
    assert response.status_code == 409 and "checksum" in response.content.decode()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.DOWNLOAD).exists()


def test_selecting_the_best_image_architecture_by_accuracy_marks_it_and_keeps_tabular_selection(alice, image_model):
    tabular_run = TrainingRun.objects.create(user=alice, kind=TrainingRun.Kind.TABULAR, status="succeeded")
    tabular = TrainingModel.objects.create(
        user=alice, run=tabular_run, model_name="logistic_regression", metric_name="roc_auc", metric_value=0.8
    )
    TrainingModel.objects.filter(pk=tabular.pk).update(is_selected=True)
    response = _client(alice).post("/select_model/resnet18/accuracy", headers={"Accept": "application/json"})
    assert response.status_code == 200, response.content
    expected = {"id": image_model.pk, "model_name": "resnet18", "metric": "accuracy", "is_selected": True}
    assert response.json() == expected
    image_model.refresh_from_db()
    tabular.refresh_from_db()
    assert image_model.is_selected and tabular.is_selected


def test_my_models_lists_image_and_anomaly_models_with_a_download_and_a_report_link(alice, image_model, anomaly_model):
    page = _client(alice).get("/my_models").content.decode()
    for model in (image_model, anomaly_model):
        assert f'href="/download_model/{model.pk}"' in page
        assert f'href="/models/{model.pk}/report"' in page
    assert 'action="/select_model/resnet18/accuracy"' in page
    assert "/select_model/conv_autoencoder/threshold" not in page


def test_an_anomaly_run_is_polled_at_the_shared_training_runs_url_with_its_threshold(alice_api, anomaly_model):
    body = alice_api.get(f"/api/v1/training-runs/{anomaly_model.run_id}/").json()
    assert body["kind"] == "anomaly" and body["status"] == "succeeded"
    (model,) = body["models"]
    assert model["id"] == anomaly_model.pk and model["intervals"] == {}
    assert model["threshold"] == pytest.approx(anomaly_model.metric_value)
