"""Train and compare classifiers honestly: one pipeline per model, tuned by cross-validation, judged on a hold-out.

Entry point: `train_models(X, y, *, preprocessor, models, ...) -> TrainingResult`.

What happens, in order:
1. A stratified hold-out split (`test_size`); with `groups` (e.g. a patient ID) a StratifiedGroupKFold
   split, so no group has rows on both sides. The hold-out is touched only for the final figures.
2. Per model, the pipeline `prep → select? → scale? → resample? → clf`:
   - `prep` is a clone of the caller's unfitted `preprocessor` (the compiled cleaning plan's
     ColumnTransformer, lifted out of its one-step Pipeline: imbalanced-learn refuses nested pipelines), `select`
     a clone of the optional feature selector: both are refitted inside every fold, so no statistic
     leaks from validation rows;
   - `scale` is a StandardScaler for the models that need standardised inputs (SVM, k-NN, logistic
     regression) — harmless when the plan already scaled, essential when it did not;
   - `resample` is SMOTE when `imbalance="smote"`; it lives in an imbalanced-learn pipeline, which
     resamples only while fitting, i.e. only the training folds; validation and hold-out rows are
     never synthetic. `imbalance="class_weight"` sets balanced class weights where the model has them.
3. The search: every candidate of `models.param_grid(name, level)` (a grid, or a random sample at
   levels 4-5) on the same StratifiedKFold / StratifiedGroupKFold folds, scored by `primary_metric` —
   the work `GridSearchCV`/`RandomizedSearchCV` does, run as our own loop over (candidate, fold) fits
   so that `should_stop()` is checked and `progress` reported after every fit (joblib runs the fits,
   `n_jobs` wide, as a generator). Each fold fit also scores its validation rows, so the out-of-fold
   predictions of the best candidate come for free (identical to `cross_val_predict` on those folds).
4. Calibration (`calibration.choose_calibration`) and the decision threshold (`thresholds`, binary
   only: Youden's J or the target sensitivity) are decided on those out-of-fold predictions.
5. The best configuration is refitted on the whole training part; its `clf` step becomes a
   `CalibratedThresholdClassifier`, so the returned pipeline serves calibrated probabilities and
   applies the chosen threshold in `predict`.
6. Hold-out metrics at that threshold with bootstrap 95% intervals, confusion matrix, curves, and
   in-sample training metrics (for the overfitting warning).

A model that raises is recorded in `errors` ({model, reason}) and the others continue. When
`should_stop()` returns True, the model in progress is abandoned, the finished ones are kept and the
result is marked `stopped`. Multiclass targets get macro and per-class figures and no threshold.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from imblearn.over_sampling import SMOTE
from imblearn.pipeline import Pipeline as ResamplingPipeline
from joblib import Parallel, delayed
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import average_precision_score, balanced_accuracy_score, f1_score, roc_auc_score
from sklearn.model_selection import (
    ParameterGrid,
    ParameterSampler,
    StratifiedGroupKFold,
    StratifiedKFold,
    train_test_split,
)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from . import metrics as metrics_module
from .calibration import CalibratedThresholdClassifier, choose_calibration, estimator_scores
from .models import SearchSpace, build_estimator, get_spec, param_grid
from .thresholds import choose_threshold

__all__ = [
    "IMBALANCE_OPTIONS",
    "PRIMARY_METRICS",
    "ModelResult",
    "ProgressEvent",
    "TrainingError",
    "TrainingResult",
    "train_models",
]

IMBALANCE_OPTIONS = ("class_weight", "smote", "none")
# Metrics the search can optimise; all are "higher is better". Brier and log loss need probabilities,
# which SVMs only get after calibration, so they are reported but not searched on.
PRIMARY_METRICS = ("roc_auc", "pr_auc", "balanced_accuracy", "accuracy", "f1")


class TrainingError(ValueError):
    """Training cannot start with these inputs; the message says what to change."""


class _Stopped(Exception):
    """Raised inside the model loop when `should_stop()` says so."""


@dataclass
class ProgressEvent:
    """One progress report: model, stage, fits done of the total, elapsed seconds and an estimate of the rest."""

    model: str | None
    stage: str  # "search", "calibrate", "refit", "evaluate", "model_done", "model_failed", "stopped", "done"
    model_index: int
    n_models: int
    candidate: int | None = None
    n_candidates: int = 0
    fold: int | None = None
    n_folds: int = 0
    fits_done: int = 0
    fits_total: int = 0
    elapsed_seconds: float = 0.0
    eta_seconds: float | None = None
    message: str = ""


@dataclass
class ModelResult:
    """Everything measured about one trained model; `to_dict()` is JSON-ready (the estimator is left out)."""

    name: str
    label: str
    estimator: Any
    best_params: dict[str, Any]
    cv_score: float | None
    cv_std: float | None
    metrics: dict[str, Any]
    intervals: dict[str, list[float | None]]
    threshold: float | None
    threshold_info: dict[str, Any] | None
    calibration: str
    calibration_brier: dict[str, float]
    calibration_error: float | None
    confusion_matrix: dict[str, Any]
    curves: dict[str, Any]
    fit_seconds: float
    search_seconds: float
    predict_seconds: float
    oof_metrics: dict[str, Any]
    train_metrics: dict[str, Any]
    feature_names: list[str] | None
    input_columns: list[str]
    score_method: str
    imbalance: str
    n_candidates: int
    failed_candidates: int
    convergence_warnings: int
    cv_results: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = {key: value for key, value in asdict_shallow(self).items() if key != "estimator"}
        return _jsonable(data)


@dataclass
class TrainingResult:
    """The outcome of a run: finished models (best first by the primary metric), errors, and the split used."""

    models: list[ModelResult]
    stopped: bool
    errors: list[dict[str, str]]
    task: str
    class_labels: list[Any]
    positive_label: Any
    primary_metric: str
    n_train: int
    n_test: int
    class_counts: dict[str, int]
    level: int
    cv_folds: int
    imbalance: str
    grouped: bool
    elapsed_seconds: float
    # Row positions (in the frame passed to train_models) of each side of the split; not serialised.
    train_positions: np.ndarray = field(repr=False, default_factory=lambda: np.array([], dtype=int))
    test_positions: np.ndarray = field(repr=False, default_factory=lambda: np.array([], dtype=int))

    def best_model(self) -> ModelResult | None:
        return self.models[0] if self.models else None

    def to_dict(self) -> dict[str, Any]:
        data = {
            key: value
            for key, value in asdict_shallow(self).items()
            if key not in ("models", "train_positions", "test_positions")
        }
        data["models"] = [model.to_dict() for model in self.models]
        return _jsonable(data)


def asdict_shallow(instance) -> dict[str, Any]:
    """Dataclass fields without deep-copying (asdict would deepcopy the fitted estimator)."""
    return {name: getattr(instance, name) for name in instance.__dataclass_fields__}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(_jsonable(k)): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


# --- inputs, split and folds ---------------------------------------------------------------------------------


def _default_positive_label(y: pd.Series, classes: list[Any]) -> Any:
    """The rarer class is the event of interest by default (ties: the last in sorted order)."""
    counts = y.value_counts()
    return min(reversed(classes), key=lambda label: counts[label])


def _holdout_split(y: np.ndarray, groups: np.ndarray | None, test_size: float, random_state: int):
    positions = np.arange(len(y))
    if groups is None:
        train, test = train_test_split(positions, test_size=test_size, stratify=y, random_state=random_state)
        return np.sort(train), np.sort(test)
    n_splits = max(2, round(1.0 / test_size))
    if len(np.unique(groups)) < n_splits:
        raise TrainingError(
            f"Only {len(np.unique(groups))} groups: a group-aware hold-out of {test_size:.0%} "
            f"needs at least {n_splits}."
        )
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
    train, test = next(splitter.split(positions, y, groups))
    return np.sort(train), np.sort(test)


def _folds(y: np.ndarray, groups: np.ndarray | None, n_splits: int, random_state: int):
    positions = np.arange(len(y))
    if groups is None:
        splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
        return list(splitter.split(positions, y))
    if len(np.unique(groups)) < n_splits:
        raise TrainingError(f"Only {len(np.unique(groups))} groups in the training part for {n_splits} folds.")
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
    return list(splitter.split(positions, y, groups))


def _calibration_splits(y_index: np.ndarray, groups: np.ndarray | None, random_state: int):
    """Inner folds over out-of-fold rows for choosing a calibration; [] when a class is too small."""
    smallest = int(np.bincount(y_index).min())
    n_splits = min(5, smallest)
    if groups is not None:
        n_splits = min(n_splits, len(np.unique(groups)))
    if n_splits < 2:
        return []
    return _folds(y_index, groups, n_splits, random_state + 1)


# --- one fit ---------------------------------------------------------------------------------------------------


def _fit_and_score(pipeline, params, X, y, train_rows, valid_rows, score_method, native_threads):
    """Fit a clone on the training rows, return validation scores; errors are returned, not raised."""
    started = time.perf_counter()
    try:
        with threadpool_limits(limits=native_threads), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            estimator = clone(pipeline).set_params(**params)
            estimator.fit(X.iloc[train_rows], y[train_rows])
            scores = estimator_scores(estimator, X.iloc[valid_rows], score_method)
        converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        return scores, time.perf_counter() - started, None, converged
    except Exception as error:  # noqa: BLE001 - a candidate's failure is data (GridSearchCV's error_score)
        return None, time.perf_counter() - started, f"{type(error).__name__}: {error}", True


def _positive_scores(scores: np.ndarray, positive_index: int) -> np.ndarray:
    """Binary scores oriented so that higher means the positive label (scores refer to classes_[1])."""
    return scores if positive_index == 1 else -scores


def _default_predictions(scores: np.ndarray, score_method: str) -> np.ndarray:
    """Class indices as the estimator's own `predict` would give them."""
    if scores.ndim == 2:
        return scores.argmax(axis=1)
    cut = 0.5 if score_method == "predict_proba" else 0.0
    return (scores > cut).astype(int)


