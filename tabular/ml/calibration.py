"""Probability calibration learned from out-of-fold scores, and the served model's final step.

Why not `CalibratedClassifierCV` around each candidate: it refits the estimator once per inner fold,
multiplying the cost of the search. The search already produces out-of-fold scores of the best
configuration (each row scored by a model that never saw it), which is exactly what
`CalibratedClassifierCV(ensemble=False)` computes internally before fitting its calibrator. So the
calibrator is fitted on those scores and applied to the estimator refitted on the whole training
part — the same recipe, without the extra fits.

- Scores: binary → one score per row for `classes_[1]` (its probability, or the decision value for
  SVMs); multiclass → one column per class (one-vs-rest maps, rows renormalised to sum to 1).
- `sigmoid` is Platt scaling on the score (on the logit of a probability, so it is temperature-and-
  bias scaling); `isotonic` is a monotone step map.
- `choose_calibration` estimates the Brier score of each method by cross-validating the calibrator
  over the out-of-fold rows (a calibrator scored on its own fitting rows would always look better,
  isotonic most of all) and keeps a method only when it beats the uncalibrated Brier score by at
  least `MIN_RELATIVE_GAIN`. Decision values are not probabilities, so SVMs always get a map.
- `CalibratedThresholdClassifier` wraps the fitted estimator with its calibration map and decision
  threshold. It is the `clf` step of the served pipeline, so `predict_proba` returns calibrated
  probabilities and `predict` applies the threshold chosen in training, everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, logit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.isotonic import IsotonicRegression

__all__ = [
    "MIN_RELATIVE_GAIN",
    "CalibratedThresholdClassifier",
    "CalibrationChoice",
    "CalibrationMap",
    "brier",
    "choose_calibration",
    "estimator_scores",
    "uncalibrated_proba",
]

# A calibration map is kept only when it lowers the out-of-fold Brier score by at least 1%: smaller
# gains are within the noise of the cross-validated estimate and not worth a less transparent model.
MIN_RELATIVE_GAIN = 0.01
_EPS = 1e-6


def estimator_scores(estimator, X, score_method: str) -> np.ndarray:
    """Ranking scores of a fitted classifier: 1-D for binary (class `classes_[1]`), (n, k) for multiclass."""
    scores = np.asarray(getattr(estimator, score_method)(X), dtype=float)
    if score_method == "predict_proba" and scores.ndim == 2 and scores.shape[1] == 2:
        return scores[:, 1]
    return scores


def uncalibrated_proba(scores: np.ndarray, score_method: str) -> np.ndarray | None:
    """Probabilities (n, k) straight from probability scores; None for decision values."""
    if score_method != "predict_proba":
        return None
    if scores.ndim == 1:
        return np.column_stack([1.0 - scores, scores])
    return scores


def brier(proba: np.ndarray, y_index: np.ndarray) -> float:
    """Multiclass-general Brier score: mean over rows of the squared error summed over classes.

    For binary problems this is twice the usual positive-class Brier score; only comparisons are made with it.
    """
    onehot = np.eye(proba.shape[1])[y_index]
    return float(np.mean(np.sum((proba - onehot) ** 2, axis=1)))


def _as_feature(scores: np.ndarray, score_method: str) -> np.ndarray:
    if score_method == "predict_proba":
        return logit(np.clip(scores, _EPS, 1.0 - _EPS))
    return scores


def _platt(feature: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """Platt's sigmoid fit, with his smoothed targets so (nearly) separable scores still give finite slopes."""
    n_positive = float(target.sum())
    n_negative = float(len(target) - n_positive)
    smoothed = np.where(target > 0, (n_positive + 1.0) / (n_positive + 2.0), 1.0 / (n_negative + 2.0))

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        slope, intercept = params
        z = slope * feature + intercept
        # log(1 + e^z) − t·z is the logistic loss; logaddexp keeps it finite for large |z|.
        value = np.sum(np.logaddexp(0.0, z) - smoothed * z)
        residual = expit(z) - smoothed
        return float(value), np.array([np.dot(residual, feature), residual.sum()])

    prior = np.log((n_positive + 1.0) / (n_negative + 1.0))
    fitted = minimize(loss, np.array([1.0, prior]), jac=True, method="L-BFGS-B")
    return float(fitted.x[0]), float(fitted.x[1])


