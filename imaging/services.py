"""Imaging use cases: ZIP intake into an ImageDataset, classifier and anomaly training runs, prediction, scoring.

Views call these; Celery tasks call the `*_execute` functions with ids. Every refusal is an ApplicationError
(400 with the core's message and code); nothing is left on disk when an upload is refused.
"""

from __future__ import annotations

import base64
import io
import logging
import os
import re
import shutil
import tempfile
import time
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction

from deepmed.exceptions import ApplicationError, NotFound
from deepmed.jobs import send_job
from deepmed.uploads import refuse_declared_over
from modelhub.artifacts import artifact_verified_path, artifact_write
from modelhub.models import TrainingModel, TrainingRun
from modelhub.storage import media_root, resolve_media_path

from .ml.architectures import ARCHITECTURES, DEFAULT_ARCHITECTURE
from .ml.archive import extract_images, inspect_zip
from .ml.datasets import ImageRecord, ImageRecordsDataset, index_images, split_records
from .ml.errors import ImageDecodeError, ImagingError
from .ml.images import check_image_size, decode_image, save_png
from .ml.training import LEVELS, TrainingProgress
from .models import AugmentationJob, ImageDataset

logger = logging.getLogger(__name__)

DATASET_TYPE = "image_dataset"
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 16, 512
# Epochs of the autoencoder per level: it learns pixels from scratch, so it needs more passes than a fine-tune.
ANOMALY_EPOCHS = {1: 3, 2: 8, 3: 15, 4: 30, 5: 50}
ANOMALY_IMAGE_SIZE = 64
# Anomaly detectors: PatchCore (pretrained patch features; the default, because on benchmarks/anomaly_families.py it
# matched or beat the autoencoder on every anomaly family, by far on most), the autoencoder, and its enhanced ensemble.
ANOMALY_MODES = {
    "patchcore": "PatchCore: nearest-neighbour distance to pretrained patch features of normal images",
    "autoencoder": "Autoencoder reconstruction error",
    "ensemble": "Autoencoder ensemble: reconstruction error + Isolation Forest, LOF and One-Class SVM",
}
DEFAULT_ANOMALY_MODE = "patchcore"
# PatchCore: the share of normal patch features kept in the memory bank, per level (greedy coreset).
PATCHCORE_CORESET_RATIO = {1: 0.03, 2: 0.05, 3: 0.1, 4: 0.2, 5: 0.35}
# The backbone sees at least this many pixels a side: below it the patch grid is too coarse to find small defects.
PATCHCORE_MIN_INPUT = 224
# Score overlays are drawn at the image's own size; larger images are scaled down to this longest side.
ANOMALY_MAP_MAX_SIDE = 1024
# The detectors of enhanced mode, in the order the score components are reported.
ANOMALY_DETECTOR_LABELS = {
    "reconstruction": "Reconstruction error",
    "isolation_forest": "Isolation Forest",
    "local_outlier_factor": "Local Outlier Factor",
    "one_class_svm": "One-Class SVM",
}
MAX_PREDICT_FILES = 200
# A ZIP of images to score may unpack to this many times the request limit: DICOM compresses 2-3×, PNG/JPEG not.
PREDICT_ZIP_EXPANSION = 4
# A progress write per batch would hammer the database on fast GPUs; epochs are always written.
PROGRESS_INTERVAL_SECONDS = 1.0


def _refusal(exc: ImagingError) -> ApplicationError:
    return ApplicationError(exc.message, code=exc.code)


# ----------------------------------------------------------------------------- datasets
def _zip_limits() -> dict:
    return {
        "max_files": settings.MAX_ZIP_FILES,
        "max_uncompressed_bytes": settings.MAX_ZIP_UNCOMPRESSED_MB * 1024 * 1024,
    }


def _refuse_oversized(uploaded_file) -> None:
    limit = settings.MAX_IMAGE_ZIP_MB * 1024 * 1024
    if (getattr(uploaded_file, "size", 0) or 0) > limit:
        raise ApplicationError(
            f"The ZIP is larger than {settings.MAX_IMAGE_ZIP_MB} MB; "
            "split it or ask an administrator to raise the limit.",
            code="file_too_large",
        )


def _missing_dirs(path: Path) -> list[Path]:
    """The folders `path.mkdir(parents=True)` would create, deepest first, so a refusal can remove them again."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    return missing


def _convert_dicom(record: ImageRecord, salt: str) -> list[str]:
    """Replace a stored DICOM file by a PNG of its pixels: the PNG carries none of the DICOM's tags."""
    decoded = decode_image(record.path.read_bytes(), patient_salt=salt)
    png = record.path.with_suffix(".png")
    save_png(decoded.image, png)
    record.path.unlink()
    record.path = png
    return decoded.notes


