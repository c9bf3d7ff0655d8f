"""Writes of the model hub: owners deleting runs and models, retention of old models and the stale-run sweep."""

import logging
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import AuditEvent
from deepmed.exceptions import ApplicationError

from .hub import model_get_for_user, run_get_for_user
from .models import PreprocessingData, TrainingModel, TrainingRun
from .storage import path_size, resolve_media_path

logger = logging.getLogger(__name__)

# Deleting in slices keeps each statement's IN list well under every backend's parameter limit.
_DELETE_BATCH = 500


@dataclass
class RetentionReport:
    """What one retention sweep removed. File figures are filled in once the row deletion has committed."""

    cutoff: datetime
    models_deleted: int = 0
    preprocessing_deleted: int = 0
    image_datasets_deleted: int = 0
    augmentations_deleted: int = 0
    files_deleted: int = 0
    bytes_freed: int = 0
    files_already_missing: int = 0
    paths_refused: list[str] = field(default_factory=list)
    files_failed: list[str] = field(default_factory=list)

    def as_details(self) -> dict:
        return {
            "cutoff": self.cutoff.isoformat(),
            "retention_days": settings.RETENTION_DAYS,
            "models_deleted": self.models_deleted,
            "preprocessing_deleted": self.preprocessing_deleted,
            "image_datasets_deleted": self.image_datasets_deleted,
            "augmentations_deleted": self.augmentations_deleted,
            "files_deleted": self.files_deleted,
            "bytes_freed": self.bytes_freed,
            "files_already_missing": self.files_already_missing,
            "paths_refused": self.paths_refused[:50],
            "files_failed": self.files_failed[:50],
        }


def _delete_paths(paths: list[Path], report: RetentionReport) -> None:
    for path in paths:
        try:
            if path.is_symlink() or path.is_file():
                size = path.lstat().st_size
                path.unlink()
            elif path.is_dir():
                size = path_size(path)
                shutil.rmtree(path)
            else:
                report.files_already_missing += 1
                continue
        except FileNotFoundError:
            report.files_already_missing += 1
            continue
        except OSError as exc:
            logger.error("retention could not delete %s: %s", path, exc.__class__.__name__)
            report.files_failed.append(str(path))
            continue
        report.files_deleted += 1
        report.bytes_freed += size


def _finish_retention(paths: list[Path], report: RetentionReport) -> None:
    """Runs after the rows are gone for good: a rollback never leaves a row pointing at a deleted file."""
    _delete_paths(paths, report)
    logger.info(
        "retention sweep freed %d models, %d preprocessing rows, %d files, %d bytes (cutoff %s); "
        "those include the folders of %d image datasets and %d augmentations",
        report.models_deleted,
        report.preprocessing_deleted,
        report.files_deleted,
        report.bytes_freed,
        report.cutoff.isoformat(),
        report.image_datasets_deleted,
        report.augmentations_deleted,
    )
    audit_record(action=AuditEvent.Action.RETENTION, target_type="modelhub", details=report.as_details())


def retention_sweep(*, now: datetime | None = None) -> RetentionReport:
    """Delete models, preprocessing rows, image datasets and finished augmentations older than RETENTION_DAYS.

    Selected and pinned models are kept, and so is the preprocessing of a run that still has one (it documents
    how a kept model was built). A file is deleted only if it resolves inside its owner's MEDIA_ROOT folder and
    no remaining row names it.
    """
    now = now or timezone.now()
    report = RetentionReport(cutoff=now - timedelta(days=settings.RETENTION_DAYS))
    expired_models = TrainingModel.objects.filter(created_at__lt=report.cutoff, is_selected=False, pinned=False)
    candidate_paths: dict[Path, None] = {}

    with transaction.atomic():
        # Lock the rows so a model selected or pinned during the sweep is re-read before it could be deleted.
        expired = list(
            expired_models.select_for_update().values_list("id", "user_id", "file_name", "model_url").order_by("id")
        )
        for start in range(0, len(expired), _DELETE_BATCH):
            batch = expired[start : start + _DELETE_BATCH]
            ids = [row[0] for row in batch]
            _total, per_model = expired_models.filter(pk__in=ids).delete()
            report.models_deleted += per_model.get(TrainingModel._meta.label, 0)
            for _row_id, user_id, file_name, model_url in batch:
                names = TrainingModel(user_id=user_id, file_name=file_name, model_url=model_url).artifact_references()
                for name in names:
                    path = resolve_media_path(name, owner_id=user_id)
                    if path is None:
                        logger.warning("retention refused to touch %r: it is outside the owner's media folder", name)
                        report.paths_refused.append(name)
                    else:
                        candidate_paths[path] = None

        kept_runs = TrainingModel.objects.filter(Q(is_selected=True) | Q(pinned=True)).values("run_id")
        expired_preprocessing = PreprocessingData.objects.filter(created_at__lt=report.cutoff).exclude(
            run_id__in=kept_runs
        )
        preprocessing_ids = list(expired_preprocessing.values_list("id", flat=True))
        for start in range(0, len(preprocessing_ids), _DELETE_BATCH):
            ids = preprocessing_ids[start : start + _DELETE_BATCH]
            _total, per_model = expired_preprocessing.filter(pk__in=ids).delete()
            report.preprocessing_deleted += per_model.get(PreprocessingData._meta.label, 0)

        # Two rows may share one artefact: never delete a file that a surviving row still names.
        still_named = _names_still_referenced(candidate_paths)
        paths = [path for path in candidate_paths if path not in still_named]
        # Image folders are one per row, never shared, so they need no such check.
        paths += _expire_image_data(report)
        transaction.on_commit(lambda: _finish_retention(paths, report))
    return report


