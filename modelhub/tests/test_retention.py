import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AuditEvent
from modelhub import tasks
from modelhub.models import PreprocessingData, TrainingModel
from modelhub.services import retention_sweep

from .factories import PreprocessingDataFactory, TrainingModelFactory, TrainingRunFactory

pytestmark = pytest.mark.django_db


def days_ago(days):
    return timezone.now() - timedelta(days=days)


@pytest.fixture
def sweep(django_capture_on_commit_callbacks):
    """Run the sweep and its after-commit file deletion, as a worker's own transaction would."""

    def run(**kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return retention_sweep(**kwargs)

    return run


def test_it_deletes_old_models_and_their_files(alice, write_artifact, media_root, sweep):
    name = write_artifact(alice, "1/old.joblib", b"x" * 1234)
    old = TrainingModelFactory(user=alice, file_name=name, created_at=days_ago(16))

    report = sweep()

    assert not TrainingModel.objects.filter(pk=old.pk).exists()
    assert not (media_root / name).exists()
    assert (report.models_deleted, report.files_deleted, report.bytes_freed) == (1, 1, 1234)


def test_it_keeps_models_younger_than_retention_days(alice, write_artifact, media_root, sweep, settings):
    settings.RETENTION_DAYS = 15
    name = write_artifact(alice, "1/recent.joblib")
    recent = TrainingModelFactory(user=alice, file_name=name, created_at=days_ago(14))

    report = sweep()

    assert TrainingModel.objects.filter(pk=recent.pk).exists()
    assert (media_root / name).exists()
    assert report.models_deleted == 0


def test_retention_days_setting_moves_the_cutoff(alice, sweep, settings):
    settings.RETENTION_DAYS = 3
    TrainingModelFactory(user=alice, created_at=days_ago(4))

    assert sweep().models_deleted == 1


@pytest.mark.parametrize("flag", ["is_selected", "pinned"])
def test_it_never_deletes_a_selected_or_pinned_model(alice, write_artifact, media_root, sweep, flag):
    name = write_artifact(alice, "1/kept.joblib")
    kept = TrainingModelFactory(user=alice, file_name=name, created_at=days_ago(400), **{flag: True})

    report = sweep()

    assert TrainingModel.objects.filter(pk=kept.pk).exists()
    assert (media_root / name).exists()
    assert report.models_deleted == 0


def test_it_never_touches_a_file_outside_media_root(alice, media_root, tmp_path, sweep):
    outside = tmp_path / "outside.joblib"
    outside.write_bytes(b"not ours")
    TrainingModelFactory(user=alice, file_name=str(outside), created_at=days_ago(16))
    TrainingModelFactory(user=alice, file_name="../outside.joblib", created_at=days_ago(16))

    report = sweep()

    assert outside.read_bytes() == b"not ours"
    assert report.models_deleted == 2
    assert report.files_deleted == 0
    assert sorted(report.paths_refused) == sorted([str(outside), "../outside.joblib"])


def test_it_does_not_follow_a_link_out_of_media_root(alice, media_root, tmp_path, sweep):
    target = tmp_path / "target.joblib"
    target.write_bytes(b"elsewhere")
    link = media_root / str(alice.pk) / "models" / "link.joblib"
    link.parent.mkdir(parents=True)
    link.symlink_to(target)
    TrainingModelFactory(user=alice, file_name=f"{alice.pk}/models/link.joblib", created_at=days_ago(16))

    report = sweep()

    assert target.read_bytes() == b"elsewhere"
    assert report.files_deleted == 0 and report.paths_refused


def test_it_does_not_delete_another_users_file_named_by_a_row(alice, charlie, write_artifact, media_root, sweep):
    charlies_file = write_artifact(charlie, "1/charlie.joblib")
    TrainingModelFactory(user=alice, file_name=charlies_file, created_at=days_ago(16))

    report = sweep()

    assert (media_root / charlies_file).exists()
    assert report.paths_refused == [charlies_file]


def test_it_keeps_a_file_a_surviving_model_still_names(alice, write_artifact, media_root, sweep):
    name = write_artifact(alice, "1/shared.joblib")
    TrainingModelFactory(user=alice, file_name=name, created_at=days_ago(16))
    TrainingModelFactory(user=alice, file_name=name, created_at=days_ago(16), pinned=True)

    report = sweep()

    assert (media_root / name).exists()
    assert report.models_deleted == 1 and report.files_deleted == 0


def test_it_deletes_a_file_named_by_model_url_under_media_url(alice, write_artifact, media_root, sweep):
    name = write_artifact(alice, "1/report.html")
    TrainingModelFactory(user=alice, model_url=f"/media/{name}", created_at=days_ago(16))

    sweep()

    assert not (media_root / name).exists()


def test_it_deletes_a_multi_file_artefact_folder(alice, write_artifact, media_root, sweep):
    write_artifact(alice, "1/bundle/weights.pt", b"12345")
    write_artifact(alice, "1/bundle/labels.json", b"123")
    TrainingModelFactory(user=alice, file_name=f"{alice.pk}/models/1/bundle", created_at=days_ago(16))

    report = sweep()

    assert not (media_root / str(alice.pk) / "models" / "1" / "bundle").exists()
    assert (report.files_deleted, report.bytes_freed) == (1, 8)


def test_a_row_whose_file_is_already_gone_is_deleted_without_error(alice, media_root, sweep):
    TrainingModelFactory(user=alice, file_name=f"{alice.pk}/models/1/vanished.joblib", created_at=days_ago(16))

    report = sweep()

    assert report.models_deleted == 1
    assert report.files_already_missing == 1


def test_files_are_deleted_only_after_the_rows_are_committed(
    alice, write_artifact, media_root, django_capture_on_commit_callbacks
):
    name = write_artifact(alice, "1/old.joblib")
    TrainingModelFactory(user=alice, file_name=name, created_at=days_ago(16))

    with django_capture_on_commit_callbacks() as callbacks:
        retention_sweep()
        assert not TrainingModel.objects.exists()
        assert (media_root / name).exists()

    assert len(callbacks) == 1
    callbacks[0]()
    assert not (media_root / name).exists()


def test_it_deletes_old_preprocessing_but_keeps_that_of_kept_models(alice, sweep):
    old = PreprocessingDataFactory(user=alice, created_at=days_ago(16))
    recent = PreprocessingDataFactory(user=alice, created_at=days_ago(1))
    kept_run = TrainingRunFactory(user=alice)
    TrainingModelFactory(user=alice, run=kept_run, is_selected=True, created_at=days_ago(30))
    of_kept_model = PreprocessingDataFactory(user=alice, run=kept_run, created_at=days_ago(30))

    report = sweep()

    remaining = set(PreprocessingData.objects.values_list("pk", flat=True))
    assert remaining == {recent.pk, of_kept_model.pk}
    assert old.pk not in remaining
    assert report.preprocessing_deleted == 1


def test_it_writes_one_audit_event_with_what_it_freed(alice, write_artifact, sweep):
    name = write_artifact(alice, "1/old.joblib", b"y" * 10)
    TrainingModelFactory(user=alice, file_name=name, created_at=days_ago(16))
    PreprocessingDataFactory(user=alice, created_at=days_ago(16))

    sweep()

    event = AuditEvent.objects.get(action=AuditEvent.Action.RETENTION)
    assert event.details["models_deleted"] == 1
    assert event.details["preprocessing_deleted"] == 1
    assert event.details["files_deleted"] == 1
    assert event.details["bytes_freed"] == 10
    assert event.details["retention_days"] == 15


def test_it_logs_what_it_freed(alice, write_artifact, sweep, caplog):
    TrainingModelFactory(user=alice, file_name=write_artifact(alice, "1/a.joblib", b"z" * 7), created_at=days_ago(16))

    with caplog.at_level(logging.INFO, logger="modelhub.services"):
        sweep()

    assert "freed 1 models, 0 preprocessing rows, 1 files, 7 bytes" in caplog.text


def test_the_beat_task_runs_the_sweep(alice, write_artifact, media_root, django_capture_on_commit_callbacks):
    name = write_artifact(alice, "1/old.joblib")
    TrainingModelFactory(user=alice, file_name=name, created_at=days_ago(16))

    with django_capture_on_commit_callbacks(execute=True):
        result = tasks.retention_sweep.delay().get()

    assert result["models_deleted"] == 1
    assert not (media_root / name).exists()


def test_the_beat_schedule_runs_retention_daily_and_the_stale_sweep_every_ten_minutes():
    from celery.schedules import crontab

    from deepmed.celery import app

    entries = {entry["task"]: entry["schedule"] for entry in app.conf.beat_schedule.values()}
    assert isinstance(entries["modelhub.tasks.retention_sweep"], crontab)
    assert entries["modelhub.tasks.mark_stale_runs"] == 600.0


# The scheduler closes the database connection as it starts, which a test wrapped in a transaction cannot survive.
@pytest.mark.django_db(transaction=True)
def test_the_database_scheduler_picks_up_the_beat_schedule():
    from django_celery_beat.models import PeriodicTask
    from django_celery_beat.schedulers import DatabaseScheduler

    from deepmed.celery import app

    DatabaseScheduler(app=app)

    tasks_by_name = dict(PeriodicTask.objects.values_list("name", "task"))
    assert tasks_by_name["modelhub-retention-sweep"] == "modelhub.tasks.retention_sweep"
    assert tasks_by_name["modelhub-mark-stale-runs"] == "modelhub.tasks.mark_stale_runs"
