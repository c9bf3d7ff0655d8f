"""Read an uploaded table (CSV, Excel .xlsx, JSON) from bytes, detecting its type from content.

Clinicians bring files exported from hospital systems: odd delimiters, a BOM or Latin-1
accents, "N/A" and "-" for missing, the odd broken row. `read_table` accepts all of that
and refuses what cannot be a table with a `TableReadError` whose message says what to fix.

Size is judged before a table is materialised (`TableLimits`): a CSV's header width, and for a workbook the
unpacked size from its ZIP directory, then the sheet's declared dimension and, while its XML is streamed, the
widest column, the last row and the number of cells. Only then is the sheet read, with openpyxl in read-only mode
and `iter_rows` bounded to the measured extent, so a small file that claims column XFD in every row cannot make
anything pad rows to 16,384 cells.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import struct
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from xml.parsers import expat

import numpy as np
import openpyxl
import pandas as pd
from openpyxl.cell.cell import TYPE_ERROR, TYPE_NUMERIC
from openpyxl.utils import get_column_letter
from openpyxl.worksheet._read_only import ReadOnlyWorksheet
from pandas.io.parsers import TextParser

__all__ = [
    "MISSING_MARKERS",
    "ReadResult",
    "TableLimits",
    "TableReadError",
    "read_parquet",
    "read_table",
    "write_parquet",
]

DELIMITERS = (",", ";", "\t", "|")
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}

# pandas already treats "", "NA", "N/A", "NULL", "null", "NaN", "None", "n/a", "#N/A" as missing;
# hospital exports add "-", "?" and case variants, which must not survive as a category "?".
_MARKER_WORDS = ("na", "n/a", "n.a.", "null", "nan", "none", "#n/a", "-", "--", "?", "")
MISSING_MARKERS: tuple[str, ...] = tuple(
    sorted({variant for word in _MARKER_WORDS for variant in (word, word.upper(), word.title(), word.capitalize())})
)

_SAMPLE_BYTES = 1 << 16
# The delimiter vote wants this many whole lines; a sample is extended past _SAMPLE_BYTES to reach them (a
# 10,000-column header alone is ~100 KB), but never beyond _MAX_SAMPLE_BYTES.
_SAMPLE_LINES = 20
_MAX_SAMPLE_BYTES = 1 << 25
_CHUNK_BYTES = 1 << 25
_MAX_SNIFF_RECORDS = 200
_MAX_LINES_NAMED = 5
# Records re-parsed one by one when quotes may hide delimiters; beyond this, one vectorised pass.
_EXACT_RECOUNT = 10_000

# Bytes that never appear in a text table: NUL and the C0 controls other than tab, LF, CR.
_TEXT_BYTES = bytes([9, 10, 13, *range(32, 127), *range(128, 256)])


DEFAULT_MAX_COLUMNS = 20_000
DEFAULT_MAX_SHEET_CELLS = 5_000_000
DEFAULT_MAX_SHEET_SECONDS = 60.0
# A workbook's parts (sheet XML, shared strings, styles) may unpack to this much per cell allowed: openpyxl loads
# shared strings and styles whole, so this bounds its memory before the workbook is even opened.
UNPACKED_BYTES_PER_CELL = 100
# An .xlsx has a few dozen parts; a central directory listing more is refused before zipfile reads it all.
_MAX_WORKBOOK_PARTS = 10_000
_ZIP_DIRECTORY_BYTES_PER_PART = 1024
_SHEET_CHECK_EVERY = 4096


@dataclass(frozen=True)
class TableLimits:
    """How large a table may be; checked from its extent before any row is materialised."""

    max_columns: int = DEFAULT_MAX_COLUMNS
    max_sheet_cells: int = DEFAULT_MAX_SHEET_CELLS
    max_sheet_seconds: float = DEFAULT_MAX_SHEET_SECONDS

    @property
    def max_unpacked_bytes(self) -> int:
        return self.max_sheet_cells * UNPACKED_BYTES_PER_CELL


class TableReadError(ValueError):
    """An uploaded file that cannot be read as a table; `message` tells the clinician what to fix."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass
class ReadResult:
    """A parsed table and how it was read (format, encoding, delimiter, sheet), with warnings."""

    frame: pd.DataFrame
    format: str
    encoding: str | None = None
    delimiter: str | None = None
    sheet_names: list[str] = field(default_factory=list)
    sheet: str | None = None
    warnings: list[str] = field(default_factory=list)
    n_ragged_rows: int = 0


