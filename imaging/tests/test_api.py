"""The imaging API end to end: ZIP intake and refusals, training runs, prediction with Grad-CAM, anomaly scoring."""

import io
import os
import zipfile
from pathlib import Path

import pydicom
import pytest
from django.conf import settings
from PIL import Image
from pydicom.data import get_testdata_file

from imaging.models import ImageDataset
from modelhub.models import TrainingModel, TrainingRun

from .conftest import media_files, png, shapes_entries, upload, zip_bytes

pytestmark = pytest.mark.django_db


def _train(client, entries, captured, **extra):
    data = {"file": upload(zip_bytes(entries)), "architecture": "resnet18", "level": 1, "image_size": 32, **extra}
    with captured(execute=True):
        return client.post("/api/train_model", data, format="multipart")


@pytest.fixture
def trained(alice_api, django_capture_on_commit_callbacks):
    response = _train(alice_api, shapes_entries(), django_capture_on_commit_callbacks)
    assert response.status_code == 202, response.json()
    return response.json()["id"]


def test_training_a_classifier_from_a_zip_lands_a_model_with_accuracy_in_the_hub(alice_api, trained):
    run = alice_api.get(f"/api/v1/imaging/runs/{trained}/").json()
    assert run["status"] == "succeeded", run
    assert run["progress"] == 1.0 and run["kind"] == "image"
    model = TrainingModel.objects.get(id=run["model_id"])
    assert model.model_name == "resnet18" and model.metric_name == "accuracy"
    assert 0.0 <= model.metric_value <= 1.0
    assert model.metrics["class_names"] == ["circle", "square"]
    assert model.metrics["image_size"] == 32 and model.metrics["imagenet_weights"] is False
    assert "confusion_matrix" in model.metrics and model.metrics["history"]
    assert model.sha256 and (settings.MEDIA_ROOT / model.file_name).is_file()
    dataset = ImageDataset.objects.get(id=int(TrainingRun.objects.get(id=trained).dataset_id))
    assert dataset.class_counts == {"circle": 6, "square": 6} and dataset.n_images == 12


def test_prediction_gives_a_label_probabilities_and_a_heatmap_and_a_per_file_error(alice_api, trained):
    model_id = alice_api.get(f"/api/v1/imaging/runs/{trained}/").json()["model_id"]
    entries = shapes_entries(per_class=1, seed=9)
    files = [upload(data, name.split("/")[-1]) for name, data in entries.items()]
    files.append(upload(b"not an image at all", "notes.txt"))
    response = alice_api.post("/api/predict_image", {"model_id": model_id, "file": files}, format="multipart")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["model_id"] == model_id
    good, bad = body["predictions"][:2], body["predictions"][2]
    for item in good:
        assert item["label"] in ("circle", "square")
        assert set(item["probabilities"]) == {"circle", "square"}
        assert abs(sum(item["probabilities"].values()) - 1) < 1e-4
        assert item["heatmap"].startswith("data:image/png;base64,")
    assert bad["file"] == "notes.txt" and bad["code"] == "not_an_image" and "label" not in bad


def test_prediction_accepts_a_zip_of_images(alice_api, trained):
    model_id = alice_api.get(f"/api/v1/imaging/runs/{trained}/").json()["model_id"]
    archive = zip_bytes(shapes_entries(per_class=1, seed=4))
    response = alice_api.post("/api/predict_image", {"model_id": model_id, "file": upload(archive)}, format="multipart")
    assert response.status_code == 200
    assert [item["file"] for item in response.json()["predictions"]] == ["circle/circle_0.png", "square/square_0.png"]


def test_charlie_gets_404_for_alices_run_and_model(alice_api, charlie_api, trained):
    model_id = alice_api.get(f"/api/v1/imaging/runs/{trained}/").json()["model_id"]
    assert charlie_api.get(f"/api/v1/imaging/runs/{trained}/").status_code == 404
    assert charlie_api.post(f"/api/v1/imaging/runs/{trained}/stop/").status_code == 404
    image = upload(png(Image.new("L", (32, 32))), "x.png")
    response = charlie_api.post("/api/predict_image", {"model_id": model_id, "file": image}, format="multipart")
    assert response.status_code == 404


