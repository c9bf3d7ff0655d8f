"""Per-patient explanations: exact for linear models, baseline substitution otherwise; feature importance."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from tabular.ml.calibration import CalibratedThresholdClassifier
from tabular.ml.explain import explain_rows, explanation_method, feature_importance, feature_origins

from .helpers import NUMERIC, patients, preprocessor


@pytest.fixture(scope="module")
def data():
    X, y = patients(200)
    # "marker" alone decides the outcome, so every sane explanation must put it first.
    y = pd.Series(np.where(X["marker"] > X["marker"].median(), "sick", "healthy"), name="outcome")
    return X, y


def _linear(X, y):
    return Pipeline([("prep", preprocessor()), ("clf", LogisticRegression(C=0.5))]).fit(X, y)


def test_linear_contributions_add_up_exactly_to_the_score_difference(data):
    X, y = data
    pipeline = _linear(X, y)
    assert explanation_method(pipeline) == "linear"
    rows, background = X.head(6), X.iloc[50:150]
    explanations = explain_rows(pipeline, rows, background=background, top_k=100)
    decision = pipeline.decision_function(rows)
    baseline = pipeline.decision_function(background).mean()
    for explanation, score in zip(explanations, decision, strict=True):
        assert {item["feature"] for item in explanation} == {*NUMERIC, "site"}
        assert sum(item["contribution"] for item in explanation) == pytest.approx(score - baseline, abs=1e-9)


def test_linear_contribution_of_one_number_is_its_coefficient_times_its_distance_from_the_mean(data):
    X, y = data
    pipeline = _linear(X, y)
    background = X.iloc[50:150]
    transformed_row = pipeline[:-1].transform(X.head(1))
    centre = pipeline[:-1].transform(background).mean(axis=0)
    names = list(pipeline[:-1].get_feature_names_out())
    k = names.index("num__marker")
    expected = pipeline[-1].coef_[0, k] * (transformed_row[0, k] - centre[k])
    explanation = explain_rows(pipeline, X.head(1), background=background, top_k=100)[0]
    assert next(i["contribution"] for i in explanation if i["feature"] == "marker") == pytest.approx(expected)
    assert explanation[0]["feature"] == "marker"


def test_contributions_point_to_the_positive_label_of_the_served_model(data):
    X, y = data
    fitted = _linear(X, y)
    served = Pipeline(
        [
            ("prep", fitted.named_steps["prep"]),
            ("clf", CalibratedThresholdClassifier(fitted.named_steps["clf"], threshold=0.5, positive_label="healthy")),
        ]
    )
    towards_sick = explain_rows(fitted, X.head(3), background=X, top_k=3)
    towards_healthy = explain_rows(served, X.head(3), background=X, top_k=3)
    for sick, healthy in zip(towards_sick, towards_healthy, strict=True):
        assert [i["feature"] for i in sick] == [i["feature"] for i in healthy]
        assert [i["contribution"] for i in sick] == pytest.approx([-i["contribution"] for i in healthy])


def test_occlusion_contribution_is_the_probability_change_at_the_reference_value(data):
    X, y = data
    pipeline = Pipeline(
        [("prep", preprocessor()), ("clf", RandomForestClassifier(n_estimators=30, random_state=0))]
    ).fit(X, y)
    assert explanation_method(pipeline) == "occlusion"
    rows = X.head(5)
    explanations = explain_rows(pipeline, rows, background=X, top_k=3)
    assert all(len(e) == 3 for e in explanations)
    decisive = [e[0]["feature"] for e in explanations if abs(e[0]["contribution"]) > 0.2]
    assert decisive and set(decisive) == {"marker"}
    row = X.head(1).copy()
    substituted = row.copy()
    substituted["marker"] = X["marker"].median()
    sick = list(pipeline.classes_).index("sick")
    expected = pipeline.predict_proba(row)[0, sick] - pipeline.predict_proba(substituted)[0, sick]
    got = {i["feature"]: i["contribution"] for i in explain_rows(pipeline, row, background=X, top_k=10)[0]}
    assert got["marker"] == pytest.approx(expected)


def test_occlusion_handles_category_columns(data):
    X, y = data
    pipeline = Pipeline(
        [("prep", preprocessor()), ("clf", RandomForestClassifier(n_estimators=10, random_state=0))]
    ).fit(X, y)
    explanation = explain_rows(pipeline, X.head(2), background=X, top_k=10)
    assert {item["feature"] for item in explanation[0]} == {*NUMERIC, "site"}


def test_one_hot_outputs_are_traced_back_to_their_column(data):
    X, y = data
    origins = feature_origins(_linear(X, y))
    assert origins == [*NUMERIC, "site", "site", "site"]


def test_feature_importance_ranks_the_deciding_column_first_both_ways(data):
    X, y = data
    pipeline = Pipeline(
        [("prep", preprocessor()), ("clf", RandomForestClassifier(n_estimators=30, random_state=0))]
    ).fit(X.iloc[:150], y.iloc[:150])
    importance = feature_importance(pipeline, X.iloc[150:], y.iloc[150:], n_repeats=3)
    assert importance["permutation"][0]["feature"] == "marker"
    assert importance["permutation"][0]["importance"] > 0.1
    assert importance["model"][0]["feature"] == "marker"
    assert {item["feature"] for item in importance["model"]} == {*NUMERIC, "site"}


def test_models_without_own_importances_report_none(data):
    from sklearn.neighbors import KNeighborsClassifier

    X, y = data
    pipeline = Pipeline([("prep", preprocessor()), ("clf", KNeighborsClassifier())]).fit(X, y)
    assert feature_importance(pipeline, X.head(60), y.head(60), n_repeats=2)["model"] is None