def image_dataset_create(*, user, uploaded_file, purpose: str = ImageDataset.Purpose.CLASSIFICATION) -> ImageDataset:
    """Inspect, extract, decode and index a ZIP into the owner's folder; on any refusal remove everything written."""
    _refuse_oversized(uploaded_file)
    try:
        zip_report = inspect_zip(uploaded_file, **_zip_limits())
    except ImagingError as exc:
        raise _refusal(exc) from exc
    folder = f"{int(user.id)}/images/{uuid.uuid4().hex}"
    dest = media_root() / folder
    created_dirs = _missing_dirs(dest)
    salt = settings.IMAGING_PATIENT_SALT or None
    try:
        extracted = extract_images(uploaded_file, dest, zip_report)
        if purpose == ImageDataset.Purpose.ANOMALY:
            # Normal images need no class folders: put them all in one class, wherever they sit in the ZIP.
            items = [(item.path, f"normal/{item.original_name}") for item in extracted]
            index = index_images(items, patient_salt=salt, min_classes=1, min_per_class=10)
        else:
            index = index_images(extracted, patient_salt=salt)
        # Skipped files (corrupt, duplicates, outside class folders) are not kept.
        kept = {record.path for record in index.records}
        for item in extracted:
            if item.path not in kept:
                item.path.unlink(missing_ok=True)
        conversions = []
        for record in index.records:
            if record.kind == "dicom":
                notes = _convert_dicom(record, salt or "")
                conversions.append(
                    {"file": record.relative_name, "notes": ["Converted from DICOM to PNG; tags removed."]}
                )
                conversions[-1]["notes"].extend(notes)
        report = index.report()
        report["conversions"] = conversions
        report["ignored"] = list(zip_report.ignored)
        files = [
            {
                "path": record.path.relative_to(dest).as_posix(),
                "name": record.relative_name,
                "label": record.label,
                "split": record.split,
                "sha256": record.sha256,
                "kind": record.kind,
                "patient_key": record.patient_key,
            }
            for record in index.records
        ]
        with transaction.atomic():
            dataset = ImageDataset.objects.create(
                owner=user,
                name=(getattr(uploaded_file, "name", "") or "images.zip")[:255],
                purpose=purpose,
                folder=folder,
                files=files,
                classes=index.classes,
                class_counts=index.class_counts,
                report=report,
                n_images=len(files),
            )
    except BaseException as exc:
        shutil.rmtree(dest, ignore_errors=True)
        for directory in created_dirs[1:]:
            try:
                directory.rmdir()
            except OSError:
                break
        if isinstance(exc, ImagingError):
            raise _refusal(exc) from exc
        raise
    return dataset


def _dataset_records(dataset: ImageDataset) -> list[ImageRecord]:
    root = resolve_media_path(dataset.folder, owner_id=dataset.owner_id)
    if root is None or not root.is_dir():
        raise ApplicationError("The images of this dataset are no longer stored; upload them again.", code="gone")
    return [
        ImageRecord(
            path=root / item["path"],
            relative_name=item["name"],
            label=item["label"],
            split=item["split"],
            sha256=item["sha256"],
            kind=item["kind"],
            patient_key=item["patient_key"],
        )
        for item in dataset.files
    ]


def image_dataset_summary(dataset: ImageDataset) -> dict:
    """What the model report shows about the training images, copied into the model's metrics at training time.

    A copy, not a reference: the dataset may be deleted later (by its owner or by retention) while the model stays.
    """
    report = dataset.report or {}
    return {
        "id": dataset.id,
        "name": dataset.name,
        "n_images": dataset.n_images,
        "class_counts": dict(dataset.class_counts or {}),
        "has_provided_split": bool(report.get("has_provided_split")),
        "split_counts": report.get("split_counts"),
        "skipped": list(report.get("skipped") or []),
        "duplicates": list(report.get("duplicates") or []),
        "conversions": len(report.get("conversions") or []),
        "patient_leakage": len(report.get("patient_leakage") or []),
        "warnings": list(report.get("warnings") or []),
    }


def _delete_with_folder(*, row, request, user, details: dict) -> None:
    """Audit the deletion, delete the row (an image dataset or an augmentation), and its folder once that commits."""
    from accounts.audit import audit_record
    from accounts.models import AuditEvent

    audit_record(action=AuditEvent.Action.DELETED, request=request, actor=user, target=row, details=details)
    folder, owner_id = row.folder, row.owner_id
    row.delete()
    _remove_folder_after_commit(name=folder, owner_id=owner_id)


def _remove_folder_after_commit(*, name: str, owner_id: int) -> None:
    """Remove a stored folder once the row naming it is gone for good (a rollback keeps both)."""
    path = resolve_media_path(name, owner_id=owner_id) if name else None
    if path is None:
        if name:
            logger.warning("refused to delete %r: it is outside the owner's media folder", name)
        return
    transaction.on_commit(lambda: shutil.rmtree(path, ignore_errors=True))


def image_dataset_delete(*, user, dataset_id: int, request=None) -> None:
    """Delete one of the user's image datasets and its files; refused (409) while a queued or running run uses it.

    Finished runs and their models stay: a model's artefact does not need the images, and its report keeps the
    dataset checks recorded at training time.
    """
    with transaction.atomic():
        dataset = ImageDataset.objects.select_for_update().filter(owner=user, id=dataset_id).first()
        if dataset is None:
            raise NotFound("No image dataset of yours has this id.")
        active = list(
            TrainingRun.objects.filter(
                user_id=dataset.owner_id,
                kind__in=(TrainingRun.Kind.IMAGE, TrainingRun.Kind.ANOMALY),
                dataset_id=str(dataset.id),
                status__in=TrainingRun.ACTIVE_STATUSES,
            ).values_list("id", flat=True)
        )
        if active:
            runs = ", ".join(str(run_id) for run_id in active)
            raise ApplicationError(
                f"Training run {runs} is still using this dataset. Stop it or wait for it to finish, "
                "then delete the dataset.",
                code="dataset_in_use",
                status_code=409,
                extra={"runs": active},
            )
        _delete_with_folder(
            row=dataset,
            request=request,
            user=user,
            details={"kind": "image_dataset", "n_images": dataset.n_images, "purpose": dataset.purpose},
        )


