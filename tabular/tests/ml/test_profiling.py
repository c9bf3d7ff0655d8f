import json

import numpy as np
import pandas as pd
import pytest

from tabular.ml.profiling import DatasetProfile, ProfileError, profile_frame


@pytest.fixture
def clinic_frame():
    rng = np.random.default_rng(0)
    n = 200
    first = ["Anna", "Ben", "Carla", "David", "Eva", "Frank", "Gina", "Hugo", "Ines", "Jon"]
    last = ["Smith", "Jones", "Brown", "Miller", "Davis", "Garcia", "Wilson", "Moore", "Clark", "Lewis"]
    outcome = np.where(rng.random(n) < 0.3, "yes", "no")
    glucose = rng.normal(6, 1, n)
    glucose[rng.choice(n, 120, replace=False)] = np.nan
    return pd.DataFrame(
        {
            "record": np.arange(5000, 5000 + n),
            "mrn_code": [f"MRN{100000 + i}" for i in range(n)],
            "full_name": [f"{first[i % 10]} {last[(i // 10) % 10]}" for i in range(n)],
            "contact": [f"person{i}@example.org" for i in range(n)],
            "phone_no": [f"+44 20 7946 {i:04d}" for i in range(n)],
            "age": rng.integers(20, 90, n),
            "bmi": rng.normal(27, 4, n),
            "sex": rng.choice(["F", "M"], n),
            "smoker": rng.choice(["Yes", "No"], n),
            "diabetic": rng.integers(0, 2, n),
            "ward": rng.choice([f"ward {i}" for i in range(80)], n),
            "admitted": pd.date_range("2023-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
            "site": "Oslo",
            "rare": ["a"] * 195 + ["b"] * 5,
            "glucose": glucose,
            "notes": [f"patient reports mild pain after surgery day {i}" for i in range(n)],
            "outcome_code": np.where(outcome == "yes", 1, 0),
            "outcome": outcome,
        }
    )


def _by_name(profile):
    return {column.name: column for column in profile.columns}


def test_kinds_are_inferred_per_column(clinic_frame):
    columns = _by_name(profile_frame(clinic_frame))
    assert columns["record"].kind == "identifier"
    assert columns["mrn_code"].kind == "identifier"
    assert columns["age"].kind == "numeric"
    assert columns["bmi"].kind == "numeric"
    assert columns["sex"].kind == "categorical"
    assert columns["smoker"].kind == "boolean"
    assert columns["diabetic"].kind == "boolean"
    assert columns["admitted"].kind == "datetime"
    assert columns["notes"].kind == "text"
    assert columns["ward"].kind == "categorical"


def test_flags_use_the_contract_words(clinic_frame):
    columns = _by_name(profile_frame(clinic_frame))
    assert "identifier" in columns["record"].flags
    assert "constant" in columns["site"].flags
    assert "near_constant" in columns["rare"].flags
    assert "high_cardinality" in columns["ward"].flags
    assert "many_missing" in columns["glucose"].flags
    assert columns["bmi"].flags == ()


@pytest.mark.parametrize("name", ["mrn_code", "full_name", "contact", "phone_no"])
def test_personal_data_is_flagged_and_its_values_are_not_stored(clinic_frame, name):
    column = _by_name(profile_frame(clinic_frame))[name]
    assert "personal_data" in column.flags
    assert column.top_categories == ()
    assert column.notes


@pytest.mark.parametrize(
    ("name", "values"),
    [
        ("email_address", ["x"] * 30),
        ("Patient Name", ["x"] * 30),
        ("DOB", ["1950-01-01"] * 30),
        ("postcode", ["AB1"] * 30),
        ("nhs_number", ["1"] * 30),
        ("surname", ["x"] * 30),
    ],
)
def test_personal_data_is_flagged_from_column_names(name, values):
    frame = pd.DataFrame({name: values, "other": range(30)})
    assert "personal_data" in _by_name(profile_frame(frame))[name].flags


@pytest.mark.parametrize("name", ["drug_name", "birth_weight", "cell_count"])
def test_clinical_columns_with_similar_names_are_not_personal_data(name):
    frame = pd.DataFrame({name: ["a", "b", "c"] * 10, "other": range(30)})
    assert "personal_data" not in _by_name(profile_frame(frame))[name].flags


def test_numeric_summary_and_outliers_are_computed():
    values = np.r_[np.arange(1, 101, dtype=float), 1000.0]
    profile = profile_frame(pd.DataFrame({"x": values, "y": 1}))
    column = profile.column("x")
    assert column.numeric["min"] == 1.0
    assert column.numeric["max"] == 1000.0
    assert column.numeric["median"] == pytest.approx(51.0)
    assert column.numeric["q1"] == pytest.approx(np.percentile(values, 25))
    assert column.numeric["std"] == pytest.approx(np.std(values, ddof=1))
    assert column.outliers == {"iqr": 1, "zscore": 1}
    assert sum(column.histogram["counts"]) == 101
    assert len(column.histogram["edges"]) == 21


def test_target_reports_class_balance_and_small_minority():
    frame = pd.DataFrame({"x": range(100), "y": ["sick"] * 8 + ["well"] * 92})
    target = profile_frame(frame, target="y").target
    assert target.n_classes == 2
    assert target.minority_class == "sick"
    assert target.minority_count == 8
    assert target.minority_share == pytest.approx(0.08)
    assert target.small_minority is True
    assert any("sick" in warning for warning in target.warnings)


def test_balanced_target_has_no_small_minority_warning():
    frame = pd.DataFrame({"x": range(100), "y": ["a", "b"] * 50})
    assert profile_frame(frame, target="y").target.small_minority is False


def test_leakage_flags_a_column_that_predicts_the_target_alone(clinic_frame):
    columns = _by_name(profile_frame(clinic_frame, target="outcome"))
    assert "leakage" in columns["outcome_code"].flags
    assert "leakage" not in columns["bmi"].flags
    assert "leakage" not in columns["outcome"].flags
    assert "leakage" not in columns["record"].flags


def test_leakage_flags_a_categorical_copy_of_the_target():
    rng = np.random.default_rng(1)
    y = rng.choice(["a", "b", "c"], 300)
    frame = pd.DataFrame({"copy": np.char.add("grp_", y), "noise": rng.normal(size=300), "y": y})
    columns = _by_name(profile_frame(frame, target="y"))
    assert "leakage" in columns["copy"].flags
    assert "leakage" not in columns["noise"].flags


def test_unknown_target_is_refused():
    with pytest.raises(ProfileError):
        profile_frame(pd.DataFrame({"a": [1], "b": [2]}), target="c")


def test_duplicate_rows_are_counted():
    frame = pd.DataFrame({"a": [1, 1, 2, 1], "b": ["x", "x", "y", "x"]})
    assert profile_frame(frame).n_duplicate_rows == 2


def test_profile_round_trips_through_json(clinic_frame):
    profile = profile_frame(clinic_frame, target="outcome")
    payload = json.loads(json.dumps(profile.to_dict()))
    assert set(payload) >= {"n_rows", "n_columns", "columns", "target"}
    assert set(payload["columns"][0]) >= {"name", "kind", "n_missing", "missing_share", "n_unique", "flags"}
    assert DatasetProfile.from_dict(payload) == profile


def test_profile_carries_no_rows(clinic_frame):
    profile = profile_frame(clinic_frame)
    assert not any(isinstance(value, pd.DataFrame | pd.Series | np.ndarray) for value in vars(profile).values())
