"""Tabular training runs: start (validate and queue), execute (the Celery task body), stop and reset.

`training_run_start` checks everything a clinician can get wrong before anything is queued, so a refused request
stores nothing. The run's `config` then holds every choice, including the cleaning plan itself (a copy: editing
the plan later does not change what a run did).

`training_run_execute` (in the worker) loads the dataset, applies the plan's row steps, builds the preprocessor
and the optional feature selector and calls `tabular.ml.training.train_models`. Each model is stored (bundle +
TrainingModel row) the moment it finishes, through train_models' progress callback, so a stop or a later failure
keeps every finished model. A model that fails is named in the run's message and error; the others are kept.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pandas as pd
from django.conf import settings
from django.db import transaction
from django.http import Http404

from deepmed.exceptions import ApplicationError
from deepmed.jobs import send_job
from deepmed.labels import label as interface_label
from modelhub.models import PreprocessingData, TrainingModel, TrainingRun

from . import bundles, selectors
from .ml import cleaning, profiling, selection
from .ml import training as ml_training
from .ml.assistant import model_warnings
from .ml.models import LEVELS, MODEL_NAMES
from .ml.schema import InputSchema
from .models import CleaningPlan, Dataset
from .services import dataset_frame, dataset_profile_get, dataset_target_check

logger = logging.getLogger(__name__)

STATUS_KEY = "tabular_classification_training"
DEFAULT_MODELS = MODEL_NAMES
CV_FOLD_RANGE = (2, 10)


def _field_error(field: str, message: str, code: str = "invalid") -> ApplicationError:
    return ApplicationError(message, code=code, extra={"field": field})


def _target_values(dataset: Dataset, target: str) -> pd.Series:
    return dataset_frame(dataset=dataset)[target]


def _automatic_plan(dataset: Dataset, target: str) -> dict[str, Any]:
    profile = profiling.DatasetProfile.from_dict(dataset_profile_get(dataset=dataset, target=target))
    return cleaning.plan_cleaning(profile, target).to_dict()


def _checked_feature_selection(value: Any) -> dict[str, Any] | None:
    if not value:
        return None
    if not isinstance(value, dict):
        raise _field_error("feature_selection", 'feature_selection must be an object like {"method": ..., "k": 10}.')
    method = value.get("method")
    if method not in selection.METHODS:
        raise _field_error(
            "feature_selection",
            f"Unknown feature selection method {method!r}; choose one of {', '.join(selection.METHODS)}.",
        )
    k = value.get("k")
    threshold = value.get("threshold")
    if k is not None and (not isinstance(k, int) or isinstance(k, bool) or k < 1):
        raise _field_error("feature_selection", "feature_selection.k must be a whole number of at least 1.")
    if threshold is not None and not isinstance(threshold, int | float):
        raise _field_error("feature_selection", "feature_selection.threshold must be a number.")
    return {"method": method, "k": k, "threshold": threshold}


def _applied_selection(saved, kept: list[str]) -> tuple[dict[str, Any], list[str]]:
    """(what the run records about the saved selection, the predictors): the selected columns the plan keeps."""
    selected = [str(column) for column in saved.selected_columns]
    features = [column for column in kept if column in set(selected)]
    if not features:
        raise _field_error(
            "use_saved_selection",
            f"The saved feature selection ({', '.join(selected)}) has no column this cleaning plan keeps. Choose "
            "the plan it was made with, save a new selection, or train without it.",
            "selection_not_applicable",
        )
    config = saved.feature_selector_config or {}
    return (
        {
            "cleaning_plan_id": saved.cleaning_plan_id,
            "method": config.get("method"),
            "k": config.get("k"),
            "threshold": config.get("threshold"),
            "overridden": bool(config.get("overridden", False)),
            "selected_columns": selected,
            "not_kept": [column for column in selected if column not in set(features)],
        },
        features,
    )


def training_run_start(
    *,
    user,
    dataset: Dataset,
    target: str,
    cleaning_plan: CleaningPlan | None = None,
    models: list[str] | None = None,
    level: int = 2,
    cv_folds: int = 5,
    imbalance: str = "class_weight",
    feature_selection: dict[str, Any] | None = None,
    group_column: str | None = None,
    primary_metric: str = "roc_auc",
    run_name: str | None = None,
    target_sensitivity: float | None = None,
    allow_flagged_target: bool = False,
    use_saved_selection: bool = True,
) -> TrainingRun:
    """Validate the choices, create a queued run and enqueue its task once the transaction commits.

    A target flagged as an identifier, personal data or high-cardinality column is refused unless
    `allow_flagged_target`. With `use_saved_selection`, the feature selection saved for this dataset and outcome
    (see `selectors.feature_selection_saved_for`) decides the predictors; `config["features"]` lists them.
    """
    if dataset.owner_id != user.pk:
        raise Http404("No such dataset.")
    if cleaning_plan is not None and (cleaning_plan.owner_id != user.pk or cleaning_plan.dataset_id != dataset.pk):
        # A plan of another user, or of another dataset, is "not found" from here.
        raise Http404("No such cleaning plan for this dataset.")
    if target not in dataset.column_names:
        raise _field_error(
            "target", f"The target column {target!r} is not in dataset {dataset.name!r}.", "unknown_column"
        )
    target_flags = dataset_target_check(dataset=dataset, target=target, allow_flagged_target=allow_flagged_target)
    if cleaning_plan is not None and cleaning_plan.target != target:
        raise _field_error(
            "cleaning_plan",
            f"This cleaning plan was made for the target {cleaning_plan.target!r}, not {target!r}.",
        )
    models = list(models) if models else list(DEFAULT_MODELS)
    unknown = [name for name in models if name not in MODEL_NAMES]
    if unknown:
        raise _field_error(
            "models", f"Unknown model {', '.join(map(str, unknown))}; choose among {', '.join(MODEL_NAMES)}."
        )
    models = list(dict.fromkeys(models))
    if not isinstance(level, int) or isinstance(level, bool) or level not in LEVELS:
        raise _field_error("level", f"The search level must be a whole number from {LEVELS[0]} to {LEVELS[-1]}.")
    if (
        not isinstance(cv_folds, int)
        or isinstance(cv_folds, bool)
        or not CV_FOLD_RANGE[0] <= cv_folds <= CV_FOLD_RANGE[1]
    ):
        raise _field_error("cv_folds", f"Cross-validation folds must be from {CV_FOLD_RANGE[0]} to {CV_FOLD_RANGE[1]}.")
    if imbalance not in ml_training.IMBALANCE_OPTIONS:
        raise _field_error(
            "imbalance", f"Imbalance handling must be one of {', '.join(ml_training.IMBALANCE_OPTIONS)}."
        )
    if primary_metric not in ml_training.PRIMARY_METRICS:
        raise _field_error(
            "primary_metric", f"The primary metric must be one of {', '.join(ml_training.PRIMARY_METRICS)}."
        )
    if group_column:
        if group_column not in dataset.column_names:
            raise _field_error(
                "group_column", f"The grouping column {group_column!r} is not in the dataset.", "unknown_column"
            )
        if group_column == target:
            raise _field_error("group_column", "The grouping column cannot be the target.")
    if target_sensitivity is not None and not 0.0 < float(target_sensitivity) < 1.0:
        raise _field_error("target_sensitivity", "The target sensitivity must be between 0 and 1, e.g. 0.9.")
    selection_config = _checked_feature_selection(feature_selection)

    values = _target_values(dataset, target).dropna()
    n_classes = values.nunique()
    if n_classes < 2:
        raise _field_error(
            "target",
            f"The target {target!r} has a single value; a classifier needs at least two classes.",
            "single_class_target",
        )
    if cleaning_plan is not None:
        plan_dict = cleaning_plan.plan
        try:
            cleaning.CleaningPlan.from_dict(plan_dict).validate(known_columns=dataset.column_names)
        except cleaning.PlanError as exc:
            raise _field_error("cleaning_plan", str(exc), "invalid_plan") from exc
    else:
        plan_dict = _automatic_plan(dataset, target)
    kept = cleaning.CleaningPlan.from_dict(plan_dict).feature_columns
    saved_selection = None
    features = list(kept)
    if use_saved_selection:
        saved = selectors.feature_selection_saved_for(
            user=user, dataset=dataset, target=target, cleaning_plan=cleaning_plan
        )
        if saved is not None:
            saved_selection, features = _applied_selection(saved, kept)

    config = {
        "dataset_id": dataset.pk,
        "target": target,
        "cleaning_plan_id": cleaning_plan.pk if cleaning_plan is not None else None,
        "plan": plan_dict,
        "models": models,
        "level": level,
        "cv_folds": cv_folds,
        "imbalance": imbalance,
        "feature_selection": selection_config,
        "group_column": group_column or None,
        "primary_metric": primary_metric,
        "target_sensitivity": target_sensitivity,
        "target_flags": target_flags,
        "saved_selection": saved_selection,
        "features": features,
    }
    from .tasks import train_tabular_run  # the task module imports this one

    with transaction.atomic():
        run = TrainingRun.objects.create(
            user=user,
            kind=TrainingRun.Kind.TABULAR,
            run_name=(run_name or "").strip()[:255] or f"{dataset.name}: {target}",
            config=config,
            dataset_type="tabular.dataset",
            dataset_id=str(dataset.pk),
            message="Queued",
        )
        transaction.on_commit(lambda: send_job(train_tabular_run, args=[run.pk], run=run))
    return run


def training_run_get_for_user(*, user, run_id) -> TrainingRun:
    """One of the user's tabular runs; another user's run is not found."""
    run = (
        TrainingRun.objects.filter(user=user, kind=TrainingRun.Kind.TABULAR, pk=run_id).first()
        if str(run_id).isdigit()
        else None
    )
    if run is None:
        raise Http404("No such training run.")
    return run


def training_run_latest_for_user(*, user) -> TrainingRun | None:
    """The caller's latest tabular run that the status view still shows (reset hides finished ones)."""
    return (
        TrainingRun.objects.filter(user=user, kind=TrainingRun.Kind.TABULAR)
        .exclude(config__has_key="status_hidden")
        .order_by("-created_at", "-id")
        .first()
    )