def test_a_changed_artefact_is_refused_before_loading(alice_api, trained):
    model = TrainingModel.objects.get(run_id=trained)
    path = settings.MEDIA_ROOT / model.file_name
    path.write_bytes(path.read_bytes() + b"tampered")
    image = upload(png(Image.new("L", (32, 32))), "x.png")
    response = alice_api.post("/api/predict_image", {"model_id": model.id, "file": image}, format="multipart")
    assert response.status_code == 409 and response.json()["code"] == "artifact_integrity"


def test_a_stop_request_is_honoured_between_batches_and_the_run_ends_stopped(
    alice, django_capture_on_commit_callbacks, monkeypatch
):
    from imaging import services

    with django_capture_on_commit_callbacks(execute=False):
        run = services.image_training_start(
            user=alice, uploaded_file=upload(zip_bytes(shapes_entries())), architecture="resnet18", image_size=32
        )
    # The stop arrives from another process while the worker trains: the trainer asks before every batch.
    monkeypatch.setattr(TrainingRun, "stop_is_requested", lambda self: True)
    services.image_training_execute(run_id=run.id)
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.STOPPED
    assert TrainingModel.objects.get(run=run).metrics["stopped"] is True


def test_a_queued_run_stopped_through_the_api_never_starts(alice_api, alice, django_capture_on_commit_callbacks):
    from imaging import services

    with django_capture_on_commit_callbacks(execute=False):
        run = services.image_training_start(
            user=alice, uploaded_file=upload(zip_bytes(shapes_entries())), architecture="resnet18", image_size=32
        )
    assert alice_api.post(f"/api/v1/imaging/runs/{run.id}/stop/").json()["status"] == "stopped"
    services.image_training_execute(run_id=run.id)
    assert not TrainingModel.objects.filter(run=run).exists()


def _zip_with_link() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in shapes_entries().items():
            archive.writestr(name, data)
        info = zipfile.ZipInfo("circle/link.png")
        info.external_attr = 0o120777 << 16
        archive.writestr(info, "/etc/passwd")
    return buffer.getvalue()


def _bomb() -> bytes:
    entries = shapes_entries()
    entries["circle/huge.png"] = b"\x00" * (3 * 1024 * 1024)
    return zip_bytes(entries)


def _too_large() -> bytes:
    entries = shapes_entries()
    # Random bytes do not compress: the declared size alone crosses the 2 MB cap the test sets.
    entries["circle/huge.png"] = os.urandom(3 * 1024 * 1024)
    return zip_bytes(entries)


BAD_ZIPS = {
    "parent_path": lambda: zip_bytes({**shapes_entries(), "../escape.png": b"x"}),
    "absolute_path": lambda: zip_bytes({**shapes_entries(), "/tmp/escape.png": b"x"}),
    "nested_archive": lambda: zip_bytes({**shapes_entries(), "circle/inner.zip": zip_bytes({"a.png": b"x"})}),
    "link": _zip_with_link,
    "compression_ratio": _bomb,
    "too_large": _too_large,
    "too_few_classes": lambda: zip_bytes(shapes_entries(shapes=("circle",))),
    "too_few_images": lambda: zip_bytes(shapes_entries(per_class=4)),
    "not_a_zip": lambda: b"this is not a zip file",
}


@pytest.mark.parametrize("code", sorted(BAD_ZIPS))
def test_a_bad_zip_is_refused_with_its_code_and_nothing_is_written(alice_api, code, settings):
    settings.MAX_ZIP_UNCOMPRESSED_MB = 2
    before = media_files(settings.MEDIA_ROOT)
    response = alice_api.post(
        "/api/train_model", {"file": upload(BAD_ZIPS[code]()), "architecture": "resnet18"}, format="multipart"
    )
    assert response.status_code == 400, response.json()
    assert response.json()["code"] == code and response.json()["detail"]
    assert media_files(settings.MEDIA_ROOT) == before
    assert not ImageDataset.objects.exists() and not TrainingRun.objects.exists()


