"""The model hub's services: owner-scoped model lookup, selection, pinning, retention days, downloads, importance.

Every function takes the requesting user and filters by owner, so another user's model is a 404 (NotFound) here,
never later in a view. Bundles are read through `tabular.bundles.model_bundle_load`, which checks the SHA-256
recorded at training time before unpickling anything.
"""

from __future__ import annotations

import io
import json
import math
import threading
import zipfile
from collections import OrderedDict
from datetime import timedelta
from typing import Any

import joblib
import pandas as pd
from django.conf import settings
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import AuditEvent
from deepmed.exceptions import ApplicationError, NotFound

from .artifacts import artifact_verified_path
from .models import TrainingModel, TrainingRun

# Metrics a selection may rank by; all "higher is better" except these.
SELECTABLE_METRICS = (
    "roc_auc",
    "pr_auc",
    "accuracy",
    "balanced_accuracy",
    "sensitivity",
    "specificity",
    "precision",
    "f1",
    "brier",
)
LOWER_IS_BETTER = {"brier", "log_loss"}
# Rows of the dataset used as the reference population for explanations (enough for stable medians/modes).
BACKGROUND_ROWS = 200


def model_get_for_user(*, user, model_id) -> TrainingModel:
    """The user's model, or NotFound (another user's model is indistinguishable from a missing one)."""
    try:
        return TrainingModel.objects.select_related("run").get(pk=int(model_id), user=user)
    except (TrainingModel.DoesNotExist, TypeError, ValueError):
        raise NotFound("No such model among yours.") from None


def run_get_for_user(*, user, run_id) -> TrainingRun:
    """The user's training run of any kind (tabular, image, anomaly), or NotFound for anyone else's."""
    try:
        return TrainingRun.objects.get(pk=int(run_id), user=user)
    except (TrainingRun.DoesNotExist, TypeError, ValueError):
        raise NotFound("No training run of yours has this id.") from None


# Unpickling a bundle costs far more than hashing its file (a random forest: ~100 ms against ~1 ms), so verified
# bundles are kept per process, keyed by file and SHA-256. The file is still hashed on every request before the
# cached object is used: a changed file misses the cache and is refused by the load.
BUNDLE_CACHE_SIZE = 8
_bundle_cache: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
_bundle_cache_lock = threading.Lock()
# Explanation backgrounds, keyed by the dataset's identity and file so a replaced file is read again.
_background_cache: OrderedDict[tuple, pd.DataFrame] = OrderedDict()


def _bundle_verified(model: TrainingModel) -> dict[str, Any]:
    from tabular.bundles import model_bundle_load  # tabular depends on modelhub, not the reverse at import time

    path = artifact_verified_path(model)  # re-hashes the file; raises on a missing or changed file
    key = (str(path), model.sha256)
    with _bundle_cache_lock:
        bundle = _bundle_cache.get(key)
        if bundle is not None:
            _bundle_cache.move_to_end(key)
            return bundle
    bundle = model_bundle_load(model)
    with _bundle_cache_lock:
        _bundle_cache[key] = bundle
        while len(_bundle_cache) > BUNDLE_CACHE_SIZE:
            _bundle_cache.popitem(last=False)
    return bundle


def model_bundle_for_user(*, user, model_id) -> tuple[TrainingModel, dict[str, Any]]:
    """The user's model row and its verified bundle (treat it as read-only: it may be shared with other requests)."""
    model = model_get_for_user(user=user, model_id=model_id)
    return model, _bundle_verified(model)


def model_days_left(model: TrainingModel, *, now=None) -> int | None:
    """Whole days before retention removes the model; None when it is kept (selected or pinned)."""
    if model.is_selected or model.pinned:
        return None
    now = now or timezone.now()
    expires = model.created_at + timedelta(days=settings.RETENTION_DAYS)
    return max(0, math.ceil((expires - now).total_seconds() / 86400))


def model_kind(model: TrainingModel) -> str:
    return model.run.kind if model.run_id else ""


