"""Profile a table column by column: kinds, missingness, summaries, outliers and warning flags.

The profile is metadata about a dataset and never carries its rows, so it can be stored,
shown and handed to the cleaning planner (and, through `llm.py`, reduced further before
anything reaches a language model). It is computed vectorised, one sort per numeric column,
with columns spread over threads (NumPy sorts release the GIL), to keep a 1,000,000-row
upload interactive.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.model_selection import StratifiedKFold
from sklearn.tree import DecisionTreeClassifier

__all__ = [
    "FLAGS",
    "KINDS",
    "TARGET_REFUSING_FLAGS",
    "ColumnProfile",
    "DatasetProfile",
    "OutcomeSuggestion",
    "ProfileError",
    "TargetProfile",
    "profile_frame",
    "suggest_outcome",
    "target_flags",
]

KINDS = ("numeric", "categorical", "boolean", "datetime", "text", "identifier")
FLAGS = (
    "identifier",
    "personal_data",
    "constant",
    "near_constant",
    "high_cardinality",
    "many_missing",
    "leakage",
)

NEAR_CONSTANT_SHARE = 0.95
MANY_MISSING_SHARE = 0.3
HIGH_CARDINALITY = 50
SMALL_MINORITY_SHARE = 0.10
SMALL_MINORITY_ROWS = 30
LEAKAGE_BALANCED_ACCURACY = 0.98
LEAKAGE_ROC_AUC = 0.99
LEAKAGE_SCREEN_BINS = 32
LEAKAGE_SCREEN_MARGIN = 0.05
HISTOGRAM_BINS = 20
TOP_CATEGORIES = 10
PATTERN_SAMPLE = 500

_BOOLEAN_WORDS = [
    {"true", "false"},
    {"yes", "no"},
    {"y", "n"},
    {"t", "f"},
    {"0", "1"},
    {"positive", "negative"},
    {"pos", "neg"},
    {"si", "no"},
    {"ja", "nein"},
    {"oui", "non"},
]


class ProfileError(ValueError):
    """The frame cannot be profiled as asked (e.g. the target column does not exist)."""


@dataclass(frozen=True)
class ColumnProfile:
    """What one column holds, summarised without its rows."""

    name: str
    kind: str
    dtype: str
    n_missing: int
    missing_share: float
    n_unique: int
    unique_share: float
    mode_share: float = 0.0
    flags: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    numeric: dict[str, float] | None = None
    histogram: dict[str, list[float]] | None = None
    top_categories: tuple[dict[str, Any], ...] = ()
    outliers: dict[str, int] | None = None
    datetime_range: dict[str, str] | None = None
    text_stats: dict[str, float] | None = None
    # Zeros of a measurement that cannot be 0 (cholesterol, blood pressure, BMI...): missing values coded as 0.
    suspect_zeros: int = 0

    def has(self, flag: str) -> bool:
        return flag in self.flags

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "dtype": self.dtype,
            "n_missing": self.n_missing,
            "missing_share": self.missing_share,
            "n_unique": self.n_unique,
            "unique_share": self.unique_share,
            "mode_share": self.mode_share,
            "flags": list(self.flags),
            "notes": list(self.notes),
            "numeric": dict(self.numeric) if self.numeric is not None else None,
            "histogram": {key: list(value) for key, value in self.histogram.items()} if self.histogram else None,
            "top_categories": [dict(item) for item in self.top_categories],
            "outliers": dict(self.outliers) if self.outliers is not None else None,
            "datetime_range": dict(self.datetime_range) if self.datetime_range else None,
            "text_stats": dict(self.text_stats) if self.text_stats else None,
            "suspect_zeros": self.suspect_zeros,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ColumnProfile:
        known = {item.name for item in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        for key in ("flags", "notes"):
            values[key] = tuple(values.get(key) or ())
        values["top_categories"] = tuple(dict(item) for item in values.get("top_categories") or ())
        values.setdefault("dtype", "")
        values.setdefault("unique_share", 0.0)
        values.setdefault("missing_share", 0.0)
        return cls(**values)


@dataclass(frozen=True)
class TargetProfile:
    """Class balance of the chosen target column."""

    name: str
    n_classes: int
    class_counts: tuple[dict[str, Any], ...]
    minority_class: Any
    minority_count: int
    minority_share: float
    small_minority: bool
    n_missing: int = 0
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "n_classes": self.n_classes,
            "class_counts": [dict(item) for item in self.class_counts],
            "minority_class": self.minority_class,
            "minority_count": self.minority_count,
            "minority_share": self.minority_share,
            "small_minority": self.small_minority,
            "n_missing": self.n_missing,
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TargetProfile:
        known = {item.name for item in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        values["class_counts"] = tuple(dict(item) for item in values.get("class_counts") or ())
        values["warnings"] = tuple(values.get("warnings") or ())
        return cls(**values)


@dataclass(frozen=True)
class DatasetProfile:
    """Profile of a whole table: per-column profiles and, for a chosen target, its class balance.

    Deliberately holds no rows: the cleaning planner receives only this object.
    """

    n_rows: int
    n_columns: int
    columns: tuple[ColumnProfile, ...]
    target: TargetProfile | None = None
    n_duplicate_rows: int = 0
    warnings: tuple[str, ...] = field(default=())

    @property
    def column_names(self) -> list[str]:
        return [column.name for column in self.columns]

    def column(self, name: str) -> ColumnProfile:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_rows": self.n_rows,
            "n_columns": self.n_columns,
            "n_duplicate_rows": self.n_duplicate_rows,
            "columns": [column.to_dict() for column in self.columns],
            "target": self.target.to_dict() if self.target is not None else None,
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatasetProfile:
        target = data.get("target")
        return cls(
            n_rows=int(data["n_rows"]),
            n_columns=int(data["n_columns"]),
            columns=tuple(ColumnProfile.from_dict(column) for column in data["columns"]),
            target=TargetProfile.from_dict(target) if target else None,
            n_duplicate_rows=int(data.get("n_duplicate_rows", 0)),
            warnings=tuple(data.get("warnings") or ()),
        )


# --- entry point -------------------------------------------------------------------------


def profile_frame(
    frame: pd.DataFrame,
    *,
    target: str | None = None,
    leakage_sample: int = 5000,
    random_state: int = 0,
    max_workers: int | None = None,
) -> DatasetProfile:
    """Profile every column of `frame`; with `target`, add class balance and the leakage check."""
    if not isinstance(frame, pd.DataFrame):
        raise TypeError("profile_frame expects a pandas DataFrame")
    if target is not None and target not in frame.columns:
        raise ProfileError(f'The target column "{target}" is not in the dataset.')
    n_rows = len(frame)
    workers = max_workers or min(4, os.cpu_count() or 1)
    if workers > 1 and frame.shape[1] > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            columns = list(pool.map(lambda item: _profile_column(item[0], item[1], n_rows), frame.items()))
    else:
        columns = [_profile_column(name, values, n_rows) for name, values in frame.items()]

    target_profile = None
    if target is not None:
        target_profile = _profile_target(frame[target], target)
        leaks = _leaking_columns(frame, target, columns, sample=leakage_sample, random_state=random_state)
        columns = [
            _with_flag(column, "leakage", f"Predicts {target} almost perfectly on its own ({leaks[column.name]}).")
            if column.name in leaks
            else column
            for column in columns
        ]
    n_duplicates = _count_duplicate_rows(frame)
    warnings = []
    if n_duplicates:
        warnings.append(f"{n_duplicates} rows are exact duplicates of an earlier row.")
    return DatasetProfile(
        n_rows=n_rows,
        n_columns=frame.shape[1],
        columns=tuple(columns),
        target=target_profile,
        n_duplicate_rows=n_duplicates,
        warnings=tuple(warnings),
    )


def _with_flag(column: ColumnProfile, flag: str, note: str) -> ColumnProfile:
    return ColumnProfile(**{**column.__dict__, "flags": (*column.flags, flag), "notes": (*column.notes, note)})


def _count_duplicate_rows(frame: pd.DataFrame) -> int:
    if frame.empty:
        return 0
    try:
        # One 64-bit hash per row, then duplicates among hashes: far cheaper than comparing rows.
        hashes = pd.util.hash_pandas_object(frame, index=False)
        return int(hashes.duplicated().sum())
    except TypeError:
        return int(frame.astype(str).duplicated().sum())


# --- one column --------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A JSON-friendly Python value (numpy scalars, timestamps, NaN handled)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return None
        return float(value)
    if isinstance(value, pd.Timestamp | dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, bool | int | str) or value is None:
        return value
    return str(value)


def _round(value: float) -> float | None:
    if value is None or not np.isfinite(value):
        return None
    return float(value)


def _profile_column(name: Any, series: pd.Series, n_rows: int) -> ColumnProfile:
    name = str(name)
    n_missing = int(series.isna().sum())
    n_present = n_rows - n_missing
    common = {
        "name": name,
        "dtype": str(series.dtype),
        "n_missing": n_missing,
        "missing_share": n_missing / n_rows if n_rows else 0.0,
    }
    if pd.api.types.is_bool_dtype(series.dtype):
        result = _profile_categorical(series, n_present, n_rows, common, force_boolean=True)
    elif pd.api.types.is_numeric_dtype(series.dtype):
        result = _profile_numeric(series, n_present, n_rows, common)
    elif pd.api.types.is_datetime64_any_dtype(series.dtype):
        result = _profile_datetime(series, n_present, n_rows, common)
    else:
        result = _profile_categorical(series, n_present, n_rows, common)
    return _finish_flags(result, series, n_rows)


def _sorted_quantile(values: np.ndarray, q: float) -> float:
    position = q * (len(values) - 1)
    low = math.floor(position)
    high = min(low + 1, len(values) - 1)
    return float(values[low] + (values[high] - values[low]) * (position - low))


def _runs(sorted_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values of a sorted array and how often each occurs."""
    if len(sorted_values) == 0:
        return sorted_values, np.zeros(0, dtype=np.int64)
    starts = np.concatenate(([0], np.flatnonzero(sorted_values[1:] != sorted_values[:-1]) + 1))
    counts = np.diff(np.append(starts, len(sorted_values)))
    return sorted_values[starts], counts


