"""Every CSV or spreadsheet the platform hands to a user is written through here (OWASP "CSV Injection").

A spreadsheet treats a cell that starts with `=`, `+`, `-` or `@` as a formula, and a leading tab or carriage return
can hide such a start; uploaded cells and class labels are attacker-controlled, so a predictions CSV could run
`=HYPERLINK(...)` or a DDE command on the clinician's machine. Such text cells, and such column names, get a
leading single quote: spreadsheets show the text as it was and never evaluate it. Numbers stay numbers: numeric
columns are never touched, and text that is just a number (`-3.5`, `+7`, `1e-3`) is left as it is.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

__all__ = ["FORMULA_PREFIXES", "csv_bytes", "neutralise_cell", "neutralise_frame"]

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def neutralise_cell(value: Any) -> Any:
    """`value` with a leading quote when it is text a spreadsheet would read as a formula; anything else unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def _text_like(values: pd.Series) -> bool:
    return (
        values.dtype == object
        or pd.api.types.is_string_dtype(values.dtype)
        or isinstance(values.dtype, pd.CategoricalDtype)
    )


def neutralise_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` whose text cells and column names cannot start a formula (numeric columns as they were)."""
    changed = {}
    for position, (_, values) in enumerate(frame.items()):
        if _text_like(values):
            if isinstance(values.dtype, pd.CategoricalDtype):
                values = values.astype(object)
            changed[position] = values.map(neutralise_cell, na_action="ignore")
    safe = frame.copy()
    for position, values in changed.items():
        safe.isetitem(position, values)
    safe.columns = [neutralise_cell(str(name)) for name in frame.columns]
    return safe


def csv_bytes(frame: pd.DataFrame, *, encoding: str = "utf-8") -> bytes:
    """`frame` as CSV bytes (no index), neutralised: the one way the platform writes a CSV for a user."""
    return neutralise_frame(frame).to_csv(index=False).encode(encoding)