class CalibrationMap(BaseEstimator):
    """A fitted score → probability map (sigmoid or isotonic), one-vs-rest for multiclass."""

    def __init__(self, method: str = "sigmoid", score_method: str = "predict_proba") -> None:
        self.method = method
        self.score_method = score_method

    def _one(self, feature: np.ndarray, target: np.ndarray):
        if self.method == "isotonic":
            return IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(feature, target)
        if target.min() == target.max():
            return float(target[0])  # a class absent (or alone) in the fitting rows: constant probability
        return _platt(feature, target)

    def _apply(self, mapper, feature: np.ndarray) -> np.ndarray:
        if isinstance(mapper, float):
            return np.full(len(feature), mapper)
        if isinstance(mapper, tuple):
            slope, intercept = mapper
            return expit(slope * feature + intercept)
        return mapper.predict(feature)

    def fit(self, scores: np.ndarray, y_index: np.ndarray, n_classes: int) -> CalibrationMap:
        """Fit on scores and class indices (positions in `classes_`)."""
        if self.method not in ("sigmoid", "isotonic"):
            raise ValueError(f"Calibration method must be 'sigmoid' or 'isotonic', got {self.method!r}.")
        feature = _as_feature(np.asarray(scores, dtype=float), self.score_method)
        y_index = np.asarray(y_index)
        self.n_classes_ = n_classes
        if feature.ndim == 1:
            self.maps_ = [self._one(feature, (y_index == 1).astype(float))]
        else:
            self.maps_ = [self._one(feature[:, k], (y_index == k).astype(float)) for k in range(n_classes)]
        return self

    def transform(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated probabilities (n, k) for scores shaped like the fitting scores."""
        feature = _as_feature(np.asarray(scores, dtype=float), self.score_method)
        if feature.ndim == 1:
            positive = np.clip(self._apply(self.maps_[0], feature), 0.0, 1.0)
            return np.column_stack([1.0 - positive, positive])
        columns = np.column_stack([self._apply(m, feature[:, k]) for k, m in enumerate(self.maps_)])
        totals = columns.sum(axis=1, keepdims=True)
        # A row every one-vs-rest map scores 0 gets equal probabilities rather than a division by zero.
        return np.where(totals > 0, columns / np.where(totals > 0, totals, 1.0), 1.0 / columns.shape[1])


@dataclass
class CalibrationChoice:
    """The chosen method ("none", "sigmoid", "isotonic"), its fitted map and each method's out-of-fold Brier."""

    method: str
    calibration_map: CalibrationMap | None
    brier_scores: dict[str, float] = field(default_factory=dict)

    def proba(self, scores: np.ndarray, score_method: str) -> np.ndarray:
        """Probabilities of `scores` under the chosen calibration."""
        if self.calibration_map is None:
            return uncalibrated_proba(scores, score_method)
        return self.calibration_map.transform(scores)


def choose_calibration(
    scores: np.ndarray,
    y_index: np.ndarray,
    n_classes: int,
    score_method: str,
    splits: list[tuple[np.ndarray, np.ndarray]],
) -> CalibrationChoice:
    """Pick none/sigmoid/isotonic by cross-validated Brier over out-of-fold `scores`; fit the winner on all rows.

    `splits` are (fit_rows, score_rows) index pairs over the out-of-fold rows; an empty list means the
    rows are too few to cross-validate, and probability models then stay uncalibrated.
    """
    scores = np.asarray(scores, dtype=float)
    y_index = np.asarray(y_index)
    candidates = ["sigmoid", "isotonic"]
    brier_scores: dict[str, float] = {}
    if score_method == "predict_proba":
        brier_scores["none"] = brier(uncalibrated_proba(scores, score_method), y_index)
    if splits:
        for method in candidates:
            calibrated = np.zeros((len(y_index), n_classes))
            for fit_rows, score_rows in splits:
                mapping = CalibrationMap(method, score_method).fit(scores[fit_rows], y_index[fit_rows], n_classes)
                calibrated[score_rows] = mapping.transform(scores[score_rows])
            brier_scores[method] = brier(calibrated, y_index)
    if score_method == "predict_proba":
        best = min(candidates, key=lambda m: brier_scores.get(m, np.inf))
        gain = brier_scores["none"] - brier_scores.get(best, np.inf)
        if gain <= MIN_RELATIVE_GAIN * brier_scores["none"]:
            return CalibrationChoice("none", None, brier_scores)
    else:
        # Decision values need a map; Platt scaling unless isotonic is clearly better (it needs more rows).
        best = "sigmoid"
        if "isotonic" in brier_scores and brier_scores["isotonic"] < (1 - MIN_RELATIVE_GAIN) * brier_scores["sigmoid"]:
            best = "isotonic"
    mapping = CalibrationMap(best, score_method).fit(scores, y_index, n_classes)
    return CalibrationChoice(best, mapping, brier_scores)


class CalibratedThresholdClassifier(ClassifierMixin, BaseEstimator):
    """A fitted classifier with its calibration map and binary decision threshold (the served `clf` step).

    It wraps parts fitted during training and is not refitted: `fit` only checks them. `threshold`
    applies to the probability of `positive_label`; None (or multiclass) predicts the most probable class.
    """

    def __init__(
        self,
        estimator: Any = None,
        calibration_map: CalibrationMap | None = None,
        score_method: str = "predict_proba",
        threshold: float | None = None,
        positive_label: Any = None,
    ) -> None:
        self.estimator = estimator
        self.calibration_map = calibration_map
        self.score_method = score_method
        self.threshold = threshold
        self.positive_label = positive_label

    @property
    def classes_(self) -> np.ndarray:
        return self.estimator.classes_

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self.estimator, "classes_")

    def fit(self, X, y=None):
        """No-op: the wrapped estimator and map were fitted in training (as with a frozen estimator)."""
        if not self.__sklearn_is_fitted__():
            raise ValueError("CalibratedThresholdClassifier wraps an already fitted estimator.")
        return self

    def predict_proba(self, X) -> np.ndarray:
        scores = estimator_scores(self.estimator, X, self.score_method)
        if self.calibration_map is not None:
            return self.calibration_map.transform(scores)
        proba = uncalibrated_proba(scores, self.score_method)
        if proba is None:
            raise ValueError("Decision scores need a calibration map to give probabilities.")
        return proba

    def predict(self, X) -> np.ndarray:
        proba = self.predict_proba(X)
        classes = self.classes_
        if len(classes) == 2 and self.threshold is not None:
            column = list(classes).index(self.positive_label)
            return np.where(proba[:, column] >= self.threshold, classes[column], classes[1 - column])
        return classes[proba.argmax(axis=1)]