def _profile_numeric(series: pd.Series, n_present: int, n_rows: int, common: dict) -> ColumnProfile:
    values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    values = np.sort(values[~np.isnan(values)])
    distinct, counts = _runs(values)
    n_unique = len(distinct)
    integer_valued = pd.api.types.is_integer_dtype(series.dtype) or bool(np.all(np.floor(values) == values))
    numeric = histogram = outliers = None
    if len(values):
        q1, median, q3 = (_sorted_quantile(values, q) for q in (0.25, 0.5, 0.75))
        mean = float(values.mean())
        std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        numeric = {
            "min": _round(values[0]),
            "max": _round(values[-1]),
            "mean": _round(mean),
            "std": _round(std),
            "q1": _round(q1),
            "median": _round(median),
            "q3": _round(q3),
        }
        iqr = q3 - q1
        n = len(values)
        iqr_outliers = int(
            np.searchsorted(values, q1 - 1.5 * iqr, "left") + n - np.searchsorted(values, q3 + 1.5 * iqr, "right")
        )
        z_outliers = 0
        if std > 0:
            z_outliers = int(
                np.searchsorted(values, mean - 3 * std, "left") + n - np.searchsorted(values, mean + 3 * std, "right")
            )
        outliers = {"iqr": iqr_outliers, "zscore": z_outliers}
        if values[0] < values[-1]:
            edges = np.linspace(values[0], values[-1], HISTOGRAM_BINS + 1)
            cumulative = np.searchsorted(values, edges, "left")
            bins = np.diff(cumulative)
            bins[-1] += n - cumulative[-1]
        else:
            edges, bins = np.array([values[0], values[0]]), np.array([n])
        histogram = {"edges": [float(edge) for edge in edges], "counts": [int(count) for count in bins]}
    mode_share = float(counts.max() / n_present) if n_present else 0.0

    notes: list[str] = []
    if n_unique == 2 and set(distinct.tolist()) <= {0.0, 1.0}:
        kind = "boolean"
    elif (
        integer_valued
        and n_unique == n_present
        and n_present >= 0.95 * n_rows
        and (_id_like_name(common["name"]) or n_rows >= 20)
    ):
        kind = "identifier"
        notes.append("Every row has a different whole number: it looks like an ID, not a measurement.")
    else:
        kind = "numeric"
    if kind == "boolean":
        outliers = None  # a yes/no column has no outliers, whatever its two values' quartiles say
    suspect_zeros = suspect_zero_count(common["name"], values) if kind == "numeric" else 0
    if suspect_zeros:
        notes.append(zero_as_missing_note(common["name"], suspect_zeros))
    top: tuple[dict[str, Any], ...] = ()
    if n_unique <= TOP_CATEGORIES * 2 and kind != "identifier":
        order = np.argsort(-counts, kind="stable")[:TOP_CATEGORIES]
        top = tuple(
            {"value": _plain(int(distinct[i]) if integer_valued else distinct[i]), "count": int(counts[i])}
            for i in order
        )
    return ColumnProfile(
        **common,
        kind=kind,
        n_unique=n_unique,
        unique_share=n_unique / n_rows if n_rows else 0.0,
        mode_share=mode_share,
        notes=tuple(notes),
        numeric=numeric,
        histogram=histogram,
        top_categories=top,
        outliers=outliers,
        suspect_zeros=suspect_zeros,
    )


