"""The model bundle: one artefact per trained tabular model, with everything needed to use and explain it.

A bundle is a plain dict pickled with joblib by `modelhub.artifacts` (SHA-256 checked before every load):

- `format`: MODEL_BUNDLE_FORMAT; a bundle with another format is refused on load, so a future layout
  change never feeds an old reader a dict it misreads;
- `pipeline`: the whole fitted pipeline (cleaning → selection? → scaling? → calibrated, thresholded
  classifier); `pipeline.predict` already applies `threshold`;
- `schema`: the `InputSchema` of the raw columns the pipeline expects (prediction validates against it);
- `target`, `class_labels`, `positive_label`, `threshold`, `calibration`, `feature_names`;
- `metrics`, `intervals`, `curves`, `confusion_matrix`, `best_params`, `warnings` (the model's hold-out
  figures, exactly as the leaderboard shows them);
- `dataset` {id, name, sha256, n_rows, created_at}, `cleaning_plan` {id, plan}, `cleaning_report`: lineage;
- `versions` of the libraries it was trained with, and `trained_at` (ISO 8601, UTC).
"""

from __future__ import annotations

import ast
import importlib
import logging
import math
import pickle
import platform
import tomllib
import types
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from django.utils import timezone
from sklearn.compose import ColumnTransformer

from deepmed.exceptions import ApplicationError
from modelhub.artifacts import StoredArtifact, artifact_load_object, artifact_save_object

MODEL_BUNDLE_FORMAT = "deepmed.tabular/1"

logger = logging.getLogger(__name__)

_VERSIONED = {
    "sklearn": "scikit-learn",
    "pandas": "pandas",
    "numpy": "numpy",
    "scipy": "scipy",
    "imblearn": "imbalanced-learn",
    "joblib": "joblib",
    "threadpoolctl": "threadpoolctl",
}


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return ""


def library_versions() -> dict[str, str]:
    """The versions a bundle was written with; the download README pins these."""
    versions = {"python": platform.python_version()}
    versions.update({key: _version(distribution) for key, distribution in _VERSIONED.items()})
    versions["deepmed"] = _version("deepmed") or _project_version()
    return versions


def _project_version() -> str:
    # The project is run from its checkout, not installed; pyproject.toml is the one place its version lives.
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    try:
        with pyproject.open("rb") as handle:
            return str(tomllib.load(handle).get("project", {}).get("version", ""))
    except (OSError, ValueError):
        return ""


