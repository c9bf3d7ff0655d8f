"""The model hub's services: owner-scoped model lookup, selection, pinning, retention days, downloads, importance.

Every function takes the requesting user and filters by owner, so another user's model is a 404 (NotFound) here,
never later in a view. Bundles are read through `tabular.bundles.model_bundle_load`, which checks the SHA-256
recorded at training time before unpickling anything.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import threading
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import joblib
import pandas as pd
from django.conf import settings
from django.db import transaction
from django.db.models.functions import Coalesce
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


def _row_id(value) -> int:
    """An id from a URL, body or query string; anything that cannot be a row id (text, ≤ 0, past 64 bits) is a
    ValueError, so it answers 404 like a missing row instead of reaching the database."""
    number = int(value)
    if not 0 < number < 2**63:
        raise ValueError(value)
    return number


def model_get_for_user(*, user, model_id) -> TrainingModel:
    """The user's model, or NotFound (another user's model is indistinguishable from a missing one)."""
    try:
        return TrainingModel.objects.select_related("run").get(pk=_row_id(model_id), user=user)
    except (TrainingModel.DoesNotExist, TypeError, ValueError):
        raise NotFound("No such model among yours.") from None


def run_get_for_user(*, user, run_id) -> TrainingRun:
    """The user's training run of any kind (tabular, image, anomaly), or NotFound for anyone else's."""
    try:
        return TrainingRun.objects.get(pk=_row_id(run_id), user=user)
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


@dataclass(frozen=True)
class SelectionChoice:
    """What a selection would pick: the model, the run it is chosen within, and the metric it is ranked by."""

    model: TrainingModel
    run: TrainingRun
    metric: str
    metric_value: float | None


def _checked_metric(metric: str) -> str:
    if metric not in SELECTABLE_METRICS:
        raise ApplicationError(
            f"Unknown metric {metric!r}. Choose one of: {', '.join(SELECTABLE_METRICS)}.", code="unknown_metric"
        )
    return metric


def _latest_finished_run_with(*, user, model_name: str) -> TrainingRun | None:
    """The user's most recently finished run that produced a `model_name` model."""
    finished = TrainingRun.objects.filter(
        user=user, status__in=TrainingRun.TERMINAL_STATUSES, models__model_name=model_name
    )
    return finished.annotate(ended=Coalesce("finished_at", "created_at")).order_by("-ended", "-id").first()


def model_select_choice(*, user, model_name: str, metric: str, run_id=None) -> SelectionChoice:
    """The best `model_name` by `metric` (lowest for Brier) within one run: `run_id`, or the latest finished run.

    Models of different runs were trained on different data (another dataset, outcome or cleaning), so their
    figures are never compared: the choice is made inside one run, as its leaderboard shows it.
    """
    _checked_metric(metric)
    if run_id not in (None, ""):
        run = run_get_for_user(user=user, run_id=run_id)
    else:
        run = _latest_finished_run_with(user=user, model_name=model_name)
        if run is None:
            raise NotFound(f"None of your finished training runs has a {model_name!r} model.")
    candidates = [
        (model, _metric_value(model, metric))
        for model in TrainingModel.objects.select_related("run").filter(user=user, run=run, model_name=model_name)
    ]
    candidates = [(model, value) for model, value in candidates if value is not None]
    if not candidates:
        raise NotFound(f"Run {run.pk} ({run}) has no {model_name!r} model with a {metric} figure.")
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    # Ties go to the newest model.
    best, value = max(candidates, key=lambda pair: (sign * pair[1], pair[0].created_at, pair[0].pk))
    return SelectionChoice(model=best, run=run, metric=metric, metric_value=value)


def model_select(*, user, model_name: str, metric: str, run_id=None, request=None) -> TrainingModel:
    """Select the best `model_name` by `metric` within one run (see `model_select_choice`)."""
    choice = model_select_choice(user=user, model_name=model_name, metric=metric, run_id=run_id)
    return _selection_apply(user=user, choice=choice, how="best_in_run", request=request)


def model_select_by_id(*, user, model_id, request=None) -> TrainingModel:
    """Select exactly this model of the user's (the leaderboard's button), ranked by its run's primary metric."""
    model = model_get_for_user(user=user, model_id=model_id)
    metric = model.metric_name
    choice = SelectionChoice(model=model, run=model.run, metric=metric, metric_value=_metric_value(model, metric))
    return _selection_apply(user=user, choice=choice, how="by_id", request=request)


def _selection_apply(*, user, choice: SelectionChoice, how: str, request=None) -> TrainingModel:
    """Mark the chosen model selected and un-select the previous selection of the same kind; audited.

    The previous selection is of the same kind (tabular / image), so selecting a tabular model never drops an
    image model. The audit event (MODEL_SELECTED) names the run the choice was made in.
    """
    best, run = choice.model, choice.run
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
                "model_name": best.model_name,
                "metric": choice.metric,
                "metric_value": choice.metric_value,
                "previous_ids": previous,
                "new_id": best.pk,
                "how": how,
                "run_id": run.pk,
                "run_name": str(run),
                "dataset_type": run.dataset_type,
                "dataset_id": run.dataset_id,
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
            # Selections made before they were scoped to a run have no run recorded.
            "run_id": event.details.get("run_id"),
            "run_name": event.details.get("run_name", ""),
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
    """The model's feature importance as stored with it: read, never computed inside a request twice.

    Training stores it as each model is saved (`tabular.bundles.model_training_insights_record`: permutation
    importance on the hold-out rows, and the model's own importances). A model trained before that gets it computed
    once, on this first request, and stored: hold-out rows from the bundle (`holdout_X`/`holdout_y`) when it
    carries them, otherwise rebuilt from the run's dataset and plan and checked against the recorded confusion
    matrix (`_holdout_from_run`).
    """
    model = model_get_for_user(user=user, model_id=model_id)
    stored = model.feature_importance
    if not stored:
        stored = _feature_importance_first_time(model=model, user=user)
    return {
        "model_id": model.pk,
        "model_name": model.model_name,
        "source": stored.get("source", ""),
        "permutation": stored.get("permutation"),
        "model": stored.get("model"),
        "computed_at": stored.get("computed_at"),
    }