def read_table(
    data: bytes,
    *,
    filename: str = "",
    sheet: str | int | None = None,
    max_ragged_share: float = 0.01,
    max_bytes: int | None = None,
    limits: TableLimits | None = None,
) -> ReadResult:
    """Parse `data` as a CSV/TSV, an .xlsx workbook or JSON, whatever its file name claims.

    `filename` is used only to word messages; the type comes from the bytes. Rows with the
    wrong number of fields are dropped (with a warning) while they are at most
    `max_ragged_share` of the rows, and refused beyond that. A table wider than `limits.max_columns`,
    or a sheet over `limits.max_sheet_cells`, is refused before it is materialised.
    """
    limits = limits or TableLimits()
    if max_bytes is not None and len(data) > max_bytes:
        raise TableReadError(
            f"The file is {len(data) / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB. "
            "Remove unused columns or rows, or split the file.",
            "too_large",
        )
    if not data.strip():
        raise TableReadError("The file is empty.", "empty_file")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        # Excel's "Unicode text" export is UTF-16; re-encode once so every later step sees UTF-8.
        try:
            data = data.decode("utf-16").encode("utf-8")
        except UnicodeDecodeError as error:
            message = "The file claims to be UTF-16 text but could not be decoded."
            raise TableReadError(message, "not_a_table") from error
        source_encoding: str | None = "utf-16"
    else:
        source_encoding = None

    kind = _sniff_format(data, filename)
    if kind == "xlsx":
        return _read_excel(data, sheet, limits)
    warnings = []
    if sheet not in (None, 0, ""):
        warnings.append("A sheet was chosen, but this file is not an Excel workbook; the choice was ignored.")
    if kind == "json":
        result = _read_json(data, limits)
    else:
        result = _read_delimited(data, max_ragged_share=max_ragged_share, limits=limits)
    if source_encoding:
        result.encoding = source_encoding
    result.warnings[:0] = warnings
    return result


# --- type detection -----------------------------------------------------------------------


def _sniff_format(data: bytes, filename: str) -> str:
    head = data[:8]
    shown = f" ({filename})" if filename else ""
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        _check_zip_directory(data, shown)
        try:
            names = set(zipfile.ZipFile(io.BytesIO(data)).namelist())
        except (zipfile.BadZipFile, OSError) as error:
            raise TableReadError(
                f"The file{shown} is a damaged ZIP archive, not a table. Upload a CSV, .xlsx or JSON file.",
                "unsupported_type",
            ) from error
        if "xl/workbook.xml" in names:
            return "xlsx"
        if "word/document.xml" in names:
            what = "a Word document"
        elif "content.xml" in names:
            what = "an OpenDocument file"
        else:
            what = "a ZIP archive"
        raise TableReadError(
            f"The file{shown} is {what}, not a table. Upload a CSV, Excel (.xlsx) or JSON file.", "unsupported_type"
        )
    for magic, what in (
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Excel (.xls) or other legacy Office file"),
        (b"%PDF", "a PDF document"),
        (b"\x89PNG", "a PNG image"),
        (b"\xff\xd8\xff", "a JPEG image"),
        (b"GIF8", "a GIF image"),
        (b"\x1f\x8b", "a gzip archive"),
        (b"7z\xbc\xaf", "a 7-Zip archive"),
        (b"Rar!", "a RAR archive"),
        (b"PAR1", "a Parquet file"),
        (b"DICM", "a DICOM image"),
    ):
        if head.startswith(magic):
            advice = " Open it in Excel and save it as .xlsx or CSV." if "Excel" in what else ""
            raise TableReadError(
                f"The file{shown} is {what}, not a supported table.{advice} Upload a CSV, Excel (.xlsx) or JSON file.",
                "unsupported_type",
            )
    sample = data[:_SAMPLE_BYTES]
    if b"\x00" in sample or len(sample.translate(None, _TEXT_BYTES)) > 0.01 * len(sample):
        raise TableReadError(
            f"The file{shown} contains binary data and is not a readable table. "
            "Upload a CSV, Excel (.xlsx) or JSON file.",
            "not_a_table",
        )
    first = data.lstrip(codecs.BOM_UTF8).lstrip()[:1]
    if first in (b"[", b"{"):
        return "json"
    return "text"


def _zip_directory_extent(data: bytes) -> tuple[int, int] | None:
    """(entries, bytes) of a ZIP's central directory as its end record declares them, or None when there is none.

    zipfile reads the whole directory into objects as soon as an archive is opened; reading these two numbers first
    lets a directory of millions of tiny entries be refused for the price of a few bytes.
    """
    tail_start = max(0, len(data) - (0xFFFF + 22))
    end = data.rfind(b"PK\x05\x06", tail_start)
    if end < 0 or len(data) - end < 22:
        return None
    entries, size = struct.unpack("<HI", data[end + 10 : end + 16])
    locator = end - 20
    if (entries == 0xFFFF or size == 0xFFFFFFFF) and locator >= 0 and data[locator : locator + 4] == b"PK\x06\x07":
        (offset,) = struct.unpack("<Q", data[locator + 8 : locator + 16])
        record = data[offset : offset + 56]
        if len(record) == 56 and record[:4] == b"PK\x06\x06":
            entries, size = struct.unpack("<QQ", record[32:48])
    return entries, size


def _check_zip_directory(data: bytes, shown: str) -> None:
    extent = _zip_directory_extent(data)
    if extent is None:
        return
    entries, size = extent
    if entries > _MAX_WORKBOOK_PARTS or size > _MAX_WORKBOOK_PARTS * _ZIP_DIRECTORY_BYTES_PER_PART:
        raise TableReadError(
            f"The file{shown} is an archive of {entries:,} parts; no Excel workbook has that many. "
            "Upload a CSV, Excel (.xlsx) or JSON file.",
            "unsupported_type",
        )


