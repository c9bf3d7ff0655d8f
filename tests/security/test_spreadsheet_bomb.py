"""Issue 11 #2: a spreadsheet width bomb is refused from the sheet's extent, before any row is materialised.

A 2 KB .xlsx whose rows each set one cell in column XFD (16,384) made openpyxl pad every row to 16,384 cells:
1,000 such rows took 78 s and 514 MB in one upload. The sheet's declared dimension, its widest column and its
cell count are now checked against MAX_TABLE_COLUMNS / MAX_SHEET_CELLS while the sheet XML is streamed, so the
same upload answers 400 at once (benchmarks/spreadsheet_bomb.py times it; here the bound is generous).
"""

import io
import time
import zipfile

import openpyxl
import pytest

from tabular.models import Dataset

URL = "/api/v1/datasets/"
ROWS = 1000
# The CI machine is slow and shared; the fix answers in well under a second, the old code took over a minute.
GENEROUS_SECONDS = 10

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice_api(api_client, alice):
    api_client.force_authenticate(alice)
    # The first request of a process imports every view (tens of seconds on a loaded machine): not the upload's time.
    assert api_client.get(URL).status_code == 200
    return api_client


def xfd_workbook_openpyxl(rows: int = ROWS) -> bytes:
    """The attack as openpyxl writes it: a small table, and every row also sets a cell in the last column."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Patients"
    sheet.append(["age", "outcome"])
    for row in range(2, rows + 1):
        sheet.cell(row=row, column=1, value=40 + row % 30)
        sheet.cell(row=row, column=2, value="sick" if row % 3 else "well")
        sheet.cell(row=row, column=16384, value=1)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def raw_workbook(rows_xml: str, *, dimension: str | None = None, extra_parts: dict[str, str] | None = None) -> bytes:
    """A minimal .xlsx written by hand, so the sheet can lie about (or leave out) its dimension."""
    dimension_xml = f'<dimension ref="{dimension}"/>' if dimension else ""
    parts = {
        "[Content_Types].xml": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/xl/workbook.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
            '<Override PartName="/xl/worksheets/sheet1.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
            "</Types>"
        ),
        "_rels/.rels": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" '
            'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
            'Target="xl/workbook.xml"/></Relationships>'
        ),
        "xl/workbook.xml": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
            'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
            '<sheets><sheet name="Patients" sheetId="1" r:id="rId1"/></sheets></workbook>'
        ),
        "xl/_rels/workbook.xml.rels": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" '
            'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" '
            'Target="worksheets/sheet1.xml"/></Relationships>'
        ),
        "xl/worksheets/sheet1.xml": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
            f"{dimension_xml}<sheetData>{rows_xml}</sheetData></worksheet>"
        ),
        **(extra_parts or {}),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in parts.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def xfd_rows_xml(rows: int = ROWS) -> str:
    """Row 1 is a header; every row sets A, B and XFD, with inline strings so no shared-strings part is needed."""
    lines = [
        '<row r="1"><c r="A1" t="inlineStr"><is><t>age</t></is></c>'
        '<c r="B1" t="inlineStr"><is><t>outcome</t></is></c></row>'
    ]
    for row in range(2, rows + 1):
        lines.append(
            f'<row r="{row}"><c r="A{row}"><v>{40 + row % 30}</v></c>'
            f'<c r="B{row}" t="inlineStr"><is><t>{"sick" if row % 3 else "well"}</t></is></c>'
            f'<c r="XFD{row}"><v>1</v></c></row>'
        )
    return "".join(lines)


def upload(client, content: bytes, name: str = "bomb.xlsx"):
    started = time.perf_counter()
    response = client.post(URL, {"file": io.BytesIO(content), "name": name}, format="multipart")
    return response, time.perf_counter() - started


def assert_refused_fast(response, elapsed: float) -> str:
    assert response.status_code == 400, response.content[:500]
    body = response.json()
    assert body["code"] == "sheet_too_large"
    assert elapsed < GENEROUS_SECONDS, f"the refusal took {elapsed:.1f} s"
    assert not Dataset.objects.exists()
    return body["detail"]


def test_the_xfd_width_bomb_is_refused_at_once_with_a_clear_message(alice_api):
    content = xfd_workbook_openpyxl()
    assert len(content) < 40_000, "the attack is a small file"

    response, elapsed = upload(alice_api, content)

    detail = assert_refused_fast(response, elapsed)
    assert "Patients" in detail and "XFD" in detail
    assert "CSV" in detail, "the message says what to do instead"


def test_a_sheet_without_a_dimension_is_measured_while_it_is_streamed(alice_api):
    response, elapsed = upload(alice_api, raw_workbook(xfd_rows_xml()))

    detail = assert_refused_fast(response, elapsed)
    assert "XFD" in detail


def test_a_sheet_whose_dimension_lies_is_measured_from_its_cells(alice_api):
    response, elapsed = upload(alice_api, raw_workbook(xfd_rows_xml(), dimension="A1:B3"))

    assert_refused_fast(response, elapsed)


def test_cells_without_references_are_placed_after_the_previous_one(alice_api, settings):
    """openpyxl places a <c> without r= after the previous one: bare cells reach far columns too."""
    settings.MAX_TABLE_COLUMNS = 100
    header = '<row r="1"><c r="A1"><v>1</v></c><c r="B1"><v>2</v></c></row>'
    bare = "<c><v>1</v></c>" * 150
    rows = header + "".join(f'<row r="{row}">{bare}</row>' for row in range(2, 5))

    response, elapsed = upload(alice_api, raw_workbook(rows, dimension="A1:B4"))

    assert "column" in assert_refused_fast(response, elapsed)


def test_a_row_listing_more_cells_than_a_table_has_columns_is_refused(alice_api):
    """Thousands of empty cells repeating one reference stay in column C, but openpyxl would build every one."""
    rows = '<row r="1"><c r="A1"><v>1</v></c><c r="B1"><v>2</v></c></row>'
    rows += '<row r="2"><c r="A2"><v>3</v></c><c r="B2"><v>4</v></c></row>'
    rows += '<row r="3">' + '<c r="C3"/>' * 30_000 + "</row>"

    response, elapsed = upload(alice_api, raw_workbook(rows))

    assert_refused_fast(response, elapsed)


def test_the_column_limit_is_a_setting_for_sheets_and_csv(alice_api, settings):
    settings.MAX_TABLE_COLUMNS = 3
    book = openpyxl.Workbook()
    book.active.append(["a", "b", "c", "d"])
    book.active.append([1, 2, 3, 4])
    buffer = io.BytesIO()
    book.save(buffer)

    sheet_response, _ = upload(alice_api, buffer.getvalue(), "wide.xlsx")
    csv_response, _ = upload(alice_api, b"a,b,c,d\n1,2,3,4\n", "wide.csv")

    assert sheet_response.status_code == 400
    assert sheet_response.json()["code"] == "sheet_too_large"
    assert "3 columns" in sheet_response.json()["detail"]
    assert csv_response.status_code == 400
    assert csv_response.json()["code"] == "too_many_columns"
    assert "4 columns" in csv_response.json()["detail"] and "limit is 3" in csv_response.json()["detail"]


def test_the_cell_limit_is_a_setting(alice_api, settings):
    settings.MAX_SHEET_CELLS = 1000
    book = openpyxl.Workbook()
    for row in range(600):
        book.active.append([row, row % 2])
    buffer = io.BytesIO()
    book.save(buffer)

    response, _ = upload(alice_api, buffer.getvalue(), "long.xlsx")

    assert response.status_code == 400
    assert response.json()["code"] == "sheet_too_large"
    assert "1,000 cells" in response.json()["detail"]


def test_a_workbook_that_unpacks_to_far_more_than_its_cells_need_is_refused_from_its_directory(alice_api, settings):
    """openpyxl loads shared strings whole: megabytes of them behind a tiny sheet are refused before opening."""
    settings.MAX_SHEET_CELLS = 10_000  # allows 100 bytes per cell unpacked: 1 MB
    strings = "<si><t>" + "x" * 1000 + "</t></si>"
    shared = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">' + strings * 5000 + "</sst>"
    )
    rows = '<row r="1"><c r="A1"><v>1</v></c><c r="B1"><v>2</v></c></row><row r="2"><c r="A2"><v>3</v></c>'
    rows += '<c r="B2"><v>4</v></c></row>'
    content = raw_workbook(rows, extra_parts={"xl/sharedStrings.xml": shared})
    assert len(content) < 100_000

    response, elapsed = upload(alice_api, content)

    assert response.status_code == 400, response.content[:300]
    assert response.json()["code"] == "workbook_too_large"
    assert elapsed < GENEROUS_SECONDS


def test_an_ordinary_workbook_still_uploads(alice_api):
    book = openpyxl.Workbook()
    book.active.title = "Patients"
    book.active.append(["age", "outcome", "admitted"])
    for row in range(20):
        book.active.append([40 + row, "sick" if row % 3 else "well", None if row % 5 else "2024-01-02"])
    buffer = io.BytesIO()
    book.save(buffer)

    response, _ = upload(alice_api, buffer.getvalue(), "ward.xlsx")

    assert response.status_code == 201, response.content
    assert response.json()["n_rows"] == 20 and response.json()["n_columns"] == 3