# ----------------------------------------------------------------------------- runs
def _enqueue(task, run: TrainingRun) -> None:
    def send() -> None:
        # The task id lets an operator find or revoke the job; a field-scoped update, so it never overwrites the
        # worker's own progress writes even when the worker has already picked the task up.
        # Broker away: the run is marked failed and the request answers 503 (deepmed/jobs.py), never stuck queued.
        result = send_job(task, args=[run.id], run=run)
        TrainingRun.objects.filter(pk=run.pk).update(celery_task_id=result.id or "")

    transaction.on_commit(send)


def _progress_writer(run: TrainingRun):
    last = [0.0]

    def report(progress: TrainingProgress) -> None:
        now = time.monotonic()
        if progress.stage == "batch" and now - last[0] < PROGRESS_INTERVAL_SECONDS:
            return
        last[0] = now
        eta = f", about {int(progress.eta_seconds)} s left" if progress.eta_seconds is not None else ""
        message = progress.message or f"Epoch {progress.epoch}/{progress.epochs}, batch {progress.batch}"
        run.set_progress(min(progress.fraction, 0.99), f"{message}{eta}")

    return report


def image_training_start(
    *, user, uploaded_file, architecture: str = DEFAULT_ARCHITECTURE, level: int = 1, image_size: int | None = None
) -> TrainingRun:
    """Check the options, store the dataset, create a queued image run and enqueue it after commit."""
    if architecture not in ARCHITECTURES:
        raise ApplicationError(
            f"Unknown architecture {architecture!r}; choose one of {', '.join(ARCHITECTURES)}.", code="architecture"
        )
    if level not in LEVELS:
        raise ApplicationError(f"The training level must be one of {', '.join(map(str, LEVELS))}.", code="level")
    image_size = int(image_size or settings.IMAGE_SIZE)
    if not MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE:
        raise ApplicationError(
            f"The image size must be between {MIN_IMAGE_SIZE} and {MAX_IMAGE_SIZE} pixels.", code="image_size"
        )
    from . import tasks

    dataset = image_dataset_create(user=user, uploaded_file=uploaded_file)
    preset = LEVELS[level]
    run = TrainingRun.objects.create(
        user=user,
        kind=TrainingRun.Kind.IMAGE,
        run_name=f"{architecture} on {dataset.name}",
        message="Queued",
        config={
            "architecture": architecture,
            "level": level,
            "image_size": image_size,
            "epochs": preset.epochs,
            "batch_size": preset.batch_size,
            "learning_rate": preset.learning_rate,
            "classes": dataset.classes,
        },
        dataset_type=DATASET_TYPE,
        dataset_id=str(dataset.id),
    )
    _enqueue(tasks.train_image_classifier, run)
    return run


def _run_dataset(run: TrainingRun) -> ImageDataset:
    return ImageDataset.objects.get(id=int(run.dataset_id), owner_id=run.user_id)


def _fail(run: TrainingRun, exc: BaseException) -> None:
    if isinstance(exc, ImagingError | ApplicationError):
        run.finish(TrainingRun.Status.FAILED, error=exc.message, message="Failed")
    else:
        logger.exception("Imaging run %s failed", run.id)
        run.finish(
            TrainingRun.Status.FAILED,
            error="Training failed because of an internal error; the administrators can see the details in the log.",
            message="Failed",
        )


def image_training_execute(*, run_id: int) -> None:
    """Train the run's classifier, store it in the model hub and finish the run (succeeded, stopped or failed)."""
    from .ml.training import ImageClassifierTrainer

    run = TrainingRun.objects.get(id=run_id, kind=TrainingRun.Kind.IMAGE)
    if not run.start(message="Preparing the images"):
        return
    try:
        dataset = _run_dataset(run)
        records = _dataset_records(dataset)
        if any(record.split for record in records):
            train, val = [r for r in records if r.split == "train"], [r for r in records if r.split == "val"]
        else:
            train, val = split_records(records, val_fraction=0.2, seed=0)
        classes = list(dataset.classes)
        config = run.config
        trainer = ImageClassifierTrainer(
            config["architecture"],
            level=config["level"],
            image_size=config["image_size"],
            progress=_progress_writer(run),
            should_stop=run.stop_is_requested,
        )
        trainer.fit(ImageRecordsDataset(train, classes), ImageRecordsDataset(val, classes), class_names=classes)
        stored = artifact_write(user_id=run.user_id, run_id=run.id, write=lambda p: trainer.save(p), suffix=".pt")
        metrics = {
            **trainer.metrics_,
            "class_names": classes,
            "image_size": trainer.image_size,
            "normalisation": {"mean": list(trainer.info_.mean), "std": list(trainer.info_.std)},
            "imagenet_weights": bool(trainer.info_.pretrained),
            "weights": trainer.info_.weights,
            "history": trainer.history_,
            "best_epoch": trainer.best_epoch_,
            "train_images": len(train),
            "val_images": len(val),
            "stopped": bool(trainer.stopped_),
            "dataset": image_dataset_summary(dataset),
        }
        model = TrainingModel.objects.create(
            user_id=run.user_id,
            run=run,
            model_name=config["architecture"],
            metric_name="accuracy",
            metric_value=float(trainer.metrics_["accuracy"]),
            metrics=metrics,
            file_name=stored.file_name,
            sha256=stored.sha256,
            size=stored.size,
        )
        TrainingModel.objects.filter(pk=model.pk).update(model_url=f"/download_model/{model.pk}")
        if trainer.stopped_:
            run.finish(TrainingRun.Status.STOPPED, message="Stopped; the best weights so far were kept.")
        else:
            run.finish(TrainingRun.Status.SUCCEEDED, message=f"Done: validation accuracy {metrics['accuracy']:.3f}")
    except Exception as exc:
        _fail(run, exc)