def _search_score(metric: str, y_index, scores, score_method: str, positive_index: int, n_classes: int) -> float:
    """The primary metric on one validation fold (NaN when undefined there)."""
    try:
        if metric in ("roc_auc", "pr_auc"):
            if n_classes == 2:
                truth = (y_index == positive_index).astype(int)
                ranked = _positive_scores(scores, positive_index)
                if truth.min() == truth.max():
                    return math.nan
                score = roc_auc_score if metric == "roc_auc" else average_precision_score
                return float(score(truth, ranked))
            per_class = []
            for k in range(n_classes):
                truth = (y_index == k).astype(int)
                if truth.min() == truth.max():
                    continue
                score = roc_auc_score if metric == "roc_auc" else average_precision_score
                per_class.append(score(truth, scores[:, k]))
            return float(np.mean(per_class)) if per_class else math.nan
        predicted = _default_predictions(scores, score_method)
        if metric == "accuracy":
            return float(np.mean(predicted == y_index))
        if metric == "balanced_accuracy":
            return float(balanced_accuracy_score(y_index, predicted))
        if n_classes == 2:
            return float(f1_score(y_index == positive_index, predicted == positive_index, zero_division=0.0))
        return float(f1_score(y_index, predicted, average="macro", zero_division=0.0))
    except ValueError:
        return math.nan