def _detect_encoding(data: bytes) -> str:
    """UTF-8 (with or without BOM) when the bytes are valid UTF-8, else Windows-1252, else Latin-1.

    A strict UTF-8 check is reliable (Latin-1 accents are almost never valid UTF-8) and
    predictable, unlike statistical detectors on short files.
    """
    bom = data.startswith(codecs.BOM_UTF8)
    if data.isascii():
        return "utf-8"
    for encoding in ("utf-8", "cp1252"):
        decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
        try:
            # Chunked, so validating a 200 MB upload never holds a second copy as str.
            for start in range(0, len(data), _CHUNK_BYTES):
                decoder.decode(data[start : start + _CHUNK_BYTES], final=start + _CHUNK_BYTES >= len(data))
        except UnicodeDecodeError:
            continue
        if encoding == "utf-8" and bom:
            return "utf-8-sig"
        return encoding
    return "latin-1"


def _sample_end(data: bytes) -> int:
    """Where the sniffing sample ends: after _SAMPLE_BYTES, extended to hold _SAMPLE_LINES whole lines.

    A fixed byte count cut a 96 KB header in two, and every row then seemed to have more fields than the header.
    """
    end = min(len(data), _SAMPLE_BYTES)
    lines = data.count(b"\n", 0, end)
    while lines < _SAMPLE_LINES and end < len(data):
        newline = data.find(b"\n", end, _MAX_SAMPLE_BYTES)
        if newline < 0:
            return len(data) if len(data) <= _MAX_SAMPLE_BYTES else end
        end = newline + 1
        lines += 1
    return end


def _decode_sample(data: bytes, encoding: str) -> tuple[str, bool]:
    """The sample as text, cut after its last whole line, and whether it holds the whole file."""
    end = _sample_end(data)
    sample = data[:end]
    text = sample.decode(encoding, errors="ignore")
    if encoding == "utf-8" and text.startswith("\ufeff"):
        text = text[1:]
    whole = end >= len(data)
    if not whole and not sample.endswith(b"\n"):
        # Drop the last, cut, line.
        cut = text.rfind("\n")
        if cut > 0:
            text = text[: cut + 1]
    return text, whole


# --- delimited text -----------------------------------------------------------------------


def _sniff_records(text: str, delimiter: str) -> list[list[str]]:
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    records = []
    try:
        for record in reader:
            if not record or all(not value.strip() for value in record) and len(record) <= 1:
                continue
            records.append(record)
            if len(records) >= _MAX_SNIFF_RECORDS:
                break
    except csv.Error:
        return records
    return records


def _choose_delimiter(text: str) -> tuple[str, list[list[str]]]:
    """Pick the delimiter whose header width most rows of the sample share.

    The header takes part in the vote: with `;` as delimiter and `,` as decimal separator
    ("1,5;2,3"), the data rows are consistent for both, but only `;` splits the header.
    """
    best: tuple[float, int] = (-1.0, 0)
    chosen, chosen_records = ",", []
    for delimiter in DELIMITERS:
        records = _sniff_records(text, delimiter)
        if not records:
            continue
        width = len(records[0])
        if width < 2:
            score: tuple[float, int] = (0.0, width)
        else:
            consistent = sum(len(record) == width for record in records) / len(records)
            score = (consistent, width)
        if score > best:
            best, chosen, chosen_records = score, delimiter, records
    return chosen, chosen_records


def _header_names(raw: list[object]) -> list[str]:
    names = []
    for position, value in enumerate(raw, start=1):
        text = "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value).strip()
        names.append(text or f"column_{position}")
    return names


def _check_duplicates(names: list[str]) -> None:
    seen: set[str] = set()
    duplicates: list[str] = []
    for name in names:
        if name in seen and name not in duplicates:
            duplicates.append(name)
        seen.add(name)
    if duplicates:
        listed = ", ".join(f'"{name}"' for name in duplicates[:10])
        raise TableReadError(
            f"Column names must be unique; these appear more than once: {listed}. Rename them and upload again.",
            "duplicate_columns",
        )


def _check_column_count(n_columns: int, limits: TableLimits) -> None:
    if n_columns > limits.max_columns:
        raise TableReadError(
            f"The table has {n_columns:,} columns; the limit is {limits.max_columns:,}. "
            "Remove the columns you do not need, or split the table.",
            "too_many_columns",
        )


def _check_width(names: list[str], delimiter: str | None = None) -> None:
    if len(names) < 2:
        hint = (
            " If the file has several columns, check that they are separated by a comma, semicolon, tab or pipe."
            if delimiter is not None
            else ""
        )
        raise TableReadError(
            "The file has only one column; a dataset needs at least one predictor and a target." + hint,
            "single_column",
        )


