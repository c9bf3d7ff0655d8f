import numpy as np
import pandas as pd
import pytest

from tabular.ml.features import FeatureSpecError, extract_features


@pytest.fixture
def frame():
    return pd.DataFrame(
        {
            "weight": [70.0, 80.0, 90.0],
            "height": [1.7, 0.0, 1.8],
            "age": [30, 40, 50],
            "visit": ["2024-03-04", "2024-12-25", None],
            "note": ["mild pain", "no complaints today", None],
            "sex": ["F", "M", "F"],
        }
    )


def test_ratios_products_and_division_by_zero(frame):
    out, added = extract_features(frame, {"ratios": [["weight", "height"]], "products": [["weight", "age"]]})
    assert added == ["weight_per_height", "weight_x_age"]
    assert out["weight_per_height"].iloc[0] == pytest.approx(70 / 1.7)
    assert np.isnan(out["weight_per_height"].iloc[1])
    assert out["weight_x_age"].tolist() == [2100.0, 3200.0, 4500.0]
    assert list(out.columns[: len(frame.columns)]) == list(frame.columns)


def test_datetime_parts_from_text_dates(frame):
    out, added = extract_features(frame, {"datetime_parts": ["visit"]})
    assert added == ["visit_year", "visit_month", "visit_day", "visit_weekday"]
    assert out.loc[0, ["visit_year", "visit_month", "visit_day", "visit_weekday"]].tolist() == [2024, 3, 4, 0]
    assert out["visit_year"].isna().iloc[2]


def test_polynomial_terms_of_degree_two(frame):
    out, added = extract_features(frame, {"polynomial": {"columns": ["weight", "age"], "degree": 2}})
    assert added == ["weight^2", "weight_x_age", "age^2"]
    assert out["age^2"].tolist() == [900.0, 1600.0, 2500.0]


def test_text_length_and_word_counts(frame):
    out, added = extract_features(frame, {"text_stats": ["note"]})
    assert added == ["note_length", "note_words"]
    assert out["note_words"].iloc[:2].tolist() == [2.0, 3.0]
    assert out["note_length"].iloc[0] == 9.0
    assert np.isnan(out["note_words"].iloc[2])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"ratios": [["weight", "ghost"]]}, "ghost"),
        ({"ratios": [["weight", "sex"]]}, "'sex' is not numeric"),
        ({"products": [["weight"]]}, "pair"),
        ({"datetime_parts": ["age"]}, "not dates"),
        ({"datetime_parts": ["sex"]}, "readable dates"),
        ({"text_stats": ["age"]}, "not hold text"),
        ({"polynomial": {"columns": ["weight"], "degree": 7}}, "degree"),
        ({"magic": ["weight"]}, "Unknown operation"),
        ({}, "at least one operation"),
    ],
)
def test_invalid_specs_are_refused_with_a_clear_message(frame, spec, message):
    with pytest.raises(FeatureSpecError, match=message):
        extract_features(frame, spec)


def test_a_feature_that_already_exists_is_refused(frame):
    out, _ = extract_features(frame, {"products": [["weight", "age"]]})
    with pytest.raises(FeatureSpecError, match="already exist"):
        extract_features(out, {"products": [["weight", "age"]]})