# --- the run ---------------------------------------------------------------------------------------------------


class _Clock:
    """Elapsed time and a remaining-time estimate from the mean duration of the fits so far."""

    def __init__(self, fits_per_model: list[int]) -> None:
        self.started = time.perf_counter()
        self.fits_per_model = fits_per_model
        self.fit_seconds: list[float] = []

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def eta(self, model_index: int, fits_done: int, model_fit_seconds: list[float]) -> float | None:
        reference = model_fit_seconds or self.fit_seconds
        if not reference:
            return None
        current = float(np.mean(reference)) * max(self.fits_per_model[model_index] - fits_done, 0)
        later = float(np.mean(self.fit_seconds or reference)) * sum(self.fits_per_model[model_index + 1 :])
        return current + later


def _candidates(space: SearchSpace, random_state: int) -> list[dict[str, Any]]:
    if space.kind == "grid":
        return list(ParameterGrid(space.params))
    all_lists = all(isinstance(v, list) for grid in space.params for v in grid.values())
    n_iter = space.n_iter or 10
    if all_lists:
        n_iter = min(n_iter, len(ParameterGrid(space.params)))
    return list(ParameterSampler(space.params, n_iter=n_iter, random_state=random_state))


def _preprocessing_steps(preprocessor, prefix: str = "prep") -> list[tuple[str, Any]]:
    """The caller's preprocessor as top-level steps of the model's pipeline, unfitted.

    imbalanced-learn's pipeline refuses a nested `Pipeline` among its steps ("All intermediate steps of the chain
    should not be Pipelines"), and a compiled cleaning plan is one (`Pipeline([("columns", ColumnTransformer)])`):
    its steps are lifted into the model's pipeline instead; a one-step preprocessor keeps the name `prep`.
    Pipelines inside a ColumnTransformer are fine: only the chain's own steps are checked.
    """
    if not isinstance(preprocessor, Pipeline):
        return [(prefix, clone(preprocessor))]
    if len(preprocessor.steps) == 1:
        return _preprocessing_steps(preprocessor.steps[0][1], prefix)
    steps: list[tuple[str, Any]] = []
    for step_name, step in preprocessor.steps:
        steps.extend(_preprocessing_steps(step, f"{prefix}_{step_name}"))
    return steps


