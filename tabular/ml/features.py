"""Derived features on a dataset: date parts, ratios, products, polynomial terms and text statistics.

`extract_features(frame, spec)` returns a new frame (the original columns plus the derived
ones) and the names it added; the caller stores that as a new dataset version.
"""

from __future__ import annotations

from itertools import combinations_with_replacement
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["FeatureSpecError", "extract_features", "OPERATIONS"]

OPERATIONS = ("datetime_parts", "ratios", "products", "polynomial", "text_stats")
DATE_PARTS = ("year", "month", "day", "weekday")
MAX_POLYNOMIAL_COLUMNS = 10
MAX_POLYNOMIAL_DEGREE = 3


class FeatureSpecError(ValueError):
    """A feature-extraction request that names missing columns, wrong kinds or unknown operations."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _require_columns(frame: pd.DataFrame, names: Any, operation: str) -> list[str]:
    if not isinstance(names, list | tuple) or not all(isinstance(name, str) for name in names):
        raise FeatureSpecError(f"{operation}: give a list of column names.")
    missing = [name for name in names if name not in frame.columns]
    if missing:
        raise FeatureSpecError(f"{operation}: not columns of this dataset: {', '.join(missing)}.")
    return list(names)


def _numeric(frame: pd.DataFrame, name: str, operation: str) -> pd.Series:
    values = frame[name]
    if pd.api.types.is_bool_dtype(values.dtype) or not pd.api.types.is_numeric_dtype(values.dtype):
        raise FeatureSpecError(f"{operation}: column {name!r} is not numeric.")
    return values.astype("float64")


def _pairs(frame: pd.DataFrame, pairs: Any, operation: str) -> list[tuple[str, str]]:
    if not isinstance(pairs, list | tuple) or not pairs:
        raise FeatureSpecError(f'{operation}: give a list of column pairs, e.g. [["weight", "height"]].')
    checked = []
    for pair in pairs:
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise FeatureSpecError(f"{operation}: each entry must be a pair of two column names.")
        first, second = _require_columns(frame, list(pair), operation)
        _numeric(frame, first, operation)
        _numeric(frame, second, operation)
        checked.append((first, second))
    return checked


def _dates(frame: pd.DataFrame, name: str) -> pd.Series:
    values = frame[name]
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return values
    if pd.api.types.is_numeric_dtype(values.dtype):
        raise FeatureSpecError(f"datetime_parts: column {name!r} holds numbers, not dates.")
    parsed = pd.to_datetime(values, errors="coerce", format="mixed")
    present = values.notna().sum()
    if present == 0 or parsed.notna().sum() < 0.8 * present:
        raise FeatureSpecError(f"datetime_parts: column {name!r} does not hold readable dates.")
    return parsed


def extract_features(frame: pd.DataFrame, spec: dict[str, Any]) -> tuple[pd.DataFrame, list[str]]:
    """Add the features described by `spec`; return the new frame and the names of the added columns.

    spec keys: "datetime_parts": [cols], "ratios": [[a, b]], "products": [[a, b]],
    "polynomial": {"columns": [...], "degree": 2}, "text_stats": [cols]. A ratio with a zero
    denominator is missing, not infinite.
    """
    if not isinstance(spec, dict) or not spec:
        raise FeatureSpecError(f"Choose at least one operation: {', '.join(OPERATIONS)}.")
    unknown = [key for key in spec if key not in OPERATIONS]
    if unknown:
        raise FeatureSpecError(f"Unknown operation(s): {', '.join(unknown)}. Choose from: {', '.join(OPERATIONS)}.")
    new: dict[str, pd.Series] = {}

    for name in _require_columns(frame, spec.get("datetime_parts", []), "datetime_parts"):
        dates = _dates(frame, name)
        for part in DATE_PARTS:
            accessor = "day_of_week" if part == "weekday" else part
            new[f"{name}_{part}"] = getattr(dates.dt, accessor).astype("float64")

    if "ratios" in spec:
        for numerator, denominator in _pairs(frame, spec["ratios"], "ratios"):
            below = frame[denominator].astype("float64")
            new[f"{numerator}_per_{denominator}"] = frame[numerator].astype("float64") / below.where(below != 0)

    if "products" in spec:
        for first, second in _pairs(frame, spec["products"], "products"):
            new[f"{first}_x_{second}"] = frame[first].astype("float64") * frame[second].astype("float64")

    if "polynomial" in spec:
        options = spec["polynomial"]
        if not isinstance(options, dict):
            raise FeatureSpecError('polynomial: give {"columns": [...], "degree": 2}.')
        columns = _require_columns(frame, options.get("columns", []), "polynomial")
        degree = options.get("degree", 2)
        if isinstance(degree, bool) or not isinstance(degree, int) or not 2 <= degree <= MAX_POLYNOMIAL_DEGREE:
            raise FeatureSpecError(f"polynomial: degree must be a whole number from 2 to {MAX_POLYNOMIAL_DEGREE}.")
        if not 1 <= len(columns) <= MAX_POLYNOMIAL_COLUMNS:
            raise FeatureSpecError(f"polynomial: choose 1 to {MAX_POLYNOMIAL_COLUMNS} numeric columns.")
        values = {name: _numeric(frame, name, "polynomial") for name in columns}
        for power in range(2, degree + 1):
            for combination in combinations_with_replacement(columns, power):
                term = _term_name(combination)
                product = values[combination[0]]
                for name in combination[1:]:
                    product = product * values[name]
                new[term] = product

    for name in _require_columns(frame, spec.get("text_stats", []), "text_stats"):
        values = frame[name]
        if pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_datetime64_any_dtype(values.dtype):
            raise FeatureSpecError(f"text_stats: column {name!r} does not hold text.")
        text = values.astype("str").where(values.notna())
        new[f"{name}_length"] = text.str.len().astype("float64")
        new[f"{name}_words"] = text.str.split().str.len().astype("float64")

    clashes = [name for name in new if name in frame.columns]
    if clashes:
        raise FeatureSpecError(f"These features already exist as columns: {', '.join(clashes)}.")
    if not new:
        raise FeatureSpecError("The request produces no new feature; name at least one column.")
    added = pd.DataFrame(new, index=frame.index).replace([np.inf, -np.inf], np.nan)
    return pd.concat([frame, added], axis=1), list(new)


def _term_name(combination: tuple[str, ...]) -> str:
    counts: dict[str, int] = {}
    for name in combination:
        counts[name] = counts.get(name, 0) + 1
    return "_x_".join(name if power == 1 else f"{name}^{power}" for name, power in counts.items())