def _profile_datetime(series: pd.Series, n_present: int, n_rows: int, common: dict) -> ColumnProfile:
    present = series.dropna()
    as_int = np.sort(present.to_numpy(dtype="datetime64[ns]").astype(np.int64))
    distinct, counts = _runs(as_int)
    date_range = None
    if n_present:
        date_range = {"min": present.min().isoformat(), "max": present.max().isoformat()}
    return ColumnProfile(
        **common,
        kind="datetime",
        n_unique=len(distinct),
        unique_share=len(distinct) / n_rows if n_rows else 0.0,
        mode_share=float(counts.max() / n_present) if n_present else 0.0,
        datetime_range=date_range,
    )


_DATE_PATTERN = re.compile(r"^\s*\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?\s*$")


def _sample_strings(series: pd.Series, size: int) -> pd.Series:
    present = series.dropna()
    if len(present) > size:
        positions = np.random.default_rng(0).choice(len(present), size=size, replace=False)
        present = present.iloc[np.sort(positions)]
    return present.astype(str)


def _profile_categorical(
    series: pd.Series, n_present: int, n_rows: int, common: dict, *, force_boolean: bool = False
) -> ColumnProfile:
    counts = series.value_counts(dropna=True)
    counts = counts[counts > 0]
    n_unique = len(counts)
    mode_share = float(counts.iloc[0] / n_present) if n_present else 0.0
    unique_share = n_unique / n_rows if n_rows else 0.0
    sample = _sample_strings(series, PATTERN_SAMPLE)
    notes: list[str] = []
    datetime_range = text_stats = None
    if len(sample):
        lengths = sample.str.len()
        words = sample.str.split().str.len()
        text_stats = {"mean_length": float(lengths.mean()), "mean_words": float(words.mean())}
    lowered = {str(value).strip().lower() for value in counts.index[:3]}
    if force_boolean or (n_unique == 2 and any(lowered <= pair for pair in _BOOLEAN_WORDS)):
        kind = "boolean"
    elif len(sample) and sample.str.match(_DATE_PATTERN).mean() >= 0.9 and _parses_as_dates(sample):
        kind = "datetime"
        parsed = pd.to_datetime(series, errors="coerce", format="mixed")
        if parsed.notna().any():
            datetime_range = {"min": parsed.min().isoformat(), "max": parsed.max().isoformat()}
        notes.append("Dates stored as text; they will be read as dates.")
    elif (
        n_unique == n_present
        and n_present >= 0.95 * n_rows
        and n_rows >= 20
        and text_stats
        and text_stats["mean_words"] <= 1.2
        and text_stats["mean_length"] <= 40
    ):
        kind = "identifier"
        notes.append("Every row has a different code: it looks like an ID, not a category.")
    elif text_stats and (
        text_stats["mean_length"] >= 50
        or (text_stats["mean_words"] >= 3 and unique_share > 0.2)
        or (text_stats["mean_words"] >= 2 and unique_share > 0.5)
    ):
        kind = "text"
    else:
        kind = "categorical"
    top: tuple[dict[str, Any], ...] = ()
    if kind != "identifier":
        top = tuple(
            {"value": _plain(value), "count": int(count)} for value, count in counts.head(TOP_CATEGORIES).items()
        )
    return ColumnProfile(
        **common,
        kind=kind,
        n_unique=n_unique,
        unique_share=unique_share,
        mode_share=mode_share,
        notes=tuple(notes),
        top_categories=top,
        datetime_range=datetime_range,
        text_stats=text_stats,
    )


