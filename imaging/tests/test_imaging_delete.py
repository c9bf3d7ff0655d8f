"""Deleting image data: datasets and augmentations through the API (owner only, files really gone), and retention."""

import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AuditEvent
from imaging import services
from imaging.models import AugmentationJob, ImageDataset
from modelhub.models import TrainingModel, TrainingRun
from modelhub.services import retention_sweep

from .conftest import media_files, shapes_entries, upload, zip_bytes

pytestmark = pytest.mark.django_db


def _dataset(user) -> ImageDataset:
    return services.image_dataset_create(user=user, uploaded_file=upload(zip_bytes(shapes_entries())))


def _stored_files(settings, folder: str) -> list:
    return [path for path in (settings.MEDIA_ROOT / folder).rglob("*") if path.is_file()]


def _run_on(dataset, status=TrainingRun.Status.QUEUED) -> TrainingRun:
    return TrainingRun.objects.create(
        user_id=dataset.owner_id,
        kind=TrainingRun.Kind.IMAGE,
        status=status,
        dataset_type=services.DATASET_TYPE,
        dataset_id=str(dataset.id),
    )


def _days_ago(days: int):
    return timezone.now() - timedelta(days=days)


# ----------------------------------------------------------------------------- datasets through the API
def test_the_owner_deletes_a_dataset_and_its_images_leave_the_disk(
    alice_api, alice, settings, django_capture_on_commit_callbacks
):
    dataset = _dataset(alice)
    assert len(_stored_files(settings, dataset.folder)) == 12
    assert alice_api.get(f"/api/v1/imaging/datasets/{dataset.id}/").json()["class_counts"] == {
        "circle": 6,
        "square": 6,
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_api.delete(f"/api/v1/imaging/datasets/{dataset.id}/")
    assert response.status_code == 204
    assert not ImageDataset.objects.filter(id=dataset.id).exists()
    assert not (settings.MEDIA_ROOT / dataset.folder).exists()
    assert [p for p in settings.MEDIA_ROOT.rglob("*") if p.is_file()] == []
    assert AuditEvent.objects.filter(action=AuditEvent.Action.DELETED, target_id=str(dataset.id)).exists()
    assert alice_api.get(f"/api/v1/imaging/datasets/{dataset.id}/").status_code == 404


def test_charlie_gets_404_for_alices_dataset_and_it_stays(alice, charlie_api, settings):
    dataset = _dataset(alice)
    assert charlie_api.delete(f"/api/v1/imaging/datasets/{dataset.id}/").status_code == 404
    assert charlie_api.get(f"/api/v1/imaging/datasets/{dataset.id}/").status_code == 404
    assert charlie_api.get("/api/v1/imaging/datasets/").json() == []
    assert ImageDataset.objects.filter(id=dataset.id).exists()
    assert len(_stored_files(settings, dataset.folder)) == 12


@pytest.mark.parametrize("status", [TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING])
def test_a_dataset_in_use_by_an_active_run_is_refused_with_409(alice_api, alice, settings, status):
    dataset = _dataset(alice)
    run = _run_on(dataset, status)
    response = alice_api.delete(f"/api/v1/imaging/datasets/{dataset.id}/")
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "dataset_in_use" and body["runs"] == [run.id]
    assert f"Training run {run.id} is still using this dataset" in body["detail"]
    assert ImageDataset.objects.filter(id=dataset.id).exists()
    assert len(_stored_files(settings, dataset.folder)) == 12


def test_deleting_the_dataset_of_a_finished_run_keeps_its_model_usable(
    alice, alice_api, settings, django_capture_on_commit_callbacks
):
    data = {"file": upload(zip_bytes(shapes_entries())), "architecture": "resnet18", "level": 1, "image_size": 32}
    with django_capture_on_commit_callbacks(execute=True):
        run_id = alice_api.post("/api/train_model", data, format="multipart").json()["id"]
    run = TrainingRun.objects.get(id=run_id)
    assert run.status == "succeeded", run.error
    model = TrainingModel.objects.get(run=run)
    folder = ImageDataset.objects.get(id=int(run.dataset_id)).folder
    with django_capture_on_commit_callbacks(execute=True):
        assert alice_api.delete(f"/api/v1/imaging/datasets/{run.dataset_id}/").status_code == 204
    assert not (settings.MEDIA_ROOT / folder).exists()
    # Only the model's artefact is left on disk.
    stored = [name for name in media_files(settings.MEDIA_ROOT) if (settings.MEDIA_ROOT / name).is_file()]
    assert stored == [model.file_name]
    probe = [upload(data, name.split("/")[-1]) for name, data in shapes_entries(per_class=1, seed=3).items()]
    predicted = alice_api.post("/api/predict_image", {"model_id": model.id, "file": probe}, format="multipart")
    assert predicted.status_code == 200 and len(predicted.json()["predictions"]) == 2


# ----------------------------------------------------------------------------- augmentations through the API
@pytest.fixture
def finished_job(alice_api, django_capture_on_commit_callbacks) -> AugmentationJob:
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_api.post(
            "/api/v1/augment/",
            {"file": upload(zip_bytes(shapes_entries(per_class=2, size=24))), "preset": "chest_xray", "per_image": 1},
            format="multipart",
        )
    job = AugmentationJob.objects.get(id=response.json()["id"])
    assert job.status == "succeeded", job.error
    return job


def test_the_owner_deletes_an_augmentation_and_its_result_zip(
    alice_api, finished_job, settings, django_capture_on_commit_callbacks
):
    result = settings.MEDIA_ROOT / finished_job.result_name
    assert result.is_file()
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_api.delete(f"/api/v1/augment/{finished_job.id}/")
    assert response.status_code == 204
    assert not result.exists() and not (settings.MEDIA_ROOT / finished_job.folder).exists()
    assert not AugmentationJob.objects.filter(id=finished_job.id).exists()
    assert alice_api.get(f"/api/v1/augment/{finished_job.id}/download").status_code == 404


def test_charlie_gets_404_for_alices_augmentation_delete(charlie_api, finished_job, settings):
    assert charlie_api.delete(f"/api/v1/augment/{finished_job.id}/").status_code == 404
    assert (settings.MEDIA_ROOT / finished_job.result_name).is_file()


def test_a_running_augmentation_cannot_be_deleted(alice_api, finished_job, settings):
    AugmentationJob.objects.filter(id=finished_job.id).update(status=AugmentationJob.Status.RUNNING)
    response = alice_api.delete(f"/api/v1/augment/{finished_job.id}/")
    assert response.status_code == 409 and response.json()["code"] == "augmentation_running"
    assert (settings.MEDIA_ROOT / finished_job.result_name).is_file()


# ----------------------------------------------------------------------------- retention
@pytest.fixture
def sweep(django_capture_on_commit_callbacks):
    def run():
        with django_capture_on_commit_callbacks(execute=True):
            return retention_sweep()

    return run


def _age(dataset: ImageDataset, days: int) -> None:
    ImageDataset.objects.filter(pk=dataset.pk).update(created_at=_days_ago(days))


def test_retention_removes_old_image_datasets_but_never_one_a_kept_model_or_active_run_uses(
    alice, settings, sweep, caplog
):
    settings.RETENTION_DAYS = 15
    orphan, recent, pinned, selected, active, expired = (_dataset(alice) for _ in range(6))
    for dataset in (orphan, pinned, selected, active, expired):
        _age(dataset, 16)
    _age(recent, 14)
    for dataset, flags in ((pinned, {"pinned": True}), (selected, {"is_selected": True}), (expired, {})):
        run = _run_on(dataset, TrainingRun.Status.SUCCEEDED)
        model = TrainingModel.objects.create(user=alice, run=run, model_name="resnet18", **flags)
        TrainingModel.objects.filter(pk=model.pk).update(created_at=_days_ago(16))
    _run_on(active, TrainingRun.Status.RUNNING)

    with caplog.at_level(logging.INFO, logger="modelhub.services"):
        report = sweep()

    gone = {orphan.pk, expired.pk}
    assert set(ImageDataset.objects.values_list("pk", flat=True)) == {recent.pk, pinned.pk, selected.pk, active.pk}
    for dataset in (orphan, recent, pinned, selected, active, expired):
        assert (settings.MEDIA_ROOT / dataset.folder).exists() == (dataset.pk not in gone)
    assert report.image_datasets_deleted == 2 and report.models_deleted == 1
    assert report.files_deleted >= 2 and report.bytes_freed > 0
    assert "folders of 2 image datasets and 0 augmentations" in caplog.text
    audit = AuditEvent.objects.filter(action=AuditEvent.Action.RETENTION).latest("id")
    assert audit.details["image_datasets_deleted"] == 2


def test_retention_removes_finished_augmentations_older_than_the_cutoff(alice_api, settings, sweep, finished_job):
    settings.RETENTION_DAYS = 15
    recent = AugmentationJob.objects.create(owner=finished_job.owner, preset="light", per_image=1, folder="x")
    AugmentationJob.objects.filter(pk=recent.pk).update(status="succeeded", finished_at=_days_ago(2))
    running = AugmentationJob.objects.create(owner=finished_job.owner, preset="light", per_image=1, folder="y")
    AugmentationJob.objects.filter(pk=running.pk).update(status="running", created_at=_days_ago(30))
    AugmentationJob.objects.filter(pk=finished_job.pk).update(finished_at=_days_ago(16))

    report = sweep()

    assert report.augmentations_deleted == 1
    assert set(AugmentationJob.objects.values_list("pk", flat=True)) == {recent.pk, running.pk}
    assert not (settings.MEDIA_ROOT / finished_job.folder).exists()
