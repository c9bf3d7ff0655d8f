"""The Medical Assistant's rule-based warnings about a trained model, in plain words.

`model_warnings(result, *, class_counts, n_train, leakage_columns=())` reads a `ModelResult` (or its
`to_dict()`) and the training metadata and returns [{"code", "message", "severity"}], most serious
first. Severity is "danger" (do not rely on the model until checked), "warning" (interpret with
care) or "info". The rules and their cut-offs are the constants below, so a reviewer can see exactly
when each warning fires; an LLM may later reword the messages, never decide them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["model_warnings"]

SMALL_MINORITY_ROWS = 50  # fewer rows than this in a class: figures for that class rest on few patients
SMALL_MINORITY_SHARE = 0.10  # a class under 10% of rows is rare enough to distort accuracy
WIDE_INTERVAL = 0.15  # a 95% interval wider than this (ROC AUC, sensitivity, specificity) is unstable
ACCURACY_GAP = 0.10  # accuracy this far above balanced accuracy mostly reflects the majority class
NEAR_PERFECT_AUC = 0.995  # hold-out ROC AUC this high in clinical data usually means leakage
CALIBRATION_ERROR = 0.10  # mean gap between predicted and observed risk above this is poor calibration
OVERFIT_GAP = 0.10  # training ROC AUC this far above the hold-out's signals overfitting

_ORDER = {"danger": 0, "warning": 1, "info": 2}


def _get(result: Any, key: str, default: Any = None) -> Any:
    if isinstance(result, Mapping):
        return result.get(key, default)
    return getattr(result, key, default)


def _width(intervals: Mapping[str, Any], key: str) -> float | None:
    bounds = intervals.get(key) if intervals else None
    if not bounds or bounds[0] is None or bounds[1] is None:
        return None
    return float(bounds[1]) - float(bounds[0])


def _warning(code: str, severity: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message, "severity": severity}


# The metric words of the warnings (the pages' own map, deepmed.labels, is out of reach of this Django-free module).
_SHOWN_METRICS = {"roc_auc": "ROC AUC", "sensitivity": "sensitivity", "specificity": "specificity"}


def model_warnings(
    result: Any,
    *,
    class_counts: Mapping[Any, int],
    n_train: int,
    leakage_columns: Iterable[str] = (),
) -> list[dict[str, str]]:
    """Plain-words warnings for one trained model; see the module docstring."""
    warnings: list[dict[str, str]] = []
    metrics = _get(result, "metrics", {}) or {}
    intervals = _get(result, "intervals", {}) or {}
    total = sum(class_counts.values())

    if class_counts and total:
        rare_label, rare_count = min(class_counts.items(), key=lambda item: item[1])
        share = rare_count / total
        if rare_count < SMALL_MINORITY_ROWS or share < SMALL_MINORITY_SHARE:
            warnings.append(
                _warning(
                    "small_minority_class",
                    "warning",
                    f"Only {rare_count} patients ({share:.0%}) have the outcome '{rare_label}'. Figures for this "
                    "group rest on few cases and may change a lot with new data.",
                )
            )

    unstable = {
        key: width
        for key in ("roc_auc", "sensitivity", "specificity")
        if (width := _width(intervals, key)) is not None and width > WIDE_INTERVAL
    }
    if unstable:
        listed = ", ".join(f"{_SHOWN_METRICS[key]} (interval width {width:.2f})" for key, width in unstable.items())
        warnings.append(
            _warning(
                "unstable_estimates",
                "warning",
                f"The 95% confidence intervals are wide for {listed}: the test set is too small to pin these "
                "figures down. Treat them as rough, or evaluate on more patients.",
            )
        )

    accuracy, balanced = metrics.get("accuracy"), metrics.get("balanced_accuracy")
    if accuracy is not None and balanced is not None and accuracy - balanced > ACCURACY_GAP:
        warnings.append(
            _warning(
                "accuracy_above_balanced",
                "warning",
                f"Accuracy ({accuracy:.0%}) is well above balanced accuracy ({balanced:.0%}): the model looks good "
                "mostly because most patients belong to one class. Judge it by sensitivity and specificity.",
            )
        )

    leaks = [str(column) for column in leakage_columns]
    roc_auc = metrics.get("roc_auc")
    if leaks:
        warnings.append(
            _warning(
                "possible_leakage",
                "danger",
                f"The column(s) {', '.join(repr(c) for c in leaks)} predict the outcome almost perfectly on their "
                "own. They may be recorded after, or because of, the outcome; check before trusting this model.",
            )
        )
    elif roc_auc is not None and roc_auc >= NEAR_PERFECT_AUC:
        warnings.append(
            _warning(
                "near_perfect_score",
                "warning",
                f"The hold-out ROC AUC is {roc_auc:.3f}, nearly perfect. Real clinical prediction is rarely this "
                "clean: check that no column reveals the outcome.",
            )
        )

    calibration_error = _get(result, "calibration_error")
    if calibration_error is not None and calibration_error > CALIBRATION_ERROR:
        method = _get(result, "calibration", "none")
        warnings.append(
            _warning(
                "poor_calibration",
                "warning",
                f"Predicted risks are off by {calibration_error:.0%} on average on the test set "
                f"({'not recalibrated' if method == 'none' else f'recalibrated with the {method} method'}). "
                "Use the ranking and the threshold, not the percentages, for decisions.",
            )
        )

    train_auc = (_get(result, "train_metrics", {}) or {}).get("roc_auc")
    if train_auc is not None and roc_auc is not None and train_auc - roc_auc > OVERFIT_GAP:
        warnings.append(
            _warning(
                "overfitting",
                "warning",
                f"ROC AUC is {train_auc:.2f} on the training patients but {roc_auc:.2f} on the test patients: "
                "the model memorised part of its training data. A simpler model or more data may generalise better.",
            )
        )

    if n_train < 100:
        warnings.append(
            _warning(
                "small_training_set",
                "info",
                f"The model learned from {n_train} patients; estimates from so few are uncertain.",
            )
        )
    warnings.sort(key=lambda item: _ORDER[item["severity"]])
    return warnings
