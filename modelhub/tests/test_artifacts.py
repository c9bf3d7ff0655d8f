"""Artefacts: written atomically in the owner's folder, loaded only when their SHA-256 still matches."""

import pytest

from deepmed.exceptions import ApplicationError
from modelhub.artifacts import artifact_load_object, artifact_save_object, artifact_verified_path, artifact_write
from modelhub.models import TrainingModel, TrainingRun
from modelhub.storage import media_root


@pytest.fixture(autouse=True)
def _own_media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def run(alice):
    return TrainingRun.objects.create(user=alice, run_name="artefacts", kind="tabular")


def _model_row(run, stored):
    return TrainingModel.objects.create(
        user=run.user, run=run, model_name="logistic_regression", file_name=stored.file_name, sha256=stored.sha256
    )


def test_a_saved_object_loads_back_when_untouched(run):
    stored = artifact_save_object({"threshold": 0.42}, user_id=run.user_id, run_id=run.id)

    assert stored.file_name.startswith(f"{run.user_id}/models/{run.id}/")
    assert stored.size > 0
    assert artifact_load_object(_model_row(run, stored)) == {"threshold": 0.42}


def test_a_tampered_artefact_is_refused_before_unpickling(run):
    stored = artifact_save_object({"threshold": 0.42}, user_id=run.user_id, run_id=run.id)
    model = _model_row(run, stored)
    (media_root() / stored.file_name).write_bytes(b"not what the platform wrote")

    with pytest.raises(ApplicationError) as refused:
        artifact_load_object(model)
    assert refused.value.code == "artifact_integrity"


def test_a_missing_artefact_is_a_clear_410(run):
    stored = artifact_save_object([1, 2, 3], user_id=run.user_id, run_id=run.id)
    model = _model_row(run, stored)
    (media_root() / stored.file_name).unlink()

    with pytest.raises(ApplicationError) as refused:
        artifact_verified_path(model)
    assert refused.value.status_code == 410


def test_a_row_pointing_into_another_users_folder_is_refused(run, charlie):
    stored = artifact_save_object([1], user_id=charlie.id, run_id=run.id)
    model = _model_row(run, stored)  # owned by alice, file in charlie's folder

    with pytest.raises(ApplicationError):
        artifact_verified_path(model)


def test_a_failed_write_leaves_no_file(run):
    def broken_writer(path):
        path.write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        artifact_write(user_id=run.user_id, run_id=run.id, write=broken_writer)

    written = [path for path in media_root().rglob("*") if path.is_file()]
    assert written == []