def test_an_unknown_architecture_is_refused(alice_api):
    response = alice_api.post(
        "/api/train_model", {"file": upload(zip_bytes(shapes_entries())), "architecture": "alexnet"}, format="multipart"
    )
    assert response.status_code == 400 and not ImageDataset.objects.exists()


def test_dicom_is_accepted_converted_to_png_and_stored_without_identifying_tags(alice):
    from imaging import services

    dicom = open(get_testdata_file("CT_small.dcm"), "rb").read()
    assert b"CompressedSamples" in dicom or pydicom.dcmread(io.BytesIO(dicom)).PatientName
    entries = shapes_entries()
    entries["circle/scan.dcm"] = dicom
    dataset = services.image_dataset_create(user=alice, uploaded_file=upload(zip_bytes(entries)))
    stored = settings.MEDIA_ROOT / dataset.folder
    files = [path for path in stored.rglob("*") if path.is_file()]
    assert len(files) == 13 and all(path.suffix == ".png" for path in files)
    patient_name = str(pydicom.dcmread(io.BytesIO(dicom)).PatientName).encode()
    assert all(patient_name not in path.read_bytes() for path in files)
    assert [item["file"] for item in dataset.report["conversions"]] == ["circle/scan.dcm"]
    assert "DICOM" in dataset.report["conversions"][0]["notes"][0]


def test_corrupt_and_duplicate_images_are_skipped_and_reported(alice):
    from imaging import services

    entries = shapes_entries()
    entries["circle/broken.png"] = b"\x89PNG\r\n\x1a\nbroken"
    entries["square/copy.png"] = entries["square/square_0.png"]
    dataset = services.image_dataset_create(user=alice, uploaded_file=upload(zip_bytes(entries)))
    skipped = {item["relative_name"]: item["code"] for item in dataset.report["skipped"]}
    assert skipped["circle/broken.png"] != "duplicate" and skipped["square/copy.png"] == "duplicate"
    assert dataset.n_images == 12
    stored = [path for path in (settings.MEDIA_ROOT / dataset.folder).rglob("*") if path.is_file()]
    assert len(stored) == 12


def test_anomaly_detector_trains_on_normal_images_and_scores_new_ones(
    alice_api, charlie_api, django_capture_on_commit_callbacks
):
    normal = shapes_entries(shapes=("circle",), per_class=12, size=32)
    flat = {name.split("/")[-1]: data for name, data in normal.items()}
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_api.post(
            "/api/v1/anomaly/train",
            {"file": upload(zip_bytes(flat)), "level": 1, "image_size": 32, "mode": "autoencoder"},
            format="multipart",
        )
    assert response.status_code == 202, response.json()
    run = alice_api.get(f"/api/v1/imaging/runs/{response.json()['id']}/").json()
    assert run["status"] == "succeeded", run
    model = TrainingModel.objects.get(id=run["model_id"])
    assert model.metric_name == "threshold" and model.metrics["histogram"]["counts"]
    probe = shapes_entries(shapes=("circle", "triangle"), per_class=1, size=32, seed=5)
    files = [upload(data, name.split("/")[-1]) for name, data in probe.items()] + [upload(b"junk", "junk.bin")]
    body = alice_api.post("/api/v1/anomaly/score", {"model_id": model.id, "file": files}, format="multipart").json()
    assert body["model_id"] == model.id
    for item in body["results"][:2]:
        assert item["threshold"] == pytest.approx(model.metric_value)
        assert item["is_anomaly"] == (item["score"] > item["threshold"])
    assert body["results"][2]["code"] == "not_an_image"
    # Moving the threshold below every score flags every image, and the saved artefact carries it.
    moved = alice_api.post(f"/api/v1/anomaly/models/{model.id}/threshold", {"threshold": 1e-9}, format="json")
    assert moved.status_code == 200 and moved.json()["metric_value"] == pytest.approx(1e-9)
    assert charlie_api.post(f"/api/v1/anomaly/models/{model.id}/threshold", {"threshold": 1}).status_code == 404
    again = upload(probe["circle/circle_0.png"], "circle_0.png")
    rescored = alice_api.post("/api/v1/anomaly/score", {"model_id": model.id, "file": again}, format="multipart")
    assert rescored.json()["results"][0]["is_anomaly"] is True
    model.refresh_from_db()
    assert [p.name for p in (settings.MEDIA_ROOT / model.file_name).parent.iterdir()] == [Path(model.file_name).name]
    fresh = upload(probe["circle/circle_0.png"], "circle_0.png")
    refused = charlie_api.post("/api/v1/anomaly/score", {"model_id": model.id, "file": fresh}, format="multipart")
    assert refused.status_code == 404


