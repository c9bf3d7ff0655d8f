import json

import numpy as np
import pandas as pd
import pytest

from tabular.ml.io import TableReadError, read_parquet, read_table, write_parquet
from tabular.tests.fixtures.files import (
    BAD_FILES,
    DELIMITERS,
    ENCODINGS,
    PATIENTS,
    excel_bytes,
    json_columns,
    json_records,
    messy_csv,
    two_sheet_excel,
)


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_it_refuses_each_bad_file_with_its_code_and_a_message(case):
    filename, data, code = BAD_FILES[case]
    with pytest.raises(TableReadError) as caught:
        read_table(data, filename=filename)
    assert caught.value.code == code
    assert len(caught.value.message) > 15
    assert caught.value.message == str(caught.value)


def test_ragged_rows_error_names_the_line_numbers():
    with pytest.raises(TableReadError) as caught:
        read_table(BAD_FILES["ragged"][1])
    assert "lines 6, 10" in caught.value.message


def test_it_drops_ragged_rows_within_tolerance_with_a_warning():
    rows = ["a,b,c"] + [f"{i},{i},{i}" for i in range(300)]
    rows[100] = "1,2,3,4"
    result = read_table(("\n".join(rows) + "\n").encode())
    assert len(result.frame) == 299
    assert result.n_ragged_rows == 1
    assert any("line 101" in warning for warning in result.warnings)


def test_it_drops_ragged_rows_in_a_quoted_file_within_tolerance():
    rows = ["a,b,c"] + [f'{i},"x, {i}",{i}' for i in range(300)]
    rows[50] = '1,"a",2,3'
    result = read_table(("\n".join(rows) + "\n").encode())
    assert len(result.frame) == 299
    assert result.frame["b"].iloc[0] == "x, 0"
    assert result.n_ragged_rows == 1


def test_too_large_is_refused_before_parsing():
    with pytest.raises(TableReadError) as caught:
        read_table(b"a,b\n1,2\n" * 100, max_bytes=50)
    assert caught.value.code == "too_large"


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("delimiter", DELIMITERS)
def test_it_reads_every_encoding_and_delimiter(encoding, delimiter):
    result = read_table(messy_csv(encoding=encoding, delimiter=delimiter), filename="patients.txt")
    frame = result.frame
    assert result.format == "csv"
    assert result.delimiter == delimiter
    assert result.encoding == encoding
    assert list(frame.columns) == list(PATIENTS[0])
    assert frame["patient"].tolist()[0] == "Zoé Müller"
    assert frame["ward"].iloc[1] == "Neurología"
    # "-" in an otherwise numeric column is missing, so the column stays numeric.
    assert pd.api.types.is_numeric_dtype(frame["age"])
    assert frame["age"].isna().sum() == 1
    # "N/A", "NA" and an empty cell are all missing.
    assert frame["glucose"].isna().sum() == 3
    assert frame["sex"].isna().sum() == 1  # "?"


def test_windows_line_endings_are_read():
    frame = read_table(messy_csv(line_end="\r\n")).frame
    assert frame.shape == (5, 6)
    assert frame["outcome"].tolist() == ["yes", "no", "no", "yes", "no"]


def test_case_variants_of_missing_markers_are_missing():
    data = b"a,b\n1,NULL\n2,n/a\n3,None\n4,Na\n5,x\n"
    frame = read_table(data).frame
    assert frame["b"].isna().sum() == 4


def test_semicolon_file_with_decimal_commas_reads_numbers():
    result = read_table(b"age;glucose\n61;5,4\n72;6,1\n")
    assert result.frame["glucose"].tolist() == [5.4, 6.1]
    assert any("decimal comma" in warning for warning in result.warnings)


def test_trailing_delimiter_column_is_dropped():
    result = read_table(b"a,b,\n1,2,\n3,4,\n")
    assert list(result.frame.columns) == ["a", "b"]


def test_column_names_are_stripped():
    frame = read_table(b" age , sex\n1,F\n2,M\n").frame
    assert list(frame.columns) == ["age", "sex"]


def test_utf16_text_from_excel_is_read():
    data = "age\tsex\n61\tF\n72\tM\n".encode("utf-16")
    result = read_table(data)
    assert result.encoding == "utf-16"
    assert result.frame["age"].tolist() == [61, 72]


def test_excel_reads_first_sheet_by_default_and_lists_sheets():
    result = read_table(two_sheet_excel(), filename="x.csv")
    assert result.format == "xlsx"
    assert result.sheet_names == ["Patients", "Labs"]
    assert result.sheet == "Patients"
    assert result.frame["age"].tolist() == [61, 72, 55]
    assert result.frame["sex"].isna().sum() == 1