def _parses_as_dates(sample: pd.Series) -> bool:
    parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
    return bool(parsed.notna().mean() >= 0.9)


# --- flags -------------------------------------------------------------------------------


def _name_tokens(name: str) -> list[str]:
    spaced = re.sub(r"([a-z])([A-Z])", r"\1_\2", name)
    return [token for token in re.split(r"[^a-z0-9]+", spaced.lower()) if token]


_ID_TOKENS = {"id", "ids", "identifier", "uuid", "guid", "key", "code", "number", "no", "nr", "num"}


def _id_like_name(name: str) -> bool:
    tokens = _name_tokens(name)
    return bool(tokens) and (tokens[-1] in _ID_TOKENS or tokens[0] in {"id", "uuid"} or name.lower().endswith("id"))


_NOT_PERSON_NAME = {
    "drug",
    "test",
    "file",
    "hospital",
    "ward",
    "unit",
    "product",
    "brand",
    "medication",
    "device",
    "lab",
    "study",
    "site",
    "class",
    "category",
    "variable",
    "column",
    "type",
    "diagnosis",
    "procedure",
    "specialty",
    "department",
    "gene",
    "organism",
    "center",
    "centre",
    "clinic",
}
_NAME_WORDS = {"surname", "firstname", "lastname", "forename", "fullname", "givenname", "familyname", "maidenname"}
_ADDRESS_WORDS = {"address", "addr", "street", "zip", "zipcode", "postcode", "postal", "housenumber"}
_PHONE_WORDS = {"phone", "telephone", "tel", "mobile", "fax", "cellphone"}
_EMAIL_WORDS = {"email", "mail", "emailaddress"}
_NATIONAL_ID_WORDS = {"ssn", "nhs", "mrn", "passport", "nino", "bsn", "sin", "insee"}


def _personal_name_reason(name: str) -> str | None:
    tokens = _name_tokens(name)
    joined = "_".join(tokens)
    token_set = set(tokens)
    if token_set & _NAME_WORDS or ("name" in token_set and not token_set & _NOT_PERSON_NAME):
        return "Column name suggests a person's name."
    if token_set & _ADDRESS_WORDS or "post_code" in joined:
        return "Column name suggests an address or postcode."
    if token_set & _PHONE_WORDS:
        return "Column name suggests a phone number."
    if token_set & _EMAIL_WORDS or "e_mail" in joined:
        return "Column name suggests an email address."
    if (
        token_set & _NATIONAL_ID_WORDS
        or "social_security" in joined
        or "national_id" in joined
        or "medical_record" in joined
        or "insurance_number" in joined
    ):
        return "Column name suggests a national ID or medical record number."
    if {"dob", "birthdate", "birthday"} & token_set or ("birth" in token_set and token_set & {"date", "day"}):
        return "Column name suggests a date of birth."
    return None