def model_bundle_build(
    *,
    model_result,
    training_result,
    schema,
    target: str,
    dataset,
    cleaning_plan,
    plan_dict: dict[str, Any],
    warnings: list[dict[str, str]],
    cleaning_report: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble the bundle of one finished `ModelResult` (see the module docstring for the keys)."""
    result = model_result.to_dict()
    return {
        "format": MODEL_BUNDLE_FORMAT,
        "model_name": model_result.name,
        "model_label": model_result.label,
        "pipeline": model_result.estimator,
        "schema": schema,
        "target": target,
        "task": training_result.task,
        "class_labels": _plain_list(training_result.class_labels),
        "positive_label": _plain(training_result.positive_label),
        "primary_metric": training_result.primary_metric,
        "threshold": result["threshold"],
        "threshold_info": result["threshold_info"],
        "calibration": result["calibration"],
        "calibration_brier": result["calibration_brier"],
        "calibration_error": result["calibration_error"],
        "feature_names": result["feature_names"],
        "input_columns": result["input_columns"],
        "metrics": result["metrics"],
        "intervals": result["intervals"],
        "curves": result["curves"],
        "confusion_matrix": result["confusion_matrix"],
        "best_params": result["best_params"],
        "cv_score": result["cv_score"],
        "cv_std": result["cv_std"],
        "oof_metrics": result["oof_metrics"],
        "train_metrics": result["train_metrics"],
        "fit_seconds": result["fit_seconds"],
        "predict_seconds": result["predict_seconds"],
        "imbalance": result["imbalance"],
        "warnings": list(warnings),
        "validation": {
            "cv_folds": training_result.cv_folds,
            "level": training_result.level,
            "grouped": training_result.grouped,
            "n_train": training_result.n_train,
            "n_test": training_result.n_test,
            "class_counts": {str(k): int(v) for k, v in training_result.class_counts.items()},
        },
        "dataset": {
            "id": dataset.pk,
            "name": dataset.name,
            "sha256": dataset.sha256,
            "n_rows": dataset.n_rows,
            "created_at": dataset.created_at.isoformat() if dataset.created_at else None,
        },
        "cleaning_plan": {"id": getattr(cleaning_plan, "pk", None), "plan": plan_dict},
        "cleaning_report": cleaning_report if cleaning_report is not None else getattr(cleaning_plan, "report", {}),
        "versions": library_versions(),
        "trained_at": timezone.now().isoformat(),
    }


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _plain_list(values) -> list[Any]:
    return [_plain(value) for value in values]


def model_bundle_save(bundle: dict[str, Any], *, user_id: int, run_id: int) -> StoredArtifact:
    """Write the bundle atomically in the owner's folder; copy the returned name/sha256/size onto the row."""
    return artifact_save_object(bundle, user_id=user_id, run_id=run_id)


def model_bundle_load(training_model) -> dict[str, Any]:
    """The bundle of a TrainingModel row, after the SHA-256 check; refused when its format is unknown."""
    bundle = artifact_load_object(training_model)
    if not isinstance(bundle, dict) or bundle.get("format") != MODEL_BUNDLE_FORMAT:
        raise ApplicationError(
            "This model was saved in a format this version of DeepMed cannot read. Train the model again.",
            code="unknown_model_format",
            status_code=409,
        )
    return bundle


# --- what a model's inputs accept, and what it learnt from them ------------------------------------------------------

_IMPUTER_METHODS = {"KNNImputer": "knn", "IterativeImputer": "iterative"}


def _column_transformers(step) -> list[ColumnTransformer]:
    """Every ColumnTransformer in a (possibly nested) pipeline, outermost first."""
    if isinstance(step, ColumnTransformer):
        return [step]
    found: list[ColumnTransformer] = []
    for _name, inner in getattr(step, "steps", []) or []:
        found.extend(_column_transformers(inner))
    return found


def _plain_value(value: Any) -> Any:
    value = _plain(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def imputation_by_column(pipeline) -> dict[str, dict[str, Any]]:
    """What the fitted pipeline fills an empty cell of each input column with: {"method", "value"?}.

    Read from the fitted imputers of the cleaning step (SimpleImputer's learnt statistics, in input column order;
    k-nearest-neighbour and iterative imputers estimate each missing value from the row's other columns, so they
    have a method but no single value). Columns whose imputer sees derived columns (date parts) are left out.
    """
    answer: dict[str, dict[str, Any]] = {}
    for columns in _column_transformers(pipeline):
        for _label, transformer, selected in getattr(columns, "transformers_", []):
            if isinstance(transformer, str):  # "drop" or "passthrough"
                continue
            names = list(np.asarray(selected).tolist())
            if names and isinstance(names[0], int | np.integer):
                names = [str(columns.feature_names_in_[i]) for i in names]
            steps = [step for _name, step in transformer.steps] if hasattr(transformer, "steps") else [transformer]
            imputer = next((step for step in steps if type(step).__name__.endswith("Imputer")), None)
            if imputer is None:
                continue
            kind = type(imputer).__name__
            if kind in _IMPUTER_METHODS:
                for name in names:
                    answer[str(name)] = {"method": _IMPUTER_METHODS[kind]}
                continue
            statistics = list(getattr(imputer, "statistics_", []))
            if len(statistics) != len(names):
                continue
            for name, value in zip(names, statistics, strict=True):
                answer[str(name)] = {"method": imputer.strategy, "value": _plain_value(value)}
    return answer


def input_ranges(X: pd.DataFrame) -> dict[str, list[float]]:
    """[lowest, highest] of each numeric column of the training rows (booleans and empty columns left out)."""
    ranges = {}
    for name in X.columns:
        series = X[name]
        if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
            continue
        values = pd.to_numeric(series, errors="coerce").dropna()
        if len(values):
            ranges[str(name)] = [float(values.min()), float(values.max())]
    return ranges


def bundle_input_columns(bundle: dict[str, Any], *, ranges: dict[str, list[float]] | None = None) -> list[dict]:
    """The model's input columns for integrators: name, type, allowed values, training range, imputation.

    `type` is the schema's kind (number, boolean, category, date, text); `allowed` lists the categories seen in
    training (or true/false); `range` is [lowest, highest] in the training rows (from `ranges`, recorded at
    training); `impute` says what an empty value becomes. Keys that do not apply are left out.
    """
    imputation = imputation_by_column(bundle["pipeline"])
    ranges = ranges or {}
    columns = []
    for spec in bundle["schema"].columns:
        entry: dict[str, Any] = {"name": spec.name, "type": spec.kind, "required": bool(spec.required)}
        if spec.categories is not None:
            entry["allowed"] = [_plain_value(value) for value in spec.categories]
        elif spec.kind == "boolean":
            entry["allowed"] = [True, False]
        if spec.name in ranges:
            entry["range"] = list(ranges[spec.name])
        if spec.name in imputation:
            entry["impute"] = imputation[spec.name]
        columns.append(entry)
    return columns


# --- feature importance, computed once -----------------------------------------------------------------------------


def feature_importance_compute(pipeline, holdout: tuple[pd.DataFrame, Any] | None) -> dict[str, Any]:
    """Permutation importance on the hold-out rows (when given) and the model's own importances, with a `source`
    sentence saying which were computed. JSON-ready: stored on the model row and served as it is."""
    from threadpoolctl import threadpool_limits

    from .ml.explain import _model_importances, feature_importance

    failure = ""
    if holdout is not None:
        try:
            # One native thread: the repeated predictions are small, and spinning OpenMP workers slow a busy server.
            with threadpool_limits(limits=1):
                result = feature_importance(pipeline, *holdout)
        except (ValueError, TypeError) as error:  # e.g. a hold-out with a single class: ROC AUC is undefined
            holdout, failure = None, str(error)
    if holdout is not None:
        source = (
            f"permutation importance on the {len(holdout[0])} hold-out rows (drop in ROC AUC), "
            "and the model's own importances"
        )
    elif failure:
        result = {"permutation": None, "model": _model_importances(pipeline)}
        source = f"the model's own importances only: permutation importance on the hold-out rows failed ({failure})"
    else:
        result = {"permutation": None, "model": _model_importances(pipeline)}
        source = (
            "the model's own importances only: the hold-out rows of this model could not be recovered exactly "
            "(its dataset or cleaning plan changed or was deleted, or it was not trained by a platform run)"
        )
    if result["model"] is None and result["permutation"] is None:
        source = "none: this kind of model has no importances of its own and its hold-out rows could not be recovered"
    return {
        "source": source,
        "permutation": result["permutation"],
        "model": result["model"],
        "n_holdout_rows": len(holdout[0]) if holdout is not None else None,
        "computed_at": timezone.now().isoformat(),
    }


def model_training_insights_record(*, model, model_result, training_result, X: pd.DataFrame, y) -> None:
    """Called by the training run as each model is stored: its feature importance on the hold-out rows and the
    training range of each numeric input, saved on the TrainingModel row.

    `X`/`y` are the frame and target given to `train_models`, whose result's row positions select each side of
    the split. Never raises: a model whose importance could not be computed here gets it on its first request.
    """
    from modelhub.models import TrainingModel

    try:
        X = X.reset_index(drop=True)
        y = pd.Series(y).reset_index(drop=True)
        columns = [str(name) for name in (model_result.input_columns or X.columns)]
        X = X.set_axis([str(name) for name in X.columns], axis=1)[columns]
        test, train = training_result.test_positions, training_result.train_positions
        holdout = (X.iloc[test], y.iloc[test]) if len(test) else None
        importance = feature_importance_compute(model_result.estimator, holdout)
        ranges = input_ranges(X.iloc[train]) if len(train) else None
        TrainingModel.objects.filter(pk=model.pk).update(feature_importance=importance, input_ranges=ranges)
        model.feature_importance, model.input_ranges = importance, ranges
    except Exception:  # noqa: BLE001 - a missing figure is computed on first request; the model itself is fine
        logger.exception("model %s: feature importance could not be computed at training", model.pk)


# --- the download: a runtime that needs no DeepMed --------------------------------------------------------------------

# Importable by name in the ZIP, never colliding with DeepMed's own packages.
RUNTIME_PACKAGE = "deepmed_runtime"
_ML_PACKAGE = "tabular.ml"
_RUNTIME_MAIN = '''"""`python -m deepmed_runtime patients.csv > predictions.csv`, with the model beside it."""

import sys

from . import _main

sys.exit(_main(sys.argv[1:]))
'''


class StandaloneError(ValueError):
    """The pipeline refers to DeepMed code that cannot be shipped on its own (it would need Django or the app)."""


class _ReferenceRecorder(pickle.Pickler):
    """Pickles into nothing, noting the module of every class and function the pickle would refer to."""

    def __init__(self) -> None:
        super().__init__(_Discard(), protocol=pickle.HIGHEST_PROTOCOL)
        self.modules: set[str] = set()

    def reducer_override(self, obj):
        self.modules.add(getattr(type(obj), "__module__", "") or "")
        if isinstance(obj, type | types.FunctionType | types.BuiltinFunctionType):
            self.modules.add(getattr(obj, "__module__", "") or "")
        return NotImplemented


class _Discard:
    def write(self, data) -> int:
        return len(data)


def _relative_imports(module_name: str, source: str) -> tuple[set[str], set[str]]:
    """(modules of tabular.ml a module imports, other DeepMed packages it imports) from its source."""
    inside, outside = set(), set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                inside.add(f"{_ML_PACKAGE}.{node.module.split('.')[0]}")
            else:
                inside.update(f"{_ML_PACKAGE}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level > 1:
            outside.add(f"{'.' * node.level}{node.module or ''}")
        else:
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                if name.startswith(f"{_ML_PACKAGE}."):
                    inside.add(".".join(name.split(".")[:3]))
                elif name.split(".")[0] in _DEEPMED_PACKAGES:
                    outside.add(name)
    return inside, outside


_DEEPMED_PACKAGES = {"deepmed", "accounts", "tabular", "imaging", "chatbot", "modelhub", "django"}


def standalone_runtime_files(pipeline) -> dict[str, bytes]:
    """The `deepmed_runtime` package for a pipeline: the loader and copies of the DeepMed modules it needs.

    The pickle's references are recorded by pickling the pipeline; every module of `tabular.ml` among them, and
    what those import from `tabular.ml`, is copied (ML code imports no Django, by design). The input-schema checks
    always go along. Raises StandaloneError when the pipeline refers to DeepMed code outside `tabular.ml`.
    """
    recorder = _ReferenceRecorder()
    recorder.dump(pipeline)
    referenced = {name for name in recorder.modules if name.split(".")[0] in _DEEPMED_PACKAGES - {"django"}}
    not_shippable = sorted(name for name in referenced if not name.startswith(f"{_ML_PACKAGE}."))
    if not_shippable:
        raise StandaloneError(f"the pipeline refers to DeepMed code outside {_ML_PACKAGE}: {', '.join(not_shippable)}")
    wanted = {".".join(name.split(".")[:3]) for name in referenced} | {f"{_ML_PACKAGE}.schema"}
    sources: dict[str, str] = {}
    while wanted:
        name = wanted.pop()
        if name in sources:
            continue
        source = Path(importlib.import_module(name).__file__).read_text(encoding="utf-8")
        inside, outside = _relative_imports(name, source)
        if outside:
            raise StandaloneError(f"{name} imports {', '.join(sorted(outside))}, which cannot ship without DeepMed")
        sources[name] = source
        wanted |= inside - set(sources)
    package_doc = importlib.import_module(_ML_PACKAGE).__doc__ or ""
    files = {
        f"{RUNTIME_PACKAGE}/__init__.py": (Path(__file__).parent / "standalone_runtime.py").read_bytes(),
        f"{RUNTIME_PACKAGE}/__main__.py": _RUNTIME_MAIN.encode(),
        f"{RUNTIME_PACKAGE}/tabular_ml/__init__.py": f'"""{package_doc.strip()}"""\n'.encode(),
    }
    for name, source in sorted(sources.items()):
        files[f"{RUNTIME_PACKAGE}/tabular_ml/{name.rsplit('.', 1)[1]}.py"] = source.encode()
    return files


def download_versions(bundle: dict[str, Any]) -> dict[str, str]:
    """The library versions a download pins: those the bundle was written with, completed (for older bundles that
    did not record them) with this server's, which load it today. DeepMed itself is not among them."""
    versions = {key: value for key, value in library_versions().items() if key != "deepmed"}
    versions.update({key: value for key, value in (bundle.get("versions") or {}).items() if value and key != "deepmed"})
    return versions


def pip_requirements(versions: dict[str, str]) -> list[str]:
    """`distribution==version` lines for pip, from `download_versions` (Python itself left out)."""
    return [f"{_VERSIONED[key]}=={value}" for key, value in sorted(versions.items()) if key in _VERSIONED and value]


# --- ONNX export -----------------------------------------------------------------------------------------------------


def onnx_check_rows(bundle: dict[str, Any], *, background: pd.DataFrame | None, ranges: dict | None) -> pd.DataFrame:
    """Rows to check an ONNX translation on: the model's reference rows when its dataset is still there, and rows
    made from its schema (training ranges, categories, and every column empty once) so the check never depends on
    the dataset."""
    from .ml.schema import validate_rows

    schema = bundle["schema"]
    rng = np.random.default_rng(0)
    ranges = ranges or {}
    made: dict[str, list[Any]] = {}
    n_rows = 40
    for spec in schema.columns:
        if spec.kind == "number":
            low, high = ranges.get(spec.name, [0.0, 100.0])
            values: list[Any] = list(np.round(rng.uniform(low, high, n_rows), 3))
        elif spec.kind == "boolean":
            values = list(rng.choice([True, False], n_rows))
        elif spec.categories:
            values = [spec.categories[i] for i in rng.integers(0, len(spec.categories), n_rows)]
        else:
            values = [None] * n_rows
        values[0] = None  # one row with every value missing: the imputation paths are checked too
        made[spec.name] = values
    synthetic, _ignored = validate_rows(schema, pd.DataFrame(made))
    if background is None or not len(background):
        return synthetic
    return pd.concat([background, synthetic], ignore_index=True)


def onnx_download(bundle: dict[str, Any], *, background: pd.DataFrame | None, ranges: dict | None):
    """`tabular.ml.onnx_export.onnx_export` of the bundle's pipeline, checked on `onnx_check_rows`."""
    from .ml.onnx_export import OnnxExport, onnx_export
    from .ml.schema import SchemaError

    try:
        check_rows = onnx_check_rows(bundle, background=background, ranges=ranges)
    except (SchemaError, ValueError, TypeError) as error:
        return OnnxExport(None, [f"no rows could be made to check a translation on ({error})"])
    return onnx_export(bundle["pipeline"], check_rows)


def onnx_versions() -> dict[str, str]:
    """The ONNX libraries that made and checked an export (the README pins onnxruntime for running it)."""
    return {"skl2onnx": _version("skl2onnx"), "onnx": _version("onnx"), "onnxruntime": _version("onnxruntime")}
