"""Ordered imaging pipelines: preprocessing → augmentation → one training step.

A pipeline is a list of steps ``{"type": <name>, "params": {...}}``. Types and their parameters
(``STEP_TYPES`` holds defaults and limits):

- ``resize``: ``size`` (16–1024 px), ``keep_aspect`` (pad to a square instead of stretching)
- ``normalize``: ``low_percentile``, ``high_percentile`` — per-image intensity stretch to 0–255
- ``clahe``: ``clip_limit``, ``tile_grid`` — contrast-limited histogram equalisation (lightness only
  for colour images)
- ``denoise``: ``method`` (``median``, ``gaussian``, ``nlmeans``), ``strength``
- ``augment``: ``preset`` (``augmentation.PRESETS``), ``per_image``, ``seed``
- ``train_classifier``: ``architecture``, ``level``, ``image_size``, ``val_fraction``, ``seed``, ``pretrained``
- ``train_anomaly``: ``image_size``, ``epochs``, ``threshold_percentile``, ``enhanced``, ``ssim_weight``, ``seed``

``validate_pipeline(steps) -> list[str]``: every problem in plain words (unknown step or parameter,
wrong type or range, more than one training step, training not last, an empty pipeline); ``[]`` when
the pipeline can run.

``run_pipeline(steps, input_dir, work_dir, progress=None, should_stop=None) -> dict``: refuses an
invalid pipeline with ``PipelineError``; step *i* reads the previous step's folder and writes
``work_dir/<i>_<type>/`` (kept for inspection: class folders mirrored, images as PNG). A training step
writes ``model.pt`` (classifier bundle or anomaly bundle) and ``metrics.json`` there.
``progress(PipelineProgress)`` reports the step and both step-local and overall fractions;
``should_stop()`` is checked between images and between training batches.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from .errors import ImageDecodeError, PipelineError
from .images import decode_image, save_png

TRAINING_TYPES = ("train_classifier", "train_anomaly")


@dataclass(frozen=True)
class Param:
    """One step parameter: accepted type, default and limits (or choices)."""

    kind: type | tuple
    default: object
    low: float | None = None
    high: float | None = None
    choices: tuple | None = None


def _architectures() -> tuple:
    from .architectures import ARCHITECTURES

    return tuple(ARCHITECTURES)


def _presets() -> tuple:
    from .augmentation import PRESETS

    return tuple(PRESETS)


STEP_TYPES: dict[str, dict[str, Param]] = {
    "resize": {"size": Param(int, 224, 16, 1024), "keep_aspect": Param(bool, False)},
    "normalize": {
        "low_percentile": Param((int, float), 1.0, 0, 50),
        "high_percentile": Param((int, float), 99.0, 50, 100),
    },
    "clahe": {"clip_limit": Param((int, float), 2.0, 0.1, 40), "tile_grid": Param(int, 8, 1, 64)},
    "denoise": {
        "method": Param(str, "median", choices=("median", "gaussian", "nlmeans")),
        "strength": Param(int, 3, 1, 15),
    },
    "augment": {
        "preset": Param(str, "light", choices=None),
        "per_image": Param(int, 2, 1, 50),
        "seed": Param(int, 0, 0, 2**31 - 1),
    },
    "train_classifier": {
        "architecture": Param(str, "efficientnet_lite0", choices=None),
        "level": Param(int, 3, 1, 5),
        "image_size": Param(int, 224, 16, 1024),
        "val_fraction": Param((int, float), 0.2, 0.05, 0.5),
        "seed": Param(int, 0, 0, 2**31 - 1),
        "pretrained": Param(bool, True),
    },
    "train_anomaly": {
        "image_size": Param(int, 64, 16, 512),
        "epochs": Param(int, 30, 1, 500),
        "threshold_percentile": Param((int, float), 95.0, 50, 99.9),
        "enhanced": Param(bool, False),
        "ssim_weight": Param((int, float), 0.0, 0, 10),
        "seed": Param(int, 0, 0, 2**31 - 1),
    },
}
DYNAMIC_CHOICES = {("augment", "preset"): _presets, ("train_classifier", "architecture"): _architectures}


@dataclass
class PipelineProgress:
    """Where a running pipeline is: step (1-based), its type, step-local and overall fractions."""

    step: int
    steps: int
    step_type: str
    step_fraction: float
    overall_fraction: float
    message: str


def _check_value(step_type: str, name: str, spec: Param, value) -> str | None:
    kinds = spec.kind if isinstance(spec.kind, tuple) else (spec.kind,)
    # bool is an int in Python; a checkbox must not pass as a size.
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        expected = " or ".join(k.__name__ for k in kinds)
        return f"{step_type}: {name} must be {expected}, not {value!r}."
    choices = spec.choices or (DYNAMIC_CHOICES[(step_type, name)]() if (step_type, name) in DYNAMIC_CHOICES else None)
    if choices and value not in choices:
        return f"{step_type}: {name} must be one of {', '.join(choices)}."
    if spec.low is not None and not isinstance(value, str | bool) and not spec.low <= value <= spec.high:
        return f"{step_type}: {name} must be between {spec.low:g} and {spec.high:g}."
    return None


def validate_pipeline(steps) -> list[str]:
    errors: list[str] = []
    if not isinstance(steps, list) or not steps:
        return ["The pipeline needs at least one step."]
    training_positions = []
    for position, step in enumerate(steps, start=1):
        if not isinstance(step, dict) or "type" not in step:
            errors.append(f"Step {position} must be an object with a type.")
            continue
        step_type = step["type"]
        if not isinstance(step_type, str) or step_type not in STEP_TYPES:
            errors.append(f"Step {position}: unknown step type {step_type!r}; use one of {', '.join(STEP_TYPES)}.")
            continue
        params = step.get("params") or {}
        if not isinstance(params, dict):
            errors.append(f"Step {position} ({step_type}): params must be an object.")
            continue
        unknown = sorted(set(params) - set(STEP_TYPES[step_type]))
        if unknown:
            errors.append(f"Step {position} ({step_type}): unknown parameter(s) {', '.join(unknown)}.")
        for name, value in params.items():
            if name in STEP_TYPES[step_type]:
                problem = _check_value(step_type, name, STEP_TYPES[step_type][name], value)
                if problem:
                    errors.append(f"Step {position}, {problem}")
        if step_type in TRAINING_TYPES:
            training_positions.append(position)
    if len(training_positions) > 1:
        errors.append("A pipeline can hold only one training step.")
    if training_positions and training_positions[-1] != len(steps):
        errors.append("The training step must be the last step.")
    return errors


def resolved_params(step: dict) -> dict:
    """A step's parameters with defaults filled in."""
    spec = STEP_TYPES[step["type"]]
    given = step.get("params") or {}
    return {name: given.get(name, param.default) for name, param in spec.items()}