_EMAIL = re.compile(r"^[\w.+-]+@[\w-]+(\.[\w-]+)+$")
_PHONE = re.compile(r"^\+?[\d\s().-]{7,20}$")
_NATIONAL_ID = re.compile(r"^(\d{3}-\d{2}-\d{4}|\d{3} \d{3} \d{4}|[A-Z]{2}\d{6}[A-D])$")
_PERSON = re.compile(r"^[A-ZÀ-Þ][a-zß-ÿ'’-]+( [A-ZÀ-Þ][a-zß-ÿ'’-]+){1,2}$")
_RECORD_CODE = re.compile(r"^[A-Za-z]{1,4}[-_]?\d{4,}$")


def _personal_value_reason(sample: pd.Series, column: ColumnProfile) -> str | None:
    if not len(sample):
        return None
    stripped = sample.str.strip()
    if stripped.str.match(_EMAIL).mean() >= 0.5:
        return "Values look like email addresses."
    digits = stripped.str.count(r"\d")
    phone_like = stripped.str.match(_PHONE) & digits.between(7, 15) & stripped.str.contains(r"[\s()+-]|^0", regex=True)
    if phone_like.mean() >= 0.8:
        return "Values look like phone numbers."
    if stripped.str.match(_NATIONAL_ID).mean() >= 0.8:
        return "Values look like national ID numbers."
    if column.unique_share >= 0.5 and stripped.str.match(_PERSON).mean() >= 0.8:
        return "Values look like people's names."
    if column.kind == "identifier" and stripped.str.match(_RECORD_CODE).mean() >= 0.8:
        return "Values look like patient or record numbers."
    return None


def _finish_flags(column: ColumnProfile, series: pd.Series, n_rows: int) -> ColumnProfile:
    flags: list[str] = []
    notes = list(column.notes)
    if column.kind == "identifier":
        flags.append("identifier")
    reason = _personal_name_reason(column.name)
    if reason is None and column.kind in {"categorical", "text", "identifier"}:
        reason = _personal_value_reason(_sample_strings(series, PATTERN_SAMPLE), column)
    if reason:
        flags.append("personal_data")
        notes.append(reason)
    if column.n_unique <= 1:
        flags.append("constant")
        notes.append("Holds a single value (or nothing): it cannot help a model.")
    elif column.mode_share >= NEAR_CONSTANT_SHARE:
        flags.append("near_constant")
        notes.append(f"One value covers {column.mode_share:.0%} of the filled cells.")
    if column.kind == "categorical" and column.n_unique > HIGH_CARDINALITY:
        flags.append("high_cardinality")
    if column.missing_share >= MANY_MISSING_SHARE:
        flags.append("many_missing")
        notes.append(f"{column.missing_share:.0%} of the cells are missing.")
    top = column.top_categories
    if "personal_data" in flags:
        # Keep names, phone numbers and the like out of the stored profile altogether.
        top = ()
    return ColumnProfile(**{**column.__dict__, "flags": tuple(flags), "notes": tuple(notes), "top_categories": top})


# --- zeros that mean "not measured" ------------------------------------------------------
# Exports of clinical tables often write a missing measurement as 0 (Pima's BloodPressure, a registry's totChol).
# For a quantity that is never 0 in a living patient, those zeros are missing values: imputing them, rather than
# reading them as measurements, keeps them from dragging medians and models down.

# Column-name tokens (as `_name_tokens` splits them: "totChol" → tot, chol) naming such a measurement.
_NEVER_ZERO_TOKENS = {
    **dict.fromkeys(("chol", "cholesterol", "totchol", "hdl", "ldl"), "cholesterol"),
    **dict.fromkeys(("triglycerides", "triglyceride", "trig"), "triglycerides"),
    **dict.fromkeys(("bp", "sbp", "dbp", "sysbp", "diabp", "trestbps", "systolic", "diastolic"), "blood pressure"),
    **dict.fromkeys(("bloodpressure",), "blood pressure"),
    **dict.fromkeys(("bmi",), "BMI"),
    **dict.fromkeys(("glucose", "glu", "fbg", "fpg"), "glucose"),
    **dict.fromkeys(("heartrate", "pulse", "thalach", "bpm"), "heart rate"),
    **dict.fromkeys(("hba1c", "a1c"), "HbA1c"),
    **dict.fromkeys(("hemoglobin", "haemoglobin", "hgb", "hb"), "haemoglobin"),
    **dict.fromkeys(("spo2",), "oxygen saturation"),
    **dict.fromkeys(("skinthickness",), "skin-fold thickness"),
    **{word: word for word in ("weight", "height", "insulin", "creatinine", "sodium", "potassium", "albumin")},
    **{word: word for word in ("platelets", "hematocrit", "haematocrit", "temperature")},
}
_NEVER_ZERO_PAIRS = {
    ("blood", "pressure"): "blood pressure",
    ("heart", "rate"): "heart rate",
    ("body", "mass"): "BMI",
    ("skin", "thickness"): "skin-fold thickness",
    ("respiratory", "rate"): "respiratory rate",
    ("oxygen", "saturation"): "oxygen saturation",
}
# A change, a dose or a count of something can be 0 even when the measurement cannot.
_ZERO_CAN_BE_REAL = {"change", "delta", "diff", "difference", "loss", "gain", "dose", "meds", "med", "medication"}
_ZERO_CAN_BE_REAL |= {"treatment", "treated", "drug", "count", "n", "num", "number", "lowering", "flag"}


