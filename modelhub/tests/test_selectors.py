from datetime import timedelta

import pytest
from django.utils import timezone

from modelhub.selectors import media_storage_report, training_model_list_for_user, training_run_list_for_user

from .factories import TrainingModelFactory, TrainingRunFactory

pytestmark = pytest.mark.django_db


def test_charlie_sees_none_of_alices_runs_or_models(alice, charlie):
    TrainingModelFactory(user=alice)

    assert list(training_run_list_for_user(user=charlie)) == []
    assert list(training_model_list_for_user(user=charlie)) == []
    assert training_run_list_for_user(user=alice).count() == 1
    assert training_model_list_for_user(user=alice).count() == 1


def test_runs_come_newest_first(alice):
    older = TrainingRunFactory(user=alice, created_at=timezone.now() - timedelta(days=2))
    newer = TrainingRunFactory(user=alice)

    assert list(training_run_list_for_user(user=alice)) == [newer, older]


def test_models_come_newest_first_with_their_run_in_one_query(alice, django_assert_num_queries):
    older = TrainingModelFactory(user=alice, created_at=timezone.now() - timedelta(days=2))
    newer = TrainingModelFactory(user=alice)

    with django_assert_num_queries(1):
        models = list(training_model_list_for_user(user=alice))
        run_names = [model.run.run_name for model in models]

    assert models == [newer, older]
    assert run_names == [newer.run.run_name, older.run.run_name]


def test_storage_report_counts_use_orphans_and_missing_files(alice, write_artifact, media_root):
    kept = write_artifact(alice, "1/kept.joblib", b"a" * 5)
    orphan = write_artifact(alice, "1/orphan.joblib", b"b" * 3)
    TrainingModelFactory(user=alice, file_name=kept)
    missing_row = TrainingModelFactory(user=alice, file_name=f"{alice.pk}/models/1/gone.joblib")
    unsafe_row = TrainingModelFactory(user=alice, file_name="../../etc/passwd")

    report = media_storage_report()

    assert report["status"] == "degraded"
    assert (report["total_bytes"], report["file_count"]) == (8, 2)
    assert report["bytes_by_folder"] == {str(alice.pk): 8}
    assert report["orphans"] == {"count": 1, "bytes": 3, "files": [{"name": orphan, "size": 3}]}
    assert report["missing"]["rows"] == [
        {"source": "training_models", "id": missing_row.pk, "name": missing_row.file_name}
    ]
    assert report["unsafe"]["rows"][0]["id"] == unsafe_row.pk


def test_storage_report_is_ok_when_rows_and_files_match(alice, write_artifact, media_root):
    write_artifact(alice, "1/bundle/weights.pt")
    TrainingModelFactory(user=alice, file_name=f"{alice.pk}/models/1/bundle")

    report = media_storage_report()

    assert report["status"] == "ok"
    assert report["orphans"]["count"] == 0 and report["missing"]["count"] == 0
    assert report["media_root_exists"] and report["media_root_writable"]


def test_storage_report_takes_files_other_apps_register(alice, media_root, monkeypatch):
    from modelhub import storage

    dataset = media_root / str(alice.pk) / "datasets" / "a.csv"
    dataset.parent.mkdir(parents=True)
    dataset.write_text("x\n1\n")
    monkeypatch.setattr(storage, "_reference_sources", dict(storage._reference_sources))
    storage.register_media_references(
        "datasets",
        lambda: [
            storage.MediaReference(source="datasets", row_id=1, name=f"{alice.pk}/datasets/a.csv", owner_id=alice.pk)
        ],
    )

    assert media_storage_report()["orphans"]["count"] == 0
