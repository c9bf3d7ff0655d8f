"""Each Medical Assistant warning fires on the situation it describes, and not on a healthy model."""

from __future__ import annotations

import pytest

from tabular.ml.assistant import model_warnings

HEALTHY = {
    "metrics": {"roc_auc": 0.86, "accuracy": 0.80, "balanced_accuracy": 0.79},
    "intervals": {"roc_auc": [0.81, 0.90], "sensitivity": [0.70, 0.82], "specificity": [0.75, 0.86]},
    "train_metrics": {"roc_auc": 0.90},
    "calibration_error": 0.03,
    "calibration": "sigmoid",
}
BALANCED = {"healthy": 400, "sick": 300}


def codes(result, counts=BALANCED, n_train=560, **kwargs):
    return [w["code"] for w in model_warnings(result, class_counts=counts, n_train=n_train, **kwargs)]


def changed(**updates):
    result = {key: dict(value) if isinstance(value, dict) else value for key, value in HEALTHY.items()}
    for key, value in updates.items():
        if isinstance(value, dict):
            result[key].update(value)
        else:
            result[key] = value
    return result


def test_a_healthy_model_gets_no_warnings():
    assert codes(HEALTHY) == []


def test_small_minority_class():
    warnings = model_warnings(HEALTHY, class_counts={"healthy": 900, "sick": 40}, n_train=750)
    assert [w["code"] for w in warnings] == ["small_minority_class"]
    assert "40 patients" in warnings[0]["message"] and "'sick'" in warnings[0]["message"]


def test_unstable_estimates_name_the_wide_interval():
    warnings = model_warnings(changed(intervals={"sensitivity": [0.40, 0.80]}), class_counts=BALANCED, n_train=560)
    assert [w["code"] for w in warnings] == ["unstable_estimates"]
    assert "sensitivity (interval width 0.40)" in warnings[0]["message"]


def test_accuracy_far_above_balanced_accuracy():
    assert codes(changed(metrics={"accuracy": 0.92, "balanced_accuracy": 0.62})) == ["accuracy_above_balanced"]


def test_leakage_columns_are_a_danger_listed_first():
    warnings = model_warnings(
        changed(intervals={"roc_auc": [0.5, 0.9]}), class_counts=BALANCED, n_train=560, leakage_columns=["discharge"]
    )
    assert warnings[0]["code"] == "possible_leakage" and warnings[0]["severity"] == "danger"
    assert "'discharge'" in warnings[0]["message"]


def test_near_perfect_score_without_known_leak():
    assert codes(changed(metrics={"roc_auc": 0.999}, train_metrics={"roc_auc": 1.0})) == ["near_perfect_score"]


def test_poor_calibration():
    assert codes(changed(calibration_error=0.18)) == ["poor_calibration"]


def test_train_test_gap_is_overfitting():
    assert codes(changed(train_metrics={"roc_auc": 1.0}, metrics={"roc_auc": 0.80})) == ["overfitting"]


def test_small_training_set_is_information():
    warnings = model_warnings(HEALTHY, class_counts={"a": 50, "b": 50}, n_train=80)
    assert [(w["code"], w["severity"]) for w in warnings] == [("small_training_set", "info")]


@pytest.mark.parametrize("as_dict", [True, False])
def test_it_reads_a_model_result_or_its_dict(as_dict):
    from types import SimpleNamespace

    result = changed(calibration_error=0.2)
    source = result if as_dict else SimpleNamespace(**result)
    assert codes(source) == ["poor_calibration"]