def _feature_importance_first_time(*, model: TrainingModel, user) -> dict[str, Any]:
    from tabular.bundles import feature_importance_compute

    model, bundle = model_bundle_for_user(user=user, model_id=model.pk)
    holdout = None
    if bundle.get("holdout_X") is not None and bundle.get("holdout_y") is not None and len(bundle["holdout_X"]):
        holdout = bundle["holdout_X"], bundle["holdout_y"]
    else:
        holdout = _holdout_from_run(model=model, bundle=bundle)
    stored = feature_importance_compute(bundle["pipeline"], holdout)
    TrainingModel.objects.filter(pk=model.pk).update(feature_importance=stored)
    return stored


def _refuse_unless_tabular(model: TrainingModel) -> None:
    if model_kind(model) != TrainingRun.Kind.TABULAR:
        raise ApplicationError(
            f"Model {model.pk} is an image model: it takes images, not table columns.",
            code="not_tabular",
            status_code=409,
        )


def model_input_schema(*, user, model_id) -> dict[str, Any]:
    """The input columns of one of the user's tabular models: types, allowed values, training ranges, imputation."""
    from tabular.bundles import bundle_input_columns

    model = model_get_for_user(user=user, model_id=model_id)
    _refuse_unless_tabular(model)
    model, bundle = model_bundle_for_user(user=user, model_id=model.pk)
    return {
        "model_id": model.pk,
        "model_name": model.model_name,
        "target": bundle.get("target"),
        "columns": bundle_input_columns(bundle, ranges=model.input_ranges),
    }


def model_report_data(*, user, model_id) -> dict[str, Any]:
    """The model report of one of the user's models, as JSON (`modelhub.report.model_report_json`)."""
    from .report import model_report_json

    model = model_get_for_user(user=user, model_id=model_id)
    if model_kind(model) != TrainingRun.Kind.TABULAR:
        return model_report_json(model=model, bundle=None)
    model, bundle = model_bundle_for_user(user=user, model_id=model.pk)
    return model_report_json(model=model, bundle=bundle)


def model_download_zip(*, user, model_id, request=None) -> tuple[TrainingModel, bytes]:
    """A ZIP of the model with a README on loading it, audited as DOWNLOAD.

    Tabular: the fitted pipeline, its input schema, the model report, `deepmed_runtime` (the loader and copies of
    the DeepMed modules the pipeline refers to, so it loads and predicts with only the libraries the README pins),
    `requirements.txt` and `checksums.json`; and `model.onnx` where every step translates to ONNX and the
    translation reproduces the model on check rows (the README says what does not). Image and anomaly models: the
    checkpoint, metrics and (classifiers) a TorchScript export, built by `imaging.services.imaging_model_download_zip`.
    """
    from tabular.bundles import (
        StandaloneError,
        download_versions,
        onnx_download,
        onnx_versions,
        pip_requirements,
        standalone_runtime_files,
    )

    from .report import model_report_context

    model = model_get_for_user(user=user, model_id=model_id)
    if model_kind(model) in (TrainingRun.Kind.IMAGE, TrainingRun.Kind.ANOMALY):
        # Imported here: imaging depends on modelhub, not the other way round.
        from imaging.services import imaging_model_download_zip

        content = imaging_model_download_zip(model=model)
        _audit_download(model=model, user=user, request=request)
        return model, content
    model, bundle = model_bundle_for_user(user=user, model_id=model_id)
    versions = download_versions(bundle)
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
    try:
        runtime = standalone_runtime_files(bundle["pipeline"])
        runtime_problem = ""
    except StandaloneError as error:
        runtime, runtime_problem = {}, str(error)
    background = bundle_background(bundle=bundle, user=user)
    onnx = onnx_download(bundle, background=background, ranges=model.input_ranges)
    files: dict[str, bytes] = {
        "pipeline.joblib": pipeline_bytes.getvalue(),
        "schema.json": json.dumps(schema_doc, indent=2, default=str).encode(),
        "requirements.txt": ("\n".join(pip_requirements(versions)) + "\n").encode(),
        **runtime,
    }
    if onnx.model is not None:
        files["model.onnx"] = onnx.model
    files["report.html"] = render_to_string(
        "modelhub/report_standalone.html", model_report_context(model=model, bundle=bundle, standalone=True)
    ).encode()
    files["README.txt"] = render_to_string(
        "modelhub/download_readme.txt",
        {
            "model": model,
            "bundle": bundle,
            "versions": sorted(versions.items()),
            "requirements": pip_requirements(versions),
            "runtime": bool(runtime),
            "runtime_problem": runtime_problem,
            "onnx": onnx,
            "onnx_versions": onnx_versions(),
        },
    ).encode()
    checksums = {name: hashlib.sha256(content).hexdigest() for name, content in sorted(files.items())}
    files["checksums.json"] = json.dumps(checksums, indent=2).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
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
