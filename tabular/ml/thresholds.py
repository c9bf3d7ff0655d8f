"""Decision thresholds for binary models, chosen on out-of-fold probabilities of the positive class.

A row is predicted positive when its probability is >= the threshold (the same rule as
`metrics.classification_metrics` and `calibration.CalibratedThresholdClassifier.predict`).

- `youden_threshold`: the threshold maximising Youden's J = sensitivity + specificity − 1. Among
  equally good thresholds the highest one is taken (fewest false alarms for the same J).
- `sensitivity_threshold`: the highest threshold whose sensitivity reaches the clinician's target,
  i.e. the most specific operating point that still finds the requested share of positives.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import roc_curve

__all__ = ["choose_threshold", "sensitivity_threshold", "youden_threshold"]


def _operating_points(y_binary, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y_binary = np.asarray(y_binary).astype(int)
    if y_binary.min() == y_binary.max():
        raise ValueError("A threshold needs both classes among the out-of-fold predictions.")
    # Every distinct score is a candidate; index 0 (threshold +inf, nobody positive) is never chosen.
    fpr, tpr, thresholds = roc_curve(y_binary, np.asarray(scores, dtype=float), drop_intermediate=False)
    return fpr[1:], tpr[1:], thresholds[1:]


def _point(method: str, threshold: float, fpr: float, tpr: float, target: float | None = None) -> dict[str, Any]:
    return {
        "method": method,
        "threshold": float(threshold),
        "sensitivity": float(tpr),
        "specificity": float(1.0 - fpr),
        "target_sensitivity": target,
    }


def youden_threshold(y_binary, scores) -> dict[str, Any]:
    """{"method": "youden", "threshold", "sensitivity", "specificity"} maximising sensitivity + specificity."""
    fpr, tpr, thresholds = _operating_points(y_binary, scores)
    youden = tpr - fpr
    # roc_curve lists thresholds high to low, so the first (near-)maximum is the highest tied threshold;
    # the tolerance keeps 2/3 − 0 and 1 − 1/3 equal despite floating point.
    best = int(np.flatnonzero(youden >= youden.max() - 1e-12)[0])
    return _point("youden", thresholds[best], fpr[best], tpr[best])


def sensitivity_threshold(y_binary, scores, target: float) -> dict[str, Any]:
    """The highest threshold whose sensitivity is >= `target` (0 < target <= 1)."""
    if not 0.0 < target <= 1.0:
        raise ValueError(f"Target sensitivity must be between 0 and 1, got {target!r}.")
    fpr, tpr, thresholds = _operating_points(y_binary, scores)
    reaching = np.flatnonzero(tpr >= target - 1e-12)
    best = int(reaching[0])  # always exists: the lowest threshold has sensitivity 1
    return _point("target_sensitivity", thresholds[best], fpr[best], tpr[best], target=float(target))


def choose_threshold(y_binary, scores, target_sensitivity: float | None = None) -> dict[str, Any]:
    """Youden's J by default, or the target-sensitivity rule when a target is given."""
    if target_sensitivity is None:
        return youden_threshold(y_binary, scores)
    return sensitivity_threshold(y_binary, scores, target_sensitivity)
