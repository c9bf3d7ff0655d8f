"""Fixtures of the imaging Django tests: tiny synthetic ZIPs, an empty MEDIA_ROOT per test, logged-in clients."""

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from imaging.ml.synthetic import shape_image


@pytest.fixture(autouse=True)
def _one_torch_thread():
    # The test machine is shared; OpenMP spinning on 2 threads is slower than 1 there.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def _own_media_root(settings, tmp_path):
    """Each test gets an empty MEDIA_ROOT, so "nothing was stored" can be checked by listing it."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MEDIA_ROOT.mkdir()


def png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def shapes_entries(shapes=("circle", "square"), per_class: int = 6, size: int = 32, seed: int = 0) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    return {
        f"{shape}/{shape}_{i}.png": png(shape_image(shape, size, rng)) for shape in shapes for i in range(per_class)
    }


def upload(data: bytes, name: str = "images.zip") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/zip")


def media_files(root) -> list[str]:
    """Every file and folder under MEDIA_ROOT: what a refused upload must not leave."""
    return sorted(str(path.relative_to(root)) for path in Path(root).rglob("*"))


@pytest.fixture
def alice_api(alice):
    client = APIClient()
    client.force_authenticate(alice)
    return client


@pytest.fixture
def charlie_api(charlie):
    client = APIClient()
    client.force_authenticate(charlie)
    return client