def training_run_active_for_user(*, user) -> TrainingRun | None:
    """The caller's newest queued or running tabular run."""
    return (
        TrainingRun.objects.filter(user=user, kind=TrainingRun.Kind.TABULAR, status__in=TrainingRun.ACTIVE_STATUSES)
        .order_by("-created_at", "-id")
        .first()
    )


def training_run_stop(*, run: TrainingRun) -> TrainingRun:
    """Ask the run to stop: queued → stopped now; running → stops after the current fit, keeping finished models."""
    if run.is_terminal:
        raise ApplicationError(
            f"This run has already {run.status}; there is nothing to stop.", code="run_finished", status_code=409
        )
    run.request_stop()
    run.refresh_from_db()
    return run


def training_run_reset(*, user) -> TrainingRun | None:
    """Clear the caller's latest tabular run from the status view.

    A finished run (succeeded, failed, stopped) is hidden from `/api/status/...` (it and its models stay in the
    model hub). A queued or running run is marked stopped first — the way out of a run whose worker died — and
    hidden too. Returns the run that was reset, or None when there is nothing to reset.
    """
    run = training_run_latest_for_user(user=user)
    if run is None:
        return None
    if run.is_active:
        run.request_stop()
        # A running run whose worker is gone never reaches its next step: finish it here.
        run.finish(TrainingRun.Status.STOPPED, message="Stopped by a reset.")
    config = dict(run.config)
    config["status_hidden"] = True
    TrainingRun.objects.filter(pk=run.pk).update(config=config)
    run.refresh_from_db()
    return run


