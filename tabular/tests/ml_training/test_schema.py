"""Prediction rows are checked against the training schema with messages naming the column and row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tabular.ml.schema import InputSchema, SchemaError, validate_rows


@pytest.fixture
def schema():
    training = pd.DataFrame(
        {
            "age": [61, 45, 70],
            "bmi": [22.5, np.nan, 31.0],
            "sex": ["F", "M", "F"],
            "smoker": [True, False, True],
        }
    )
    return InputSchema.from_frame(training)


def test_kinds_and_categories_are_recorded(schema):
    kinds = {spec.name: spec.kind for spec in schema.columns}
    assert kinds == {"age": "number", "bmi": "number", "sex": "category", "smoker": "boolean"}
    assert schema.columns[2].categories == ["F", "M"]
    assert InputSchema.from_dict(schema.to_dict()) == schema


def test_missing_required_columns_are_all_named(schema):
    with pytest.raises(SchemaError, match=r"Required columns are missing: 'bmi', 'smoker'\."):
        validate_rows(schema, pd.DataFrame({"age": [50], "sex": ["F"]}))


def test_a_wrong_type_names_the_row_and_the_column(schema):
    rows = pd.DataFrame({"age": [50, 61, "abc"], "bmi": [20, 21, 22], "sex": ["F", "M", "F"], "smoker": [1, 0, 1]})
    with pytest.raises(SchemaError) as raised:
        validate_rows(schema, rows)
    assert raised.value.message == "Row 3, column 'age': expected a number, got 'abc'."


def test_an_unseen_category_is_refused_listing_the_known_ones(schema):
    rows = pd.DataFrame({"age": [50], "bmi": [20], "sex": ["X"], "smoker": ["yes"]})
    with pytest.raises(SchemaError, match=r"Row 1, column 'sex': 'X' is not a value seen in training \('F', 'M'\)"):
        validate_rows(schema, rows)


def test_extra_columns_are_ignored_and_listed_and_text_numbers_and_blanks_are_accepted(schema):
    rows = pd.DataFrame(
        {"name": ["Ann", "Bob"], "smoker": ["no", "TRUE"], "sex": ["M", "F"], "bmi": ["", "24,5"], "age": ["50", 61]}
    )
    clean, ignored = validate_rows(schema, rows)
    assert ignored == ["name"]
    assert list(clean.columns) == ["age", "bmi", "sex", "smoker"]
    assert clean["age"].tolist() == [50, 61] and clean["age"].dtype == np.int64
    assert np.isnan(clean["bmi"][0]) and clean["bmi"][1] == 24.5
    assert clean["smoker"].tolist() == [False, True]


def test_optional_columns_may_be_left_out(schema):
    loose = InputSchema.from_frame(pd.DataFrame({"age": [1, 2], "note": ["a", "b"]}), required_columns=["age"])
    clean, ignored = validate_rows(loose, pd.DataFrame({"age": [3]}))
    assert ignored == [] and clean["note"].isna().all()


def test_no_rows_is_an_error(schema):
    with pytest.raises(SchemaError, match="at least one row"):
        validate_rows(schema, pd.DataFrame(columns=["age", "bmi", "sex", "smoker"]))
