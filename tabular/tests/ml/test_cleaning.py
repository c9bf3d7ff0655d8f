import dataclasses
import pickle
import typing
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import Pipeline

from tabular.ml.cleaning import (
    CategoryCaster,
    CleaningOptions,
    CleaningPlan,
    ColumnPlan,
    DatetimeExpander,
    FrequencyEncoder,
    IQRClipper,
    PlanError,
    apply_row_steps,
    build_preprocessor,
    cleaning_report,
    plan_cleaning,
    split_features_target,
)
from tabular.ml.io import read_table
from tabular.ml.profiling import DatasetProfile, profile_frame

N_BLANKED = 317


@pytest.fixture(scope="module")
def breast_cancer_csv():
    """The acceptance data: breast cancer as CSV, N cells blanked, a fake name and an ID column added."""
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.drop(columns="target")
    rng = np.random.default_rng(42)
    values = frame.to_numpy(copy=True)
    cells = rng.choice(values.size, N_BLANKED, replace=False)
    values[np.unravel_index(cells, values.shape)] = np.nan
    frame = pd.DataFrame(values, columns=frame.columns)
    first = ["Anna", "Ben", "Carla", "David", "Eva", "Frank", "Gina", "Hugo"]
    last = ["Smith", "Jones", "Brown", "Miller", "Davis", "Garcia", "Wilson"]
    frame.insert(0, "patient_id", np.arange(10_000, 10_000 + len(frame)))
    frame.insert(1, "patient_name", [f"{rng.choice(first)} {rng.choice(last)}" for _ in range(len(frame))])
    frame["diagnosis"] = np.where(data.target == 0, "malignant", "benign")
    return frame.to_csv(index=False).encode()


@pytest.fixture(scope="module")
def breast_cancer(breast_cancer_csv):
    frame = read_table(breast_cancer_csv, filename="breast_cancer.csv").frame
    profile = profile_frame(frame, target="diagnosis")
    return frame, profile


def test_acceptance_plan_drops_name_and_id_and_report_counts_imputed_cells_exactly(breast_cancer):
    frame, profile = breast_cancer
    assert "personal_data" in profile.column("patient_name").flags
    assert "identifier" in profile.column("patient_id").flags
    plan = plan_cleaning(profile, "diagnosis")
    assert plan.column("patient_name").action == "drop"
    assert plan.column("patient_name").reason.startswith("personal data")
    assert plan.column("patient_id").action == "drop"
    assert plan.column("patient_id").reason.startswith("identifier")
    report = cleaning_report(frame, plan)
    assert report["n_imputed_cells"] == N_BLANKED
    assert sum(column["n_imputed"] for column in report["columns"]) == N_BLANKED
    assert {item["name"] for item in report["dropped_columns"]} == {"patient_name", "patient_id"}
    assert report["n_rows_before"] == report["n_rows_after"] == 569
    assert report["n_features_out"] == 30


def test_preprocessor_works_inside_cross_validation(breast_cancer):
    frame, profile = breast_cancer
    plan = plan_cleaning(profile, "diagnosis", CleaningOptions(outliers="clip", scaling="robust"))
    features, target = split_features_target(frame, plan)
    model = Pipeline([("prep", build_preprocessor(plan)), ("clf", LogisticRegression(max_iter=500))])
    with warnings.catch_warnings():
        warnings.simplefilter("error", category=FutureWarning)
        scores = cross_val_score(model, features, target, cv=3, scoring="roc_auc")
    assert scores.min() > 0.95


def test_preprocessor_is_unfitted_and_statistics_come_from_training_rows_only():
    plan = CleaningPlan(target="y", columns=[ColumnPlan(name="x", impute="median", scale="none")])
    preprocessor = build_preprocessor(plan)
    train = pd.DataFrame({"x": [1.0, 2.0, 3.0, np.nan]})
    validation = pd.DataFrame({"x": [np.nan, 1000.0, 1000.0]})
    preprocessor.fit(train)
    assert preprocessor.transform(validation)["x"].iloc[0] == 2.0


def test_fitted_preprocessor_pickles_for_serving(breast_cancer):
    frame, profile = breast_cancer
    plan = plan_cleaning(profile, "diagnosis", CleaningOptions(outliers="clip"))
    features, _ = split_features_target(frame, plan)
    preprocessor = build_preprocessor(plan).fit(features)
    restored = pickle.loads(pickle.dumps(preprocessor))
    pd.testing.assert_frame_equal(restored.transform(features.head()), preprocessor.transform(features.head()))


@pytest.mark.parametrize("rows", [pd.DataFrame({"a": [1]}), np.zeros((2, 2)), pd.Series([1]), {"n_rows": 1}])
def test_planner_refuses_anything_but_a_profile(rows):
    with pytest.raises(TypeError, match="DatasetProfile"):
        plan_cleaning(rows, "a")


def test_planner_accepts_only_a_profile_by_its_type_and_the_profile_holds_no_rows():
    hints = typing.get_type_hints(plan_cleaning)
    assert hints["profile"] is DatasetProfile
    for item in dataclasses.fields(DatasetProfile):
        assert "DataFrame" not in str(item.type) and "ndarray" not in str(item.type)
    assert "frame" not in {item.name for item in dataclasses.fields(DatasetProfile)}