# --- execution (the worker) ------------------------------------------------------------------------------


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    seconds = int(round(seconds))
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"


def _progress_message(event: ml_training.ProgressEvent) -> str:
    # train_models' own message already says the step ("Logistic regression: candidate 2/6, fold 3/5"); the run
    # adds which model of how many, the time spent and the estimate of the rest.
    where = f"{event.model} ({event.model_index + 1} of {event.n_models})" if event.model else ""
    text = f"{where}: {event.message}" if where and event.message else (where or event.message or event.stage)
    return f"{text} · elapsed {_duration(event.elapsed_seconds)} · about {_duration(event.eta_seconds)} left"


class _RunRecorder:
    """Stores each finished model at once and reports progress to the run row."""

    def __init__(
        self, *, run: TrainingRun, dataset: Dataset, plan: CleaningPlan | None, plan_dict: dict, schema, report
    ):
        self.run = run
        self.dataset = dataset
        self.plan = plan
        self.plan_dict = plan_dict
        self.schema = schema
        self.report = report
        self.config = run.config
        self.saved: dict[str, TrainingModel] = {}
        self.failures: list[str] = []
        self.last_write = 0.0
        self.fraction = 0.0

    def progress(self, event: ml_training.ProgressEvent, fraction: float) -> None:
        fraction = self.fraction = max(fraction, self.fraction)  # never show progress going backwards
        now = time.monotonic()
        # A progress write per fit would flood the database on fast models; two a second is live enough.
        if event.stage in ("search",) and now - self.last_write < 0.5:
            return
        self.last_write = now
        self.run.set_progress(min(fraction, 0.99), _progress_message(event))

    def save_model(self, model_result, training_result) -> TrainingModel:
        """One bundle + row; called for each model as soon as train_models has finished it."""
        if model_result.name in self.saved:
            return self.saved[model_result.name]
        warnings = model_warnings(
            model_result,
            class_counts=training_result.class_counts,
            n_train=training_result.n_train,
        )
        bundle = bundles.model_bundle_build(
            model_result=model_result,
            training_result=training_result,
            schema=self.schema,
            target=self.config["target"],
            dataset=self.dataset,
            cleaning_plan=self.plan,
            plan_dict=self.plan_dict,
            warnings=warnings,
            cleaning_report=self.report,
        )
        stored = bundles.model_bundle_save(bundle, user_id=self.run.user_id, run_id=self.run.pk)
        result = model_result.to_dict()
        metrics = dict(result["metrics"])
        details = {
            "intervals": result["intervals"],
            "threshold": result["threshold"],
            "threshold_info": result["threshold_info"],
            "calibration": result["calibration"],
            "calibration_error": result["calibration_error"],
            "curves": result["curves"],
            "confusion_matrix": result["confusion_matrix"],
            "best_params": result["best_params"],
            "cv_score": result["cv_score"],
            "fit_seconds": result["fit_seconds"],
            "predict_seconds": result["predict_seconds"],
            "train_metrics": result["train_metrics"],
            "warnings": warnings,
            "label": model_result.label,
            "primary_metric": self.config["primary_metric"],
            "bundle_format": bundles.MODEL_BUNDLE_FORMAT,
        }
        metric_value = metrics.get(self.config["primary_metric"])
        row = TrainingModel.objects.create(
            user_id=self.run.user_id,
            run=self.run,
            model_name=model_result.name,
            file_name=stored.file_name,
            sha256=stored.sha256,
            size=stored.size,
            metric_name=self.config["primary_metric"],
            metric_value=metric_value if isinstance(metric_value, int | float) else None,
            metrics={**metrics, **details},
        )
        self.saved[model_result.name] = row
        return row


