"""The /pipeline composer's server side: the step catalogue, per-step validation and each step's kept output.

`imaging/ml/pipeline.py` owns the steps (``STEP_TYPES``), their checks (``validate_pipeline``) and the folders a run
keeps (``work_dir/steps/<NN>_<type>/``). This module puts words a clinician reads around them, places every problem
next to the step it concerns, and reads a run's step folders back for inspection, confined to the owner's storage.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

from django.urls import reverse
from PIL import Image

from deepmed.exceptions import ApplicationError, NotFound
from modelhub.models import TrainingRun
from modelhub.storage import resolve_media_path

from .ml.pipeline import DYNAMIC_CHOICES, STEP_TYPES, TRAINING_TYPES, resolved_params, validate_pipeline
from .services import PIPELINE_DATASET_TYPE

# type → (label, group, what it does). Groups order the composer's menu and say where a step may go.
STEP_WORDS: dict[str, tuple[str, str, str]] = {
    "resize": ("Resize", "preprocessing", "Scale every image to a square of this many pixels."),
    "normalize": (
        "Normalise intensities",
        "preprocessing",
        "Stretch each image's intensities between two percentiles to the full 0–255 range.",
    ),
    "clahe": ("CLAHE", "preprocessing", "Contrast-limited adaptive histogram equalisation (lightness only in colour)."),
    "denoise": ("Denoise", "preprocessing", "Smooth sensor noise with a median, Gaussian or non-local-means filter."),
    "augment": ("Augmentation", "augmentation", "Keep every image and add this many augmented variants of it."),
    "train_classifier": (
        "Classification",
        "training",
        "Train an image classifier on the class folders; it lands in My models.",
    ),
    "train_anomaly": (
        "Anomaly detection",
        "training",
        "Train an autoencoder on normal images only; it lands in My models.",
    ),
}
# Field labels. Never "Architecture" or "Image size (pixels)": those name the single-training form on the same page.
PARAM_WORDS: dict[str, str] = {
    "size": "Size (px)",
    "keep_aspect": "Keep aspect ratio (pad to a square)",
    "low_percentile": "Low percentile",
    "high_percentile": "High percentile",
    "clip_limit": "Clip limit",
    "tile_grid": "Tiles per side",
    "method": "Filter",
    "strength": "Strength",
    "preset": "Preset",
    "per_image": "Variants per image",
    "seed": "Random seed",
    "architecture": "Network",
    "level": "Level (1 fast … 5 thorough)",
    "image_size": "Input size (px)",
    "val_fraction": "Validation share",
    "pretrained": "Start from pretrained weights where available",
    "epochs": "Epochs",
    "threshold_percentile": "Threshold percentile",
    "enhanced": "Enhanced mode (ensemble on latent features)",
    "ssim_weight": "SSIM weight",
}
SAMPLES_PER_CLASS = 3
SAMPLES_PER_STEP = 8
THUMBNAIL_PIXELS = 160
_STEP_PREFIX = re.compile(r"^Step (\d+)\b")


def _choice_labels(step_type: str, name: str, choices: tuple) -> list[dict]:
    labels: dict[str, str] = {}
    if (step_type, name) == ("train_classifier", "architecture"):
        from .ml.architectures import ARCHITECTURES

        labels = ARCHITECTURES
    elif (step_type, name) == ("augment", "preset"):
        from .ml.augmentation import PRESETS

        labels = {key: spec["label"] for key, spec in PRESETS.items()}
    return [{"value": value, "label": labels.get(value, value)} for value in choices]


def pipeline_step_catalog() -> list[dict]:
    """Every step type with its parameters as form fields: kind, default, limits, choices (ordered as composed)."""
    catalog = []
    for step_type, params in STEP_TYPES.items():
        label, group, description = STEP_WORDS.get(step_type, (step_type, "preprocessing", ""))
        fields = []
        for name, spec in params.items():
            kinds = spec.kind if isinstance(spec.kind, tuple) else (spec.kind,)
            choices = spec.choices or (
                DYNAMIC_CHOICES[(step_type, name)]() if (step_type, name) in DYNAMIC_CHOICES else None
            )
            if choices:
                kind = "choice"
            elif bool in kinds:
                kind = "bool"
            elif float in kinds:
                kind = "float"
            elif int in kinds:
                kind = "int"
            else:
                kind = "str"
            fields.append(
                {
                    "name": name,
                    "label": PARAM_WORDS.get(name, name.replace("_", " ").capitalize()),
                    "kind": kind,
                    "default": spec.default,
                    "min": spec.low,
                    "max": spec.high,
                    "choices": _choice_labels(step_type, name, tuple(choices)) if choices else None,
                }
            )
        catalog.append(
            {"type": step_type, "label": label, "group": group, "description": description, "params": fields}
        )
    return catalog


def _training_positions(steps: list) -> list[int]:
    return [
        position
        for position, step in enumerate(steps, start=1)
        if isinstance(step, dict) and step.get("type") in TRAINING_TYPES
    ]


def pipeline_problems(steps) -> list[dict]:
    """Every problem of a composition as ``{"step": position or None, "message"}``: None concerns the whole list."""
    if not isinstance(steps, list):
        return [{"step": None, "message": 'The pipeline must be a list of {"type", "params"} steps.'}]
    training = _training_positions(steps)
    placed: list[dict] = []
    for message in validate_pipeline(steps):
        match = _STEP_PREFIX.match(message)
        if match:
            placed.append({"step": int(match[1]), "message": message})
        elif "only one training step" in message:
            placed += [{"step": position, "message": message} for position in training[1:]]
        elif "must be the last step" in message:
            placed += [{"step": position, "message": message} for position in training if position != len(steps)]
        else:
            placed.append({"step": None, "message": message})
    if steps and not training:
        placed.append(
            {
                "step": None,
                "message": "Add a training step at the end: Classification (class folders) or Anomaly detection "
                "(normal images only).",
            }
        )
    return placed


def pipeline_check(*, steps) -> list[dict]:
    """The steps with their defaults filled in, or an ApplicationError listing each problem beside its step."""
    problems = pipeline_problems(steps)
    if problems:
        # The same code as POST /api/pipeline gives when the composition is fine but has nothing to train.
        only_training_missing = (
            len(problems) == 1 and isinstance(steps, list) and bool(steps) and not _training_positions(steps)
        )
        raise ApplicationError(
            "The pipeline cannot run: " + " ".join(item["message"] for item in problems),
            code="no_training_step" if only_training_missing else "invalid_pipeline",
            extra={"problems": [item["message"] for item in problems], "step_problems": problems},
        )
    return [
        {"step": position, "type": step["type"], "params": resolved_params(step)}
        for position, step in enumerate(steps, start=1)
    ]


# ----------------------------------------------------------------------------- a run's step outputs
def pipeline_run_get_for_user(*, user, run_id: int) -> TrainingRun:
    """A pipeline run of this user, else 404 (other users' runs and non-pipeline runs alike)."""
    run = TrainingRun.objects.filter(user=user, id=run_id, dataset_type=PIPELINE_DATASET_TYPE).first()
    if run is None:
        raise NotFound("No pipeline run of yours has this id.")
    return run


def pipeline_run_list_for_user(*, user):
    """This user's pipeline runs, newest first."""
    return TrainingRun.objects.filter(user=user, dataset_type=PIPELINE_DATASET_TYPE).order_by("-created_at", "-id")


def _steps_dir(run: TrainingRun) -> Path | None:
    work = resolve_media_path(run.config.get("work_folder", ""), owner_id=run.user_id)
    return work / "steps" if work is not None else None


def _step_folder(run: TrainingRun, position: int) -> Path | None:
    """The folder step `position` writes, only when it is a real folder directly inside the run's steps folder."""
    steps = run.config.get("pipeline") or []
    steps_dir = _steps_dir(run)
    if steps_dir is None or not 1 <= position <= len(steps):
        return None
    folder = steps_dir / f"{position:02d}_{steps[position - 1]['type']}"
    if folder.is_symlink() or not folder.is_dir():
        return None
    return folder


def _png_files(folder: Path) -> list[Path]:
    return sorted(
        path for path in folder.rglob("*.png") if path.is_file() and not path.is_symlink() and not path.name[0] == "."
    )


def _class_of(relative: Path) -> str:
    return relative.parts[0] if len(relative.parts) > 1 else ""


def _image_summary(run: TrainingRun, position: int, folder: Path) -> dict:
    files = _png_files(folder)
    classes: dict[str, int] = {}
    samples: list[dict] = []
    taken: dict[str, int] = {}
    for path in files:
        relative = path.relative_to(folder)
        label = _class_of(relative)
        classes[label] = classes.get(label, 0) + 1
        if len(samples) < SAMPLES_PER_STEP and taken.get(label, 0) < SAMPLES_PER_CLASS:
            taken[label] = taken.get(label, 0) + 1
            samples.append(
                {
                    "name": relative.as_posix(),
                    "class": label,
                    "url": reverse(
                        "api-pipeline-run-sample", kwargs={"pk": run.id, "step": position, "name": relative.as_posix()}
                    ),
                }
            )
    return {"images": len(files), "classes": classes, "samples": samples}


def _training_summary(step_type: str, folder: Path) -> dict:
    metrics_file = folder / "metrics.json"
    if not metrics_file.is_file():
        return {"images": None, "classes": {}, "samples": [], "result": None}
    data = json.loads(metrics_file.read_text())
    if step_type == "train_classifier":
        dataset = data.get("dataset") or {}
        metrics = data.get("metrics") or {}
        return {
            "images": dataset.get("image_count"),
            "classes": dataset.get("class_counts") or {},
            "samples": [],
            "result": {
                "accuracy": metrics.get("accuracy"),
                "best_epoch": data.get("best_epoch"),
                "weights": data.get("weights"),
            },
        }
    return {
        "images": data.get("images"),
        "classes": {},
        "samples": [],
        "result": {"threshold": data.get("threshold"), "threshold_percentile": data.get("threshold_percentile")},
    }


def _step_state(run: TrainingRun, position: int, last_started: int) -> str:
    if position > last_started:
        return "not_run" if run.status in TrainingRun.TERMINAL_STATUSES else "pending"
    if position < last_started or run.status == TrainingRun.Status.SUCCEEDED:
        return "done"
    return {
        TrainingRun.Status.RUNNING: "running",
        TrainingRun.Status.FAILED: "failed",
        TrainingRun.Status.STOPPED: "stopped",
    }.get(run.status, "pending")


def pipeline_run_outputs(*, run: TrainingRun) -> dict:
    """Where a pipeline run is, and per step: state, progress, parameters, image count per class, a few samples."""
    steps = run.config.get("pipeline") or []
    total = len(steps)
    folders = [_step_folder(run, position) for position in range(1, total + 1)]
    last_started = max((position for position, folder in enumerate(folders, start=1) if folder), default=0)
    model = run.models.order_by("-id").first()
    items = []
    for position, (step, folder) in enumerate(zip(steps, folders, strict=True), start=1):
        state = _step_state(run, position, last_started)
        if state == "done":
            fraction = 1.0
        elif state == "running":
            fraction = min(max(run.progress * total - (position - 1), 0.0), 1.0)
        else:
            fraction = 0.0
        if folder is None:
            output = {"images": None, "classes": {}, "samples": [], "result": None}
        elif step["type"] in TRAINING_TYPES:
            output = _training_summary(step["type"], folder)
        else:
            output = {**_image_summary(run, position, folder), "result": None}
        items.append(
            {
                "step": position,
                "type": step["type"],
                "label": STEP_WORDS.get(step["type"], (step["type"],))[0],
                "params": resolved_params(step),
                "state": state,
                "progress": round(fraction, 4),
                **output,
            }
        )
    return {
        "id": run.id,
        "status": run.status,
        "progress": run.progress,
        "message": run.message,
        "error": run.error,
        "model_id": model.id if model else None,
        "model_name": model.model_name if model else None,
        "models_url": reverse("modelhub-my-models"),
        "steps": items,
    }


def pipeline_sample_thumbnail(*, run: TrainingRun, position: int, name: str) -> bytes:
    """A PNG thumbnail of one output image of step `position`; 404 for anything outside that step's folder."""
    folder = _step_folder(run, position)
    if folder is None or not name or "\x00" in name:
        raise NotFound("This step has no such output image.")
    root = folder.resolve()
    candidate = (root / name).resolve()
    if (
        not candidate.is_relative_to(root)
        or candidate == root
        or candidate.suffix.lower() != ".png"
        or (folder / name).is_symlink()
        or not candidate.is_file()
    ):
        raise NotFound("This step has no such output image.")
    with Image.open(candidate) as image:
        image.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
        buffer = io.BytesIO()
        (image if image.mode in ("L", "RGB", "RGBA") else image.convert("RGB")).save(buffer, format="PNG")
    return buffer.getvalue()
