"""/models/<id>/report for image classifiers and anomaly detectors: the recorded figures, to the owner only."""

import html
import re

import pytest
from django.test import Client

from imaging.models import ImageDataset
from modelhub.models import TrainingModel

from .conftest import shapes_entries, upload, zip_bytes

pytestmark = pytest.mark.django_db


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _text(page: str) -> str:
    """The page's visible words with tags and inline SVG removed, whitespace collapsed."""
    page = re.sub(r"<svg.*?</svg>", " ", page, flags=re.S)
    page = re.sub(r"</?(?:code|strong|em|span|a|time)\b[^>]*>", "", page)  # inline tags join their words
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


@pytest.fixture
def image_model(alice_api, django_capture_on_commit_callbacks) -> TrainingModel:
    entries = shapes_entries()
    entries["circle/broken.png"] = b"\x89PNG\r\n\x1a\nbroken"
    entries["square/copy.png"] = entries["square/square_0.png"]
    data = {"file": upload(zip_bytes(entries)), "architecture": "resnet18", "level": 1, "image_size": 32}
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_api.post("/api/train_model", data, format="multipart")
    assert response.status_code == 202, response.json()
    return TrainingModel.objects.get(run_id=response.json()["id"])


def _anomaly_model(client, captured, **extra) -> TrainingModel:
    normal = shapes_entries(shapes=("circle",), per_class=12, size=32)
    flat = {name.split("/")[-1]: data for name, data in normal.items()}
    with captured(execute=True):
        response = client.post(
            "/api/v1/anomaly/train",
            {"file": upload(zip_bytes(flat)), "level": 1, "image_size": 32, "mode": "autoencoder", **extra},
            format="multipart",
        )
    assert response.status_code == 202, response.json()
    return TrainingModel.objects.get(run_id=response.json()["id"])


@pytest.fixture
def anomaly_model(alice_api, django_capture_on_commit_callbacks) -> TrainingModel:
    return _anomaly_model(alice_api, django_capture_on_commit_callbacks)


def test_the_image_classifier_report_shows_the_recorded_metrics(alice, image_model):
    response = _client(alice).get(f"/models/{image_model.pk}/report")
    assert response.status_code == 200
    page = response.content.decode()
    text = _text(page)
    metrics = image_model.metrics
    assert "ResNet-18 image classifier" in text
    assert "Trained from scratch" in text and "32 × 32 pixels" in text
    assert "Training level 1" in text
    assert f"Accuracy {metrics['accuracy']:.3f}" in text
    if metrics["roc_auc_macro"] is not None:
        assert f"Macro ROC AUC (one-vs-rest) {metrics['roc_auc_macro']:.3f}" in text
    for row in metrics["per_class"]:
        # Class, precision, recall, F1 and support as recorded, in one table row.
        expected = f"{row['class']} {row['precision']:.3f} {row['recall']:.3f} {row['f1']:.3f} {row['support']}"
        assert expected in text
    # Class names with the uploaded counts (6 each: the broken file and the duplicate were skipped).
    support = {row["class"]: row["support"] for row in metrics["per_class"]}
    assert f"circle 6 {support['circle']}" in text and f"square 6 {support['square']}" in text
    for label, cells in zip(metrics["labels"], metrics["confusion_matrix"], strict=True):
        assert f"{label} {' '.join(map(str, cells))} {sum(cells)}" in text
    # Learning curves: loss and accuracy, drawn server-side as SVG so the page prints.
    assert page.count("<svg") == 2 and "Learning curve: loss" in text and "Learning curve: accuracy" in text
    # The corrupt file and the duplicate are both skipped, each with its reason; the duplicate group is listed too.
    assert "Skipped files: 2" in text and "circle/broken.png:" in text
    assert "square/copy.png: Exact duplicate of square/square_0.png" in text
    assert "Exact duplicates: 1 group" in text and "square/square_0.png = square/copy.png" in text


def test_the_anomaly_report_shows_threshold_histogram_and_mode(alice, anomaly_model):
    page = _client(alice).get(f"/models/{anomaly_model.pk}/report").content.decode()
    text = _text(page)
    metrics = anomaly_model.metrics
    assert f"above {metrics['threshold']:.5f} are flagged" in text
    assert f"{metrics['threshold_percentile']:.1f}th percentile" in text
    assert "Reconstruction error only" in text
    assert f"{metrics['train_images']} normal images, of which {metrics['val_images']} were held out" in text
    assert "Validation score histogram" in text and "Learning curve: loss" in text
    assert page.count("<svg") == 2
    assert "Skipped files: 0" in text


def test_an_enhanced_detectors_report_says_so(alice, alice_api, django_capture_on_commit_callbacks):
    model = _anomaly_model(alice_api, django_capture_on_commit_callbacks, enhanced="true")
    text = _text(_client(alice).get(f"/models/{model.pk}/report").content.decode())
    assert "Mode Enhanced: Isolation Forest, Local Outlier Factor and One-Class SVM" in text
    assert "One-Class SVM on encoder features" in text


def test_a_moved_threshold_is_reported_as_set_by_hand(alice, alice_api, anomaly_model):
    response = alice_api.post(f"/api/v1/anomaly/models/{anomaly_model.pk}/threshold", {"threshold": 0.5}, format="json")
    assert response.status_code == 200
    text = _text(_client(alice).get(f"/models/{anomaly_model.pk}/report").content.decode())
    assert "above 0.50000 are flagged" in text and "The owner moved the threshold by hand" in text


def test_charlie_gets_404_for_alices_image_and_anomaly_reports(charlie, image_model, anomaly_model):
    client = _client(charlie)
    for model in (image_model, anomaly_model):
        assert client.get(f"/models/{model.pk}/report").status_code == 404


def test_my_models_links_the_report_of_every_kind(alice, image_model, anomaly_model):
    page = _client(alice).get("/my_models").content.decode()
    for model in (image_model, anomaly_model):
        assert f'href="/models/{model.pk}/report"' in page


def test_an_older_model_without_recorded_checks_reads_them_from_its_dataset_while_it_exists(alice, image_model):
    metrics = dict(image_model.metrics)
    metrics.pop("dataset")
    TrainingModel.objects.filter(pk=image_model.pk).update(metrics=metrics)
    client = _client(alice)
    text = _text(client.get(f"/models/{image_model.pk}/report").content.decode())
    assert "read from the stored dataset" in text and "circle/broken.png" in text
    ImageDataset.objects.filter(pk=int(image_model.run.dataset_id)).delete()
    text = _text(client.get(f"/models/{image_model.pk}/report").content.decode())
    assert "not recorded with this model and the dataset has since been deleted" in text
    assert f"Accuracy {image_model.metrics['accuracy']:.3f}" in text
