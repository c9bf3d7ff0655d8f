import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import Pipeline

from tabular.ml.cleaning import CleaningPlan, ColumnPlan, build_preprocessor
from tabular.ml.selection import METHODS, FeatureSelector, rank_features, rank_plan_columns


@pytest.fixture(scope="module")
def signal_data():
    rng = np.random.default_rng(0)
    n = 300
    y = rng.integers(0, 2, n)
    strong = y * 2.0 + rng.normal(0, 0.5, n)
    frame = pd.DataFrame(
        {
            "strong": strong,
            "strong_copy": strong * 3 + rng.normal(0, 0.01, n),
            "weak": y * 0.5 + rng.normal(0, 1, n),
            "noise": rng.normal(0, 1, n),
            "noise2": rng.uniform(0, 1, n),
        }
    )
    return frame, np.where(y == 1, "sick", "well")


@pytest.mark.parametrize("method", [m for m in METHODS if m != "correlation"])
def test_each_method_ranks_the_signal_above_the_noise(signal_data, method):
    frame, y = signal_data
    ranking = rank_features(frame, y, method=method)
    names = [name for name, _ in ranking]
    assert len(ranking) == 5
    assert [score for _, score in ranking] == sorted((score for _, score in ranking), reverse=True)
    assert set(names[:2]) <= {"strong", "strong_copy", "weak"}
    assert max(names.index("strong"), names.index("strong_copy")) < names.index("noise")


def test_correlation_filter_scores_near_duplicates_near_zero(signal_data):
    frame, y = signal_data
    scores = dict(rank_features(frame, y, method="correlation"))
    assert min(scores["strong"], scores["strong_copy"]) < 0.01
    assert max(scores["strong"], scores["strong_copy"]) == 1.0
    assert scores["noise"] > 0.8


def test_selector_keeps_top_k_and_names_its_output(signal_data):
    frame, y = signal_data
    selector = FeatureSelector(method="anova_f", k=2).fit(frame, y)
    assert set(selector.selected_features_) == {"strong", "strong_copy"}
    assert list(selector.get_feature_names_out()) == selector.selected_features_
    assert list(selector.transform(frame).columns) == selector.selected_features_
    assert set(selector.scores_) == set(frame.columns)


def test_selector_threshold_and_correlation_default(signal_data):
    frame, y = signal_data
    kept = FeatureSelector(method="correlation").fit(frame, y).selected_features_
    assert len({"strong", "strong_copy"} & set(kept)) == 1
    assert "noise" in kept
    kept = FeatureSelector(method="random_forest", threshold=0.2).fit(frame, y).selected_features_
    assert "noise2" not in kept


def test_selector_refits_inside_cross_validation_after_the_preprocessor():
    rng = np.random.default_rng(1)
    n = 200
    y = rng.integers(0, 2, n)
    frame = pd.DataFrame(
        {
            "marker": y + rng.normal(0, 0.3, n),
            "sex": rng.choice(["F", "M"], n),
            "noise": rng.normal(size=n),
        }
    )
    plan = CleaningPlan(
        target="y",
        columns=[
            ColumnPlan(name="marker"),
            ColumnPlan(name="sex", kind="categorical", impute="most_frequent", encode="onehot", scale="none"),
            ColumnPlan(name="noise"),
        ],
    )
    model = Pipeline(
        [
            ("prep", build_preprocessor(plan)),
            ("select", FeatureSelector(method="mutual_info", k=2)),
            ("clf", LogisticRegression()),
        ]
    )
    assert cross_val_score(model, frame, y, cv=3, scoring="roc_auc").mean() > 0.9
    model.fit(frame, y)
    assert "marker" in model.named_steps["select"].selected_features_
    assert set(model.named_steps["prep"].get_feature_names_out()) == {"marker", "sex_F", "sex_M", "noise"}


def test_rank_plan_columns_gives_one_score_per_original_column():
    rng = np.random.default_rng(2)
    n = 150
    y = rng.choice(["a", "b"], n)
    frame = pd.DataFrame({"sex": np.where(y == "a", "F", "M"), "x": rng.normal(size=n), "y": y})
    plan = CleaningPlan(
        target="y",
        columns=[
            ColumnPlan(name="sex", kind="categorical", impute="most_frequent", encode="onehot", scale="none"),
            ColumnPlan(name="x"),
        ],
    )
    ranking = rank_plan_columns(frame, plan, method="mutual_info")
    assert [name for name, _ in ranking] == ["sex", "x"]


def test_raw_frames_with_text_and_missing_values_are_ranked():
    frame = pd.DataFrame({"c": ["a", "b", None, "a"] * 10, "x": [1.0, np.nan, 3.0, 4.0] * 10})
    assert len(rank_features(frame, [0, 1] * 20, method="anova_f")) == 2


def test_unknown_method_and_single_class_are_refused():
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match="Unknown selection method"):
        rank_features(frame, [0, 1, 0], method="magic")
    with pytest.raises(ValueError, match="single class"):
        rank_features(frame, [1, 1, 1], method="anova_f")