def _ragged_lines_fast(
    data: bytes, delimiter: str, width: int, *, quoted: bool = False, encoding: str = "utf-8"
) -> tuple[list[int], int, bool]:
    """0-based line numbers of records whose field count differs from `width`, the number of non-blank records,
    and whether the quote scan stayed consistent (an even number of quotes at the end).

    Vectorised over 32 MB chunks to keep memory flat. With `quoted`, a delimiter or newline counts only
    outside quotes (an even number of quotes before it); doubled quotes keep the parity, so escaped quotes are
    handled. A stray quote inside an unquoted field (an inch mark) breaks the parity: that shows up as ragged
    records or an odd final parity, and the caller then re-checks with the exact csv module.
    """
    array = np.frombuffer(data, dtype=np.uint8)
    delimiter_byte = ord(delimiter)
    bad: list[int] = []
    n_nonblank = 0
    lines_before = 0
    position = 0
    size = len(array)
    chunk_bytes = _CHUNK_BYTES
    consistent = True
    while position < size:
        end = min(size, position + chunk_bytes)
        if end < size:
            # Extend to the end of the line, so no line straddles two chunks.
            newline = data.find(b"\n", end - 1)
            end = size if newline == -1 else newline + 1
        chunk = array[position:end]
        # Positions, not masks: searchsorted over them is far cheaper than reductions over every byte.
        all_newlines = np.flatnonzero(chunk == 10)
        separators = np.flatnonzero(chunk == delimiter_byte)
        record_newlines = all_newlines
        quotes = np.flatnonzero(chunk == 34) if quoted else np.empty(0, dtype=np.int64)
        if len(quotes):
            # A newline is inside quotes when an odd number of quotes precede it.
            record_newlines = all_newlines[(np.searchsorted(quotes, all_newlines) & 1) == 0]
            if end < size and (len(record_newlines) == 0 or record_newlines[-1] != len(chunk) - 1):
                if len(record_newlines) == 0:
                    # One record longer than the chunk (a huge quoted cell): retry with a bigger chunk.
                    chunk_bytes *= 2
                    continue
                # Cut after the last record that ends outside quotes; the rest starts the next chunk.
                cut = int(record_newlines[-1]) + 1
                end = position + cut
                chunk = chunk[:cut]
                all_newlines = all_newlines[all_newlines < cut]
                separators = separators[separators < cut]
                quotes = quotes[quotes < cut]
            elif end == size and len(quotes) % 2:
                consistent = False
        starts = np.concatenate(([0], record_newlines + 1))
        if starts[-1] == len(chunk):
            starts = starts[:-1]
        ends = np.append(starts[1:], len(chunk))
        counts = np.searchsorted(separators, ends) - np.searchsorted(separators, starts)
        content_end = ends - (chunk[ends - 1] == 10)
        has_cr = (content_end > starts) & (chunk[np.maximum(content_end - 1, 0)] == 13)
        blank = (content_end - has_cr - starts) <= 0
        if len(quotes) > 1:
            # Delimiters inside quotes were counted too: recount the records that look wrong.
            suspects = np.flatnonzero((counts + 1 != width) & ~blank)
            if len(suspects) <= _EXACT_RECOUNT:
                for index in suspects.tolist():
                    text = data[position + starts[index] : position + content_end[index]].decode(encoding, "replace")
                    counts[index] = len(next(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), [])) - 1
            else:
                opens, closes = quotes[0:-1:2], quotes[1::2]
                inner = np.searchsorted(separators, closes) - np.searchsorted(separators, opens)
                spans = np.flatnonzero(inner)
                owner = np.searchsorted(starts, opens[spans], side="right") - 1
                counts = counts - np.bincount(owner, weights=inner[spans], minlength=len(starts)).astype(np.int64)
        n_nonblank += int((~blank).sum())
        wrong = np.flatnonzero((counts + 1 != width) & ~blank)
        # Physical line number of each wrong record's first line.
        bad.extend((np.searchsorted(all_newlines, starts[wrong]) + lines_before).tolist())
        lines_before += len(all_newlines)
        position = end
        chunk_bytes = _CHUNK_BYTES
    return bad, n_nonblank, consistent


def _ragged_records_slow(text_stream: io.TextIOBase, delimiter: str, width: int) -> tuple[list[int], list[list[str]]]:
    """Quote-aware fallback: the indices of ragged records and the good records themselves."""
    bad: list[int] = []
    good: list[list[str]] = []
    reader = csv.reader(text_stream, delimiter=delimiter)
    for record in reader:
        if not record or (len(record) == 1 and not record[0].strip()):
            continue
        if len(record) != width:
            bad.append(reader.line_num)
            continue
        good.append(record)
    return bad, good


def _detect_decimal_comma(records: list[list[str]]) -> bool:
    comma_number = re.compile(r"^-?\d+,\d+$")
    dot_number = re.compile(r"^-?\d+\.\d+$")
    commas = dots = 0
    for record in records[1:]:
        for value in record:
            value = value.strip()
            if comma_number.match(value):
                commas += 1
            elif dot_number.match(value):
                dots += 1
    return commas > 0 and dots == 0


def _ragged_error(line_numbers: list[int], n_rows: int, max_share: float) -> TableReadError:
    shown = ", ".join(str(number) for number in line_numbers[:_MAX_LINES_NAMED])
    more = f" and {len(line_numbers) - _MAX_LINES_NAMED} more" if len(line_numbers) > _MAX_LINES_NAMED else ""
    return TableReadError(
        f"{len(line_numbers)} of {n_rows} rows have a different number of fields than the header "
        f"(lines {shown}{more}); at most {max_share:.0%} can be skipped. "
        "Check for extra delimiters or unquoted commas in those lines.",
        "ragged_rows",
    )