# ----------------------------------------------------------------------------- prediction
@dataclass(frozen=True)
class UploadedImage:
    """One image to predict on: its display name and bytes (or the decode refusal met while unpacking)."""

    name: str
    data: bytes


def _is_zip(data: bytes) -> bool:
    return data[:4] == b"PK\x03\x04"


def _predict_upload_limit() -> int:
    return settings.MAX_PREDICT_IMAGE_MB * 1024 * 1024


def _predict_too_large(size: int | None = None) -> ApplicationError:
    shown = f" ({size / 1024 / 1024:.1f} MB)" if size else ""
    return ApplicationError(
        f"The upload is too large{shown}: images to score may total {settings.MAX_PREDICT_IMAGE_MB} MB. "
        "Send fewer or smaller images at a time.",
        code="file_too_large",
    )


def refuse_oversized_predict_request(request) -> None:
    """Refuse oversized images to score by their declared length, before the body is parsed."""
    refuse_declared_over(request, limit_bytes=_predict_upload_limit(), error=_predict_too_large)


def _expand_uploads(files) -> list[UploadedImage]:
    """Images from the uploaded files; a ZIP among them is inspected and unpacked into a temporary folder.

    Bytes, file counts and every image's size (from its header) are checked before anything is decoded.
    """
    limit = _predict_upload_limit()
    declared = sum(getattr(upload, "size", 0) or 0 for upload in files)
    if declared > limit:
        raise _predict_too_large(declared)
    images: list[UploadedImage] = []
    for upload in files:
        data = upload.read(limit + 1)
        name = getattr(upload, "name", "") or "image"
        if len(data) > limit:
            raise _predict_too_large()
        if not _is_zip(data):
            images.append(UploadedImage(name, data))
            continue
        upload.seek(0)
        try:
            # From the central directory: no more files than one request may score, and no more bytes than the
            # request limit times PREDICT_ZIP_EXPANSION, before a single member is unpacked.
            report = inspect_zip(
                upload,
                max_files=max(MAX_PREDICT_FILES - len(images), 0),
                max_uncompressed_bytes=limit * PREDICT_ZIP_EXPANSION,
            )
            with tempfile.TemporaryDirectory(prefix="deepmed-predict-") as tmp:
                for item in extract_images(upload, tmp, report):
                    images.append(UploadedImage(item.original_name, Path(item.path).read_bytes()))
        except ImagingError as exc:
            raise _refusal(exc) from exc
    if not images:
        raise ApplicationError(
            "Send at least one image (PNG, JPEG, TIFF, BMP, DICOM) or a ZIP of images.", code="no_files"
        )
    if len(images) > MAX_PREDICT_FILES:
        raise ApplicationError(f"Send at most {MAX_PREDICT_FILES} images at a time.", code="too_many_files")
    for item in images:
        try:
            check_image_size(item.data)
        except ImageDecodeError as exc:
            raise ApplicationError(f"{item.name}: {exc.message}", code=exc.code) from exc
    return images


def _owned_model(*, user, model_id, kind: str) -> TrainingModel:
    model = TrainingModel.objects.select_related("run").filter(user=user, id=model_id, run__kind=kind).first()
    if model is None:
        raise NotFound("No model of yours has this id.")
    return model


def _data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def image_predict(*, user, model_id: int, files) -> dict:
    """Label, confidence, probabilities and a Grad-CAM overlay per image; unreadable files get their own error."""
    from .ml.gradcam import explain
    from .ml.training import ImageClassifierTrainer

    model = _owned_model(user=user, model_id=model_id, kind=TrainingRun.Kind.IMAGE)
    images = _expand_uploads(files)
    trainer = ImageClassifierTrainer.load(artifact_verified_path(model))
    predictions = []
    for item in images:
        try:
            decoded = decode_image(item.data)
        except ImageDecodeError as exc:
            predictions.append({"file": item.name, "error": exc.message, "code": exc.code})
            continue
        result = explain(trainer, decoded.image)
        predictions.append(
            {
                "file": item.name,
                "label": result["label"],
                "confidence": result["confidence"],
                "probabilities": result["probabilities"],
                "heatmap": _data_url(result["overlay_png"]),
            }
        )
    return {"model_id": model.id, "predictions": predictions}


# ----------------------------------------------------------------------------- anomaly detection
def _anomaly_mode(mode: str | None, enhanced: bool) -> str:
    """The detector to train: ``mode`` (the default when absent); ``enhanced`` turns the autoencoder into its ensemble.

    ``enhanced`` alone keeps meaning what it meant before modes existed: the autoencoder ensemble.
    """
    if mode and mode not in ANOMALY_MODES:
        raise ApplicationError(f"Unknown anomaly mode {mode!r}; choose one of {', '.join(ANOMALY_MODES)}.", code="mode")
    if enhanced:
        if mode == "patchcore":
            raise ApplicationError(
                "Enhanced mode is the autoencoder's ensemble; it cannot be combined with PatchCore.", code="mode"
            )
        return "ensemble"
    return mode or DEFAULT_ANOMALY_MODE