def _build_pipeline(name, *, preprocessor, selector, imbalance, n_classes, random_state, smote_neighbours):
    spec = get_spec(name)
    steps: list[tuple[str, Any]] = _preprocessing_steps(preprocessor)
    if selector is not None:
        steps.append(("select", clone(selector)))
    if spec.needs_scaling:
        steps.append(("scale", StandardScaler()))
    if imbalance == "smote":
        steps.append(("resample", SMOTE(k_neighbors=smote_neighbours, random_state=random_state)))
    estimator = build_estimator(
        name, random_state=random_state, class_weight=imbalance == "class_weight", n_classes=n_classes
    )
    steps.append(("clf", estimator))
    pipeline_class = ResamplingPipeline if imbalance == "smote" else Pipeline
    return pipeline_class(steps)


def _transformed_feature_names(pipeline) -> list[str] | None:
    try:
        return [str(name) for name in pipeline[:-1].get_feature_names_out()]
    except Exception:  # noqa: BLE001 - some transformers cannot name their outputs; names are optional
        return None


def _spec_space(name: str, level: int, n_classes: int, overrides: dict[str, Any] | None) -> SearchSpace:
    if overrides and name in overrides:
        grid = overrides[name]
        return SearchSpace("grid", grid if isinstance(grid, list) else [grid])
    return param_grid(name, level, n_classes)