def _read_delimited(data: bytes, *, max_ragged_share: float, limits: TableLimits) -> ReadResult:
    encoding = _detect_encoding(data)
    text, whole = _decode_sample(data, encoding)
    delimiter, records = _choose_delimiter(text)
    if not records:
        raise TableReadError("The file is empty.", "empty_file")
    names = _header_names(records[0])
    if len(records) == 1 and whole:
        raise TableReadError("The file has a header row but no data rows.", "header_only")
    _check_width(names, delimiter)
    _check_column_count(len(names), limits)
    _check_duplicates(names)
    width = len(names)
    decimal = "," if delimiter == ";" and _detect_decimal_comma(records) else "."

    warnings: list[str] = []
    options = {
        "sep": delimiter,
        "header": 0,
        "na_values": list(MISSING_MARKERS),
        "keep_default_na": True,
        "skipinitialspace": True,
        "decimal": decimal,
        "engine": "c",
        # One pass over each column, so a column never ends up half int, half str.
        "low_memory": False,
    }
    n_ragged = 0
    quoted = b'"' in data
    bad, n_nonblank, consistent = _ragged_lines_fast(data, delimiter, width, quoted=quoted, encoding=encoding)
    if not quoted or (consistent and not bad):
        n_rows = max(n_nonblank - 1, 0)
        if bad:
            if len(bad) > max_ragged_share * max(n_rows, 1):
                raise _ragged_error([line + 1 for line in bad], n_rows, max_ragged_share)
            n_ragged = len(bad)
            warnings.append(_ragged_warning([line + 1 for line in bad]))
        frame = _pandas_read(io.BytesIO(data), encoding=encoding, skiprows=bad or None, **options)
    else:
        # Quotes made the fast scan unsure: count fields exactly with the csv module.
        stream = io.TextIOWrapper(io.BytesIO(data), encoding=encoding, newline="")
        bad, good = _ragged_records_slow(stream, delimiter, width)
        n_rows = max(len(good) - 1, 0)
        if bad:
            if len(bad) > max_ragged_share * max(n_rows + len(bad), 1):
                raise _ragged_error(bad, n_rows + len(bad), max_ragged_share)
            n_ragged = len(bad)
            warnings.append(_ragged_warning(bad))
            # Rare path (quoted file with broken rows): re-serialise the good records for the C parser.
            buffer = io.StringIO()
            csv.writer(buffer, delimiter=delimiter).writerows(good)
            frame = _pandas_read(io.StringIO(buffer.getvalue()), encoding=None, skiprows=None, **options)
        else:
            frame = _pandas_read(io.BytesIO(data), encoding=encoding, skiprows=None, **options)
    frame.columns = names
    if decimal == "," and any(pd.api.types.is_float_dtype(dtype) for dtype in frame.dtypes):
        warnings.append("Numbers use a decimal comma (e.g. 1,5); they were read as numbers.")
    frame = _finish(frame, warnings)
    return ReadResult(
        frame=frame,
        format="csv",
        encoding=encoding,
        delimiter=delimiter,
        warnings=warnings,
        n_ragged_rows=n_ragged,
    )


def _ragged_warning(line_numbers: list[int]) -> str:
    shown = ", ".join(str(number) for number in line_numbers[:_MAX_LINES_NAMED])
    more = " …" if len(line_numbers) > _MAX_LINES_NAMED else ""
    plural = "row" if len(line_numbers) == 1 else "rows"
    return f"Skipped {len(line_numbers)} {plural} with the wrong number of fields (line {shown}{more})."


def _pandas_read(source, *, encoding: str | None, skiprows, **options) -> pd.DataFrame:
    try:
        return pd.read_csv(source, encoding=encoding, skiprows=skiprows, **options)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as error:
        raise TableReadError(
            f"The file could not be read as a table: {error}. Check that it is a CSV with one header row.",
            "not_a_table",
        ) from error


# --- Excel -------------------------------------------------------------------------------


_CELL_REFERENCE = re.compile(r"\$?([A-Za-z]{1,3})\$?(\d+)")


@dataclass
class _SheetExtent:
    """Where a sheet's values lie: the last row and column holding one, and how many cells the XML lists."""

    max_row: int = 0
    max_column: int = 0
    n_cells: int = 0


def _column_number(letters: str) -> int:
    number = 0
    for letter in letters.upper():
        number = number * 26 + ord(letter) - 64
    return number


def _sheet_too_large(chosen: str, n_rows: int, n_columns: int, limits: TableLimits, what: str) -> TableReadError:
    return TableReadError(
        f'The sheet "{chosen}" {what} {n_rows:,} rows × {n_columns:,} columns (up to column '
        f"{get_column_letter(min(max(n_columns, 1), 18_278))}), {n_rows * n_columns:,} cells; the limits are "
        f"{limits.max_columns:,} columns and {limits.max_sheet_cells:,} cells. Delete the empty rows and columns "
        "after your data (select them, Delete), or save the sheet as CSV and upload that.",
        "sheet_too_large",
    )