def _expired_folder(name: str, owner_id: int, report: RetentionReport) -> Path | None:
    path = resolve_media_path(name, owner_id=owner_id)
    if path is None:
        logger.warning("retention refused to touch %r: it is outside the owner's media folder", name)
        report.paths_refused.append(name)
    return path


def _expire_image_data(report: RetentionReport) -> list[Path]:
    """Delete image datasets and finished augmentations older than the cutoff; return their folders.

    Runs inside the sweep's transaction, after the expired models are gone. A dataset is kept while a run trained
    on it still has a model (selected, pinned or simply not yet expired) or is still queued or running: the images
    document how a kept model was built, and a running job reads them.
    """
    from imaging.models import AugmentationJob, ImageDataset  # imaging depends on modelhub, not the reverse

    image_runs = TrainingRun.objects.filter(kind__in=(TrainingRun.Kind.IMAGE, TrainingRun.Kind.ANOMALY))
    in_use = image_runs.filter(Q(status__in=TrainingRun.ACTIVE_STATUSES) | Q(models__isnull=False))
    protected = {int(value) for value in in_use.values_list("dataset_id", flat=True) if value and value.isdigit()}
    expired = ImageDataset.objects.filter(created_at__lt=report.cutoff)
    # Filtered here rather than in SQL: the protected ids can outnumber a backend's parameter limit.
    rows = [
        row
        for row in expired.select_for_update().values_list("id", "owner_id", "folder").order_by("id")
        if row[0] not in protected
    ]
    paths = []
    for start in range(0, len(rows), _DELETE_BATCH):
        batch = rows[start : start + _DELETE_BATCH]
        _total, per_model = expired.filter(pk__in=[row[0] for row in batch]).delete()
        report.image_datasets_deleted += per_model.get(ImageDataset._meta.label, 0)
        paths += [path for _id, owner_id, folder in batch if (path := _expired_folder(folder, owner_id, report))]

    finished = AugmentationJob.objects.filter(
        status__in=(AugmentationJob.Status.SUCCEEDED, AugmentationJob.Status.FAILED), finished_at__lt=report.cutoff
    )
    rows = list(finished.select_for_update().values_list("id", "owner_id", "folder").order_by("id"))
    for start in range(0, len(rows), _DELETE_BATCH):
        batch = rows[start : start + _DELETE_BATCH]
        _total, per_model = finished.filter(pk__in=[row[0] for row in batch]).delete()
        report.augmentations_deleted += per_model.get(AugmentationJob._meta.label, 0)
        paths += [path for _id, owner_id, folder in batch if (path := _expired_folder(folder, owner_id, report))]
    return paths


def _names_still_referenced(paths: dict[Path, None]) -> set[Path]:
    if not paths:
        return set()
    survivors = set()
    rows = TrainingModel.objects.values_list("user_id", "file_name", "model_url").order_by("id")
    for user_id, file_name, model_url in rows.iterator(chunk_size=2000):
        for name in TrainingModel(user_id=user_id, file_name=file_name, model_url=model_url).artifact_references():
            path = resolve_media_path(name, owner_id=user_id)
            if path in paths:
                survivors.add(path)
    return survivors


STALE_RUN_ERROR = (
    "The run stopped reporting progress for more than {minutes} minutes, so it was marked as failed "
    "(the worker running it probably stopped). Start the training again; if this keeps happening, "
    "ask an administrator to check the workers on the Service status page."
)


def _stale_run_candidates(stale: Q) -> list[tuple[int, bool]]:
    return list(TrainingRun.objects.filter(stale).values_list("id", "stop_requested"))