def test_an_image_model_cannot_be_used_as_an_anomaly_detector(alice_api, trained):
    model_id = alice_api.get(f"/api/v1/imaging/runs/{trained}/").json()["model_id"]
    image = upload(png(Image.new("L", (32, 32))), "x.png")
    response = alice_api.post("/api/v1/anomaly/score", {"model_id": model_id, "file": image}, format="multipart")
    assert response.status_code == 404


def test_the_model_endpoint_shows_metrics_to_the_owner_only(alice_api, charlie_api, trained):
    model_id = alice_api.get(f"/api/v1/imaging/runs/{trained}/").json()["model_id"]
    body = alice_api.get(f"/api/v1/imaging/models/{model_id}/").json()
    assert body["metric_name"] == "accuracy" and body["metrics"]["class_names"] == ["circle", "square"]
    assert charlie_api.get(f"/api/v1/imaging/models/{model_id}/").status_code == 404


def test_a_zip_over_the_upload_limit_is_refused_before_it_is_opened(alice_api, settings):
    settings.MAX_IMAGE_ZIP_MB = 1
    archive = zip_bytes({**shapes_entries(), "circle/big.png": os.urandom(1024 * 1024 + 10)})
    response = alice_api.post("/api/train_model", {"file": upload(archive)}, format="multipart")
    assert response.status_code == 400 and response.json()["code"] == "file_too_large"
    assert media_files(settings.MEDIA_ROOT) == []


def test_the_storage_check_knows_every_file_imaging_wrote(trained):
    from modelhub.selectors import media_storage_report

    report = media_storage_report()
    assert report["file_count"] > 12
    assert report["orphans"]["count"] == 0 and report["missing"]["count"] == 0


def test_an_image_run_is_polled_at_the_shared_training_runs_url_with_the_documented_shape(alice_api, trained):
    body = alice_api.get(f"/api/v1/training-runs/{trained}/").json()
    assert body["kind"] == "image" and body["status"] == "succeeded" and body["progress"] == 1.0
    assert {"id", "kind", "status", "progress", "message", "error", "models"} <= set(body)
    (model,) = body["models"]
    assert set(model) == {"id", "model_name", "metric_name", "metric_value", "metrics", "intervals", "threshold"}
    assert model["model_name"] == "resnet18" and model["metric_name"] == "accuracy"
    assert model["intervals"] == {} and model["threshold"] is None
    assert model["id"] == alice_api.get(f"/api/v1/imaging/runs/{trained}/").json()["model_id"]


def test_stopping_a_finished_image_run_at_the_shared_url_is_refused_with_409(alice_api, trained):
    response = alice_api.post(f"/api/v1/training-runs/{trained}/stop/")
    assert response.status_code == 409 and response.json()["code"] == "run_finished"


def test_a_queued_image_run_is_stopped_at_the_shared_url(alice_api, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        response = alice_api.post(
            "/api/train_model",
            {"file": upload(zip_bytes(shapes_entries())), "architecture": "resnet18", "level": 1, "image_size": 32},
            format="multipart",
        )
    run_id = response.json()["id"]
    stopped = alice_api.post(f"/api/v1/training-runs/{run_id}/stop/")
    assert stopped.status_code == 202 and stopped.json()["kind"] == "image"
    assert TrainingRun.objects.get(id=run_id).stop_requested


def test_charlie_gets_404_for_alices_image_run_at_the_shared_url(charlie_api, trained):
    assert charlie_api.get(f"/api/v1/training-runs/{trained}/").status_code == 404
    assert charlie_api.post(f"/api/v1/training-runs/{trained}/stop/").status_code == 404
