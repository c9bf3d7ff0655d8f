"""tabular.ml.io's bounded sheet reader: the same frame pandas.read_excel gave, and refusals from the sheet's extent."""

import datetime as dt
import io
import zipfile

import numpy as np
import openpyxl
import pandas as pd
import pytest

from tabular.ml.io import MISSING_MARKERS, TableLimits, TableReadError, read_table


def workbook(rows: list[list[object]], *, title: str = "Patients") -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = title
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def pandas_reference(data: bytes) -> pd.DataFrame:
    """What the reader did before it bounded the sheet: pandas.read_excel, then the same header handling."""
    raw = pd.read_excel(io.BytesIO(data), header=None, na_values=list(MISSING_MARKERS), keep_default_na=True)
    raw = raw.dropna(how="all").dropna(axis=1, how="all")
    names = [str(value).strip() for value in raw.iloc[0]]
    return raw.iloc[1:].set_axis(names, axis=1).reset_index(drop=True).infer_objects()


def test_the_bounded_reader_gives_the_frame_pandas_gave():
    rows = [
        ["age", "weight", "smoker", "admitted", "ratio", "note"],
        [61, 70.5, True, dt.datetime(2024, 1, 2), "=1/0", "N/A"],
        [None, 81.0, False, dt.datetime(2024, 3, 4, 10, 30), 0.25, "-"],
        [],
        [45, None, True, None, 2, "well"],
        [52, 77.25, False, dt.datetime(2023, 12, 31), 1.5, None],
    ]
    data = workbook(rows)

    frame = read_table(data).frame

    pd.testing.assert_frame_equal(frame, pandas_reference(data), check_dtype=True)
    assert frame["age"].dtype == np.float64 and frame["note"].isna().sum() == 3


def test_whole_floats_and_error_cells_are_read_as_pandas_reads_them():
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["a", "b"])
    sheet.append([1.0, "x"])
    sheet.append([2.0, "y"])
    sheet["B3"].data_type = "e"
    sheet["B3"].value = "#DIV/0!"
    buffer = io.BytesIO()
    book.save(buffer)

    frame = read_table(buffer.getvalue()).frame

    pd.testing.assert_frame_equal(frame, pandas_reference(buffer.getvalue()))
    assert frame["a"].tolist() == [1, 2] and pd.isna(frame["b"].iloc[1])


def test_a_sheet_over_the_cell_limit_is_refused_with_its_extent():
    data = workbook([["a", "b", "c"]] + [[1, 2, 3]] * 400)

    with pytest.raises(TableReadError) as refused:
        read_table(data, limits=TableLimits(max_sheet_cells=1000))

    assert refused.value.code == "sheet_too_large"
    assert "1,000 cells" in refused.value.message and "× 3 columns" in refused.value.message


def test_the_time_budget_is_enforced_while_reading():
    data = workbook([["a", "b"]] + [[index, index * 2] for index in range(5000)])

    with pytest.raises(TableReadError) as refused:
        read_table(data, limits=TableLimits(max_sheet_seconds=0))

    assert refused.value.code == "sheet_too_large" and "longer than 0 s" in refused.value.message


def test_entity_declarations_in_a_sheet_are_refused():
    data = workbook([["a", "b"], [1, 2]])
    source = io.BytesIO(data)
    out = io.BytesIO()
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(out, "w") as patched:
        for info in original.infolist():
            content = original.read(info.filename)
            if info.filename == "xl/worksheets/sheet1.xml":
                content = content.replace(
                    b"<worksheet", b'<!DOCTYPE worksheet [<!ENTITY lol "lol">]><worksheet', 1
                ).replace(b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>', b"", 1)
                content = b'<?xml version="1.0"?>' + content
            patched.writestr(info, content)

    with pytest.raises(TableReadError) as refused:
        read_table(out.getvalue())

    assert refused.value.code == "not_a_table"


def test_an_archive_of_millions_of_parts_is_refused_from_its_end_record():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
        for index in range(10_050):
            archive.writestr(f"p{index}", b"")

    with pytest.raises(TableReadError) as refused:
        read_table(buffer.getvalue())

    assert refused.value.code == "unsupported_type" and "10,051 parts" in refused.value.message


def test_a_csv_wider_than_the_column_limit_is_refused_before_it_is_parsed():
    content = (",".join(f"c{index}" for index in range(30)) + "\n" + ",".join("1" * 30) + "\n").encode()

    with pytest.raises(TableReadError) as refused:
        read_table(content, limits=TableLimits(max_columns=20))

    assert refused.value.code == "too_many_columns"
