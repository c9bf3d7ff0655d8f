"""Spreadsheet width bomb (issue 11 #2): time and peak memory of `read_table` on a small .xlsx claiming column XFD.

Cases, each a fresh `tracemalloc` window in this process:

  bomb        1,000 rows, each setting A, B and XFD (openpyxl-written: <dimension ref="A1:XFD1000">), ~17 KB
  undeclared  the same rows written by hand without a <dimension>, so the streamed scan must catch it
  ordinary    a 1,000-row × 3-column sheet, read in full (what a normal upload costs)
  pandas      --with-pandas only: pandas.read_excel of the bomb cut to --pandas-rows rows (what the platform did)

Before the fix the 1,000-row bomb took 78 s and 514 MB in one request; the refusal must come in under 2 s.
Measured here (2 shared cores, busy with other jobs; tracemalloc on, which slows openpyxl): bomb refused in 114 ms
(peak 0.5 MB), undeclared refused in 344 ms (0.5 MB), ordinary read in 1.5 s (0.7 MB); pandas.read_excel of only
50 bomb rows took 57 s and 36.5 MB, building a 50 × 16,384 frame.
Usage: .venv/bin/python benchmarks/spreadsheet_bomb.py [--rows 1000] [--with-pandas --pandas-rows 100]
"""

from __future__ import annotations

import argparse
import io
import sys
import time
import tracemalloc
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def bomb_openpyxl(rows: int) -> bytes:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["age", "outcome"])
    for row in range(2, rows + 1):
        sheet.cell(row=row, column=1, value=40 + row % 30)
        sheet.cell(row=row, column=2, value="sick" if row % 3 else "well")
        sheet.cell(row=row, column=16384, value=1)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def bomb_undeclared(rows: int) -> bytes:
    """The same sheet as a hand-written workbook whose sheet XML has no <dimension>."""
    cells = ['<row r="1"><c r="A1" t="inlineStr"><is><t>age</t></is></c><c r="B1" t="inlineStr"><is><t>outcome</t>']
    cells.append("</is></c></row>")
    for row in range(2, rows + 1):
        cells.append(f'<row r="{row}"><c r="A{row}"><v>{row}</v></c><c r="B{row}"><v>1</v></c>')
        cells.append(f'<c r="XFD{row}"><v>1</v></c></row>')
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    relationships = "http://schemas.openxmlformats.org/package/2006/relationships"
    office = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    parts = {
        "[Content_Types].xml": (
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/xl/workbook.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
            '<Override PartName="/xl/worksheets/sheet1.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>'
        ),
        "_rels/.rels": (
            f'<Relationships xmlns="{relationships}"><Relationship Id="rId1" '
            f'Type="{office}/officeDocument" Target="xl/workbook.xml"/></Relationships>'
        ),
        "xl/workbook.xml": (
            f'<workbook xmlns="{main}" xmlns:r="{office}"><sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/>'
            "</sheets></workbook>"
        ),
        "xl/_rels/workbook.xml.rels": (
            f'<Relationships xmlns="{relationships}"><Relationship Id="rId1" '
            f'Type="{office}/worksheet" Target="worksheets/sheet1.xml"/></Relationships>'
        ),
        "xl/worksheets/sheet1.xml": f'<worksheet xmlns="{main}"><sheetData>{"".join(cells)}</sheetData></worksheet>',
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in parts.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def ordinary(rows: int) -> bytes:
    import openpyxl

    book = openpyxl.Workbook()
    book.active.append(["age", "bmi", "outcome"])
    for row in range(rows):
        book.active.append([40 + row % 30, 20 + row % 15 + 0.5, "sick" if row % 3 else "well"])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def measure(name: str, call) -> None:
    tracemalloc.start()
    started = time.perf_counter()
    try:
        outcome = f"read {call().frame.shape}"
    except Exception as error:  # the refusal is the expected outcome of the bombs
        outcome = f"refused ({getattr(error, 'code', type(error).__name__)})"
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"{name:<11} {seconds * 1000:9.1f} ms  peak {peak / 1e6:8.1f} MB  {outcome}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--with-pandas", action="store_true")
    parser.add_argument("--pandas-rows", type=int, default=100)
    args = parser.parse_args()

    import pandas as pd

    from tabular.ml.io import read_table

    bomb, undeclared, plain = bomb_openpyxl(args.rows), bomb_undeclared(args.rows), ordinary(args.rows)
    sizes = {"bomb": bomb, "undeclared": undeclared, "ordinary": plain}
    print(", ".join(f"{name} {len(content) / 1024:.1f} KB" for name, content in sizes.items()))
    measure("bomb", lambda: read_table(bomb))
    measure("undeclared", lambda: read_table(undeclared))
    measure("ordinary", lambda: read_table(plain))
    if args.with_pandas:
        small = bomb_openpyxl(args.pandas_rows)

        class Shape:
            def __init__(self, frame):
                self.frame = frame

        measure("pandas", lambda: Shape(pd.read_excel(io.BytesIO(small), header=None, engine="openpyxl")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
