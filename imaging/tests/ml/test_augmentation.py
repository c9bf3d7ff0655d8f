import io

import albumentations as A
import numpy as np
import pytest
from PIL import Image

from imaging.ml.augmentation import PRESETS, augment_folder, augment_image, build_pipeline, preview


def _all_transforms(compose):
    for transform in compose.transforms:
        yield transform
        if hasattr(transform, "transforms"):
            yield from _all_transforms(transform)


def test_chest_xray_preset_never_flips_horizontally():
    pipeline = build_pipeline("chest_xray", seed=0)
    assert not any(isinstance(t, A.HorizontalFlip | A.VerticalFlip) for t in _all_transforms(pipeline))
    # Behaviour, not just configuration: a bright left half stays on the left.
    array = np.zeros((32, 32), dtype=np.uint8)
    array[:, :16] = 220
    image = Image.fromarray(array, mode="L")
    for _ in range(20):
        out = np.asarray(augment_image(image, pipeline), dtype=float)
        assert out[:, :12].mean() > out[:, 20:].mean()


def test_asking_a_safe_preset_for_a_forbidden_transform_is_refused():
    with pytest.raises(ValueError, match="not safe"):
        build_pipeline("chest_xray", extra=["horizontal_flip"])


def test_every_preset_builds_and_keeps_size_and_mode():
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40), dtype=np.uint8), mode="L")
    for name in PRESETS:
        out = augment_image(image, build_pipeline(name, seed=1))
        assert out.size == (40, 40) and out.mode == "L"


def test_same_seed_gives_the_same_augmentations():
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (24, 24, 3), dtype=np.uint8))
    first = [np.asarray(augment_image(image, p)) for p in [build_pipeline("standard", seed=7)] for _ in range(3)]
    second = [np.asarray(augment_image(image, p)) for p in [build_pipeline("standard", seed=7)] for _ in range(3)]
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


def test_preview_is_a_grid_png():
    images = [Image.new("L", (20, 20), 100), Image.new("RGB", (30, 10), (10, 200, 30))]
    png = preview(images, "dermoscopy", n=3, tile=16)
    assert Image.open(io.BytesIO(png)).size == (16 * 4, 16 * 2)


def test_augment_folder_writes_variants_per_image_and_reports_bad_files(shapes_folder, tmp_path):
    (shapes_folder / "circle" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    calls = []
    report = augment_folder(
        shapes_folder, tmp_path / "out", "light", per_image=2, seed=0, progress=lambda d, t: calls.append((d, t))
    )
    assert report["written"] == 18 * 3 and len(report["skipped"]) == 1
    assert len(list((tmp_path / "out" / "square").glob("*.png"))) == 18
    assert (tmp_path / "out" / "square" / "square_000_aug2.png").is_file()
    assert calls[-1][1] == 19