def _metric_value(model: TrainingModel, metric: str) -> float | None:
    value = (model.metrics or {}).get(metric)
    if value is None and model.metric_name == metric:
        value = model.metric_value
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def model_select(*, user, model_name: str, metric: str, request=None) -> TrainingModel:
    """Select the user's best `model_name` by `metric` (lowest for Brier), un-selecting the previous selection.

    The previous selection is of the same kind (tabular / image), so selecting a tabular model never drops an
    image model. Audited as MODEL_SELECTED with the previous and new ids.
    """
    if metric not in SELECTABLE_METRICS:
        raise ApplicationError(
            f"Unknown metric {metric!r}. Choose one of: {', '.join(SELECTABLE_METRICS)}.", code="unknown_metric"
        )
    candidates = [
        (model, _metric_value(model, metric))
        for model in TrainingModel.objects.select_related("run").filter(user=user, model_name=model_name)
    ]
    candidates = [(model, value) for model, value in candidates if value is not None]
    if not candidates:
        raise NotFound(f"You have no {model_name!r} model with a {metric} figure.")
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    # Ties go to the newest model: it was trained on the latest data.
    best = max(candidates, key=lambda pair: (sign * pair[1], pair[0].created_at, pair[0].pk))[0]
    kind = model_kind(best)
    with transaction.atomic():
        previous = list(
            TrainingModel.objects.select_for_update()
            .filter(user=user, is_selected=True, run__kind=kind)
            .exclude(pk=best.pk)
            .values_list("pk", flat=True)
        )
        TrainingModel.objects.filter(pk__in=previous).update(is_selected=False)
        TrainingModel.objects.filter(pk=best.pk).update(is_selected=True)
        best.is_selected = True
        audit_record(
            action=AuditEvent.Action.MODEL_SELECTED,
            request=request,
            actor=user,
            target=best,
            details={
                "model_name": model_name,
                "metric": metric,
                "metric_value": _metric_value(best, metric),
                "previous_ids": previous,
                "new_id": best.pk,
            },
        )
    return best


def model_pin(*, user, model_id, pinned: bool) -> TrainingModel:
    """Pin (keep past retention) or unpin one of the user's models."""
    model = model_get_for_user(user=user, model_id=model_id)
    TrainingModel.objects.filter(pk=model.pk).update(pinned=bool(pinned))
    model.pinned = bool(pinned)
    return model


def selection_history_for_user(*, user, limit: int = 20) -> list[dict[str, Any]]:
    """The user's model selections from the audit log, newest first: who, when, which, previous."""
    events = AuditEvent.objects.filter(action=AuditEvent.Action.MODEL_SELECTED, actor=user).order_by("-id")[:limit]
    return [
        {
            "when": event.created_at,
            "who": event.actor_email,
            "model_id": event.details.get("new_id"),
            "model_name": event.details.get("model_name"),
            "metric": event.details.get("metric"),
            "metric_value": event.details.get("metric_value"),
            "previous_ids": event.details.get("previous_ids", []),
        }
        for event in events
    ]


def sorted_models(models, *, sort: str) -> list[TrainingModel]:
    """Sort for /my_models: `-created_at` (default), `created_at`, or a metric name (best first)."""
    models = list(models)
    if sort == "created_at":
        return sorted(models, key=lambda m: (m.created_at, m.pk))
    if sort in SELECTABLE_METRICS:
        with_value = [m for m in models if _metric_value(m, sort) is not None]
        without = [m for m in models if _metric_value(m, sort) is None]
        with_value.sort(key=lambda m: _metric_value(m, sort), reverse=sort not in LOWER_IS_BETTER)
        return with_value + without
    return sorted(models, key=lambda m: (m.created_at, m.pk), reverse=True)


def bundle_background(*, bundle: dict[str, Any], user) -> pd.DataFrame | None:
    """Reference rows for explanations: a sample of the training dataset in the schema's columns and types.

    The bundle records the dataset it came from; the rows are read back from the owner's stored copy. None when
    the dataset is gone (deleted by its owner): explanations are then left out and the answer says why.
    """
    from tabular.ml.schema import SchemaError, validate_rows
    from tabular.models import Dataset
    from tabular.services import dataset_frame

    dataset_id = (bundle.get("dataset") or {}).get("id")
    dataset = Dataset.objects.filter(pk=dataset_id, owner=user).first() if dataset_id else None
    if dataset is None:
        return None
    schema = bundle["schema"]
    key = (dataset.pk, dataset.sha256, dataset.parquet_name, tuple(schema.names))
    with _bundle_cache_lock:
        cached = _background_cache.get(key)
    if cached is not None:
        return cached
    try:
        frame = dataset_frame(dataset=dataset)
    except ApplicationError:
        return None
    present = [name for name in schema.names if name in frame.columns]
    frame = frame[present]
    if len(frame) > BACKGROUND_ROWS:
        frame = frame.sample(n=BACKGROUND_ROWS, random_state=0)
    try:
        background, _ = validate_rows(schema, frame)
    except SchemaError:
        return None
    with _bundle_cache_lock:
        _background_cache[key] = background
        while len(_background_cache) > BUNDLE_CACHE_SIZE:
            _background_cache.popitem(last=False)
    return background