def _mixed_frame(n=60):
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {
            "id": np.arange(n),
            "email": [f"p{i}@example.org" for i in range(n)],
            "age": rng.integers(20, 90, n).astype(float),
            "mostly_empty": [np.nan] * (n - 5) + [1.0, 2.0, 3.0, 4.0, 5.0],
            "constant": "x",
            "sex": rng.choice(["F", "M"], n),
            "city": [f"town{i % 25}" for i in range(n)],
            "smoker": rng.choice(["yes", "no"], n),
            "flag01": rng.integers(0, 2, n),
            "visit": pd.date_range("2024-01-01", periods=n, freq="D"),
            "note": [f"long free text describing patient number {i} at length" for i in range(n)],
            "y": rng.choice(["a", "b"], n),
        }
    )
    frame.loc[[1, 2, 3], "age"] = np.nan
    return frame


def test_plan_rules_per_column():
    plan = plan_cleaning(profile_frame(_mixed_frame()), "y")
    by_name = {column.name: column for column in plan.columns}
    assert "y" not in by_name
    assert by_name["id"].action == "drop" and by_name["id"].reason.startswith("identifier")
    assert by_name["email"].action == "drop" and by_name["email"].reason.startswith("personal data")
    assert by_name["constant"].action == "drop" and by_name["constant"].reason.startswith("constant")
    assert by_name["mostly_empty"].action == "drop" and by_name["mostly_empty"].reason.startswith("too many missing")
    assert by_name["note"].action == "drop"
    assert (by_name["age"].impute, by_name["age"].encode, by_name["age"].scale) == ("median", "none", "standard")
    assert by_name["sex"].encode == "onehot" and by_name["sex"].impute == "most_frequent"
    assert by_name["city"].encode == "frequency"
    assert by_name["smoker"].encode == "ordinal"
    assert by_name["flag01"].encode == "none"
    assert by_name["visit"].encode == "datetime"


def test_plan_options_change_the_defaults():
    options = CleaningOptions(
        numeric_imputation="knn",
        scaling="minmax",
        one_hot_max_categories=30,
        outliers="clip",
        drop_duplicates=False,
        missing_drop_threshold=0.95,
    )
    plan = plan_cleaning(profile_frame(_mixed_frame()), "y", options)
    assert plan.column("age").impute == "knn"
    assert plan.column("age").scale == "minmax"
    assert plan.column("age").outliers == "clip"
    assert plan.column("city").encode == "onehot"
    assert plan.column("mostly_empty").action == "keep"
    assert plan.row_steps["drop_duplicates"] is False


@pytest.mark.parametrize("impute", ["median", "mean", "most_frequent", "constant", "knn", "iterative"])
def test_every_numeric_imputation_fills_every_cell(impute):
    frame = _mixed_frame()
    plan = plan_cleaning(profile_frame(frame), "y", CleaningOptions(numeric_imputation=impute))
    features, _ = split_features_target(frame, plan)
    out = build_preprocessor(plan).fit_transform(features)
    assert not out.isna().any().any()
    assert {"visit_year", "visit_month", "visit_weekday", "sex_F", "sex_M", "city", "age"} <= set(out.columns)


def test_plan_round_trips_through_dict():
    plan = plan_cleaning(profile_frame(_mixed_frame()), "y")
    payload = plan.to_dict()
    assert set(payload["columns"][0]) >= {"name", "action", "reason", "impute", "outliers", "encode", "scale"}
    assert CleaningPlan.from_dict(payload) == plan


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"action": "remove"}, "Unknown action"),
        ({"impute": "magic"}, "Unknown imputation"),
        ({"encode": "hash"}, "Unknown encoding"),
        ({"scale": "log"}, "Unknown scaling"),
        ({"outliers": "winsorize"}, "Unknown outlier"),
    ],
)
def test_validate_refuses_unknown_methods(change, message):
    plan = plan_cleaning(profile_frame(_mixed_frame()), "y")
    payload = plan.to_dict()
    payload["columns"][2].update(change)
    with pytest.raises(PlanError, match=message):
        CleaningPlan.from_dict(payload).validate()


def test_validate_refuses_a_dropped_target_unknown_columns_and_no_features():
    plan = plan_cleaning(profile_frame(_mixed_frame()), "y")
    payload = plan.to_dict()
    payload["columns"].append({"name": "y", "action": "drop"})
    with pytest.raises(PlanError, match="cannot be dropped"):
        CleaningPlan.from_dict(payload).validate()
    with pytest.raises(PlanError, match="Not columns of this dataset: ghost"):
        CleaningPlan(target="y", columns=[ColumnPlan(name="ghost")]).validate(known_columns=["age", "y"])
    with pytest.raises(PlanError, match="keep at least one"):
        CleaningPlan(target="y", columns=[ColumnPlan(name="age", action="drop")]).validate()


