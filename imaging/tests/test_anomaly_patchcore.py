"""PatchCore through the API: trained from a ZIP of normal images (the default mode), scoring a defective image with
its anomaly map at the image's own size, the mode options and their refusals, and the page that offers it."""

import base64
import io

import numpy as np
import pytest
from PIL import Image

from imaging.ml.anomaly_families import make_images, make_normals
from imaging.tests.ml.test_patchcore import CapsuleScene
from modelhub.models import TrainingModel, TrainingRun

from .conftest import png, upload, zip_bytes

pytestmark = pytest.mark.django_db


def _normal_zip(count: int = 30, size: int = 64) -> bytes:
    images = make_normals(CapsuleScene(), count, size, np.random.default_rng(3), grey=True)
    return zip_bytes({f"capsule_{i:02d}.png": png(image) for i, image in enumerate(images)})


def _train(client, captured, **fields):
    data = {"file": upload(_normal_zip()), "level": 1, **fields}
    with captured(execute=True):
        return client.post("/api/v1/anomaly/train", data, format="multipart")


def _decode_data_url(url: str) -> Image.Image:
    assert url.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))


@pytest.fixture
def patchcore_model(alice_api, django_capture_on_commit_callbacks):
    response = _train(alice_api, django_capture_on_commit_callbacks, mode="patchcore")
    assert response.status_code == 202, response.json()
    run = TrainingRun.objects.get(id=response.json()["id"])
    assert run.status == "succeeded", run.error
    return TrainingModel.objects.get(run=run)


def test_a_patchcore_detector_trains_records_its_run_and_flags_a_defective_image(alice_api, patchcore_model):
    run = patchcore_model.run
    assert run.config["mode"] == "patchcore" and run.config["input_size"] == 224
    metrics = patchcore_model.metrics
    assert metrics["mode"] == "patchcore" and metrics["detectors"] == ["patchcore"]
    assert patchcore_model.model_name == "patchcore" and patchcore_model.metric_name == "threshold"
    # 24 of 30 images feed the memory bank (6 are held out for the threshold), 28 × 28 patches each at 224 px.
    assert metrics["train_images"] == 30 and metrics["val_images"] == 6
    assert metrics["patches_seen"] == 24 * 28 * 28
    assert 0 < metrics["memory_bank_size"] <= metrics["patches_seen"] * metrics["coreset_ratio"] + 1
    assert metrics["histogram"]["threshold"] == pytest.approx(patchcore_model.metric_value)
    assert len(metrics["histogram"]["scores"]) == 6

    rng = np.random.default_rng(21)
    (spotted,), (mask,) = make_images(CapsuleScene(), "spot", 1, 64, rng, grey=True)
    (normal,) = make_normals(CapsuleScene(), 1, 64, rng, grey=True)
    # A wider, non-square copy of the defective image: the map must come back at exactly that size.
    wide = spotted.resize((160, 96))
    files = [upload(png(spotted), "spot.png"), upload(png(normal), "normal.png"), upload(png(wide), "wide.png")]
    body = alice_api.post(
        "/api/v1/anomaly/score", {"model_id": patchcore_model.id, "file": files}, format="multipart"
    ).json()
    assert body["model_id"] == patchcore_model.id
    by_file = {item["file"]: item for item in body["results"]}
    for item in by_file.values():
        assert {"file", "score", "threshold", "is_anomaly"} <= set(item)
        assert item["mode"] == "patchcore" and item["threshold"] == pytest.approx(patchcore_model.metric_value)
        assert item["is_anomaly"] == (item["score"] > item["threshold"])
    assert by_file["spot.png"]["is_anomaly"] is True
    assert by_file["spot.png"]["score"] > by_file["normal.png"]["score"]
    overlay = _decode_data_url(by_file["wide.png"]["heatmap"])
    assert overlay.size == (160, 96) and by_file["wide.png"]["map_size"] == [160, 96]
    assert _decode_data_url(by_file["spot.png"]["heatmap"]).size == (64, 64)
    # The overlay is red (JET: red high, blue low) over the spot and mostly blue elsewhere.
    pixels = np.asarray(_decode_data_url(by_file["spot.png"]["heatmap"]).convert("RGB"), dtype=float)
    redness = pixels[..., 0] - pixels[..., 2]
    assert redness[mask].mean() > redness[~mask].mean() + 40