def _holdout_from_run(*, model: TrainingModel, bundle: dict[str, Any]):
    """Rebuild the hold-out rows of a platform training run, or None when that cannot be done exactly.

    The training service splits the cleaned dataset with train_models' seeded hold-out split, so the same dataset,
    plan and seed give the same rows. The rebuild is accepted only if the pipeline's predictions on those rows
    reproduce the confusion matrix recorded at training time — a changed dataset or split is never passed off as
    the hold-out.
    """
    import numpy as np
    from sklearn.metrics import confusion_matrix

    from tabular import training as training_service
    from tabular.ml import training as ml_training

    run = model.run
    config = run.config or {}
    if run.kind != "tabular" or "plan" not in config or "dataset_id" not in config:
        return None
    try:
        _dataset, _plan, _plan_dict, _plan_object, _report, X, y, groups = training_service._load_training_inputs(run)
        y = pd.Series(y).reset_index(drop=True)
        X = X.reset_index(drop=True)
        groups_array = None if groups is None else np.asarray(pd.Series(groups).reset_index(drop=True))
        _train, test = ml_training._holdout_split(
            y.to_numpy(), groups_array, config.get("test_size", 0.2), config.get("random_state", 0)
        )
    except (ApplicationError, ValueError, KeyError):
        return None
    X_test, y_test = X.iloc[test][bundle["schema"].names], y.iloc[test]
    recorded = bundle.get("confusion_matrix") or {}
    if not recorded.get("labels"):
        return None
    predicted = bundle["pipeline"].predict(X_test)
    matrix = confusion_matrix(y_test, predicted, labels=recorded["labels"]).tolist()
    if matrix != recorded.get("matrix"):
        return None
    return X_test, y_test


def model_feature_importance(*, user, model_id) -> dict[str, Any]:
    """Permutation importance on the hold-out rows, and the model's own importances; `source` says which.

    Hold-out rows come from the bundle (`holdout_X`/`holdout_y`) when it carries them, otherwise they are rebuilt
    from the run's dataset and plan and checked against the recorded confusion matrix (`_holdout_from_run`).
    """
    from tabular.ml.explain import _model_importances, feature_importance

    model, bundle = model_bundle_for_user(user=user, model_id=model_id)
    pipeline = bundle["pipeline"]
    holdout = None
    if bundle.get("holdout_X") is not None and bundle.get("holdout_y") is not None and len(bundle["holdout_X"]):
        holdout = bundle["holdout_X"], bundle["holdout_y"]
    else:
        holdout = _holdout_from_run(model=model, bundle=bundle)
    if holdout is not None:
        result = feature_importance(pipeline, *holdout)
        source = (
            f"permutation importance on the {len(holdout[0])} hold-out rows (drop in ROC AUC), "
            "and the model's own importances"
        )
    else:
        result = {"permutation": None, "model": _model_importances(pipeline)}
        source = (
            "the model's own importances only: the hold-out rows of this model could not be recovered exactly "
            "(its dataset or cleaning plan changed or was deleted, or it was not trained by a platform run)"
        )
    if result["model"] is None and result["permutation"] is None:
        source = "none: this kind of model has no importances of its own and its hold-out rows could not be recovered"
    return {"model_id": model.pk, "model_name": model.model_name, "source": source, **result}


def model_download_zip(*, user, model_id, request=None) -> tuple[TrainingModel, bytes]:
    """A ZIP of the model with a README on loading it, audited as DOWNLOAD.

    Tabular: the fitted pipeline, its input schema and the model report. Image and anomaly models: the checkpoint,
    metrics and (classifiers) a TorchScript export, built by `imaging.services.imaging_model_download_zip`.
    """
    from .report import model_report_context

    model = model_get_for_user(user=user, model_id=model_id)
    if model_kind(model) in (TrainingRun.Kind.IMAGE, TrainingRun.Kind.ANOMALY):
        # Imported here: imaging depends on modelhub, not the other way round.
        from imaging.services import imaging_model_download_zip

        content = imaging_model_download_zip(model=model)
        _audit_download(model=model, user=user, request=request)
        return model, content
    model, bundle = model_bundle_for_user(user=user, model_id=model_id)
    versions = bundle.get("versions") or {}
    pipeline_bytes = io.BytesIO()
    joblib.dump(bundle["pipeline"], pipeline_bytes, compress=3)
    schema = bundle["schema"]
    schema_doc = {
        "target": bundle.get("target"),
        "class_labels": bundle.get("class_labels"),
        "positive_label": bundle.get("positive_label"),
        "threshold": bundle.get("threshold"),
        **schema.to_dict(),
    }
    report_html = render_to_string(
        "modelhub/report_standalone.html", model_report_context(model=model, bundle=bundle, standalone=True)
    )
    readme = render_to_string(
        "modelhub/download_readme.txt",
        {"model": model, "bundle": bundle, "versions": sorted(versions.items())},
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("pipeline.joblib", pipeline_bytes.getvalue())
        archive.writestr("schema.json", json.dumps(schema_doc, indent=2, default=str))
        archive.writestr("report.html", report_html)
        archive.writestr("README.txt", readme)
    _audit_download(model=model, user=user, request=request)
    return model, buffer.getvalue()


def _audit_download(*, model: TrainingModel, user, request) -> None:
    audit_record(
        action=AuditEvent.Action.DOWNLOAD,
        request=request,
        actor=user,
        target=model,
        details={"what": "model", "sha256": model.sha256, "model_name": model.model_name},
    )
