"""Image augmentation with albumentations: named transforms, presets, previews, folder runs.

``TRANSFORMS``: the named building blocks — geometric (``rotate``, ``horizontal_flip``,
``vertical_flip``, ``scale``, ``crop``, ``elastic``, ``perspective``, ``grid_distortion``) and photometric
(``brightness_contrast``, ``gamma``, ``noise``, ``blur``, ``sharpen``, ``clahe``, ``equalize``).

``PRESETS``: ``light``, ``standard``, and medically safe ones whose ``forbidden`` list is enforced:
``chest_xray`` (no flips: heart side and lettering matter; small rotations only), ``dermoscopy``
(any orientation is valid), ``histology`` (orientation-free, stain/colour variation), ``fundus``
(no vertical flip: superior/inferior retina differ). ``describe_presets()`` gives them JSON-ready.

``build_pipeline(preset=None, *, extra=(), exclude=(), seed=None) -> A.Compose``: a preset plus/minus
named transforms; asking a preset for a transform it forbids raises ``ValueError``.
``augment_image(image, pipeline) -> PIL.Image`` keeps the image's mode (L stays L).
``preview(images, preset, n=8, *, seed=0, tile=128) -> bytes``: a PNG grid, one row per input image
(original first, then ``n`` variants) — for the page to show before running.
``augment_folder(src, dst, preset, per_image, seed, *, progress=None, should_stop=None) -> dict``:
mirrors ``src`` (class folders kept) into ``dst``: each image copied as PNG plus ``per_image``
variants ``<stem>_aug<k>.png``; unreadable files are listed, not fatal.
"""

from __future__ import annotations

import io
import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # albumentations would otherwise call PyPI on import

from collections.abc import Callable, Iterable, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from .errors import ImageDecodeError  # noqa: E402
from .images import decode_image, save_png  # noqa: E402

TRANSFORMS: dict[str, tuple[str, Callable[[], A.BasicTransform]]] = {
    "rotate": ("geometric", lambda: A.Rotate(limit=15, border_mode=cv2.BORDER_REFLECT_101, p=0.7)),
    "small_rotate": ("geometric", lambda: A.Rotate(limit=7, border_mode=cv2.BORDER_CONSTANT, p=0.5)),
    "free_rotate": ("geometric", lambda: A.Rotate(limit=180, border_mode=cv2.BORDER_REFLECT_101, p=0.7)),
    "horizontal_flip": ("geometric", lambda: A.HorizontalFlip(p=0.5)),
    "vertical_flip": ("geometric", lambda: A.VerticalFlip(p=0.5)),
    "scale": ("geometric", lambda: A.Affine(scale=(0.9, 1.1), translate_percent=(-0.05, 0.05), p=0.5)),
    "crop": ("geometric", lambda: A.CropAndPad(percent=(-0.1, 0.0), keep_size=True, p=0.5)),
    "elastic": ("geometric", lambda: A.ElasticTransform(alpha=20, sigma=5, p=0.3)),
    "perspective": ("geometric", lambda: A.Perspective(scale=(0.02, 0.06), p=0.3)),
    "grid_distortion": ("geometric", lambda: A.GridDistortion(num_steps=5, distort_limit=0.15, p=0.3)),
    "brightness_contrast": ("photometric", lambda: A.RandomBrightnessContrast(0.15, 0.15, p=0.6)),
    "gamma": ("photometric", lambda: A.RandomGamma(gamma_limit=(85, 115), p=0.4)),
    "noise": ("photometric", lambda: A.GaussNoise(std_range=(0.01, 0.04), p=0.3)),
    "blur": ("photometric", lambda: A.GaussianBlur(blur_limit=(3, 5), p=0.2)),
    "sharpen": ("photometric", lambda: A.Sharpen(alpha=(0.1, 0.3), p=0.2)),
    "clahe": ("photometric", lambda: A.CLAHE(clip_limit=2.0, tile_grid_size=(8, 8), p=0.3)),
    "equalize": ("photometric", lambda: A.Equalize(p=0.2)),
    "stain": ("photometric", lambda: A.HueSaturationValue(8, 12, 8, p=0.5)),
}
FLIPS = ("horizontal_flip", "vertical_flip")

