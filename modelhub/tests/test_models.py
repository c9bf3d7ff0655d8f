from datetime import timedelta
from pathlib import Path

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from modelhub.models import TrainingModel, TrainingRun
from modelhub.storage import model_artifact_path, resolve_media_path

from .factories import RunningTrainingRunFactory, TrainingModelFactory, TrainingRunFactory

pytestmark = pytest.mark.django_db

Status = TrainingRun.Status


def test_tables_keep_the_original_names():
    from modelhub.models import PreprocessingData

    assert TrainingRun._meta.db_table == "training_runs"
    assert TrainingModel._meta.db_table == "training_models"
    assert PreprocessingData._meta.db_table == "preprocessing_data"
    columns = {field.column for field in TrainingModel._meta.fields}
    assert {"id", "user_id", "run_id", "model_name", "model_url", "file_name", "metric_name", "metric_value"} <= columns
    assert {"user_id", "run_name", "prompt", "created_at"} <= {field.column for field in TrainingRun._meta.fields}


def test_start_moves_a_queued_run_to_running(alice):
    run = TrainingRunFactory(user=alice)

    assert run.start(celery_task_id="task-1") is True

    run.refresh_from_db()
    assert run.status == Status.RUNNING
    assert run.started_at is not None and run.heartbeat_at is not None
    assert run.celery_task_id == "task-1"


def test_start_refuses_a_run_another_worker_already_took(alice):
    run = TrainingRunFactory(user=alice)
    same_run_elsewhere = TrainingRun.objects.get(pk=run.pk)
    assert same_run_elsewhere.start() is True

    assert run.start() is False
    assert run.status == Status.RUNNING  # refreshed from the database


def test_start_refuses_a_run_whose_stop_was_requested(alice):
    run = TrainingRunFactory(user=alice)
    TrainingRun.objects.filter(pk=run.pk).update(stop_requested=True)

    assert run.start() is False
    assert TrainingRun.objects.get(pk=run.pk).status == Status.QUEUED


def test_set_progress_clamps_to_zero_one_and_beats(alice):
    run = RunningTrainingRunFactory(user=alice, heartbeat_at=timezone.now() - timedelta(hours=1))

    assert run.set_progress(1.7, "Fitting models") is True

    run.refresh_from_db()
    assert run.progress == 1.0
    assert run.message == "Fitting models"
    assert run.heartbeat_at > timezone.now() - timedelta(minutes=1)
    assert run.set_progress(-3) is True
    assert TrainingRun.objects.get(pk=run.pk).progress == 0.0


def test_set_progress_does_not_revive_a_finished_run(alice):
    run = RunningTrainingRunFactory(user=alice)
    TrainingRun.objects.get(pk=run.pk).finish(Status.FAILED, error="Marked stale")

    assert run.set_progress(0.5) is False
    assert run.status == Status.FAILED
    assert TrainingRun.objects.get(pk=run.pk).progress == 0.0


def test_finish_succeeded_sets_progress_and_time(alice):
    run = RunningTrainingRunFactory(user=alice, progress=0.4)

    assert run.finish(Status.SUCCEEDED, message="Done") is True

    run.refresh_from_db()
    assert (run.status, run.progress, run.message, run.error) == (Status.SUCCEEDED, 1.0, "Done", "")
    assert run.finished_at is not None
    assert run.is_terminal and not run.is_active


def test_finish_records_the_error_and_happens_once(alice):
    run = RunningTrainingRunFactory(user=alice)

    assert run.finish(Status.FAILED, error="The target column has one class only.") is True
    assert run.finish(Status.SUCCEEDED) is False

    run.refresh_from_db()
    assert run.status == Status.FAILED
    assert run.error == "The target column has one class only."


def test_finish_rejects_a_non_terminal_status(alice):
    run = RunningTrainingRunFactory(user=alice)
    with pytest.raises(ValueError, match="terminal"):
        run.finish(Status.RUNNING)


def test_request_stop_stops_a_queued_run_at_once(alice):
    run = TrainingRunFactory(user=alice)

    assert run.request_stop() is True

    run.refresh_from_db()
    assert run.status == Status.STOPPED and run.stop_requested and run.finished_at is not None


def test_request_stop_flags_a_running_run_for_its_next_step(alice):
    run = RunningTrainingRunFactory(user=alice)

    assert run.request_stop() is True

    assert TrainingRun.objects.get(pk=run.pk).status == Status.RUNNING
    assert run.stop_is_requested() is True


def test_request_stop_of_a_finished_run_changes_nothing(alice):
    run = RunningTrainingRunFactory(user=alice)
    run.finish(Status.SUCCEEDED)

    assert run.request_stop() is False
    assert TrainingRun.objects.get(pk=run.pk).stop_requested is False


def test_database_refuses_progress_outside_zero_one(alice):
    run = TrainingRunFactory(user=alice)
    with pytest.raises(IntegrityError), transaction.atomic():
        TrainingRun.objects.filter(pk=run.pk).update(progress=1.5)


def test_artifact_path_is_server_made_under_the_owner_folder():
    first = model_artifact_path(user_id=7, run_id=3)
    second = model_artifact_path(user_id=7, run_id=3)

    assert first.startswith("7/models/3/") and first.endswith(".joblib")
    assert first != second
    assert resolve_media_path(first, owner_id=7) is not None


def test_artifact_path_rejects_an_unsafe_suffix():
    with pytest.raises(ValueError):
        model_artifact_path(user_id=7, run_id=3, suffix="/../../x")


@pytest.mark.parametrize(
    "name", ["../outside.joblib", "/etc/passwd", "8/models/1/a.joblib", "7", "7/../8/models/a.joblib", ""]
)
def test_resolve_media_path_refuses_names_outside_the_owner_folder(name):
    assert resolve_media_path(name, owner_id=7) is None


def test_resolve_media_path_refuses_a_link_pointing_outside(settings, tmp_path):
    outside = tmp_path / "secret.txt"
    outside.write_text("keep me")
    folder = Path(settings.MEDIA_ROOT) / "7" / "models"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "link.joblib").symlink_to(outside)

    assert resolve_media_path("7/models/link.joblib", owner_id=7) is None


def test_artifact_references_include_model_url_only_under_media_url(alice):
    model = TrainingModelFactory.build(user=alice, file_name="1/models/2/a.joblib", model_url="/download_model/5")
    assert model.artifact_references() == ["1/models/2/a.joblib"]
    model.model_url = "/media/1/models/2/b.onnx"
    assert model.artifact_references() == ["1/models/2/a.joblib", "1/models/2/b.onnx"]