def test_charlie_cannot_score_with_or_move_the_threshold_of_alices_detector(charlie_api, patchcore_model):
    image = upload(png(Image.new("L", (64, 64), 90)), "x.png")
    response = charlie_api.post("/api/v1/anomaly/score", {"model_id": patchcore_model.id, "file": image})
    assert response.status_code == 404
    moved = charlie_api.post(f"/api/v1/anomaly/models/{patchcore_model.id}/threshold", {"threshold": 1.0})
    assert moved.status_code == 404


def test_the_threshold_of_a_patchcore_detector_can_be_moved_and_is_kept(alice_api, patchcore_model):
    moved = alice_api.post(f"/api/v1/anomaly/models/{patchcore_model.id}/threshold", {"threshold": 1e-6}, format="json")
    assert moved.status_code == 200 and moved.json()["metric_value"] == pytest.approx(1e-6)
    image = make_normals(CapsuleScene(), 1, 64, np.random.default_rng(8), grey=True)[0]
    body = alice_api.post(
        "/api/v1/anomaly/score", {"model_id": patchcore_model.id, "file": upload(png(image), "n.png")}
    ).json()
    assert body["results"][0]["is_anomaly"] is True and body["results"][0]["threshold"] == pytest.approx(1e-6)


def test_patchcore_is_the_default_and_enhanced_alone_still_means_the_autoencoder_ensemble(
    alice_api, django_capture_on_commit_callbacks
):
    default = _train(alice_api, django_capture_on_commit_callbacks, image_size=32)
    run = TrainingRun.objects.get(id=default.json()["id"])
    assert run.status == "succeeded", run.error
    assert run.config["mode"] == "patchcore" and run.config["input_size"] == 224
    ensemble = TrainingRun.objects.get(
        id=_train(alice_api, django_capture_on_commit_callbacks, enhanced="true", image_size=16).json()["id"]
    )
    assert ensemble.config["mode"] == "ensemble" and ensemble.config["enhanced"] is True
    assert ensemble.status == "succeeded", ensemble.error


def test_an_autoencoder_mode_detector_still_trains_and_scores(alice_api, django_capture_on_commit_callbacks):
    response = _train(alice_api, django_capture_on_commit_callbacks, mode="autoencoder", image_size=16)
    run = TrainingRun.objects.get(id=response.json()["id"])
    assert run.status == "succeeded", run.error
    model = TrainingModel.objects.get(run=run)
    assert model.model_name == "conv_autoencoder" and model.metrics["mode"] == "autoencoder"
    image = Image.new("L", (48, 40), 120)
    item = alice_api.post("/api/v1/anomaly/score", {"model_id": model.id, "file": upload(png(image), "a.png")}).json()[
        "results"
    ][0]
    assert item["mode"] == "reconstruction" and "reconstruction_error" in item
    assert _decode_data_url(item["heatmap"]).size == (48, 40)


@pytest.mark.parametrize(
    ("fields", "word"),
    [({"mode": "patchcore", "enhanced": "true"}, "PatchCore"), ({"mode": "isolation"}, "mode")],
)
def test_a_contradictory_or_unknown_mode_is_refused_before_anything_is_stored(alice_api, settings, fields, word):
    response = alice_api.post(
        "/api/v1/anomaly/train", {"file": upload(_normal_zip(12)), "level": 1, **fields}, format="multipart"
    )
    assert response.status_code == 400
    body = response.json()
    assert word in body["detail"] and body["code"]
    assert list(settings.MEDIA_ROOT.iterdir()) == [] and not TrainingRun.objects.exists()


def test_the_anomaly_page_offers_patchcore_first_and_the_map_script(client, alice):
    client.force_login(alice)
    page = client.get("/anomaly_detection").content.decode()
    assert '<option value="patchcore" selected>' in page
    assert page.index('value="patchcore"') < page.index('value="autoencoder"')
    assert "js/imaging-anomaly.js" in page and "css/imaging-anomaly.css" in page