def measurement_never_zero(name: str) -> str | None:
    """What a column named `name` measures when that quantity is never 0 in a patient ("cholesterol"), else None."""
    tokens = _name_tokens(name)
    if not tokens or set(tokens) & _ZERO_CAN_BE_REAL:
        return None
    for pair, what in _NEVER_ZERO_PAIRS.items():
        if set(pair) <= set(tokens):
            return what
    for token in tokens:
        if token in _NEVER_ZERO_TOKENS:
            return _NEVER_ZERO_TOKENS[token]
    return None


def suspect_zero_count(name: str, values: np.ndarray) -> int:
    """How many zeros of a never-zero measurement the present `values` hold (0 when zeros may be real).

    Zeros count only when every other value is positive and they are a minority: a column of mostly zeros, or one
    with negative values, is some other quantity than its name suggests.
    """
    if measurement_never_zero(name) is None or not len(values):
        return 0
    n_zeros = int(np.count_nonzero(values == 0))
    if n_zeros == 0 or n_zeros * 2 >= len(values) or bool(np.any(values < 0)):
        return 0
    return n_zeros


def zero_as_missing_note(name: str, n_zeros: int) -> str:
    what = measurement_never_zero(name) or "this measurement"
    zeros = "1 zero" if n_zeros == 1 else f"{n_zeros} zeros"
    return f"{zeros}: probably a missing value coded as 0 ({what} is never 0 in a patient)."


# --- target and leakage ------------------------------------------------------------------


def _profile_target(series: pd.Series, name: str) -> TargetProfile:
    counts = series.value_counts(dropna=True)
    n_missing = int(series.isna().sum())
    warnings: list[str] = []
    n_classes = len(counts)
    if n_classes == 0:
        return TargetProfile(
            name=name,
            n_classes=0,
            class_counts=(),
            minority_class=None,
            minority_count=0,
            minority_share=0.0,
            small_minority=False,
            n_missing=n_missing,
            warnings=("The target column is empty.",),
        )
    minority_class = counts.index[-1]
    minority_count = int(counts.iloc[-1])
    minority_share = minority_count / int(counts.sum())
    small = n_classes >= 2 and (minority_share < SMALL_MINORITY_SHARE or minority_count < SMALL_MINORITY_ROWS)
    if n_classes < 2:
        warnings.append("The target has a single class; a classifier needs at least two.")
    if n_classes > 20:
        warnings.append(
            f"The target has {n_classes} different values; classification expects a few classes. "
            "Is it a measurement rather than an outcome?"
        )
    if small:
        warnings.append(
            f'The smallest class ("{_plain(minority_class)}") has {minority_count} rows ({minority_share:.1%}); '
            "estimates for it will be uncertain. Consider class weights and report sensitivity."
        )
    if n_missing:
        warnings.append(f"{n_missing} rows have no target value; they will be dropped before training.")
    return TargetProfile(
        name=name,
        n_classes=n_classes,
        class_counts=tuple({"value": _plain(value), "count": int(count)} for value, count in counts.head(50).items()),
        minority_class=_plain(minority_class),
        minority_count=minority_count,
        minority_share=float(minority_share),
        small_minority=bool(small),
        n_missing=n_missing,
        warnings=tuple(warnings),
    )


def _leaking_columns(
    frame: pd.DataFrame, target: str, columns: Iterable[ColumnProfile], *, sample: int, random_state: int
) -> dict[str, str]:
    """Columns that alone predict the target almost perfectly under cross-validation."""
    labelled = frame[target].notna().to_numpy()
    positions = np.flatnonzero(labelled)
    if len(positions) > sample:
        positions = np.sort(np.random.default_rng(random_state).choice(positions, size=sample, replace=False))
    codes, _ = pd.factorize(frame[target].iloc[positions])
    class_counts = np.bincount(codes)
    if len(class_counts) < 2 or class_counts.min() < 3:
        return {}
    folds = list(
        StratifiedKFold(n_splits=3, shuffle=True, random_state=random_state).split(np.zeros(len(codes)), codes)
    )
    leaks: dict[str, str] = {}
    for column in columns:
        if column.name == target or column.kind in {"identifier", "text"} or column.has("constant"):
            continue
        values = frame[column.name].iloc[positions]
        if pd.api.types.is_datetime64_any_dtype(values.dtype):
            values = values.astype("int64").where(values.notna())
        if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
            numbers = values.to_numpy(dtype=np.float64, na_value=np.nan)
            finite = numbers[~np.isnan(numbers)]
            # Missingness itself can leak (a test only done for positives), so it gets its own value.
            fill = (finite.min() - 1.0) if len(finite) else 0.0
            numbers = np.where(np.isnan(numbers), fill, numbers)
            reason = _numeric_leak(numbers, codes, folds, random_state)
        else:
            category_codes, _ = pd.factorize(values.astype(str).where(values.notna(), "\x00missing"))
            reason = _category_leak(category_codes, codes, folds)
        if reason:
            leaks[column.name] = reason
    return leaks


