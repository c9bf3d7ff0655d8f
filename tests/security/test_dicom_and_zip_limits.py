"""Issue 11 #4: DICOM pixel cap, byte limits of the predict endpoints, ZIP directory checks before extraction.

An 81 MB 9000×9000 DICOM posted to /api/predict_image took 49 s and 6.6 GB: pydicom decoded every pixel before
anything looked at the size. Now rows × columns (the 64-megapixel raster cap) and the frame count are read from the
header (`stop_before_pixels`) and refused before a pixel is decoded, for single files and inside ZIPs; the attack
files here declare 9000×9000 over a tiny PixelData, and a spy on pydicom's decoder proves it is never reached.
/api/predict_image and /api/predict_tabular have byte limits of their own, and a ZIP's entry count, directory
size and member sizes are judged from its central directory before anything is extracted.
"""

import io
import time
import zipfile

import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.pixels.decoders.base import Decoder

from imaging.ml import archive
from imaging.ml.errors import ImageDecodeError
from imaging.ml.images import decode_image
from imaging.tests.conftest import png, shapes_entries, upload, zip_bytes
from modelhub.models import TrainingModel

pytestmark = pytest.mark.django_db

GENEROUS_SECONDS = 10


def dicom_declaring(*, rows: int, columns: int, frames: int | None = None) -> bytes:
    """CT_small.dcm whose header claims `rows` × `columns` (× `frames`); its PixelData stays 128×128."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.Rows, ds.Columns = rows, columns
    if frames is not None:
        ds.NumberOfFrames = frames
    buffer = io.BytesIO()
    ds.save_as(buffer)
    return buffer.getvalue()


@pytest.fixture
def decoder_calls(monkeypatch):
    """Every call into pydicom's pixel decoder (Dataset.pixel_array and pydicom.pixels.pixel_array both go there)."""
    calls = []
    original = Decoder.as_array

    def spy(self, *args, **kwargs):
        calls.append(kwargs.get("index"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Decoder, "as_array", spy)
    return calls


@pytest.fixture
def alice_api(api_client, alice):
    api_client.force_authenticate(alice)
    return api_client


@pytest.fixture
def image_model(alice_api, django_capture_on_commit_callbacks) -> int:
    """A real, tiny classifier (resnet18, 32 px, level 1, 12 synthetic images), as imaging/tests/test_api.py trains."""
    data = {"file": upload(zip_bytes(shapes_entries())), "architecture": "resnet18", "level": 1, "image_size": 32}
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_api.post("/api/train_model", data, format="multipart")
    assert response.status_code == 202, response.json()
    return TrainingModel.objects.get(run_id=response.json()["id"]).id


def post_images(client, model_id, files):
    started = time.perf_counter()
    response = client.post("/api/predict_image", {"model_id": model_id, "file": files}, format="multipart")
    return response, time.perf_counter() - started


def test_a_9000_square_dicom_is_refused_from_its_header_alone_and_a_normal_one_still_predicts(
    alice_api, image_model, decoder_calls
):
    attack = dicom_declaring(rows=9000, columns=9000)

    single, single_seconds = post_images(alice_api, image_model, [upload(attack, "huge.dcm")])
    zipped, zipped_seconds = post_images(alice_api, image_model, [upload(zip_bytes({"scans/huge.dcm": attack}))])
    frames, _ = post_images(
        alice_api, image_model, [upload(dicom_declaring(rows=128, columns=128, frames=5000), "cine.dcm")]
    )

    assert decoder_calls == [], "no pixel of an oversized file is decoded"
    assert single.status_code == 400, single.content[:300]
    assert single.json()["code"] == "too_many_pixels"
    assert "huge.dcm" in single.json()["detail"] and "9000×9000" in single.json()["detail"]
    assert zipped.status_code == 400 and zipped.json()["code"] == "too_many_pixels"
    assert "scans/huge.dcm" in zipped.json()["detail"]
    assert frames.status_code == 400 and frames.json()["code"] == "too_many_frames"
    assert single_seconds < GENEROUS_SECONDS and zipped_seconds < GENEROUS_SECONDS

    normal, _ = post_images(alice_api, image_model, [upload(open(get_testdata_file("CT_small.dcm"), "rb").read())])
    assert normal.status_code == 200, normal.content[:300]
    assert normal.json()["predictions"][0]["label"] in ("circle", "square")
    assert decoder_calls, "a DICOM within the caps is decoded as before"


def test_a_dicom_in_a_training_zip_is_capped_before_decoding_too(decoder_calls):
    """Dataset intake decodes through decode_image: the header check comes first there as well."""
    with pytest.raises(ImageDecodeError) as refused:
        decode_image(dicom_declaring(rows=9000, columns=9000))

    assert refused.value.code == "too_many_pixels"
    assert decoder_calls == []


def test_a_multi_frame_dicom_decodes_only_its_first_frame(decoder_calls):
    decoded = decode_image(get_testdata_file("emri_small.dcm"))

    assert decoded.size == (64, 64)
    assert any("first one is used" in note for note in decoded.notes)
    assert decoder_calls == [0], "one call, for frame 0 only (not all ten frames)"


def test_predict_image_has_a_byte_limit_judged_before_the_body_is_read(alice_api, settings):
    settings.MAX_PREDICT_IMAGE_MB = 1
    big = upload(b"\x89PNG\r\n\x1a\n" + bytes(2 * 1024 * 1024), "big.png")

    response, _ = post_images(alice_api, 999_999, [big])

    assert response.status_code == 400
    assert response.json()["code"] == "file_too_large"
    assert "1 MB" in response.json()["detail"]


def test_anomaly_scoring_shares_the_image_byte_limit(alice_api, settings):
    settings.MAX_PREDICT_IMAGE_MB = 1
    big = upload(bytes(2 * 1024 * 1024), "big.png")

    response = alice_api.post("/api/v1/anomaly/score", {"model_id": 1, "file": [big]}, format="multipart")

    assert response.status_code == 400 and response.json()["code"] == "file_too_large"


def test_predict_tabular_has_a_csv_byte_limit(alice_api, settings):
    settings.MAX_PREDICT_CSV_MB = 1
    rows = "".join(f"{40 + index % 40},{20 + index % 15}.5,no\n" for index in range(120_000))
    content = ("age,bmi,smoker\n" + rows).encode()
    assert len(content) > 1024 * 1024
    upload_file = io.BytesIO(content)
    upload_file.name = "batch.csv"

    response = alice_api.post("/api/predict_tabular", {"model_id": 1, "file": upload_file}, format="multipart")

    assert response.status_code == 400
    assert response.json()["code"] == "file_too_large"
    assert "1 MB" in response.json()["detail"]


def test_a_zip_whose_directory_lists_too_many_entries_is_refused_before_zipfile_reads_it(
    alice_api, monkeypatch, settings
):
    """Folder entries and macOS clutter were not counted: thousands of them were read into objects, then skipped."""
    settings.MAX_ZIP_FILES = 20
    entries = shapes_entries()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as built:
        for index in range(400):
            built.writestr(f"__MACOSX/._clutter_{index}", b"")
            built.writestr(f"folder_{index}/", b"")
        for name, data in entries.items():
            built.writestr(name, data)
    opened = []
    real_zipfile = zipfile.ZipFile
    monkeypatch.setattr(archive.zipfile, "ZipFile", lambda *a, **k: opened.append(1) or real_zipfile(*a, **k))

    response = alice_api.post(
        "/api/train_model",
        {"file": upload(buffer.getvalue()), "architecture": "resnet18", "level": 1, "image_size": 32},
        format="multipart",
    )

    assert response.status_code == 400, response.content[:300]
    assert response.json()["code"] == "too_many_files"
    assert "812 entries" in response.json()["detail"]
    assert opened == [], "the refusal came from the end record, before zipfile read the directory"


def test_a_prediction_zip_over_the_file_count_is_refused_before_anything_is_extracted(
    alice_api, image_model, monkeypatch
):
    from imaging import services

    extracted = []
    real_extract = services.extract_images
    monkeypatch.setattr(services, "extract_images", lambda *a, **k: extracted.append(1) or real_extract(*a, **k))
    image = png(Image.new("L", (16, 16)))
    many = zip_bytes({f"batch/{index:03d}.png": image for index in range(services.MAX_PREDICT_FILES + 1)})

    response, _ = post_images(alice_api, image_model, [upload(many)])

    assert response.status_code == 400
    assert response.json()["code"] == "too_many_files"
    assert extracted == []
