"""dataset_create / dataset_delete: what is stored for a good file, and that a bad one leaves nothing behind."""

import hashlib
from pathlib import Path
from unittest import mock

import pandas as pd
import pytest
from django.conf import settings
from django.db import DatabaseError

from accounts.models import AuditEvent
from deepmed.exceptions import ApplicationError
from tabular.models import Dataset
from tabular.services import dataset_create, dataset_delete
from tabular.tests.fixtures.files import BAD_FILES, messy_csv, two_sheet_excel

from .conftest import media_files, small_csv, upload_file

pytestmark = pytest.mark.django_db


def test_it_stores_the_original_bytes_with_their_sha256_and_a_parquet_copy(alice):
    content = small_csv()
    dataset = dataset_create(user=alice, uploaded_file=upload_file(content), name="Ward 3")

    assert dataset.name == "Ward 3"
    assert dataset.sha256 == hashlib.sha256(content).hexdigest()
    assert dataset.size_bytes == len(content)
    original = Path(settings.MEDIA_ROOT) / dataset.file_name
    assert original.read_bytes() == content
    parquet = pd.read_parquet(Path(settings.MEDIA_ROOT) / dataset.parquet_name)
    assert list(parquet.columns) == ["record_id", "age", "bmi", "smoker", "outcome"]
    assert (dataset.n_rows, dataset.n_columns) == (30, 5)
    assert {"name": "bmi", "dtype": str(parquet["bmi"].dtype), "n_missing": 4} in dataset.columns


def test_stored_names_are_server_made_and_inside_the_users_folder(alice):
    dataset = dataset_create(user=alice, uploaded_file=upload_file(small_csv(), "../../etc/passwd.csv"))

    assert dataset.file_name.startswith(f"{alice.pk}/datasets/")
    assert "passwd" not in dataset.file_name and ".." not in dataset.file_name
    assert dataset.file_name.endswith(".csv") and dataset.parquet_name.endswith(".parquet")
    assert dataset.original_filename == "passwd.csv"
    assert dataset.name == "passwd"


def test_the_extension_comes_from_the_content_not_the_clients_name(alice):
    dataset = dataset_create(user=alice, uploaded_file=upload_file(two_sheet_excel(), "export.csv"))

    assert dataset.format == "xlsx" and dataset.file_name.endswith(".xlsx")
    assert dataset.sheet == "Patients" and dataset.sheet_names == ["Patients", "Labs"]


def test_an_excel_sheet_can_be_chosen(alice):
    dataset = dataset_create(user=alice, uploaded_file=upload_file(two_sheet_excel(), "labs.xlsx"), sheet="Labs")

    assert dataset.sheet == "Labs" and [column["name"] for column in dataset.columns] == ["test", "value", "unit"]


def test_a_latin1_semicolon_file_is_read_with_its_missing_markers(alice):
    dataset = dataset_create(user=alice, uploaded_file=upload_file(messy_csv(encoding="cp1252", delimiter=";")))

    assert dataset.delimiter == ";" and dataset.encoding
    missing = {column["name"]: column["n_missing"] for column in dataset.columns}
    assert missing["glucose"] == 3  # "N/A", "NA" and an empty cell


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_file_is_refused_and_nothing_is_stored(alice, case):
    file_name, content, code = BAD_FILES[case]
    with pytest.raises(ApplicationError) as refused:
        dataset_create(user=alice, uploaded_file=upload_file(content, file_name))

    assert refused.value.status_code == 400
    assert refused.value.code == code
    assert refused.value.message
    assert media_files(settings.MEDIA_ROOT) == []
    assert not Dataset.objects.exists()


def test_a_file_over_the_limit_is_refused_before_it_is_read(alice, settings):
    settings.MAX_UPLOAD_MB = 1
    content = small_csv() + b"x" * (1024 * 1024)
    with pytest.raises(ApplicationError) as refused:
        dataset_create(user=alice, uploaded_file=upload_file(content))

    assert refused.value.code == "file_too_large" and refused.value.status_code == 400
    assert "1 MB" in refused.value.message
    assert not Dataset.objects.exists()
    assert not (Path(settings.MEDIA_ROOT) / str(alice.pk)).exists()


def test_when_the_database_write_fails_the_files_are_removed(alice):
    with mock.patch.object(Dataset.objects, "create", side_effect=DatabaseError("disk full")):
        with pytest.raises(DatabaseError):
            dataset_create(user=alice, uploaded_file=upload_file(small_csv()))

    assert media_files(settings.MEDIA_ROOT) == []


def test_when_the_parquet_write_fails_the_original_is_removed_too(alice):
    with mock.patch("tabular.services.io.write_parquet", side_effect=OSError("no space left")):
        with pytest.raises(OSError):
            dataset_create(user=alice, uploaded_file=upload_file(small_csv()))

    assert media_files(settings.MEDIA_ROOT) == []
    assert not Dataset.objects.exists()


def test_delete_removes_the_row_and_both_files_and_is_audited(alice, django_capture_on_commit_callbacks):
    dataset = dataset_create(user=alice, uploaded_file=upload_file(small_csv()))
    paths = [Path(settings.MEDIA_ROOT) / name for name in dataset.stored_names()]
    assert all(path.exists() for path in paths)

    with django_capture_on_commit_callbacks(execute=True):
        dataset_delete(dataset=dataset)

    assert not Dataset.objects.exists()
    assert not any(path.exists() for path in paths)
    event = AuditEvent.objects.get(action=AuditEvent.Action.DELETED)
    assert event.target_type == "tabular.dataset" and event.details["sha256"] == dataset.sha256


def test_load_demo_gives_the_demo_user_one_sample_dataset_however_often_it_runs(settings, tmp_path):
    from io import StringIO

    from django.core.management import call_command

    from accounts.models import User

    settings.VAR_DIR = tmp_path
    for _ in range(2):
        call_command("load_demo", stdout=StringIO())

    dataset = Dataset.objects.get(owner=User.objects.get(email=settings.DEMO_USER_EMAIL))
    assert (dataset.n_rows, dataset.n_columns) == (569, 33)
    assert sum(column["n_missing"] for column in dataset.columns) == 40


def test_the_storage_check_counts_a_datasets_files_as_referenced_not_as_orphans(alice):
    from modelhub.selectors import media_storage_report

    dataset = dataset_create(user=alice, uploaded_file=upload_file(small_csv()))
    report = media_storage_report()

    assert report["file_count"] == 2
    assert report["orphans"]["count"] == 0, report["orphans"]
    (Path(settings.MEDIA_ROOT) / dataset.parquet_name).unlink()
    report = media_storage_report()
    assert report["missing"]["rows"] == [{"source": "datasets", "id": dataset.pk, "name": dataset.parquet_name}]