def _numeric_leak(numbers: np.ndarray, codes: np.ndarray, folds, random_state: int) -> str | None:
    if codes.max() == 1:
        auc = _binary_auc(codes, numbers)
        auc = max(auc, 1 - auc)
        if auc >= LEAKAGE_ROC_AUC:
            return f"ROC AUC {auc:.3f}"
    # A cheap screen before the trees: the majority class of each of LEAKAGE_SCREEN_BINS quantile bins, under the
    # same folds (a few bincounts, ~0.3 ms). A depth-3 tree splits the column into at most 8 intervals, which these
    # bins approximate closely, so a column whose bins stay clearly below the bar cannot reach it with a tree; only
    # the rest pay for three tree fits (~75 ms on a busy machine: 12 minutes on a 10,000-column genomics table).
    edges = np.unique(np.quantile(numbers, np.linspace(0, 1, LEAKAGE_SCREEN_BINS + 1)[1:-1]))
    screen = _category_leak_score(np.searchsorted(edges, numbers, side="right"), codes, folds)
    if screen < LEAKAGE_BALANCED_ACCURACY - LEAKAGE_SCREEN_MARGIN:
        return None
    predictions = np.empty_like(codes)
    features = numbers.reshape(-1, 1)
    for train, test in folds:
        tree = DecisionTreeClassifier(max_depth=3, random_state=random_state)
        tree.fit(features[train], codes[train])
        predictions[test] = tree.predict(features[test])
    score = _balanced_accuracy(codes, predictions)
    if score >= LEAKAGE_BALANCED_ACCURACY:
        return f"balanced accuracy {score:.3f}"
    return None


def _category_leak(categories: np.ndarray, codes: np.ndarray, folds) -> str | None:
    score = _category_leak_score(categories, codes, folds)
    if score >= LEAKAGE_BALANCED_ACCURACY:
        return f"balanced accuracy {score:.3f}"
    return None


def _category_leak_score(categories: np.ndarray, codes: np.ndarray, folds) -> float:
    """Cross-validated balanced accuracy of predicting each category's majority class (seen in the training fold)."""
    n_classes = int(codes.max()) + 1
    n_categories = int(categories.max()) + 1
    predictions = np.empty_like(codes)
    for train, test in folds:
        table = np.bincount(categories[train] * n_classes + codes[train], minlength=n_categories * n_classes)
        table = table.reshape(n_categories, n_classes)
        majority = np.bincount(codes[train], minlength=n_classes).argmax()
        per_category = np.where(table.sum(axis=1) > 0, table.argmax(axis=1), majority)
        predictions[test] = per_category[categories[test]]
    return _balanced_accuracy(codes, predictions)