def _check_extent(chosen: str, n_rows: int, n_columns: int, limits: TableLimits, what: str) -> None:
    # The read pads every row to the widest column, so rows × columns is what it would build.
    if n_columns > limits.max_columns or n_rows * n_columns > limits.max_sheet_cells:
        raise _sheet_too_large(chosen, n_rows, n_columns, limits, what)


def _check_deadline(chosen: str, deadline: float, limits: TableLimits) -> None:
    if time.monotonic() > deadline:
        raise TableReadError(
            f'Reading the sheet "{chosen}" took longer than {limits.max_sheet_seconds:g} s. '
            "Save it as CSV and upload that.",
            "sheet_too_large",
        )


class _SheetScanner:
    """expat callbacks that measure a sheet's cells as they stream past; no element is ever built or kept.

    A cell's position is settled when the next cell or row starts (or the sheet ends), so only start tags are
    handled: two callbacks per cell, half of what an ElementTree pass costs.
    """

    def __init__(self, chosen: str, limits: TableLimits, deadline: float) -> None:
        self.chosen, self.limits, self.deadline = chosen, limits, deadline
        self.extent = _SheetExtent()
        self.row_number = 0
        self.column = 0
        self.pending = False  # a <c> has started and is not counted yet
        self.holds_value = False
        self.row_cells = 0

    def start(self, name: str, attributes: dict[str, str]) -> None:
        local = name.rpartition(" ")[2]
        if local == "c":
            self.settle()
            self.column = _cell_column(attributes.get("r"), self.column, self.chosen)
            self.pending, self.holds_value = True, False
            self.row_cells += 1
            if self.row_cells > self.limits.max_columns:
                # openpyxl builds a row's cells at once: a row may not list more cells than a table has columns,
                # even empty ones that repeat one reference.
                raise _sheet_too_large(self.chosen, self.row_number, self.row_cells, self.limits, "lists")
        elif local in ("v", "is"):
            self.holds_value = True
        elif local == "row":
            self.settle()
            reference = attributes.get("r")
            self.row_number = int(float(reference)) if reference else self.row_number + 1
            self.column = self.row_cells = 0

    def settle(self) -> None:
        if not self.pending:
            return
        self.pending = False
        extent, limits = self.extent, self.limits
        extent.n_cells += 1
        if self.holds_value:
            extent.max_row = self.row_number
            extent.max_column = max(extent.max_column, self.column)
            _check_extent(self.chosen, extent.max_row, extent.max_column, limits, "spans")
        if extent.n_cells > limits.max_sheet_cells:
            columns = max(extent.max_column, self.column)
            raise _sheet_too_large(self.chosen, self.row_number, columns, limits, "lists")
        if extent.n_cells % _SHEET_CHECK_EVERY == 0:
            _check_deadline(self.chosen, self.deadline, limits)


def _refuse_entities(*_args) -> None:
    raise TableReadError("The workbook declares XML entities; no spreadsheet program writes those.", "not_a_table")


def _measure_sheet(worksheet: ReadOnlyWorksheet, chosen: str, limits: TableLimits, deadline: float) -> _SheetExtent:
    """Stream the sheet XML once, keeping nothing, and refuse as soon as its extent passes a limit.

    The declared <dimension> is checked first, but it may be missing or lie, so the cells themselves are measured:
    a cell without a reference follows the previous one, as openpyxl places it.
    """
    if worksheet.max_row and worksheet.max_column:
        _check_extent(chosen, worksheet.max_row, worksheet.max_column, limits, "declares")
    scanner = _SheetScanner(chosen, limits, deadline)
    parser = expat.ParserCreate(namespace_separator=" ")
    # As defusedxml does: no entity declarations at all, so no expansion bomb and nothing fetched from outside.
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.EntityDeclHandler = _refuse_entities
    parser.StartElementHandler = scanner.start
    # openpyxl is pinned (requirements/base.txt); _get_source opens the part this worksheet reads.
    with worksheet._get_source() as source:
        try:
            parser.ParseFile(source)
        except (expat.ExpatError, ValueError, OverflowError) as error:
            if isinstance(error, TableReadError):
                raise
            raise TableReadError(f'The sheet "{chosen}" is damaged and cannot be read.', "not_a_table") from error
    scanner.settle()
    return scanner.extent


def _cell_column(reference: str | None, previous: int, chosen: str) -> int:
    if not reference:
        return previous + 1
    match = _CELL_REFERENCE.fullmatch(reference)
    if match is None:
        raise TableReadError(f'The sheet "{chosen}" has a damaged cell reference ({reference[:20]!r}).', "not_a_table")
    return _column_number(match.group(1))


def _excel_value(cell) -> object:
    """A cell as pandas' own openpyxl reader gives it: "" for empty, NaN for errors, whole floats as int."""
    value = cell.value
    if value is None:
        return ""
    if cell.data_type == TYPE_ERROR:
        return np.nan
    if cell.data_type == TYPE_NUMERIC:
        whole = int(value)
        return whole if whole == value else float(value)
    return value


