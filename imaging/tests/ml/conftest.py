import io

import pytest
import torch
from PIL import Image

from imaging.ml.datasets import PilListDataset
from imaging.ml.synthetic import shapes_dataset, write_shapes_folder


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    # The test machine is shared; OpenMP spinning on 2 threads is slower than 1 there.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def png_bytes(colour=128, size=(16, 16), mode="L") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def shapes_folder(tmp_path):
    return write_shapes_folder(tmp_path / "shapes", 6, size=16, seed=3)


@pytest.fixture(scope="session")
def tiny_split():
    images, labels, names = shapes_dataset(6, size=32, seed=1)
    val_images, val_labels, _ = shapes_dataset(3, size=32, seed=2)
    return PilListDataset(images, labels, names), PilListDataset(val_images, val_labels, names)
