"""Augmentation jobs: ZIP in, originals + variants out as a ZIP for the owner only; preview; refusals."""

import io
import zipfile

import pytest

from imaging.models import AugmentationJob

from .conftest import media_files, shapes_entries, upload, zip_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def finished_job(alice_api, django_capture_on_commit_callbacks):
    entries = shapes_entries(per_class=2, size=24)
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_api.post(
            "/api/v1/augment/",
            {"file": upload(zip_bytes(entries)), "preset": "chest_xray", "per_image": 2},
            format="multipart",
        )
    assert response.status_code == 202, response.json()
    return response.json()["id"]


def test_augmentation_returns_a_zip_with_originals_and_variants_in_their_class_folders(alice_api, finished_job):
    job = alice_api.get(f"/api/v1/augment/{finished_job}/").json()
    assert job["status"] == "succeeded", job
    assert job["report"]["written"] == 12 and job["download_url"]
    response = alice_api.get(job["download_url"])
    assert response.status_code == 200
    names = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))).namelist()
    assert len(names) == 12
    assert "circle/circle_0.png" in names and "square/square_1_aug2.png" in names


def test_the_working_copies_are_removed_and_only_the_result_zip_is_kept(finished_job, settings):
    job = AugmentationJob.objects.get(id=finished_job)
    files = [name for name in media_files(settings.MEDIA_ROOT) if (settings.MEDIA_ROOT / name).is_file()]
    assert files == [job.result_name]


def test_charlie_gets_404_for_alices_augmentation_and_its_download(charlie_api, finished_job):
    assert charlie_api.get(f"/api/v1/augment/{finished_job}/").status_code == 404
    assert charlie_api.get(f"/api/v1/augment/{finished_job}/download").status_code == 404


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ({"preset": "no_such_preset", "per_image": 2}, "preset"),
        ({"preset": "light", "per_image": 2, "zip": {"../x.png": b"x"}}, "parent_path"),
    ],
)
def test_refused_augmentations_store_nothing(alice_api, settings, data, code):
    entries = data.pop("zip", None) or shapes_entries(per_class=1, size=24)
    response = alice_api.post("/api/v1/augment/", {"file": upload(zip_bytes(entries)), **data}, format="multipart")
    assert response.status_code == 400 and response.json()["code"] == code
    assert media_files(settings.MEDIA_ROOT) == [] and not AugmentationJob.objects.exists()


def test_preview_shows_a_grid_for_the_chosen_preset(alice_api):
    images = [upload(data, name.split("/")[-1]) for name, data in shapes_entries(per_class=1, size=24).items()]
    response = alice_api.post("/api/v1/augment/preview", {"preset": "light", "file": images}, format="multipart")
    assert response.status_code == 200 and response.json()["preview"].startswith("data:image/png;base64,")


def test_the_augment_page_lists_the_presets(client, alice):
    client.force_login(alice)
    page = client.get("/augment").content.decode()
    assert 'value="chest_xray"' in page and "imaging-augment.js" in page