def anomaly_training_start(
    *,
    user,
    uploaded_file,
    level: int = 1,
    image_size: int = ANOMALY_IMAGE_SIZE,
    enhanced: bool = False,
    mode: str | None = None,
) -> TrainingRun:
    """Store a ZIP of normal images and enqueue a detector run: PatchCore (default), autoencoder or its ensemble."""
    mode = _anomaly_mode(mode, enhanced)
    if level not in ANOMALY_EPOCHS:
        raise ApplicationError(
            f"The training level must be one of {', '.join(map(str, ANOMALY_EPOCHS))}.", code="level"
        )
    if image_size % 16 or not 16 <= image_size <= 256:
        raise ApplicationError("The image size must be a multiple of 16 between 16 and 256.", code="image_size")
    from . import tasks

    dataset = image_dataset_create(user=user, uploaded_file=uploaded_file, purpose=ImageDataset.Purpose.ANOMALY)
    config = {"mode": mode, "level": level, "image_size": image_size, "enhanced": mode == "ensemble"}
    if mode == "patchcore":
        config |= {"input_size": max(image_size, PATCHCORE_MIN_INPUT), "coreset_ratio": PATCHCORE_CORESET_RATIO[level]}
    else:
        config["epochs"] = ANOMALY_EPOCHS[level]
    run = TrainingRun.objects.create(
        user=user,
        kind=TrainingRun.Kind.ANOMALY,
        run_name=f"Anomaly detector on {dataset.name}",
        message="Queued",
        config=config,
        dataset_type=DATASET_TYPE,
        dataset_id=str(dataset.id),
    )
    _enqueue(tasks.train_anomaly_detector, run)
    return run


def _fit_patchcore(run: TrainingRun, paths: list[Path]):
    from .ml.patchcore import PatchCoreAnomalyDetector

    detector = PatchCoreAnomalyDetector(
        input_size=run.config["input_size"],
        coreset_ratio=run.config["coreset_ratio"],
        progress=_progress_writer(run),
        should_stop=run.stop_is_requested,
    )
    detector.fit(paths)
    metrics = {
        "val_images": len(detector.val_scores_),
        "input_size": detector.input_size,
        "detectors": ["patchcore"],
        "memory_bank_size": len(detector.memory_bank_),
        "patches_seen": detector.patches_seen_,
        "coreset_ratio": detector.coreset_ratio,
        "image_descriptor": detector.image_descriptor,
        "backbone": "EfficientNet-Lite0 (ImageNet), blocks " + ", ".join(str(layer) for layer in detector.layers),
        "weights": detector.backbone_weights_,
        "fit_seconds": round(detector.fit_seconds_, 2),
        "history": [],
    }
    return detector, "patchcore", metrics


def _fit_autoencoder(run: TrainingRun, paths: list[Path]):
    from .ml.anomaly import AutoencoderAnomalyDetector

    detector = AutoencoderAnomalyDetector(
        image_size=run.config["image_size"],
        epochs=run.config["epochs"],
        enhanced=bool(run.config.get("enhanced", False)),
        progress=_progress_writer(run),
        should_stop=run.stop_is_requested,
    )
    detector.fit(paths)
    metrics = {
        "val_images": len(detector.val_reconstruction_errors_),
        "detectors": list(ANOMALY_DETECTOR_LABELS) if detector.enhanced else ["reconstruction"],
        "score_method": detector.score_method,
        "history": detector.history_,
    }
    return detector, "conv_autoencoder", metrics


def anomaly_training_execute(*, run_id: int) -> None:
    """Train the run's detector on its normal images and store it with its threshold and histogram."""
    run = TrainingRun.objects.get(id=run_id, kind=TrainingRun.Kind.ANOMALY)
    if not run.start(message="Preparing the images"):
        return
    try:
        dataset = _run_dataset(run)
        records = _dataset_records(dataset)
        # Runs queued before modes existed carry no "mode": they were autoencoder runs.
        mode = run.config.get("mode") or ("ensemble" if run.config.get("enhanced") else "autoencoder")
        fit = _fit_patchcore if mode == "patchcore" else _fit_autoencoder
        try:
            detector, model_name, specific = fit(run, [record.path for record in records])
        except ValueError as exc:
            raise ApplicationError(str(exc), code="anomaly_training") from exc
        stored = artifact_write(user_id=run.user_id, run_id=run.id, write=lambda p: detector.save(p), suffix=".pt")
        metrics = {
            "mode": mode,
            "threshold": detector.threshold_,
            "threshold_percentile": detector.threshold_percentile,
            "histogram": detector.histogram(),
            "image_size": run.config["image_size"],
            "train_images": len(records),
            "enhanced": mode == "ensemble",
            "stopped": bool(detector.stopped_),
            "dataset": image_dataset_summary(dataset),
            **specific,
        }
        model = TrainingModel.objects.create(
            user_id=run.user_id,
            run=run,
            model_name=model_name,
            metric_name="threshold",
            metric_value=float(detector.threshold_),
            metrics=metrics,
            file_name=stored.file_name,
            sha256=stored.sha256,
            size=stored.size,
        )
        TrainingModel.objects.filter(pk=model.pk).update(model_url=f"/download_model/{model.pk}")
        status = TrainingRun.Status.STOPPED if detector.stopped_ else TrainingRun.Status.SUCCEEDED
        run.finish(status, message=f"Done: threshold {detector.threshold_:.5g}")
    except Exception as exc:
        _fail(run, exc)


def _load_anomaly_detector(model: TrainingModel):
    from .ml.anomaly import load_anomaly_detector

    try:
        return load_anomaly_detector(artifact_verified_path(model))
    except ValueError as exc:
        raise ApplicationError(str(exc), code="detector_unusable", status_code=409) from exc