def train_models(
    X: pd.DataFrame,
    y: pd.Series,
    *,
    preprocessor: Any,
    selector: Any = None,
    models: Sequence[str],
    level: int = 2,
    cv_folds: int = 5,
    imbalance: str = "class_weight",
    groups: pd.Series | None = None,
    primary_metric: str = "roc_auc",
    test_size: float = 0.2,
    random_state: int = 0,
    target_sensitivity: float | None = None,
    positive_label: Any = None,
    param_grids: dict[str, dict | list] | None = None,
    n_bootstrap: int = 1000,
    progress: Callable[[ProgressEvent], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    n_jobs: int = 1,
    native_threads: int | None = 1,
) -> TrainingResult:
    """Tune, calibrate, threshold and evaluate each model in `models`; see the module docstring.

    `param_grids` replaces the catalogue's search space for the named models ({name: grid dict or list}).
    `positive_label` defaults to the rarer class. Raises TrainingError for inputs no model could train on.
    `n_jobs` runs that many fits at once; `native_threads` caps OpenMP/BLAS threads inside each fit (None: no
    cap). One thread per fit is the default because parallelism across fits is cheaper than inside small
    fits, and OpenMP spin-waiting on a busy machine is ruinous: a HistGradientBoosting fit on breast-cancer
    data took 12.6 s with default threads on the shared 2-core machine and 0.9 s with one.
    """
    if not isinstance(X, pd.DataFrame):
        raise TrainingError("The features must be a table (pandas DataFrame).")
    if len(X) != len(y):
        raise TrainingError(f"The features have {len(X)} rows but the target has {len(y)}.")
    if imbalance not in IMBALANCE_OPTIONS:
        raise TrainingError(f"Imbalance handling must be one of {', '.join(IMBALANCE_OPTIONS)}.")
    if primary_metric not in PRIMARY_METRICS:
        raise TrainingError(f"The primary metric must be one of {', '.join(PRIMARY_METRICS)}.")
    if not models:
        raise TrainingError("Choose at least one model.")
    for name in models:
        try:
            get_spec(name)
        except ValueError as error:
            raise TrainingError(str(error)) from None
    if not 0.0 < test_size < 1.0:
        raise TrainingError("The hold-out share must be between 0 and 1.")
    if cv_folds < 2:
        raise TrainingError("Cross-validation needs at least 2 folds.")
    y = pd.Series(y).reset_index(drop=True)
    if y.isna().any():
        raise TrainingError(f"The target is missing in {int(y.isna().sum())} rows; drop those rows before training.")
    X = X.reset_index(drop=True)
    groups_array = None if groups is None else np.asarray(pd.Series(groups).reset_index(drop=True))
    if groups_array is not None and pd.isna(groups_array).any():
        raise TrainingError("The grouping column is empty in some rows; every row needs a group.")

    classes = sorted(y.unique().tolist())
    if len(classes) < 2:
        raise TrainingError("The target has a single value; a classifier needs at least two classes.")
    counts = y.value_counts()
    if counts.min() < 2:
        rare = counts.idxmin()
        raise TrainingError(f"Class {rare!r} has a single row; every class needs at least two.")
    n_classes = len(classes)
    task = "binary" if n_classes == 2 else "multiclass"
    if positive_label is None:
        positive_label = _default_positive_label(y, classes) if task == "binary" else None
    elif positive_label not in classes:
        raise TrainingError(f"The positive label {positive_label!r} is not a value of the target.")
    if target_sensitivity is not None and task != "binary":
        raise TrainingError("A target sensitivity applies to two-class targets only.")

    y_array = y.to_numpy()
    train_pos, test_pos = _holdout_split(y_array, groups_array, test_size, random_state)
    X_train, X_test = X.iloc[train_pos], X.iloc[test_pos]
    y_train, y_test = y_array[train_pos], y_array[test_pos]
    class_index = {label: i for i, label in enumerate(classes)}
    y_train_index = np.array([class_index[v] for v in y_train.tolist()])
    groups_train = None if groups_array is None else groups_array[train_pos]
    train_counts = np.bincount(y_train_index, minlength=n_classes)
    if train_counts.min() < cv_folds:
        rare = classes[int(train_counts.argmin())]
        raise TrainingError(
            f"Class {rare!r} has {int(train_counts.min())} rows in the training part; "
            f"{cv_folds}-fold cross-validation needs at least {cv_folds}. Use fewer folds or more data."
        )
    folds = _folds(y_train_index, groups_train, cv_folds, random_state)
    calibration_splits = _calibration_splits(y_train_index, groups_train, random_state)
    smallest_fold_class = min(int(np.bincount(y_train_index[tr], minlength=n_classes).min()) for tr, _ in folds)
    smote_neighbours = max(1, min(5, smallest_fold_class - 1))
    positive_index = classes.index(positive_label) if task == "binary" else 1

    spaces = {name: _spec_space(name, level, n_classes, param_grids) for name in models}
    candidate_lists = {name: _candidates(spaces[name], random_state) for name in models}
    clock = _Clock([len(candidate_lists[name]) * len(folds) for name in models])

    def report(**fields_) -> None:
        if progress is not None:
            progress(ProgressEvent(n_models=len(models), elapsed_seconds=clock.elapsed(), **fields_))

    def stop_requested() -> bool:
        return bool(should_stop and should_stop())

    finished: list[ModelResult] = []
    errors: list[dict[str, str]] = []
    stopped = False
    for model_index, name in enumerate(models):
        if stop_requested():
            stopped = True
            break
        try:
            result = _train_one(
                name,
                model_index=model_index,
                candidates=candidate_lists[name],
                X_train=X_train,
                y_train=y_train,
                y_train_index=y_train_index,
                X_test=X_test,
                y_test=y_test,
                folds=folds,
                calibration_splits=calibration_splits,
                classes=classes,
                positive_label=positive_label,
                positive_index=positive_index,
                build=lambda name=name: _build_pipeline(
                    name,
                    preprocessor=preprocessor,
                    selector=selector,
                    imbalance=imbalance,
                    n_classes=n_classes,
                    random_state=random_state,
                    smote_neighbours=smote_neighbours,
                ),
                imbalance=imbalance,
                primary_metric=primary_metric,
                target_sensitivity=target_sensitivity,
                n_bootstrap=n_bootstrap,
                random_state=random_state,
                n_jobs=n_jobs,
                native_threads=native_threads,
                clock=clock,
                report=report,
                stop_requested=stop_requested,
            )
        except _Stopped:
            stopped = True
            report(model=name, stage="stopped", model_index=model_index, message=f"Stopped during {name}.")
            break
        except Exception as error:  # noqa: BLE001 - one model's failure must not cost the others
            reason = f"{type(error).__name__}: {error}"
            errors.append({"model": name, "reason": reason})
            report(model=name, stage="model_failed", model_index=model_index, message=reason)
            continue
        finished.append(result)
        report(model=name, stage="model_done", model_index=model_index, message=f"{name} finished.")

    def rank_key(model: ModelResult) -> float:
        value = model.metrics.get(primary_metric)
        return -math.inf if value is None else value

    finished.sort(key=rank_key, reverse=True)
    report(model=None, stage="done", model_index=len(models), message="Stopped." if stopped else "Finished.")
    return TrainingResult(
        models=finished,
        stopped=stopped,
        errors=errors,
        task=task,
        class_labels=classes,
        positive_label=positive_label,
        primary_metric=primary_metric,
        n_train=len(train_pos),
        n_test=len(test_pos),
        class_counts={str(label): int(counts[label]) for label in classes},
        level=level,
        cv_folds=cv_folds,
        imbalance=imbalance,
        grouped=groups_array is not None,
        elapsed_seconds=clock.elapsed(),
        train_positions=train_pos,
        test_positions=test_pos,
    )


def _train_one(
    name: str,
    *,
    model_index: int,
    candidates: list[dict[str, Any]],
    X_train: pd.DataFrame,
    y_train: np.ndarray,
    y_train_index: np.ndarray,
    X_test: pd.DataFrame,
    y_test: np.ndarray,
    folds: list[tuple[np.ndarray, np.ndarray]],
    calibration_splits,
    classes: list[Any],
    positive_label: Any,
    positive_index: int,
    build: Callable[[], Any],
    imbalance: str,
    primary_metric: str,
    target_sensitivity: float | None,
    n_bootstrap: int,
    random_state: int,
    n_jobs: int,
    native_threads: int | None,
    clock: _Clock,
    report: Callable[..., None],
    stop_requested: Callable[[], bool],
) -> ModelResult:
    spec = get_spec(name)
    n_classes = len(classes)
    pipeline = build()
    n_folds, n_candidates = len(folds), len(candidates)
    fits_total = n_folds * n_candidates
    fold_scores: dict[int, list[np.ndarray | None]] = {c: [None] * n_folds for c in range(n_candidates)}
    fold_metric = np.full((n_candidates, n_folds), np.nan)
    candidate_errors: dict[int, str] = {}
    unconverged: set[int] = set()
    model_fit_seconds: list[float] = []
    search_started = time.perf_counter()

    tasks = (
        delayed(_fit_and_score)(
            pipeline, params, X_train, y_train, train_rows, valid_rows, spec.score_method, native_threads
        )
        for params in candidates
        for train_rows, valid_rows in folds
    )
    results = Parallel(n_jobs=n_jobs, return_as="generator")(tasks)
    try:
        for fits_done, (scores, seconds, error, converged) in enumerate(results, start=1):
            candidate, fold = divmod(fits_done - 1, n_folds)
            model_fit_seconds.append(seconds)
            clock.fit_seconds.append(seconds)
            if error is not None:
                candidate_errors.setdefault(candidate, error)
            else:
                fold_scores[candidate][fold] = scores
                valid_rows = folds[fold][1]
                fold_metric[candidate, fold] = _search_score(
                    primary_metric, y_train_index[valid_rows], scores, spec.score_method, positive_index, n_classes
                )
            if not converged:
                unconverged.add(candidate)
            report(
                model=name,
                stage="search",
                model_index=model_index,
                candidate=candidate + 1,
                n_candidates=n_candidates,
                fold=fold + 1,
                n_folds=n_folds,
                fits_done=fits_done,
                fits_total=fits_total,
                eta_seconds=clock.eta(model_index, fits_done, model_fit_seconds),
                message=f"{spec.label}: candidate {candidate + 1}/{n_candidates}, fold {fold + 1}/{n_folds}",
            )
            if stop_requested():
                raise _Stopped
    finally:
        # Closing the generator cancels the fits joblib has not started.
        if hasattr(results, "close"):
            results.close()
    search_seconds = time.perf_counter() - search_started

    usable = [c for c in range(n_candidates) if c not in candidate_errors]
    if not usable:
        first = candidate_errors[0]
        raise RuntimeError(f"every candidate failed; the first error was {first}")
    # A candidate with a failed fold (or an undefined score) cannot be compared fairly: it ranks last.
    comparable = np.array([c in usable and not np.isnan(fold_metric[c]).any() for c in range(n_candidates)])
    ranking = np.where(comparable, np.nan_to_num(fold_metric.mean(axis=1), nan=-np.inf), -np.inf)
    best = int(np.argmax(ranking)) if comparable.any() else usable[0]
    best_params = candidates[best]

    # Out-of-fold scores of the best candidate: every training row scored by a model that did not see it.
    first_scores = fold_scores[best][0]
    oof_scores = np.zeros((len(y_train),) + first_scores.shape[1:])
    for fold, (_, valid_rows) in enumerate(folds):
        oof_scores[valid_rows] = fold_scores[best][fold]

    if stop_requested():
        raise _Stopped
    report(model=name, stage="calibrate", model_index=model_index, message=f"{spec.label}: calibration and threshold")
    choice = choose_calibration(oof_scores, y_train_index, n_classes, spec.score_method, calibration_splits)
    oof_proba = choice.proba(oof_scores, spec.score_method)
    threshold_info = None
    threshold = None
    if n_classes == 2:
        threshold_info = choose_threshold(
            y_train_index == positive_index, oof_proba[:, positive_index], target_sensitivity
        )
        threshold = threshold_info["threshold"]

    if stop_requested():
        raise _Stopped
    report(model=name, stage="refit", model_index=model_index, message=f"{spec.label}: refit on the training part")
    fit_started = time.perf_counter()
    refitted = clone(pipeline).set_params(**best_params)
    with threadpool_limits(limits=native_threads), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # already counted during the search
        refitted.fit(X_train, y_train)
    fit_seconds = time.perf_counter() - fit_started
    served = CalibratedThresholdClassifier(
        estimator=refitted.steps[-1][1],
        calibration_map=choice.calibration_map,
        score_method=spec.score_method,
        threshold=threshold,
        positive_label=positive_label,
    )
    final = type(refitted)([*refitted.steps[:-1], ("clf", served)])

    report(model=name, stage="evaluate", model_index=model_index, message=f"{spec.label}: hold-out evaluation")
    with threadpool_limits(limits=native_threads):
        predict_started = time.perf_counter()
        test_proba = final.predict_proba(X_test)
        predict_seconds = time.perf_counter() - predict_started
        train_proba = final.predict_proba(X_train)

    def figures(truth, proba):
        return metrics_module.classification_metrics(truth, proba, threshold, positive_label, class_labels=classes)

    metrics = figures(y_test, test_proba)
    intervals = metrics_module.bootstrap_intervals(
        y_test,
        test_proba,
        threshold,
        positive_label,
        class_labels=classes,
        n_resamples=n_bootstrap,
        random_state=random_state,
    )
    calibration_error = None
    if n_classes == 2:
        calibration_error = metrics_module.calibration_error(
            (y_test == positive_label).astype(float), test_proba[:, positive_index]
        )
    return ModelResult(
        name=name,
        label=spec.label,
        estimator=final,
        best_params=best_params,
        cv_score=float(fold_metric[best].mean()) if comparable[best] else None,
        cv_std=float(fold_metric[best].std()) if comparable[best] else None,
        metrics=metrics,
        intervals=intervals,
        threshold=threshold,
        threshold_info=threshold_info,
        calibration=choice.method,
        calibration_brier=choice.brier_scores,
        calibration_error=calibration_error,
        confusion_matrix=metrics_module.confusion(y_test, test_proba, classes, threshold, positive_label),
        curves=metrics_module.classification_curves(y_test, test_proba, positive_label, class_labels=classes),
        fit_seconds=fit_seconds,
        search_seconds=search_seconds,
        predict_seconds=predict_seconds,
        oof_metrics=figures(y_train, oof_proba),
        train_metrics=figures(y_train, train_proba),
        feature_names=_transformed_feature_names(refitted),
        input_columns=[str(c) for c in X_train.columns],
        score_method=spec.score_method,
        imbalance=imbalance if (imbalance != "class_weight" or spec.supports_class_weight) else "none",
        n_candidates=n_candidates,
        failed_candidates=len(candidate_errors),
        convergence_warnings=len(unconverged),
        cv_results=[
            {
                "params": candidates[c],
                "mean_score": float(np.mean(fold_metric[c])) if comparable[c] else None,
                "std_score": float(np.std(fold_metric[c])) if comparable[c] else None,
                "error": candidate_errors.get(c),
            }
            for c in range(n_candidates)
        ],
    )
