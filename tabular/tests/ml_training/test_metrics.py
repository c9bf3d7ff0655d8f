"""Metrics agree with scikit-learn; the vectorised bootstrap agrees with a plain loop; curves and confusion."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    average_precision_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from tabular.ml.metrics import (
    METRIC_KEYS,
    bootstrap_intervals,
    bootstrap_samples,
    classification_curves,
    classification_metrics,
    confusion,
    resample_indices,
)


def binary_case(n=120, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.choice(np.array(["no", "yes"], dtype=object), size=n, p=[0.7, 0.3])
    # Rounded scores make ties, the case where hand-rolled AUCs usually go wrong.
    proba = np.clip(np.round(0.35 * (y == "yes") + rng.uniform(0, 0.65, size=n), 1), 0, 1)
    return y, proba


def multiclass_case(n=150, seed=1):
    rng = np.random.default_rng(seed)
    y = rng.choice(np.array(["a", "b", "c"], dtype=object), size=n)
    logits = rng.normal(size=(n, 3)) + 1.5 * (y[:, None] == np.array(["a", "b", "c"]))
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, np.round(proba, 2) / np.round(proba, 2).sum(axis=1, keepdims=True)


def test_binary_metrics_match_scikit_learn_at_the_threshold():
    y, p = binary_case()
    figures = classification_metrics(y, p, 0.4, "yes")
    truth, predicted = (y == "yes").astype(int), (p >= 0.4).astype(int)
    assert list(figures) == list(METRIC_KEYS)
    assert figures["roc_auc"] == pytest.approx(roc_auc_score(truth, p))
    assert figures["pr_auc"] == pytest.approx(average_precision_score(truth, p))
    assert figures["accuracy"] == pytest.approx(np.mean(truth == predicted))
    assert figures["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(truth, predicted))
    assert figures["sensitivity"] == pytest.approx(recall_score(truth, predicted))
    assert figures["specificity"] == pytest.approx(recall_score(truth, predicted, pos_label=0))
    assert figures["precision"] == pytest.approx(precision_score(truth, predicted))
    assert figures["f1"] == pytest.approx(f1_score(truth, predicted))
    assert figures["brier"] == pytest.approx(np.mean((p - truth) ** 2))


def test_a_probability_matrix_gives_the_same_binary_figures_as_the_positive_column():
    y, p = binary_case()
    matrix = np.column_stack([1 - p, p])
    assert classification_metrics(y, matrix, 0.4, "yes", class_labels=["no", "yes"]) == classification_metrics(
        y, p, 0.4, "yes"
    )


def test_multiclass_metrics_are_macro_averages_matching_scikit_learn():
    y, P = multiclass_case()
    labels = ["a", "b", "c"]
    figures = classification_metrics(y, P, class_labels=labels)
    predicted = np.array(labels, dtype=object)[P.argmax(axis=1)]
    assert figures["roc_auc"] == pytest.approx(roc_auc_score(y, P, multi_class="ovr", average="macro", labels=labels))
    assert figures["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, predicted))
    assert figures["f1"] == pytest.approx(f1_score(y, predicted, average="macro"))
    assert figures["precision"] == pytest.approx(precision_score(y, predicted, average="macro"))
    assert figures["sensitivity"] == pytest.approx(recall_score(y, predicted, average="macro"))
    onehot = (y[:, None] == np.array(labels)).astype(float)
    assert figures["brier"] == pytest.approx(np.mean(np.sum((P - onehot) ** 2, axis=1)))
    assert figures["per_class"]["b"]["support"] == int(np.sum(y == "b"))
    assert figures["per_class"]["a"]["roc_auc"] == pytest.approx(roc_auc_score(y == "a", P[:, 0]))


def test_undefined_figures_are_none_not_nan():
    figures = classification_metrics(np.array(["no"] * 5), np.full(5, 0.2), 0.5, "yes")
    assert figures["roc_auc"] is None
    assert figures["precision"] is None
    assert figures["specificity"] == 1.0


def _loop_reference(y, proba, threshold, positive, labels, n_resamples, seed):
    indices = np.vstack(list(resample_indices(len(y), n_resamples, seed)))
    rows = []
    for idx in indices:
        figures = classification_metrics(y[idx], proba[idx], threshold, positive, class_labels=labels)
        rows.append([np.nan if figures[key] is None else figures[key] for key in METRIC_KEYS])
    return np.array(rows, dtype=float)


def test_vectorised_binary_bootstrap_equals_a_loop_over_scikit_learn_metrics():
    y, p = binary_case(n=60)
    samples = bootstrap_samples(y, p, 0.4, "yes", n_resamples=150, random_state=3)
    reference = _loop_reference(y, p, 0.4, "yes", None, 150, 3)
    for column, key in enumerate(METRIC_KEYS):
        np.testing.assert_allclose(samples[key], reference[:, column], rtol=1e-9, atol=1e-12, err_msg=key)


def test_vectorised_multiclass_bootstrap_equals_a_loop():
    y, P = multiclass_case(n=45)
    labels = ["a", "b", "c"]
    samples = bootstrap_samples(y, P, class_labels=labels, n_resamples=60, random_state=5)
    reference = _loop_reference(y, P, None, None, labels, 60, 5)
    for column, key in enumerate(METRIC_KEYS):
        np.testing.assert_allclose(samples[key], reference[:, column], rtol=1e-9, atol=1e-12, err_msg=key)


def test_bootstrap_split_into_many_blocks_still_equals_the_loop(monkeypatch):
    from tabular.ml import metrics

    y, p = binary_case(n=50)
    monkeypatch.setattr(metrics, "_BLOCK_CELLS", 50 * 7)  # blocks of 7 resamples: 6 blocks for 40
    assert [block.shape[0] for block in resample_indices(50, 40, 1)] == [7, 7, 7, 7, 7, 5]
    samples = bootstrap_samples(y, p, 0.4, "yes", n_resamples=40, random_state=1)
    reference = _loop_reference(y, p, 0.4, "yes", None, 40, 1)
    for column, key in enumerate(METRIC_KEYS):
        np.testing.assert_allclose(samples[key], reference[:, column], rtol=1e-9, atol=1e-12, err_msg=key)


def test_intervals_bracket_the_point_estimate():
    y, p = binary_case(n=200)
    point = classification_metrics(y, p, 0.4, "yes")
    intervals = bootstrap_intervals(y, p, 0.4, "yes", n_resamples=300)
    for key in METRIC_KEYS:
        low, high = intervals[key]
        assert low <= point[key] <= high, key


def test_confusion_matrix_matches_scikit_learn_and_uses_the_threshold():
    y, p = binary_case()
    matrix = np.column_stack([1 - p, p])
    result = confusion(y, matrix, ["no", "yes"], 0.4, "yes")
    expected = confusion_matrix(y, np.where(p >= 0.4, "yes", "no"), labels=["no", "yes"])
    assert result == {"labels": ["no", "yes"], "matrix": expected.tolist()}


def test_curves_run_from_corner_to_corner_and_are_thinned():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=2000)
    p = np.clip(0.3 * y + rng.uniform(0, 0.7, size=2000), 0, 1)
    curves = classification_curves(y, p, 1, max_points=50)
    roc = curves["roc"]
    assert len(roc["fpr"]) <= 50
    assert (roc["fpr"][0], roc["tpr"][0]) == (0.0, 0.0) and (roc["fpr"][-1], roc["tpr"][-1]) == (1.0, 1.0)
    assert len(curves["pr"]["precision"]) == len(curves["pr"]["recall"]) <= 50
    assert 0 < len(curves["calibration"]["prob_pred"]) <= 10
