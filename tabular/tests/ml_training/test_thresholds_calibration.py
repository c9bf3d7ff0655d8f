"""Youden and target-sensitivity thresholds on hand-checkable cases; calibration kept only when it helps."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import StratifiedKFold

from tabular.ml.calibration import CalibrationMap, brier, choose_calibration
from tabular.ml.thresholds import choose_threshold, sensitivity_threshold, youden_threshold

# Negatives score 0.1, 0.2, 0.6; positives 0.4, 0.7, 0.9. At >= 0.7: sensitivity 2/3, specificity 1 (J = 2/3);
# at >= 0.4: sensitivity 1, specificity 2/3 (J = 2/3 too); every other cut is worse.
Y = np.array([0, 0, 0, 1, 1, 1])
SCORES = np.array([0.1, 0.2, 0.6, 0.4, 0.7, 0.9])


def test_youden_picks_the_best_j_and_the_higher_of_tied_thresholds():
    choice = youden_threshold(Y, SCORES)
    assert choice["threshold"] == 0.7
    assert choice["sensitivity"] == pytest.approx(2 / 3)
    assert choice["specificity"] == 1.0


def test_target_sensitivity_takes_the_most_specific_threshold_reaching_it():
    assert sensitivity_threshold(Y, SCORES, 0.9)["threshold"] == 0.4
    assert sensitivity_threshold(Y, SCORES, 0.6)["threshold"] == 0.7
    assert sensitivity_threshold(Y, SCORES, 1.0)["specificity"] == pytest.approx(2 / 3)
    assert choose_threshold(Y, SCORES, 0.9)["method"] == "target_sensitivity"


def test_a_threshold_needs_both_classes_and_a_sane_target():
    with pytest.raises(ValueError, match="both classes"):
        youden_threshold(np.zeros(4), np.linspace(0, 1, 4))
    with pytest.raises(ValueError, match="between 0 and 1"):
        sensitivity_threshold(Y, SCORES, 1.5)


def _splits(y):
    return list(StratifiedKFold(5, shuffle=True, random_state=0).split(np.zeros(len(y)), y))


def test_well_calibrated_probabilities_stay_uncalibrated():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.02, 0.98, size=1500)
    y = (rng.uniform(size=1500) < p).astype(int)
    choice = choose_calibration(p, y, 2, "predict_proba", _splits(y))
    assert choice.method == "none"
    assert choice.calibration_map is None
    assert set(choice.brier_scores) == {"none", "sigmoid", "isotonic"}


def test_overconfident_probabilities_get_a_map_that_lowers_the_brier_score():
    rng = np.random.default_rng(1)
    true_p = rng.uniform(0.05, 0.95, size=1500)
    y = (rng.uniform(size=1500) < true_p).astype(int)
    overconfident = 1 / (1 + np.exp(-4 * np.log(true_p / (1 - true_p))))
    choice = choose_calibration(overconfident, y, 2, "predict_proba", _splits(y))
    assert choice.method in ("sigmoid", "isotonic")
    assert choice.brier_scores[choice.method] < 0.99 * choice.brier_scores["none"]
    calibrated = choice.proba(overconfident, "predict_proba")
    raw = np.column_stack([1 - overconfident, overconfident])
    assert brier(calibrated, y) < brier(raw, y)


def test_decision_values_always_get_a_map_to_probabilities():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, size=400)
    decision = 2.0 * (y - 0.5) + rng.normal(size=400)
    choice = choose_calibration(decision, y, 2, "decision_function", _splits(y))
    assert choice.method in ("sigmoid", "isotonic")
    proba = choice.proba(decision, "decision_function")
    assert proba.shape == (400, 2) and np.all((proba >= 0) & (proba <= 1))
    assert "none" not in choice.brier_scores


def test_multiclass_calibration_rows_sum_to_one():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, size=300)
    scores = rng.dirichlet(np.ones(3), size=300)
    mapping = CalibrationMap("isotonic").fit(scores, y, 3)
    np.testing.assert_allclose(mapping.transform(scores).sum(axis=1), 1.0)
