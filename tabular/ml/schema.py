"""The input schema of a trained model, and validation of rows sent for prediction against it.

`InputSchema.from_frame(X)` records, for each training column in order: its kind (number, boolean,
category, date, text), its pandas dtype and, for categories with few levels, the values seen in
training. It is stored with the model (`to_dict`/`from_dict`) so serving checks exactly what training saw.

`validate_rows(schema, rows) -> (clean_frame, ignored_columns)`:
- required columns missing → `SchemaError` naming all of them;
- extra columns are dropped and listed in `ignored_columns`;
- a value of the wrong type → `SchemaError` naming the row (1-based, as a clinician counts the rows
  they sent) and the column, e.g. "Row 3, column 'age': expected a number, got 'abc'.";
- empty cells are allowed (the model's imputation handles them) and come back as missing values;
- the clean frame has the training columns, in training order, with the training dtypes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["ColumnSpec", "InputSchema", "SchemaError", "validate_rows"]

# Categories with more levels than this are free-form (e.g. a ward name): any value is accepted.
MAX_LISTED_CATEGORIES = 50
_TRUE = {"true", "yes", "y", "1", "t"}
_FALSE = {"false", "no", "n", "0", "f"}


class SchemaError(ValueError):
    """Rows that do not fit the model's input schema; `message` says which column or cell to fix."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class ColumnSpec:
    """One input column: name, kind, training dtype, whether it must be sent, and allowed categories if listed."""

    name: str
    kind: str  # "number", "boolean", "category", "date", "text"
    dtype: str
    required: bool = True
    categories: list[Any] | None = None


@dataclass
class InputSchema:
    """The columns a model expects, in training order."""

    columns: list[ColumnSpec] = field(default_factory=list)

    @classmethod
    def from_frame(cls, X: pd.DataFrame, *, required_columns: list[str] | None = None) -> InputSchema:
        """Describe `X`; only `required_columns` (default: all) must be present in prediction requests."""
        required = set(X.columns if required_columns is None else required_columns)
        specs = []
        for name in X.columns:
            series = X[name]
            categories = None
            if pd.api.types.is_bool_dtype(series):
                kind = "boolean"
            elif pd.api.types.is_numeric_dtype(series):
                kind = "number"
            elif pd.api.types.is_datetime64_any_dtype(series):
                kind = "date"
            else:
                levels = series.dropna().unique()
                if len(levels) <= MAX_LISTED_CATEGORIES:
                    kind = "category"
                    categories = sorted((_plain(v) for v in levels), key=str)
                else:
                    kind = "text"
            specs.append(ColumnSpec(str(name), kind, str(series.dtype), name in required, categories))
        return cls(specs)

    @property
    def names(self) -> list[str]:
        return [spec.name for spec in self.columns]

    def to_dict(self) -> dict[str, Any]:
        return {"columns": [asdict(spec) for spec in self.columns]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputSchema:
        return cls([ColumnSpec(**spec) for spec in data["columns"]])


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip() == ""
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _shown(value: Any) -> str:
    text = str(value)
    return repr(text[:40] + "…") if len(text) > 40 else repr(text)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float | np.integer | np.floating):
        return float(value)
    try:
        return float(str(value).strip().replace(",", "."))
    except ValueError:
        return None


def _boolean(value: Any) -> bool | None:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return None


def _convert(spec: ColumnSpec, values: pd.Series) -> pd.Series:
    converted: list[Any] = []
    for position, value in enumerate(values.tolist(), start=1):
        where = f"Row {position}, column {spec.name!r}"
        if _is_missing(value):
            converted.append(np.nan)
            continue
        if spec.kind == "number":
            number = _number(value)
            if number is None or not np.isfinite(number):
                raise SchemaError(f"{where}: expected a number, got {_shown(value)}.")
            converted.append(number)
        elif spec.kind == "boolean":
            flag = _boolean(value)
            if flag is None:
                raise SchemaError(f"{where}: expected yes/no (true/false), got {_shown(value)}.")
            converted.append(flag)
        elif spec.kind == "date":
            moment = pd.to_datetime(str(value), errors="coerce")
            if pd.isna(moment):
                raise SchemaError(f"{where}: expected a date, got {_shown(value)}.")
            converted.append(moment)
        elif spec.kind == "category" and spec.categories is not None:
            match = _category(value, spec.categories)
            if match is _NO_MATCH:
                allowed = ", ".join(repr(str(c)) for c in spec.categories[:10])
                more = " …" if len(spec.categories) > 10 else ""
                raise SchemaError(f"{where}: {_shown(value)} is not a value seen in training ({allowed}{more}).")
            converted.append(match)
        else:
            converted.append(str(value))
    series = pd.Series(converted, name=spec.name, index=values.index)
    return _restore_dtype(series, spec)


_NO_MATCH = object()


def _category(value: Any, categories: list[Any]) -> Any:
    """The training category `value` denotes: exact, then by text (a JSON 1 for a category "1")."""
    if value in categories:
        return value
    text = str(value).strip()
    for category in categories:
        if str(category) == text:
            return category
    return _NO_MATCH


def _restore_dtype(series: pd.Series, spec: ColumnSpec) -> pd.Series:
    if spec.kind == "number":
        numbers = series.astype(float)
        # A NumPy integer column cannot hold a missing value or 2.5: those stay floats, as the model accepts.
        if spec.dtype.startswith(("int", "uint")) and numbers.notna().all() and (numbers % 1 == 0).all():
            return numbers.astype(spec.dtype)
        return numbers
    if spec.kind == "boolean":
        return series if series.isna().any() else series.astype(bool)
    if spec.kind == "date":
        return pd.to_datetime(series)
    try:
        return series.astype(spec.dtype)
    except (TypeError, ValueError):
        return series.astype(object)


def validate_rows(schema: InputSchema, rows: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Check and convert prediction rows; see the module docstring. Raises SchemaError."""
    if len(rows) == 0:
        raise SchemaError("No rows to predict: send at least one row.")
    sent = [str(c) for c in rows.columns]
    rows = rows.set_axis(sent, axis=1)
    missing = [spec.name for spec in schema.columns if spec.required and spec.name not in sent]
    if missing:
        listing = ", ".join(repr(name) for name in missing)
        noun = "column is" if len(missing) == 1 else "columns are"
        raise SchemaError(f"Required {noun} missing: {listing}.")
    known = set(schema.names)
    ignored = [name for name in sent if name not in known]
    clean = {}
    for spec in schema.columns:
        values = rows[spec.name] if spec.name in sent else pd.Series([np.nan] * len(rows), index=rows.index)
        clean[spec.name] = _convert(spec, values.reset_index(drop=True))
    return pd.DataFrame(clean, columns=schema.names), ignored
