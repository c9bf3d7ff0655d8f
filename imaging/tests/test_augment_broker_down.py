"""An augmentation the broker refuses: a 503 the client can retry, and a failed job, never one stuck "queued"."""

from unittest import mock

import pytest
from kombu.exceptions import OperationalError

from imaging.models import AugmentationJob
from imaging.tasks import augment_images
from tests import celery_harness

from .conftest import shapes_entries, upload, zip_bytes

# transaction=True: the job commits inside the request, so its on-commit send fails there, as in production.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def unreachable_broker():
    with celery_harness.unreachable_broker():
        yield


def augment(client):
    return client.post(
        "/api/v1/augment/",
        {"file": upload(zip_bytes(shapes_entries(per_class=2, size=24))), "preset": "chest_xray", "per_image": 1},
        format="multipart",
    )


def test_when_redis_is_unreachable_an_augmentation_is_a_503_and_the_job_is_failed_not_left_queued(
    alice_api, unreachable_broker, settings
):
    response = augment(alice_api)

    assert response.status_code == 503, response.content
    body = response.json()
    assert body["code"] == "service_unavailable" and "start it again" in body["detail"]
    assert response["Retry-After"]
    job = AugmentationJob.objects.get()
    assert job.status == AugmentationJob.Status.FAILED and job.finished_at is not None
    assert "job queue" in job.error and "job queue" in job.message
    # The extracted images are removed: no worker will ever read them.
    assert not (settings.MEDIA_ROOT / job.folder / "source").exists()


def test_a_job_the_broker_refused_shows_failed_to_its_owner_and_can_be_deleted(alice_api, charlie_api):
    refused = OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
    with mock.patch.object(augment_images, "apply_async", side_effect=refused):
        assert augment(alice_api).status_code == 503
    job = AugmentationJob.objects.get()

    shown = alice_api.get(f"/api/v1/augment/{job.id}/").json()
    assert shown["status"] == "failed" and "job queue" in shown["error"]
    assert charlie_api.get(f"/api/v1/augment/{job.id}/").status_code == 404
    # Queued or running jobs cannot be deleted (409); a refused one is over, so it can.
    assert alice_api.delete(f"/api/v1/augment/{job.id}/").status_code == 204
    assert not AugmentationJob.objects.exists()


def test_once_the_broker_is_back_the_same_upload_is_accepted_and_runs(alice_api):
    refused = OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
    with mock.patch.object(augment_images, "apply_async", side_effect=refused):
        assert augment(alice_api).status_code == 503

    response = augment(alice_api)  # eager in the tests: the job runs inside the request

    assert response.status_code == 202, response.content
    assert AugmentationJob.objects.get(id=response.json()["id"]).status == AugmentationJob.Status.SUCCEEDED
    assert AugmentationJob.objects.filter(status=AugmentationJob.Status.FAILED).count() == 1