def _png_size(png: bytes) -> tuple[int, int]:
    """Width and height from a PNG's header (IHDR), without decoding it."""
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def anomaly_score(*, user, model_id: int, files) -> dict:
    """Score, threshold, verdict and the anomaly map over the image (at its own size) per image.

    Unreadable files get their own error.
    """
    model = _owned_model(user=user, model_id=model_id, kind=TrainingRun.Kind.ANOMALY)
    images = _expand_uploads(files)
    detector = _load_anomaly_detector(model)
    patchcore = hasattr(detector, "score_with_maps")
    results = []
    for item in images:
        try:
            decoded = decode_image(item.data)
        except ImageDecodeError as exc:
            results.append({"file": item.name, "error": exc.message, "code": exc.code})
            continue
        if patchcore:
            # One pass of the backbone gives both the score (the largest patch distance) and the map.
            scores, (anomaly_map,) = detector.score_with_maps([decoded.image])
            scored = {"score": float(scores[0]), "mode": "patchcore"}
            overlay = detector.overlay_png(decoded.image, anomaly_map, max_side=ANOMALY_MAP_MAX_SIDE)
        else:
            scored = detector.score([decoded.image])[0]
            overlay = detector.overlay_png(decoded.image, max_side=ANOMALY_MAP_MAX_SIDE)
        result = {
            "file": item.name,
            "score": scored["score"],
            "threshold": detector.threshold_,
            "is_anomaly": bool(scored["score"] > detector.threshold_),
            "mode": scored["mode"],
            "heatmap": _data_url(overlay),
            "map_size": list(_png_size(overlay)),
        }
        if patchcore:
            result["map_peak"] = float(anomaly_map.max())
        else:
            result["reconstruction_error"] = scored["reconstruction_error"]
        if "components" in scored:
            result["components"] = scored["components"]
        results.append(result)
    return {"model_id": model.id, "results": results}


# ----------------------------------------------------------------------------- augmentation
MAX_VARIANTS_PER_IMAGE = 20
_UNSAFE_NAME_CHARS = re.compile(r"[^\w\-. ]")


def _safe_part(part: str) -> str:
    cleaned = _UNSAFE_NAME_CHARS.sub("_", part).strip(" .") or "_"
    return cleaned[:100]


def augmentation_start(*, user, uploaded_file, preset: str, per_image: int) -> AugmentationJob:
    """Check the options, extract the ZIP into the owner's folder and enqueue the job after commit."""
    from . import tasks
    from .ml.augmentation import PRESETS

    if preset not in PRESETS:
        raise ApplicationError(f"Unknown preset {preset!r}; choose one of {', '.join(PRESETS)}.", code="preset")
    if not 1 <= per_image <= MAX_VARIANTS_PER_IMAGE:
        raise ApplicationError(f"Variants per image must be between 1 and {MAX_VARIANTS_PER_IMAGE}.", code="per_image")
    _refuse_oversized(uploaded_file)
    try:
        zip_report = inspect_zip(uploaded_file, **_zip_limits())
    except ImagingError as exc:
        raise _refusal(exc) from exc
    if zip_report.file_count * (per_image + 1) > settings.MAX_ZIP_FILES:
        raise ApplicationError(
            f"{zip_report.file_count} images × {per_image + 1} would exceed the {settings.MAX_ZIP_FILES} files one "
            "ZIP may hold; use fewer variants or fewer images.",
            code="too_many_files",
        )
    folder = f"{int(user.id)}/augment/{uuid.uuid4().hex}"
    dest = media_root() / folder
    created_dirs = _missing_dirs(dest)
    try:
        extracted = extract_images(uploaded_file, dest / "extracted", zip_report)
        source = dest / "source"
        # Keep the archive's folders (class folders survive augmentation) with names made safe for the disk.
        for item in extracted:
            parts = [_safe_part(part) for part in item.original_name.split("/") if part]
            target = source.joinpath(*parts[:-1], f"{Path(parts[-1]).stem}{item.path.suffix}")
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                target = target.with_name(f"{target.stem}_{item.path.stem}{target.suffix}")
            item.path.rename(target)
        shutil.rmtree(dest / "extracted", ignore_errors=True)
        with transaction.atomic():
            job = AugmentationJob.objects.create(
                owner=user, preset=preset, per_image=per_image, folder=folder, message="Queued"
            )
    except BaseException as exc:
        shutil.rmtree(dest, ignore_errors=True)
        for directory in created_dirs[1:]:
            try:
                directory.rmdir()
            except OSError:
                break
        if isinstance(exc, ImagingError):
            raise _refusal(exc) from exc
        raise

    def refused(error: str) -> None:
        # The job can never start: fail it (the job list says why) and drop the extracted copy nobody will read.
        from django.utils import timezone

        AugmentationJob.objects.filter(id=job.id, status=AugmentationJob.Status.QUEUED).update(
            status=AugmentationJob.Status.FAILED,
            error=error,
            message="Failed: the job queue was unavailable.",
            finished_at=timezone.now(),
        )
        shutil.rmtree(dest / "source", ignore_errors=True)

    # Broker away: the job is marked failed and the request answers 503 (deepmed/jobs.py), never stuck queued.
    transaction.on_commit(lambda: send_job(tasks.augment_images, args=[job.id], on_refused=refused))
    return job


