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

import platform
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

from django.utils import timezone

from deepmed.exceptions import ApplicationError
from modelhub.artifacts import StoredArtifact, artifact_load_object, artifact_save_object

MODEL_BUNDLE_FORMAT = "deepmed.tabular/1"

_VERSIONED = {
    "sklearn": "scikit-learn",
    "pandas": "pandas",
    "numpy": "numpy",
    "imblearn": "imbalanced-learn",
    "joblib": "joblib",
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