@pytest.mark.parametrize("sheet", ["Labs", 1])
def test_excel_selects_another_sheet_by_name_or_index(sheet):
    result = read_table(two_sheet_excel(), sheet=sheet)
    assert result.sheet == "Labs"
    assert list(result.frame.columns) == ["test", "value", "unit"]
    assert result.frame["value"].dtype == np.float64


@pytest.mark.parametrize("sheet", ["Missing", 5])
def test_excel_unknown_sheet_is_refused_naming_the_sheets(sheet):
    with pytest.raises(TableReadError) as caught:
        read_table(two_sheet_excel(), sheet=sheet)
    assert caught.value.code == "bad_sheet"
    assert '"Labs"' in caught.value.message


def test_excel_duplicate_headers_are_refused():
    data = excel_bytes({"S": pd.DataFrame([[1, 2, 3]], columns=["a", "b", "c"]).rename(columns={"c": " a"})})
    with pytest.raises(TableReadError) as caught:
        read_table(data)
    assert caught.value.code == "duplicate_columns"


@pytest.mark.parametrize("payload", [json_records, json_columns])
def test_json_records_and_columns_give_the_same_table(payload):
    result = read_table(payload(), filename="x.csv")
    frame = result.frame
    assert result.format == "json"
    assert list(frame.columns) == list(PATIENTS[0])
    assert frame["patient"].iloc[0] == "Zoé Müller"
    assert pd.api.types.is_numeric_dtype(frame["age"])
    assert frame["glucose"].isna().sum() == 3


def test_json_dict_of_dicts_is_read():
    data = json.dumps({"a": {"0": 1, "1": 2}, "b": {"0": "x", "1": "y"}}).encode()
    frame = read_table(data).frame
    assert frame.to_dict("list") == {"a": [1, 2], "b": ["x", "y"]}


def test_json_columns_of_unequal_length_are_refused():
    with pytest.raises(TableReadError) as caught:
        read_table(b'{"a": [1, 2], "b": [1]}')
    assert caught.value.code == "ragged_rows"


def test_json_nested_values_are_refused():
    with pytest.raises(TableReadError) as caught:
        read_table(b'[{"a": 1, "b": {"c": 2}}]')
    assert caught.value.code == "not_a_table"


def test_parquet_round_trip_survives_mixed_type_columns(tmp_path):
    frame = pd.DataFrame({"x": [1, 2, 3], "mixed": pd.Series([1, "two", None], dtype=object)})
    path = tmp_path / "t.parquet"
    write_parquet(frame, path)
    back = read_parquet(path)
    assert back["x"].tolist() == [1, 2, 3]
    assert back["mixed"].iloc[:2].tolist() == ["1", "two"]
    assert pd.isna(back["mixed"].iloc[2])


def test_quoted_fields_with_newlines_delimiters_and_escaped_quotes_are_one_record_each():
    rows = ["id,note,score"] + [f'{i},"line one, ""quoted""\nline two",{i}' for i in range(50)]
    frame = read_table(("\n".join(rows) + "\n").encode()).frame
    assert len(frame) == 50
    assert frame["note"].iloc[0] == 'line one, "quoted"\nline two'


def test_a_stray_inch_mark_in_an_unquoted_field_is_not_a_quote():
    rows = ["id,height,score"] + [f"{i},5'{i % 12}\",{i}" for i in range(40)]
    frame = read_table(("\n".join(rows) + "\n").encode()).frame
    assert len(frame) == 40
    assert frame["height"].iloc[11] == "5'11\""


def test_ragged_line_numbers_count_physical_lines_in_quoted_files():
    rows = ["id,note,score", '0,"two\nlines",0'] + [f'{i},"x",{i}' for i in range(1, 10)]
    rows[5] = '4,"x",4,extra'
    with pytest.raises(TableReadError) as caught:
        read_table(("\n".join(rows) + "\n").encode())
    assert "lines 7" in caught.value.message


@pytest.mark.parametrize("recount_limit", [0, 10_000])
def test_quoted_delimiters_are_not_counted_as_fields_in_either_recount(monkeypatch, recount_limit):
    monkeypatch.setattr("tabular.ml.io._EXACT_RECOUNT", recount_limit)
    rows = ["id,note,score"] + [f'{i},"a, b, c",{i}' for i in range(300)]
    rows[120] = '119,"a, b",1,2'
    result = read_table(("\n".join(rows) + "\n").encode())
    assert len(result.frame) == 299
    assert result.n_ragged_rows == 1