# scikit-learn's metric functions validate their inputs on every call (~5-10 ms each): thousands of columns made
# that the whole cost of the leakage check. These are the same formulas on arrays already known to be clean.
def _binary_auc(codes: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC of `scores` for codes 0/1 (Mann-Whitney U with average ranks for ties), as roc_auc_score."""
    ranks = rankdata(scores)
    positives = codes == 1
    n_positive = int(positives.sum())
    n_negative = len(codes) - n_positive
    return float((ranks[positives].sum() - n_positive * (n_positive + 1) / 2) / (n_positive * n_negative))


def _balanced_accuracy(codes: np.ndarray, predictions: np.ndarray) -> float:
    """Mean recall over the classes present in `codes`, as balanced_accuracy_score."""
    n_classes = int(max(codes.max(), predictions.max())) + 1
    support = np.bincount(codes, minlength=n_classes)
    hits = np.bincount(codes[codes == predictions], minlength=n_classes)
    present = support > 0
    return float((hits[present] / support[present]).mean())


# --- the outcome column ------------------------------------------------------------------
# Which column is the outcome is the one choice that, made wrong, silently trains a useless model (a run that
# "predicts" the patient's name). The pages pre-select `suggest_outcome`'s column with its reason for the user
# to confirm, and training refuses a target carrying one of TARGET_REFUSING_FLAGS unless the user insists.

TARGET_REFUSING_FLAGS = ("personal_data", "identifier", "high_cardinality")
OUTCOME_MAX_CLASSES = 10
# Name words, as tokens of the column name ("TenYearCHD" → ten, year, chd), and how strongly each says "outcome".
_OUTCOME_WORDS = {
    **dict.fromkeys(("outcome", "outcomes", "target", "label", "event", "events", "endpoint"), 6),
    **dict.fromkeys(("death", "died", "dead", "deceased", "mortality", "diagnosis", "dx", "chd", "cvd"), 6),
    **dict.fromkeys(("survival", "survived", "readmission", "readmitted", "relapse", "recurrence"), 4),
    **dict.fromkeys(("disease", "malignant", "malignancy", "cancer", "stroke", "complication", "response"), 3),
    **dict.fromkeys(("class", "result", "y", "infection", "sepsis", "failure", "positive"), 2),
}
# Words that mark a condition present before the outcome (Framingham's prevalentStroke), i.e. a predictor.
_BASELINE_WORDS = {"prevalent", "prev", "history", "hx", "prior", "previous", "baseline", "past", "current"}


@dataclass(frozen=True)
class OutcomeSuggestion:
    """The column most likely to be the outcome, why, and the other plausible ones (best first)."""

    column: str | None
    reason: str
    candidates: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "reason": self.reason, "candidates": list(self.candidates)}


def target_flags(column: ColumnProfile) -> tuple[str, ...]:
    """The flags that make `column` a wrong outcome: identifiers, personal data and many-valued text.

    Free text with more distinct values than HIGH_CARDINALITY counts as `high_cardinality`: as an outcome it
    is as many classes as rows, whatever the profiler called its kind.
    """
    flags = [flag for flag in TARGET_REFUSING_FLAGS if column.has(flag)]
    if column.kind == "identifier" and "identifier" not in flags:
        flags.append("identifier")
    if column.kind == "text" and column.n_unique > HIGH_CARDINALITY and "high_cardinality" not in flags:
        flags.append("high_cardinality")
    return tuple(flags)


def _outcome_name_weight(name: str) -> tuple[int, str | None]:
    tokens = _name_tokens(name)
    if set(tokens) & _BASELINE_WORDS:
        return -4, None
    best_weight, best_word = 0, None
    for token in tokens:
        weight = _OUTCOME_WORDS.get(token, 0)
        if token in {"y", "class", "label"} and len(tokens) > 1:
            weight = min(weight, 1)  # "y" alone is an outcome; "y_coordinate" or "age_class" is not
        if weight > best_weight:
            best_weight, best_word = weight, token
    return best_weight, best_word


def _outcome_score(column: ColumnProfile, position: int, n_columns: int) -> tuple[float, str | None] | None:
    """(score, name word that matched) for a plausible outcome column; None for a column that cannot be one."""
    if target_flags(column) or column.kind in {"identifier", "text", "datetime"} or column.has("constant"):
        return None
    if not 2 <= column.n_unique <= OUTCOME_MAX_CLASSES:
        return None
    score = 3.0 if column.n_unique == 2 else (1.5 if column.n_unique <= 5 else 0.5)
    weight, word = _outcome_name_weight(column.name)
    score += weight
    if position == n_columns - 1:
        score += 1.0  # tables conventionally end with the outcome
    if column.has("many_missing"):
        score -= 1.0
    return score, word


def _values_text(column: ColumnProfile) -> str:
    counts = [f"{item['value']}: {item['count']}" for item in column.top_categories[:4]]
    shape = "two values" if column.n_unique == 2 else f"{column.n_unique} values"
    return f"{shape} ({', '.join(counts)})" if counts else shape


def suggest_outcome(profile: DatasetProfile) -> OutcomeSuggestion:
    """The most likely outcome column of a profiled table, never an identifier, personal data or free text.

    Plausible outcomes have 2 to OUTCOME_MAX_CLASSES values; two-valued columns and names that read like an
    outcome (outcome, target, event, death, diagnosis, CHD...) rank first, the last column of the table breaks
    ties. The reason is a sentence for the user, who confirms or changes the choice.
    """
    n_columns = len(profile.columns)
    scored = []
    for position, column in enumerate(profile.columns):
        result = _outcome_score(column, position, n_columns)
        if result is not None:
            scored.append((result[0], position, column, result[1]))
    if not scored:
        return OutcomeSuggestion(
            column=None,
            reason="No column looks like an outcome (a yes/no or few-valued column that is not an identifier "
            "or personal data): choose the outcome yourself.",
        )
    # Best score first; among equals the later column (outcomes usually come last).
    scored.sort(key=lambda item: (item[0], item[1]), reverse=True)
    _score, position, column, word = scored[0]
    why = [f"the name “{column.name}” reads like an outcome"] if word else []
    why.append(f"the column has {_values_text(column)}")
    if not word and position == n_columns - 1:
        why.append("it is the table's last column, where outcomes usually are")
    reason = "Suggested because " + (", ".join(why[:-1]) + " and " + why[-1] if len(why) > 1 else why[0]) + "."
    if not word:
        reason += " No column name says which column is the outcome: check that this is the one."
    return OutcomeSuggestion(
        column=column.name,
        reason=reason,
        candidates=tuple(item[2].name for item in scored[1:6]),
    )