def _sheet_rows(
    worksheet: ReadOnlyWorksheet, extent: _SheetExtent, chosen: str, limits: TableLimits, deadline: float
) -> list[list[object]]:
    rows: list[list[object]] = []
    # Bounded to the measured extent: no row is ever padded past the last column that holds a value.
    cells = worksheet.iter_rows(min_row=1, max_row=extent.max_row, min_col=1, max_col=extent.max_column)
    for number, row in enumerate(cells, start=1):
        values = [_excel_value(cell) for cell in row]
        while values and values[-1] == "":
            values.pop()
        rows.append(values)
        if number % _SHEET_CHECK_EVERY == 0:
            _check_deadline(chosen, deadline, limits)
    while rows and not rows[-1]:
        rows.pop()
    width = max((len(values) for values in rows), default=0)
    return [values + [""] * (width - len(values)) for values in rows]


def _read_workbook_sheet(data: bytes, sheet: str | int | None, limits: TableLimits):
    """Measure, then read, one sheet: (rows, the sheet's name, every sheet name)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        unpacked = sum(info.file_size for info in archive.infolist())
    if unpacked > limits.max_unpacked_bytes:
        raise TableReadError(
            f"The workbook unpacks to {unpacked / 1e6:,.0f} MB, more than a sheet of {limits.max_sheet_cells:,} "
            f"cells needs ({limits.max_unpacked_bytes / 1e6:,.0f} MB). Save the sheet you need as CSV and upload that.",
            "workbook_too_large",
        )
    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True, keep_links=False)
    except Exception as error:  # openpyxl raises many types for damaged or encrypted workbooks
        raise TableReadError(
            "The Excel file could not be opened; it may be damaged or password-protected. "
            "Save it again as .xlsx without a password.",
            "not_a_table",
        ) from error
    try:
        sheet_names = [str(name) for name in book.sheetnames]
        if not sheet_names:
            raise TableReadError("The workbook has no sheets.", "excel_no_data")
        chosen = _resolve_sheet(sheet, sheet_names)
        worksheet = book[chosen]
        if not isinstance(worksheet, ReadOnlyWorksheet):
            raise TableReadError(f'The sheet "{chosen}" is a chart, not a table. Choose another sheet.', "bad_sheet")
        deadline = time.monotonic() + limits.max_sheet_seconds
        extent = _measure_sheet(worksheet, chosen, limits, deadline)
        if not extent.max_column:
            raise TableReadError(f'The sheet "{chosen}" has no data.', "excel_no_data")
        try:
            rows = _sheet_rows(worksheet, extent, chosen, limits, deadline)
        except TableReadError:
            raise
        except Exception as error:  # damaged cell values (bad numbers, dates) surface only while reading
            raise TableReadError(f'The sheet "{chosen}" is damaged and cannot be read.', "not_a_table") from error
    finally:
        book.close()
    return rows, chosen, sheet_names


def _read_excel(data: bytes, sheet: str | int | None, limits: TableLimits) -> ReadResult:
    rows, chosen, sheet_names = _read_workbook_sheet(data, sheet, limits)
    if not rows:
        raise TableReadError(f'The sheet "{chosen}" has no data.', "excel_no_data")
    # The same parser pandas.read_excel hands these rows to, so types and missing values come out as they did.
    parser = TextParser(
        rows, header=None, na_values=list(MISSING_MARKERS), keep_default_na=True, skip_blank_lines=False
    )
    try:
        raw = parser.read()
    finally:
        parser.close()
    raw = raw.dropna(how="all").dropna(axis=1, how="all")
    if raw.empty:
        raise TableReadError(f'The sheet "{chosen}" has no data.', "excel_no_data")
    names = _header_names(list(raw.iloc[0]))
    _check_duplicates(names)
    _check_width(names)
    body = raw.iloc[1:]
    if body.empty:
        raise TableReadError(f'The sheet "{chosen}" has a header row but no data rows.', "excel_no_data")
    body = body.set_axis(names, axis=1).reset_index(drop=True).infer_objects()
    warnings: list[str] = []
    frame = _finish(body, warnings)
    return ReadResult(frame=frame, format="xlsx", sheet_names=sheet_names, sheet=chosen, warnings=warnings)


def _resolve_sheet(sheet: str | int | None, sheet_names: list[str]) -> str:
    listed = ", ".join(f'"{name}"' for name in sheet_names)
    if sheet is None or sheet == "":
        return sheet_names[0]
    if isinstance(sheet, int) and not isinstance(sheet, bool):
        if 0 <= sheet < len(sheet_names):
            return sheet_names[sheet]
        raise TableReadError(
            f"The workbook has {len(sheet_names)} sheet(s); there is no sheet number {sheet + 1}. Sheets: {listed}.",
            "bad_sheet",
        )
    if str(sheet) in sheet_names:
        return str(sheet)
    raise TableReadError(f'The workbook has no sheet named "{sheet}". Sheets: {listed}.', "bad_sheet")


# --- JSON --------------------------------------------------------------------------------


def _read_json(data: bytes, limits: TableLimits) -> ReadResult:
    encoding = _detect_encoding(data)
    text = data.decode(encoding)
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise TableReadError(
            f"The file looks like JSON but is not valid (line {error.lineno}, column {error.colno}).", "not_a_table"
        ) from error
    del text
    frame, shape = _json_frame(document)
    _check_column_count(len(frame.columns), limits)
    for column in frame.columns:
        values = frame[column]
        if values.dtype == object and values.map(lambda value: isinstance(value, dict | list)).any():
            raise TableReadError(
                f'Column "{column}" holds nested objects or lists; upload a flat table (one value per cell).',
                "not_a_table",
            )
    frame = frame.set_axis(_header_names(list(frame.columns)), axis=1)
    _check_duplicates(list(frame.columns))
    _check_width(list(frame.columns))
    if frame.empty:
        raise TableReadError("The JSON has column names but no rows.", "header_only")
    frame = _blank_markers(frame).reset_index(drop=True)
    warnings: list[str] = []
    frame = _finish(frame, warnings)
    if shape == "split":
        warnings.append('Read the JSON "split" layout (columns + data).')
    return ReadResult(frame=frame, format="json", encoding=encoding, warnings=warnings)


def _json_frame(document: object) -> tuple[pd.DataFrame, str]:
    not_table = TableReadError(
        'The JSON is not a table. Use a list of records ([{"age": 61, ...}, ...]) '
        'or an object of columns ({"age": [61, ...], ...}).',
        "not_a_table",
    )
    if isinstance(document, list):
        if not document:
            raise TableReadError("The file holds an empty JSON list.", "empty_file")
        if all(isinstance(row, dict) for row in document):
            return pd.DataFrame.from_records(document), "records"
        if all(isinstance(row, list) for row in document):
            header, *rows = document
            if not rows:
                raise TableReadError("The JSON has a header row but no data rows.", "header_only")
            widths = {len(row) for row in rows}
            if widths != {len(header)}:
                raise TableReadError("The JSON rows do not all have as many values as the header.", "ragged_rows")
            return pd.DataFrame(rows, columns=[str(name) for name in header]), "rows"
        raise not_table
    if isinstance(document, dict):
        if not document:
            raise TableReadError("The file holds an empty JSON object.", "empty_file")
        if set(document) == {"columns", "data"} and isinstance(document["data"], list):
            return pd.DataFrame(document["data"], columns=document["columns"]), "split"
        values = list(document.values())
        if all(isinstance(column, list) for column in values):
            lengths = {len(column) for column in values}
            if len(lengths) > 1:
                raise TableReadError(
                    "The JSON columns have different lengths; every column needs one value per row.", "ragged_rows"
                )
            return pd.DataFrame(document), "columns"
        if all(isinstance(column, dict) for column in values):
            return pd.DataFrame(document), "columns"
        raise not_table
    raise not_table


def _blank_markers(frame: pd.DataFrame) -> pd.DataFrame:
    markers = set(MISSING_MARKERS)
    changed = {}
    for column in frame.columns:
        values = frame[column]
        if values.dtype == object or pd.api.types.is_string_dtype(values.dtype):
            stripped = values.map(lambda value: value.strip() if isinstance(value, str) else value)
            is_marker = stripped.map(lambda value: isinstance(value, str) and value in markers)
            if is_marker.any():
                changed[column] = values.mask(is_marker.astype(bool))
    if changed:
        frame = frame.assign(**changed)
    return frame.infer_objects()


# --- shared ------------------------------------------------------------------------------


def _finish(frame: pd.DataFrame, warnings: list[str]) -> pd.DataFrame:
    """Drop generated columns that hold nothing (a trailing delimiter) and refuse an empty table."""
    empty_generated = [
        name for name in frame.columns if re.fullmatch(r"column_\d+", str(name)) and frame[name].isna().all()
    ]
    if empty_generated:
        frame = frame.drop(columns=empty_generated)
        warnings.append(f"Dropped {len(empty_generated)} unnamed empty column(s), e.g. from a trailing delimiter.")
    _check_width(list(frame.columns))
    if len(frame) == 0:
        raise TableReadError("The file has a header row but no data rows.", "header_only")
    return frame


def _parquet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Cast object columns that mix types (e.g. numbers and words from Excel) to strings, keeping missing values."""
    changed = {}
    for column in frame.columns:
        values = frame[column]
        if values.dtype != object:
            continue
        inferred = pd.api.types.infer_dtype(values, skipna=True)
        if inferred in {"string", "empty", "boolean", "integer", "floating", "bytes", "date", "datetime"}:
            continue
        changed[column] = values.map(lambda value: value if pd.isna(value) else str(value)).astype("str")
    return frame.assign(**changed) if changed else frame


def write_parquet(frame: pd.DataFrame, path: str | Path) -> None:
    """Write the parsed table as Parquet (the fast columnar copy kept beside the original bytes)."""
    safe = _parquet_safe(frame)
    safe.columns = [str(name) for name in safe.columns]
    safe.to_parquet(path, engine="pyarrow", index=False)


def read_parquet(path: str | Path) -> pd.DataFrame:
    """Read a table written by `write_parquet`."""
    return pd.read_parquet(path, engine="pyarrow")