def augmentation_execute(*, job_id: int) -> None:
    """Write originals + variants, pack them into result.zip, remove the working copies."""
    from django.utils import timezone

    from .ml.augmentation import augment_folder

    claimed = AugmentationJob.objects.filter(id=job_id, status=AugmentationJob.Status.QUEUED).update(
        status=AugmentationJob.Status.RUNNING, message="Augmenting"
    )
    if not claimed:
        return
    job = AugmentationJob.objects.get(id=job_id)
    root = resolve_media_path(job.folder, owner_id=job.owner_id)
    try:
        if root is None or not (root / "source").is_dir():
            raise ApplicationError("The uploaded images are no longer stored; upload them again.", code="gone")

        def progress(done: int, total: int) -> None:
            AugmentationJob.objects.filter(id=job_id).update(
                progress=done / max(total, 1), message=f"{done} of {total} images"
            )

        report = augment_folder(root / "source", root / "output", job.preset, job.per_image, progress=progress)
        result = root / "result.zip"
        partial = root / ".result.zip.partial"
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted((root / "output").rglob("*")):
                if path.is_file():
                    archive.write(path, path.relative_to(root / "output").as_posix())
        os.replace(partial, result)
        AugmentationJob.objects.filter(id=job_id).update(
            status=AugmentationJob.Status.SUCCEEDED,
            progress=1.0,
            report=report,
            result_name=f"{job.folder}/result.zip",
            message=f"Done: {report['written']} images",
            finished_at=timezone.now(),
        )
    except Exception as exc:
        if not isinstance(exc, ApplicationError):
            logger.exception("Augmentation job %s failed", job_id)
        error = exc.message if isinstance(exc, ApplicationError) else "Augmentation failed: an internal error."
        AugmentationJob.objects.filter(id=job_id).update(
            status=AugmentationJob.Status.FAILED, error=error, message="Failed", finished_at=timezone.now()
        )
    finally:
        if root is not None:
            shutil.rmtree(root / "source", ignore_errors=True)
            shutil.rmtree(root / "output", ignore_errors=True)


def augmentation_result_path(*, job: AugmentationJob) -> Path:
    """The finished ZIP of a job (already owner-checked), inside the owner's folder."""
    path = resolve_media_path(job.result_name, owner_id=job.owner_id) if job.result_name else None
    if job.status != AugmentationJob.Status.SUCCEEDED or path is None or not path.is_file():
        raise ApplicationError("This augmentation has no result to download yet.", code="not_ready", status_code=409)
    return path


def augmentation_job_delete(*, user, job_id: int, request=None) -> None:
    """Delete one of the user's augmentations with its result ZIP; refused (409) while it is queued or running."""
    with transaction.atomic():
        job = AugmentationJob.objects.select_for_update().filter(owner=user, id=job_id).first()
        if job is None:
            raise NotFound("No augmentation of yours has this id.")
        if job.status in (AugmentationJob.Status.QUEUED, AugmentationJob.Status.RUNNING):
            raise ApplicationError(
                "This augmentation is still running; wait for it to finish, then delete it.",
                code="augmentation_running",
                status_code=409,
            )
        _delete_with_folder(
            row=job,
            request=request,
            user=user,
            details={"kind": "augmentation", "status": job.status, "preset": job.preset},
        )


def augmentation_preview(*, files, preset: str, n: int = 6) -> str:
    """A PNG grid (as a data URL): each uploaded image, then `n` variants of it under the preset."""
    from .ml.augmentation import PRESETS, preview

    if preset not in PRESETS:
        raise ApplicationError(f"Unknown preset {preset!r}; choose one of {', '.join(PRESETS)}.", code="preset")
    images = []
    for item in _expand_uploads(files)[:4]:
        try:
            images.append(decode_image(item.data).image)
        except ImageDecodeError as exc:
            raise ApplicationError(f"{item.name}: {exc.message}", code=exc.code) from exc
    return _data_url(preview(images, preset, n=n, tile=96))


# ----------------------------------------------------------------------------- pipeline
PIPELINE_DATASET_TYPE = "image_pipeline"


def pipeline_start(*, user, uploaded_file, steps) -> TrainingRun:
    """Validate the composition, store the ZIP and enqueue the whole pipeline as one run."""
    from . import tasks
    from .ml.pipeline import TRAINING_TYPES, validate_pipeline

    if not isinstance(steps, list):
        raise ApplicationError('`steps` must be a JSON list of {"type", "params"} objects.', code="invalid_pipeline")
    problems = validate_pipeline(steps)
    if problems:
        raise ApplicationError(
            "The pipeline cannot run: " + " ".join(problems), code="invalid_pipeline", extra={"problems": problems}
        )
    training = steps[-1]["type"]
    if training not in TRAINING_TYPES:
        raise ApplicationError(
            "End the pipeline with a training step (train_classifier or train_anomaly).", code="no_training_step"
        )
    anomaly = training == "train_anomaly"
    purpose = ImageDataset.Purpose.ANOMALY if anomaly else ImageDataset.Purpose.CLASSIFICATION
    dataset = image_dataset_create(user=user, uploaded_file=uploaded_file, purpose=purpose)
    run = TrainingRun.objects.create(
        user=user,
        kind=TrainingRun.Kind.ANOMALY if anomaly else TrainingRun.Kind.IMAGE,
        run_name=f"Pipeline on {dataset.name}",
        message="Queued",
        config={"pipeline": steps, "work_folder": f"{int(user.id)}/pipelines/{uuid.uuid4().hex}"},
        dataset_type=PIPELINE_DATASET_TYPE,
        dataset_id=str(dataset.id),
    )
    transaction.on_commit(lambda: send_job(tasks.run_image_pipeline, args=[run.id], run=run))
    return run