PRESETS: dict[str, dict] = {
    "light": {
        "label": "Light (small rotation, brightness/contrast)",
        "transforms": ["small_rotate", "brightness_contrast"],
        "forbidden": [],
    },
    "standard": {
        "label": "Standard natural-image augmentation",
        "transforms": ["rotate", "horizontal_flip", "scale", "crop", "brightness_contrast", "gamma", "noise", "blur"],
        "forbidden": [],
    },
    "chest_xray": {
        "label": "Chest X-ray (no flips: laterality matters)",
        "transforms": ["small_rotate", "scale", "brightness_contrast", "gamma", "clahe", "noise"],
        "forbidden": list(FLIPS) + ["free_rotate", "elastic", "grid_distortion"],
    },
    "dermoscopy": {
        "label": "Dermoscopy (any orientation)",
        "transforms": [
            "free_rotate",
            "horizontal_flip",
            "vertical_flip",
            "scale",
            "crop",
            "brightness_contrast",
            "gamma",
            "blur",
        ],
        "forbidden": [],
    },
    "histology": {
        "label": "Histology slides (orientation-free, stain variation)",
        "transforms": [
            "free_rotate",
            "horizontal_flip",
            "vertical_flip",
            "elastic",
            "stain",
            "brightness_contrast",
            "blur",
            "sharpen",
        ],
        "forbidden": [],
    },
    "fundus": {
        "label": "Retinal fundus (no vertical flip)",
        "transforms": ["rotate", "horizontal_flip", "scale", "brightness_contrast", "gamma", "clahe"],
        "forbidden": ["vertical_flip", "free_rotate"],
    },
}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".dcm", ".dicom"}


def describe_presets() -> list[dict]:
    return [
        {"name": name, "label": spec["label"], "transforms": spec["transforms"], "forbidden": spec["forbidden"]}
        for name, spec in PRESETS.items()
    ]


def transform_names(preset: str | None = None, *, extra: Iterable[str] = (), exclude: Iterable[str] = ()) -> list[str]:
    """The named transforms a preset (plus ``extra``, minus ``exclude``) resolves to; checks safety."""
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"Unknown augmentation preset {preset!r}; choose one of {', '.join(PRESETS)}.")
    names = list(PRESETS[preset]["transforms"]) if preset else []
    for name in extra:
        if name not in TRANSFORMS:
            raise ValueError(f"Unknown transform {name!r}; choose from {', '.join(TRANSFORMS)}.")
        if preset and name in PRESETS[preset]["forbidden"]:
            raise ValueError(f"{name!r} is not safe for {PRESETS[preset]['label']}.")
        if name not in names:
            names.append(name)
    excluded = set(exclude)
    return [name for name in names if name not in excluded]


def build_pipeline(
    preset: str | None = None, *, extra: Iterable[str] = (), exclude: Iterable[str] = (), seed: int | None = None
) -> A.Compose:
    names = transform_names(preset, extra=extra, exclude=exclude)
    return A.Compose([TRANSFORMS[name][1]() for name in names], seed=seed)


def augment_image(image: Image.Image, pipeline: A.Compose) -> Image.Image:
    mode = "L" if image.mode == "L" else "RGB"
    array = np.asarray(image.convert("RGB"))
    out = pipeline(image=array)["image"]
    result = Image.fromarray(np.ascontiguousarray(out).astype(np.uint8))
    return result.convert(mode)


def preview(images: Sequence, preset: str, n: int = 8, *, seed: int = 0, tile: int = 128, **kwargs) -> bytes:
    """PNG grid: one row per image, the original then ``n`` augmented variants."""
    pipeline = build_pipeline(preset, seed=seed, **kwargs)
    rows = []
    for image in images:
        if not isinstance(image, Image.Image):
            image = decode_image(image).image
        image = image.convert("RGB")
        row = [image] + [augment_image(image, pipeline) for _ in range(n)]
        rows.append(row)
    if not rows:
        raise ValueError("Preview needs at least one image.")
    grid = Image.new("RGB", (tile * (n + 1), tile * len(rows)), (255, 255, 255))
    for r, row in enumerate(rows):
        for c, item in enumerate(row):
            grid.paste(item.resize((tile, tile)), (c * tile, r * tile))
    buffer = io.BytesIO()
    grid.save(buffer, format="PNG")
    return buffer.getvalue()


def _image_files(root: Path) -> list[Path]:
    return [
        path
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.is_symlink() and path.suffix.lower() in IMAGE_SUFFIXES
    ]


def augment_folder(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    preset: str,
    per_image: int,
    seed: int = 0,
    *,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    **kwargs,
) -> dict:
    """Write originals + ``per_image`` variants of every image under ``src`` to ``dst`` (see module doc)."""
    if per_image < 1:
        raise ValueError("per_image must be at least 1.")
    src, dst = Path(src), Path(dst)
    pipeline = build_pipeline(preset, seed=seed, **kwargs)
    files = _image_files(src)
    written, skipped, stopped = 0, [], False
    for index, path in enumerate(files, start=1):
        if should_stop and should_stop():
            stopped = True
            break
        relative = path.relative_to(src)
        try:
            image = decode_image(path).image
        except ImageDecodeError as exc:
            skipped.append({"file": relative.as_posix(), "reason": exc.message})
            continue
        target_dir = dst / relative.parent
        target_dir.mkdir(parents=True, exist_ok=True)
        save_png(image, target_dir / f"{path.stem}.png")
        for k in range(1, per_image + 1):
            save_png(augment_image(image, pipeline), target_dir / f"{path.stem}_aug{k}.png")
        written += per_image + 1
        if progress:
            progress(index, len(files))
    return {"images": len(files), "written": written, "skipped": skipped, "stopped": stopped, "preset": preset}