# ----------------------------------------------------------------------------- preprocessing operations
def _resize(image: Image.Image, size: int, keep_aspect: bool) -> Image.Image:
    if not keep_aspect:
        return image.resize((size, size), Image.Resampling.BILINEAR)
    scale = size / max(image.size)
    inner = image.resize(
        (max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.Resampling.BILINEAR
    )
    canvas = Image.new(image.mode, (size, size))
    canvas.paste(inner, ((size - inner.width) // 2, (size - inner.height) // 2))
    return canvas


def _normalize(image: Image.Image, low_percentile: float, high_percentile: float) -> Image.Image:
    array = np.asarray(image).astype(np.float64)
    low, high = np.percentile(array, [low_percentile, high_percentile])
    if high <= low:
        return image
    stretched = np.clip((array - low) / (high - low) * 255, 0, 255).astype(np.uint8)
    return Image.fromarray(stretched, mode=image.mode)


def _clahe(image: Image.Image, clip_limit: float, tile_grid: int) -> Image.Image:
    clahe = cv2.createCLAHE(clipLimit=float(clip_limit), tileGridSize=(tile_grid, tile_grid))
    array = np.asarray(image)
    if image.mode == "L":
        return Image.fromarray(clahe.apply(array), mode="L")
    lab = cv2.cvtColor(array, cv2.COLOR_RGB2LAB)
    lab[..., 0] = clahe.apply(lab[..., 0])
    return Image.fromarray(cv2.cvtColor(lab, cv2.COLOR_LAB2RGB), mode="RGB")


def _denoise(image: Image.Image, method: str, strength: int) -> Image.Image:
    array = np.ascontiguousarray(np.asarray(image))
    kernel = strength if strength % 2 else strength + 1
    if method == "median":
        out = cv2.medianBlur(array, kernel)
    elif method == "gaussian":
        out = cv2.GaussianBlur(array, (kernel, kernel), 0)
    elif image.mode == "L":
        out = cv2.fastNlMeansDenoising(array, None, h=float(strength * 3))
    else:
        out = cv2.fastNlMeansDenoisingColored(array, None, float(strength * 3), float(strength * 3))
    return Image.fromarray(out, mode=image.mode)


PREPROCESSORS: dict[str, Callable[..., Image.Image]] = {
    "resize": _resize,
    "normalize": _normalize,
    "clahe": _clahe,
    "denoise": _denoise,
}


def _image_files(root: Path) -> list[Path]:
    return [p for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink() and not p.name.startswith(".")]


def _run_preprocess(step_type, params, source: Path, target: Path, report, should_stop) -> dict:
    files = _image_files(source)
    written, skipped = 0, []
    operation = PREPROCESSORS[step_type]
    for index, path in enumerate(files, start=1):
        if should_stop and should_stop():
            return {"written": written, "skipped": skipped, "stopped": True}
        relative = path.relative_to(source)
        try:
            image = decode_image(path).image
        except ImageDecodeError as exc:
            skipped.append({"file": relative.as_posix(), "reason": exc.message})
            continue
        out_dir = target / relative.parent
        out_dir.mkdir(parents=True, exist_ok=True)
        save_png(operation(image, **params), out_dir / f"{path.stem}.png")
        written += 1
        report(index / max(len(files), 1), f"{step_type}: {index}/{len(files)} images")
    return {"written": written, "skipped": skipped, "stopped": False}


def _run_augment(params, source, target, report, should_stop) -> dict:
    from .augmentation import augment_folder

    return augment_folder(
        source,
        target,
        params["preset"],
        params["per_image"],
        params["seed"],
        progress=lambda done, total: report(done / max(total, 1), f"augment: {done}/{total} images"),
        should_stop=should_stop,
    )


def _run_train_classifier(params, source, target, report, should_stop) -> dict:
    from .datasets import ImageRecordsDataset, index_image_folder
    from .training import ImageClassifierTrainer

    index = index_image_folder(source)
    train_records, val_records = index.split(val_fraction=params["val_fraction"], seed=params["seed"])
    trainer = ImageClassifierTrainer(
        params["architecture"],
        level=params["level"],
        image_size=params["image_size"],
        seed=params["seed"],
        pretrained=params["pretrained"],
        progress=lambda p: report(p.fraction, p.message),
        should_stop=should_stop,
    )
    trainer.fit(
        ImageRecordsDataset(train_records, index.classes),
        ImageRecordsDataset(val_records, index.classes),
        class_names=index.classes,
    )
    model_path = trainer.save(target / "model.pt")
    summary = {
        "dataset": index.report(),
        "metrics": trainer.metrics_,
        "history": trainer.history_,
        "best_epoch": trainer.best_epoch_,
        "weights": trainer.info_.weights,
        "stopped": trainer.stopped_,
        "model_path": str(model_path),
    }
    (target / "metrics.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def _run_train_anomaly(params, source, target, report, should_stop) -> dict:
    from .anomaly import AutoencoderAnomalyDetector

    images, skipped = [], []
    for path in _image_files(source):
        try:
            images.append(decode_image(path).image)
        except ImageDecodeError as exc:
            skipped.append({"file": path.relative_to(source).as_posix(), "reason": exc.message})
    detector = AutoencoderAnomalyDetector(
        image_size=params["image_size"],
        epochs=params["epochs"],
        threshold_percentile=params["threshold_percentile"],
        enhanced=params["enhanced"],
        ssim_weight=params["ssim_weight"],
        seed=params["seed"],
        progress=lambda p: report(p.fraction, p.message),
        should_stop=should_stop,
    )
    try:
        detector.fit(images)
    except ValueError as exc:
        raise PipelineError(str(exc), "too_few_images") from exc
    model_path = detector.save(target / "model.pt")
    summary = {
        "images": len(images),
        "skipped": skipped,
        "threshold": detector.threshold_,
        "threshold_percentile": detector.threshold_percentile,
        "histogram": detector.histogram(),
        "history": detector.history_,
        "stopped": detector.stopped_,
        "model_path": str(model_path),
    }
    (target / "metrics.json").write_text(json.dumps(summary, indent=2))
    return summary


def run_pipeline(
    steps: list[dict],
    input_dir: str | os.PathLike,
    work_dir: str | os.PathLike,
    progress: Callable[[PipelineProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict:
    errors = validate_pipeline(steps)
    if errors:
        raise PipelineError("The pipeline cannot run: " + " ".join(errors), "invalid_pipeline")
    source = Path(input_dir)
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    results, stopped = [], False
    for position, step in enumerate(steps, start=1):
        step_type = step["type"]
        params = resolved_params(step)
        target = work / f"{position:02d}_{step_type}"
        target.mkdir(parents=True, exist_ok=False)

        def report(fraction: float, message: str, position=position, step_type=step_type) -> None:
            if progress:
                overall = (position - 1 + min(max(fraction, 0.0), 1.0)) / len(steps)
                progress(PipelineProgress(position, len(steps), step_type, fraction, overall, message))

        report(0.0, f"Step {position}/{len(steps)}: {step_type}")
        if step_type in PREPROCESSORS:
            summary = _run_preprocess(step_type, params, source, target, report, should_stop)
        elif step_type == "augment":
            summary = _run_augment(params, source, target, report, should_stop)
        elif step_type == "train_classifier":
            summary = _run_train_classifier(params, source, target, report, should_stop)
        else:
            summary = _run_train_anomaly(params, source, target, report, should_stop)
        results.append({"step": position, "type": step_type, "params": params, "output_dir": str(target), **summary})
        report(1.0, f"Step {position}/{len(steps)} done: {step_type}")
        source = target
        if summary.get("stopped"):
            stopped = True
            break
    return {"steps": results, "stopped": stopped, "work_dir": str(work)}