def _load_training_inputs(run: TrainingRun):
    config = run.config
    dataset = Dataset.objects.filter(pk=config["dataset_id"], owner_id=run.user_id).first()
    if dataset is None:
        raise ApplicationError("The dataset of this run has been deleted.", code="dataset_missing")
    plan = None
    if config.get("cleaning_plan_id"):
        plan = CleaningPlan.objects.filter(pk=config["cleaning_plan_id"], owner_id=run.user_id).first()
    plan_dict = config["plan"]
    plan_object = cleaning.CleaningPlan.from_dict(plan_dict)
    frame = dataset_frame(dataset=dataset)
    report = cleaning.cleaning_report(frame, plan_object)
    cleaned, _counts = cleaning.apply_row_steps(frame, plan_object)
    X, y = cleaning.split_features_target(cleaned, plan_object)
    if config.get("features") is not None:
        # The predictors fixed when the run started (a saved feature selection narrows the plan's kept columns).
        X = X[list(config["features"])]
    groups = None
    if config.get("group_column"):
        groups = cleaned[config["group_column"]]
    return dataset, plan, plan_dict, plan_object, report, X, y, groups


def _ranked_models(run: TrainingRun) -> list[TrainingModel]:
    return list(run.models.order_by("-metric_value", "id"))


def training_run_execute(*, run_id: int, celery_task_id: str = "") -> TrainingRun | None:
    """The task body: train every chosen model, storing each as it finishes; finish succeeded, failed or stopped."""
    run = TrainingRun.objects.filter(pk=run_id, kind=TrainingRun.Kind.TABULAR).first()
    if run is None or not run.start(celery_task_id=celery_task_id, message="Loading the dataset"):
        return run  # deleted, stopped before it started, or already taken by another worker
    config = run.config
    try:
        dataset, plan, plan_dict, plan_object, report, X, y, groups = _load_training_inputs(run)
        preprocessor = cleaning.build_preprocessor(plan_object, feature_columns=list(X.columns))
        selection_config = config.get("feature_selection")
        selector = None
        if selection_config:
            selector = selection.FeatureSelector(
                method=selection_config["method"],
                k=selection_config.get("k"),
                threshold=selection_config.get("threshold"),
            )
        schema = InputSchema.from_frame(X)
    except (ApplicationError, ValueError, KeyError) as exc:
        message = getattr(exc, "message", None) or str(exc)
        run.finish(TrainingRun.Status.FAILED, error=f"The data could not be prepared: {message}", message="Failed")
        return run

    recorder = _RunRecorder(run=run, dataset=dataset, plan=plan, plan_dict=plan_dict, schema=schema, report=report)
    PreprocessingData.objects.create(
        run=run,
        user_id=run.user_id,
        cleaning_plan=plan,
        cleaner_config=plan_dict,
        original_columns=dataset.column_names,
        selected_columns=list(X.columns),
        cleaning_report=report,
        feature_selector_config={
            **(selection_config or {}),
            **({"saved_selection": config["saved_selection"]} if config.get("saved_selection") else {}),
        },
    )
    # One train_models call per model: the hold-out split and the folds depend only on the data and the seed, so
    # every call sees the same split, and each model is stored the moment its call returns — a stop or a crash
    # later in the run keeps it.
    names = list(config["models"])
    clock = time.monotonic()
    failures: list[str] = []
    stopped = False

    def on_progress(index: int):
        def report(event: ml_training.ProgressEvent) -> None:
            if event.stage == "done":
                return  # the end of this model's call; the run goes on with the next model
            if event.stage == "search" and event.fits_total:
                within = event.fits_done / event.fits_total
            else:
                within = 1.0  # calibration, refit and evaluation follow the search: count them at its end
            fraction = (index + min(within, 1.0)) / len(names)
            elapsed = time.monotonic() - clock
            eta = elapsed * (1 - fraction) / fraction if fraction > 0.01 else None
            overall = ml_training.ProgressEvent(
                **{**ml_training.asdict_shallow(event), "model_index": index, "n_models": len(names)}
            )
            overall.elapsed_seconds, overall.eta_seconds = elapsed, eta
            recorder.progress(overall, fraction)

        return report

    for index, name in enumerate(names):
        if run.stop_is_requested():
            stopped = True
            break
        try:
            result = ml_training.train_models(
                X,
                y,
                preprocessor=preprocessor,
                selector=selector,
                models=[name],
                level=config["level"],
                cv_folds=config["cv_folds"],
                imbalance=config["imbalance"],
                groups=groups,
                primary_metric=config["primary_metric"],
                target_sensitivity=config.get("target_sensitivity"),
                progress=on_progress(index),
                should_stop=run.stop_is_requested,
                n_jobs=settings.TABULAR_TRAINING_N_JOBS,
            )
        except ml_training.TrainingError as exc:
            # The data, not one model, is the problem: no other model would do better.
            run.finish(TrainingRun.Status.FAILED, error=str(exc), message="Failed")
            return run
        except Exception as exc:  # noqa: BLE001 - one model's crash must not cost the others
            logger.exception("tabular run %s: model %s crashed", run.pk, name)
            failures.append(f"{name}: {type(exc).__name__}: {exc}")
            continue
        failures.extend(f"{error['model']}: {error['reason']}" for error in result.errors)
        for model_result in result.models:
            try:
                row = recorder.save_model(model_result, result)
                bundles.model_training_insights_record(
                    model=row, model_result=model_result, training_result=result, X=X, y=y
                )
            except Exception as exc:  # noqa: BLE001 - a model that cannot be stored is a failed model
                logger.exception("tabular run %s: storing %s failed", run.pk, name)
                failures.append(f"{name}: could not be stored ({type(exc).__name__}: {exc})")
        if result.stopped:
            stopped = True
            break

    n_saved = len(recorder.saved)
    if stopped:
        run.finish(
            TrainingRun.Status.STOPPED,
            message=f"Stopped; {n_saved} finished model(s) kept.",
            error="; ".join(failures),
        )
    elif n_saved == 0:
        run.finish(
            TrainingRun.Status.FAILED,
            error="No model could be trained. " + "; ".join(failures),
            message="Failed",
        )
    else:
        best = _ranked_models(run)[0]
        best_words = f"{interface_label(best.model_name, 'model')} ({interface_label(best.metric_name, 'metric')}"
        message = f"Done: {n_saved} model(s); best {best_words} {best.metric_value:.3f})."
        if failures:
            message += f" Failed: {'; '.join(failures)}"
        run.finish(TrainingRun.Status.SUCCEEDED, message=message, error="; ".join(failures))
    run.refresh_from_db()
    return run
