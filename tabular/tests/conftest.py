"""Fixtures of the tabular Django tests: uploads through the service, clients logged in as the personas."""

import pandas as pd
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tabular.services import dataset_create


def small_csv(n_rows: int = 30) -> bytes:
    """A tidy table with a binary outcome, a few blanks and an identifier column."""
    frame = pd.DataFrame(
        {
            "record_id": [f"R{index:04d}" for index in range(n_rows)],
            "age": [40 + (index * 7) % 35 for index in range(n_rows)],
            "bmi": [None if index % 9 == 0 else 20 + (index * 3) % 15 + 0.5 for index in range(n_rows)],
            "smoker": ["yes" if index % 3 == 0 else "no" for index in range(n_rows)],
            "outcome": ["sick" if index % 4 == 0 else "well" for index in range(n_rows)],
        }
    )
    return frame.to_csv(index=False).encode()


def upload_file(content: bytes, name: str = "patients.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="text/csv")


@pytest.fixture(autouse=True)
def _own_media_root(settings, tmp_path):
    """Each test gets an empty MEDIA_ROOT, so "nothing was stored" can be checked by listing it."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MEDIA_ROOT.mkdir()


@pytest.fixture
def make_dataset():
    def make(user, content: bytes | None = None, name: str = "patients.csv", **kwargs):
        return dataset_create(user=user, uploaded_file=upload_file(content or small_csv(), name), **kwargs)

    return make


@pytest.fixture
def alice_dataset(alice, make_dataset):
    return make_dataset(alice)


@pytest.fixture
def alice_api(alice):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(alice)
    return client


@pytest.fixture
def charlie_api(charlie):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(charlie)
    return client


@pytest.fixture
def alice_web(client, alice):
    client.force_login(alice)
    return client


def media_files(root) -> list[str]:
    """Every file under MEDIA_ROOT (temporary `.part` files included): what a refused upload must not leave."""
    from pathlib import Path

    return sorted(str(path.relative_to(root)) for path in Path(root).rglob("*") if path.is_file())