def test_validate_refuses_categories_without_encoding_and_knn_on_categories():
    with pytest.raises(PlanError, match="choose an encoding"):
        CleaningPlan(target="y", columns=[ColumnPlan(name="sex", kind="categorical", encode="none")]).validate()
    with pytest.raises(PlanError, match="most_frequent or constant"):
        CleaningPlan(
            target="y", columns=[ColumnPlan(name="sex", kind="categorical", encode="onehot", impute="knn")]
        ).validate()


def test_options_refuse_unknown_values():
    with pytest.raises(PlanError):
        CleaningOptions(scaling="zscore")
    with pytest.raises(PlanError):
        CleaningOptions(categorical_imputation="median")
    with pytest.raises(TypeError):
        CleaningOptions(colour="blue")


def test_row_steps_count_missing_target_duplicates_and_outlier_rows():
    frame = pd.DataFrame(
        {
            "x": [1.0, 2.0, 2.0, 3.0, 2.5, 1.5, 2.2, 500.0, 4.0],
            "y": ["a", "b", "b", None, "a", "b", "a", "b", "a"],
        }
    )
    plan = CleaningPlan(target="y", columns=[ColumnPlan(name="x", outliers="drop_rows")])
    cleaned, counts = apply_row_steps(frame, plan)
    assert counts["missing_target"] == 1
    assert counts["duplicates"] == 1
    assert counts["outliers"] == {"x": 1}
    assert counts["total"] == 3
    assert len(cleaned) == 6
    assert 500.0 not in cleaned["x"].tolist()


def test_report_counts_clipped_values_and_encoding_widths():
    frame = pd.DataFrame(
        {
            "x": [1.0, 2.0, 3.0, 2.0, 2.5, 1.5, 2.2, 500.0, -400.0, np.nan],
            "sex": ["F", "M", "F", None, "F", "M", "F", "M", "X", "F"],
            "y": ["a", "b"] * 5,
        }
    )
    plan = CleaningPlan(
        target="y",
        columns=[
            ColumnPlan(name="x", outliers="clip"),
            ColumnPlan(name="sex", kind="categorical", impute="most_frequent", encode="onehot", scale="none"),
        ],
    )
    report = cleaning_report(frame, plan)
    by_name = {column["name"]: column for column in report["columns"]}
    assert by_name["x"]["n_clipped"] == 2
    assert by_name["x"]["n_imputed"] == 1
    assert by_name["sex"]["n_imputed"] == 1
    assert by_name["sex"]["n_outputs"] == 3
    assert by_name["sex"]["output_columns"] == ["sex_F", "sex_M", "sex_X"]
    assert report["n_features_out"] == 4


def test_iqr_clipper_learns_fences_in_fit():
    clipper = IQRClipper().fit(np.array([[1.0], [2.0], [3.0], [4.0], [np.nan]]))
    assert clipper.lower_[0] == pytest.approx(1.75 - 1.5 * 1.5)
    assert clipper.transform(np.array([[100.0], [np.nan]]))[0, 0] == pytest.approx(3.25 + 1.5 * 1.5)
    assert np.isnan(clipper.transform(np.array([[np.nan]]))[0, 0])


def test_frequency_encoder_gives_unseen_categories_zero():
    encoder = FrequencyEncoder().fit(pd.DataFrame({"c": ["a", "a", "b", "a"]}))
    assert encoder.transform(pd.DataFrame({"c": ["a", "b", "zzz"]}))[:, 0].tolist() == [0.75, 0.25, 0.0]


def test_category_caster_treats_one_and_one_point_zero_alike():
    out = CategoryCaster().fit_transform(pd.DataFrame({"c": pd.Series([1.0, np.nan, 2.0])}))
    assert out[0, 0] == "1" and out[2, 0] == "2"
    assert pd.isna(out[1, 0])


def test_ordinal_unknown_category_becomes_minus_one():
    plan = CleaningPlan(
        target="y", columns=[ColumnPlan(name="c", kind="categorical", impute="most_frequent", encode="ordinal")]
    )
    plan.columns[0].scale = "none"
    preprocessor = build_preprocessor(plan).fit(pd.DataFrame({"c": ["a", "b"]}))
    assert preprocessor.transform(pd.DataFrame({"c": ["new"]}))["c"].tolist() == [-1.0]


def test_datetime_expander_reads_text_dates():
    expander = DatetimeExpander(parts=("year", "month", "weekday")).fit(pd.DataFrame({"d": ["2024-03-04", None]}))
    out = expander.transform(pd.DataFrame({"d": ["2024-03-04", None]}))
    assert out[0].tolist() == [2024, 3, 0]
    assert np.isnan(out[1]).all()
    assert expander.get_feature_names_out().tolist() == ["d_year", "d_month", "d_weekday"]


def test_build_preprocessor_restricted_to_chosen_columns():
    plan = plan_cleaning(profile_frame(_mixed_frame()), "y")
    out = build_preprocessor(plan, feature_columns=["age", "sex"]).fit_transform(_mixed_frame())
    assert list(out.columns) == ["age", "sex_F", "sex_M"]
    with pytest.raises(PlanError, match="id"):
        build_preprocessor(plan, feature_columns=["id"])