def pipeline_execute(*, run_id: int) -> None:
    """Run every step (outputs kept under the run's work folder), then store the trained model in the hub."""
    from .ml.pipeline import run_pipeline

    run = TrainingRun.objects.get(id=run_id, dataset_type=PIPELINE_DATASET_TYPE)
    if not run.start(message="Preparing the images"):
        return
    work = resolve_media_path(run.config["work_folder"], owner_id=run.user_id)
    try:
        if work is None:
            raise ApplicationError("The pipeline's folder is not inside your storage.", code="invalid_folder")
        dataset = _run_dataset(run)
        input_dir = work / "input"
        for record in _dataset_records(dataset):
            target = input_dir / _safe_part(record.label) / record.path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(record.path, target)

        def progress(update) -> None:
            run.set_progress(min(update.overall_fraction, 0.99), update.message)

        result = run_pipeline(
            run.config["pipeline"], input_dir, work / "steps", progress=progress, should_stop=run.stop_is_requested
        )
        shutil.rmtree(input_dir, ignore_errors=True)
        final = result["steps"][-1]
        summaries = [
            {**{key: item[key] for key in ("step", "type", "params")}, "folder": Path(item["output_dir"]).name}
            for item in result["steps"]
        ]
        TrainingRun.objects.filter(pk=run.pk).update(config={**run.config, "steps": summaries})
        if "model_path" not in final:
            run.finish(TrainingRun.Status.STOPPED, message="Stopped before the training step.")
            return
        model_path = Path(final["model_path"])
        stored = artifact_write(
            user_id=run.user_id, run_id=run.id, write=lambda p: shutil.copyfile(model_path, p), suffix=".pt"
        )
        if final["type"] == "train_classifier":
            name, metric_name, metric_value = final["params"]["architecture"], "accuracy", final["metrics"]["accuracy"]
            metrics = {**final["metrics"], "history": final["history"], "weights": final["weights"]}
            metrics["class_names"] = final["dataset"]["classes"]
        else:
            name, metric_name, metric_value = "conv_autoencoder", "threshold", final["threshold"]
            metrics = {key: final[key] for key in ("threshold", "threshold_percentile", "histogram", "history")}
        model = TrainingModel.objects.create(
            user_id=run.user_id,
            run=run,
            model_name=name,
            metric_name=metric_name,
            metric_value=float(metric_value),
            metrics={**metrics, "pipeline": summaries, "stopped": bool(result["stopped"])},
            file_name=stored.file_name,
            sha256=stored.sha256,
            size=stored.size,
        )
        TrainingModel.objects.filter(pk=model.pk).update(model_url=f"/download_model/{model.pk}")
        status = TrainingRun.Status.STOPPED if result["stopped"] else TrainingRun.Status.SUCCEEDED
        run.finish(status, message=f"Done: {metric_name} {float(metric_value):.4g}")
    except Exception as exc:
        if work is not None:
            shutil.rmtree(work / "input", ignore_errors=True)
        _fail(run, exc)


def anomaly_threshold_set(*, user, model_id: int, threshold: float) -> TrainingModel:
    """Save a new threshold with the detector: a new verified artefact replaces the old one, the row follows."""
    import math

    model = _owned_model(user=user, model_id=model_id, kind=TrainingRun.Kind.ANOMALY)
    # PatchCore scores are standardised (standard deviations above normal) and may be negative; autoencoder scores
    # (errors, ranks) are not, so a threshold at or below 0 would flag every image.
    standardised = model.model_name == "patchcore"
    if not math.isfinite(threshold) or (not standardised and threshold <= 0):
        raise ApplicationError(
            "The threshold must be a number." if standardised else "The threshold must be a positive number.",
            code="threshold",
        )
    old_path = artifact_verified_path(model)
    detector = _load_anomaly_detector(model)
    detector.set_threshold(value=float(threshold))
    stored = artifact_write(user_id=model.user_id, run_id=model.run_id, write=lambda p: detector.save(p), suffix=".pt")
    metrics = dict(model.metrics)
    metrics["threshold"] = detector.threshold_
    metrics["threshold_percentile"] = detector.threshold_percentile
    metrics["histogram"] = detector.histogram()
    metrics["threshold_set_by_user"] = True
    TrainingModel.objects.filter(pk=model.pk).update(
        file_name=stored.file_name,
        sha256=stored.sha256,
        size=stored.size,
        metric_value=detector.threshold_,
        metrics=metrics,
    )
    old_path.unlink(missing_ok=True)
    model.refresh_from_db()
    return model


def imaging_model_download_zip(*, model: TrainingModel) -> bytes:
    """A ZIP of an image classifier (checkpoint, TorchScript, metrics, README) or anomaly detector (no TorchScript).

    The checkpoint is read only through `artifact_verified_path`, so a moved or altered file is refused. No
    TorchScript file is stored at training time; it is traced here from the verified checkpoint, which keeps the
    export in step with the exact weights being handed out.
    """
    import json

    import torch
    import torchvision
    from django.template.loader import render_to_string

    checkpoint = artifact_verified_path(model)
    is_classifier = model.run.kind == TrainingRun.Kind.IMAGE
    files: dict[str, bytes] = {"model.pt": checkpoint.read_bytes()}
    if is_classifier:
        from .ml.export import export_torchscript
        from .ml.training import ImageClassifierTrainer

        trainer = ImageClassifierTrainer.load(checkpoint, device="cpu")
        with tempfile.TemporaryDirectory() as folder:
            files["model_torchscript.pt"] = export_torchscript(trainer, Path(folder) / "model.ts").read_bytes()
    files["metrics.json"] = json.dumps(
        {
            "model_id": model.pk,
            "model_name": model.model_name,
            "kind": model.run.kind,
            "metric_name": model.metric_name,
            "metric_value": model.metric_value,
            "class_names": model.metrics.get("class_names"),
            "metrics": model.metrics,
        },
        indent=2,
        default=str,
    ).encode()
    files["README.txt"] = render_to_string(
        "modelhub/image_download_readme.txt",
        {
            "model": model,
            "is_classifier": is_classifier,
            "torch_version": torch.__version__.split("+")[0],
            "torchvision_version": torchvision.__version__.split("+")[0],
            "image_size": model.metrics.get("image_size"),
            "class_names": model.metrics.get("class_names") or [],
            "threshold": model.metrics.get("threshold"),
        },
    ).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()