def training_run_fail_stale(*, now: datetime | None = None) -> list[int]:
    """Mark runs that have shown no sign of life for STALE_RUN_TIMEOUT_MINUTES as failed (stopped, if asked to).

    Each row is claimed with a conditional UPDATE, so a run that reports progress meanwhile, or a second sweep
    running at the same time, is never overwritten. Returns the ids this sweep claimed.
    """
    now = now or timezone.now()
    minutes = settings.STALE_RUN_TIMEOUT_MINUTES
    cutoff = now - timedelta(minutes=minutes)
    stale = Q(status=TrainingRun.Status.RUNNING) & (
        Q(heartbeat_at__lt=cutoff)
        | Q(heartbeat_at__isnull=True, started_at__lt=cutoff)
        | Q(heartbeat_at__isnull=True, started_at__isnull=True, created_at__lt=cutoff)
    )
    claimed: list[int] = []
    for run_id, stop_requested in _stale_run_candidates(stale):
        if stop_requested:
            changes = {"status": TrainingRun.Status.STOPPED, "message": "Stopped.", "error": ""}
        else:
            changes = {
                "status": TrainingRun.Status.FAILED,
                "message": "Failed: the worker stopped responding.",
                "error": STALE_RUN_ERROR.format(minutes=minutes),
            }
        if TrainingRun.objects.filter(stale, pk=run_id).update(finished_at=now, **changes) == 1:
            claimed.append(run_id)
            logger.warning("run %s showed no progress for %d minutes: marked %s", run_id, minutes, changes["status"])
    return claimed


# --- owners deleting their runs and models ------------------------------------------------------------------------


def _refuse_while_active(run: TrainingRun, what: str) -> None:
    if run.is_active:
        raise ApplicationError(
            f"Run {run.pk} is still {run.get_status_display().lower()}: stop it first (or wait for it to finish), "
            f"then delete {what}.",
            code="run_active",
            status_code=409,
        )


def _owned_paths(names: list[str], *, owner_id: int) -> list[Path]:
    paths = []
    for name in names:
        path = resolve_media_path(name, owner_id=owner_id)
        if path is None:
            logger.warning("refused to delete %r: it is outside the owner's media folder", name)
        else:
            paths.append(path)
    return paths


def _unreferenced(paths: list[Path], *, owner_id: int) -> list[Path]:
    """`paths` that no remaining model row of the owner names (only the owner's rows can name their folder)."""
    remaining = TrainingModel.objects.filter(user_id=owner_id).values_list("file_name", "model_url").order_by("id")
    named = set()
    for file_name, model_url in remaining.iterator(chunk_size=2000):
        for name in TrainingModel(user_id=owner_id, file_name=file_name, model_url=model_url).artifact_references():
            path = resolve_media_path(name, owner_id=owner_id)
            if path is not None:
                named.add(path)
    return [path for path in paths if path not in named]


def _delete_after_commit(paths: list[Path], *, what: str) -> None:
    def remove() -> None:
        report = RetentionReport(cutoff=timezone.now())
        _delete_paths(paths, report)
        logger.info("deleted %s: %d files, %d bytes freed", what, report.files_deleted, report.bytes_freed)

    transaction.on_commit(remove)


def training_model_delete(*, user, model_id, request=None) -> None:
    """Delete one of the user's models and, once that has committed, its file. Audited as DELETED.

    Another user's model is a NotFound; a model of a run that is still queued or running is refused (409).
    """
    model = model_get_for_user(user=user, model_id=model_id)
    _refuse_while_active(model.run, "its models")
    paths = _owned_paths(model.artifact_references(), owner_id=model.user_id)
    with transaction.atomic():
        audit_record(
            action=AuditEvent.Action.DELETED,
            request=request,
            actor=user,
            target=model,
            details={
                "kind": "training_model",
                "model_name": model.model_name,
                "run_id": model.run_id,
                "sha256": model.sha256,
                "was_selected": model.is_selected,
                "was_pinned": model.pinned,
            },
        )
        model.delete()
        _delete_after_commit(_unreferenced(paths, owner_id=model.user_id), what=f"model {model_id}")


def training_run_delete(*, user, run_id, request=None) -> None:
    """Delete one of the user's finished runs with its models, their files and its preprocessing rows. Audited.

    Another user's run is a NotFound; a queued or running run is refused (409): its worker would write models
    into a run that no longer exists. The run's artefact folder goes with it.
    """
    run = run_get_for_user(user=user, run_id=run_id)
    _refuse_while_active(run, "it")
    models = list(run.models.all())
    names = [name for model in models for name in model.artifact_references()]
    names.append(f"{int(run.user_id)}/models/{int(run.pk)}")
    paths = _owned_paths(names, owner_id=run.user_id)
    with transaction.atomic():
        # Re-checked under the row lock: a run cannot be restarted, but a stale read must not delete a live one.
        locked = TrainingRun.objects.select_for_update().get(pk=run.pk)
        _refuse_while_active(locked, "it")
        audit_record(
            action=AuditEvent.Action.DELETED,
            request=request,
            actor=user,
            target=run,
            details={
                "kind": "training_run",
                "run_kind": run.kind,
                "status": run.status,
                "model_ids": [model.pk for model in models],
                "dataset_type": run.dataset_type,
                "dataset_id": run.dataset_id,
            },
        )
        run.delete()
        _delete_after_commit(_unreferenced(paths, owner_id=run.user_id), what=f"run {run_id}")
