"""The Data Cleaner: a reviewable cleaning plan made from a profile, compiled to a scikit-learn pipeline.

Three layers, kept apart on purpose:

* `plan_cleaning(profile, ...)` sees only a `DatasetProfile` (metadata). It refuses rows at
  run time and its signature says so, so neither it nor an LLM refining its output can
  leak patient values.
* `build_preprocessor(plan)` returns an *unfitted* `Pipeline`. Training fits it inside each
  cross-validation fold, so no statistic (median, fences, category frequencies) leaks from
  validation rows, and serving applies exactly what was validated.
* `apply_row_steps` drops rows once (missing target, exact duplicates, chosen outlier rows)
  and counts why; `cleaning_report` describes what the plan does to a given frame.

A numeric column can read its zeros as missing (`ColumnPlan.zeros_as_missing`, proposed by the profiler for
measurements that are never 0 in a patient, such as cholesterol or blood pressure): `ZerosToMissing` then turns
them into missing values inside the pipeline, before clipping and imputation, in training and in serving alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.experimental import enable_iterative_imputer  # noqa: F401  (registers IterativeImputer)
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, OrdinalEncoder, RobustScaler, StandardScaler
from sklearn.utils.validation import check_is_fitted

from .profiling import ColumnProfile, DatasetProfile

__all__ = [
    "ACTIONS",
    "DATETIME_PARTS",
    "ENCODE_METHODS",
    "IMPUTE_METHODS",
    "OUTLIER_METHODS",
    "SCALE_METHODS",
    "CategoryCaster",
    "CleaningOptions",
    "CleaningPlan",
    "ColumnPlan",
    "DatetimeExpander",
    "FrequencyEncoder",
    "IQRClipper",
    "PlanError",
    "ToNumeric",
    "ZerosToMissing",
    "apply_row_steps",
    "build_preprocessor",
    "cleaning_report",
    "plan_cleaning",
    "split_features_target",
]

ACTIONS = ("keep", "drop")
IMPUTE_METHODS = ("median", "mean", "most_frequent", "constant", "knn", "iterative")
CATEGORICAL_IMPUTE_METHODS = ("most_frequent", "constant")
OUTLIER_METHODS = ("keep", "clip", "drop_rows")
ENCODE_METHODS = ("none", "onehot", "ordinal", "frequency", "datetime")
HIGH_CARDINALITY_ENCODINGS = ("frequency", "ordinal")
SCALE_METHODS = ("standard", "minmax", "robust", "none")
DATETIME_PARTS = ("year", "month", "day", "weekday", "hour", "dayofyear", "quarter")
KINDS = ("numeric", "categorical", "boolean", "datetime", "text", "identifier")
IQR_FACTOR = 1.5
MISSING_CATEGORY = "missing"


class PlanError(ValueError):
    """A cleaning plan (or its options) that cannot be applied; `message` says what to change."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _check_choice(value: Any, allowed: Iterable[str], what: str) -> None:
    allowed = tuple(allowed)
    if value not in allowed:
        raise PlanError(f"Unknown {what} {value!r}; choose one of: {', '.join(allowed)}.")


@dataclass
class CleaningOptions:
    """Defaults the planner applies to every column; each can then be edited per column."""

    missing_drop_threshold: float = 0.5
    numeric_imputation: str = "median"
    categorical_imputation: str = "most_frequent"
    outliers: str = "keep"
    scaling: str = "standard"
    one_hot_max_categories: int = 10
    high_cardinality_encoding: str = "frequency"
    drop_duplicates: bool = True
    datetime_parts: tuple[str, ...] = ("year", "month", "weekday")
    drop_near_constant: bool = False
    drop_leakage: bool = False

    def __post_init__(self) -> None:
        self.datetime_parts = tuple(self.datetime_parts)
        self.validate()

    def validate(self) -> None:
        try:
            threshold = float(self.missing_drop_threshold)
        except (TypeError, ValueError) as error:
            raise PlanError("missing_drop_threshold must be a number between 0 and 1.") from error
        if not 0 < threshold <= 1:
            raise PlanError("missing_drop_threshold must be between 0 (exclusive) and 1.")
        _check_choice(self.numeric_imputation, IMPUTE_METHODS, "numeric imputation")
        _check_choice(self.categorical_imputation, CATEGORICAL_IMPUTE_METHODS, "categorical imputation")
        _check_choice(self.outliers, OUTLIER_METHODS, "outlier handling")
        _check_choice(self.scaling, SCALE_METHODS, "scaling")
        _check_choice(self.high_cardinality_encoding, HIGH_CARDINALITY_ENCODINGS, "high-cardinality encoding")
        if isinstance(self.one_hot_max_categories, bool) or not isinstance(self.one_hot_max_categories, int):
            raise PlanError("one_hot_max_categories must be a whole number.")
        if self.one_hot_max_categories < 2:
            raise PlanError("one_hot_max_categories must be at least 2.")
        if not self.datetime_parts:
            raise PlanError("Choose at least one datetime part.")
        for part in self.datetime_parts:
            _check_choice(part, DATETIME_PARTS, "datetime part")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["datetime_parts"] = list(self.datetime_parts)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> CleaningOptions:
        known = {item.name for item in fields(cls)}
        unknown = set(data or {}) - known
        if unknown:
            raise PlanError(f"Unknown option(s): {', '.join(sorted(unknown))}.")
        return cls(**(data or {}))


@dataclass
class ColumnPlan:
    """What happens to one column: kept or dropped (and why), imputation, outliers, encoding, scaling."""

    name: str
    action: str = "keep"
    reason: str = ""
    impute: str = "median"
    outliers: str = "keep"
    encode: str = "none"
    scale: str = "standard"
    kind: str = "numeric"
    fill_value: float | str | None = None
    # Read 0 as a missing value (then imputed): for measurements that are never 0 in a patient.
    zeros_as_missing: bool = False
    # Zeros the profiler judged to be missing values coded as 0; the plan page offers the rule when > 0.
    n_suspect_zeros: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ColumnPlan:
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            raise PlanError("Each column of the plan needs a name.")
        known = {item.name for item in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        if "zeros_as_missing" in values:
            values["zeros_as_missing"] = _as_bool(values["zeros_as_missing"], f"zeros_as_missing for {data['name']!r}")
        return cls(**values)

    def validate(self, datetime_parts: tuple[str, ...] = ()) -> None:
        _check_choice(self.action, ACTIONS, f"action for {self.name!r}:")
        if self.action == "drop":
            return
        _check_choice(self.impute, IMPUTE_METHODS, f"imputation for {self.name!r}:")
        _check_choice(self.outliers, OUTLIER_METHODS, f"outlier handling for {self.name!r}:")
        _check_choice(self.encode, ENCODE_METHODS, f"encoding for {self.name!r}:")
        _check_choice(self.scale, SCALE_METHODS, f"scaling for {self.name!r}:")
        if self.kind not in KINDS:
            raise PlanError(f"Unknown kind {self.kind!r} for {self.name!r}.")
        categorical = self.encode in {"onehot", "ordinal", "frequency"}
        if categorical and self.impute not in CATEGORICAL_IMPUTE_METHODS:
            raise PlanError(
                f"Column {self.name!r} is encoded as categories; impute it with most_frequent or constant, "
                f"not {self.impute}."
            )
        if self.outliers != "keep" and self.encode != "none":
            raise PlanError(f"Outlier handling applies to numeric columns only; set it to keep for {self.name!r}.")
        if self.encode == "none" and self.kind in {"categorical", "text", "identifier"}:
            raise PlanError(
                f"Column {self.name!r} holds {self.kind} values; choose an encoding (onehot, ordinal or frequency)."
            )
        if self.kind == "datetime" and self.encode not in {"datetime", "ordinal", "frequency", "onehot"}:
            raise PlanError(f"Column {self.name!r} holds dates; choose the datetime encoding.")
        if self.zeros_as_missing and (self.encode != "none" or self.kind != "numeric"):
            raise PlanError(
                f"Reading 0 as missing applies to numeric measurements only; switch it off for {self.name!r}."
            )


def _as_bool(value: Any, what: str) -> bool:
    """A yes/no setting sent as JSON (true/false) or by a form ("true"/"false", "1"/"0")."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"true", "1", "yes", "on"}:
        return True
    if text in {"false", "0", "no", "off", ""}:
        return False
    raise PlanError(f"{what} must be true or false, not {value!r}.")


@dataclass
class CleaningPlan:
    """The reviewed recipe for one dataset and target: per-column decisions plus row-level steps."""

    target: str
    columns: list[ColumnPlan]
    options: CleaningOptions = field(default_factory=CleaningOptions)
    row_steps: dict[str, bool] = field(default_factory=lambda: {"drop_missing_target": True, "drop_duplicates": True})

    @property
    def feature_columns(self) -> list[str]:
        """The kept columns, in dataset order: the input schema of the preprocessor."""
        return [column.name for column in self.columns if column.action == "keep"]

    @property
    def dropped_columns(self) -> dict[str, str]:
        return {column.name: column.reason for column in self.columns if column.action == "drop"}

    def column(self, name: str) -> ColumnPlan:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "columns": [column.to_dict() for column in self.columns],
            "options": self.options.to_dict(),
            "row_steps": dict(self.row_steps),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CleaningPlan:
        if not isinstance(data, dict):
            raise PlanError("The plan must be an object with a target and columns.")
        columns = data.get("columns")
        if not isinstance(columns, list):
            raise PlanError("The plan needs a list of columns.")
        options = data.get("options")
        row_steps = data.get("row_steps") or {}
        if not isinstance(row_steps, dict):
            raise PlanError("row_steps must be an object.")
        return cls(
            target=data.get("target"),
            columns=[ColumnPlan.from_dict(column) for column in columns],
            options=CleaningOptions.from_dict(options) if options is not None else CleaningOptions(),
            row_steps={
                "drop_missing_target": bool(row_steps.get("drop_missing_target", True)),
                "drop_duplicates": bool(row_steps.get("drop_duplicates", True)),
            },
        )

    def validate(self, known_columns: Iterable[str] | None = None) -> None:
        """Raise `PlanError` unless the plan can be compiled (and, given `known_columns`, matches them)."""
        if not isinstance(self.target, str) or not self.target:
            raise PlanError("The plan needs a target column.")
        self.options.validate()
        names = [column.name for column in self.columns]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise PlanError(f"Columns listed more than once: {', '.join(duplicates)}.")
        if self.target in names:
            if self.column(self.target).action == "drop":
                raise PlanError(f"The target column {self.target!r} cannot be dropped.")
            raise PlanError(f"The target column {self.target!r} cannot also be a predictor.")
        if known_columns is not None:
            known = set(known_columns)
            unknown = [name for name in names if name not in known]
            if unknown:
                raise PlanError(f"Not columns of this dataset: {', '.join(unknown)}.")
            if self.target not in known:
                raise PlanError(f"The target {self.target!r} is not a column of this dataset.")
        for column in self.columns:
            column.validate(self.options.datetime_parts)
        if not self.feature_columns:
            raise PlanError("The plan drops every column; keep at least one predictor.")


# --- planning from the profile -----------------------------------------------------------


def plan_cleaning(profile: DatasetProfile, target: str, options: CleaningOptions | None = None) -> CleaningPlan:
    """The rule-based plan for `target`, decided from the profile's metadata alone.

    Rows are refused on purpose: the planner (and an LLM asked to refine it) must never see
    patient values, so only a `DatasetProfile` — which carries no rows — is accepted.
    """
    if not isinstance(profile, DatasetProfile):
        raise TypeError(
            f"plan_cleaning takes a DatasetProfile (metadata only), not {type(profile).__name__}; "
            "run profile_frame() first. Rows never reach the planner."
        )
    if options is None:
        options = CleaningOptions()
    elif not isinstance(options, CleaningOptions):
        raise TypeError("options must be a CleaningOptions")
    if target not in profile.column_names:
        raise PlanError(f"The target column {target!r} is not in the dataset.")
    columns = [_plan_column(column, options) for column in profile.columns if column.name != target]
    plan = CleaningPlan(
        target=target,
        columns=columns,
        options=options,
        row_steps={"drop_missing_target": True, "drop_duplicates": bool(options.drop_duplicates)},
    )
    return plan


def _personal_reason(column: ColumnProfile) -> str:
    detail = next((note for note in column.notes if "suggest" in note or "look like" in note), "")
    return "personal data" + (f": {detail[0].lower()}{detail[1:].rstrip('.')}" if detail else "")


def _drop_reason(column: ColumnProfile, options: CleaningOptions) -> str | None:
    if column.has("personal_data"):
        return _personal_reason(column)
    if column.has("identifier") or column.kind == "identifier":
        return "identifier: a different value in every row carries no signal and can re-identify patients"
    if column.has("constant"):
        return "constant: the same value (or nothing) in every row"
    if column.missing_share > options.missing_drop_threshold:
        return (
            f"too many missing: {column.missing_share:.0%} of cells are empty "
            f"(limit {options.missing_drop_threshold:.0%})"
        )
    if column.kind == "text":
        return "free text: derive text features (length, word counts) before using it"
    if options.drop_near_constant and column.has("near_constant"):
        return f"near-constant: one value covers {column.mode_share:.0%} of rows"
    if options.drop_leakage and column.has("leakage"):
        return "possible leakage: predicts the target almost perfectly on its own"
    return None


def _is_numeric_dtype_name(dtype: str) -> bool:
    return dtype.lower().startswith(("int", "uint", "float", "bool"))


def _plan_column(column: ColumnProfile, options: CleaningOptions) -> ColumnPlan:
    reason = _drop_reason(column, options)
    if reason is not None:
        return ColumnPlan(
            name=column.name,
            action="drop",
            reason=reason,
            impute="most_frequent",
            outliers="keep",
            encode="none",
            scale="none",
            kind=column.kind,
        )
    notes = []
    if column.has("leakage"):
        notes.append("flagged as possible leakage: review before training")
    if column.n_missing:
        notes.append(f"{column.n_missing} missing cells imputed")
    if column.kind == "numeric":
        plan = ColumnPlan(
            name=column.name,
            reason="numeric",
            impute=options.numeric_imputation,
            outliers=options.outliers,
            encode="none",
            scale=options.scaling,
            kind="numeric",
            n_suspect_zeros=column.suspect_zeros,
        )
        if column.suspect_zeros:
            notes.append(f"{column.suspect_zeros} zeros probably mean missing")
    elif column.kind == "boolean":
        numeric = _is_numeric_dtype_name(column.dtype)
        plan = ColumnPlan(
            name=column.name,
            reason="yes/no",
            impute="most_frequent",
            encode="none" if numeric else "ordinal",
            scale="none",
            kind="boolean",
        )
    elif column.kind == "datetime":
        plan = ColumnPlan(
            name=column.name,
            reason=f"date expanded to {', '.join(options.datetime_parts)}",
            impute="median",
            encode="datetime",
            scale=options.scaling,
            kind="datetime",
        )
    else:
        low = column.n_unique <= options.one_hot_max_categories
        encode = "onehot" if low else options.high_cardinality_encoding
        plan = ColumnPlan(
            name=column.name,
            reason=f"categorical ({column.n_unique} categories, {encode})",
            impute=options.categorical_imputation,
            encode=encode,
            scale="none",
            kind="categorical",
            fill_value=MISSING_CATEGORY if options.categorical_imputation == "constant" else None,
        )
    if notes:
        plan.reason = f"{plan.reason}; {'; '.join(notes)}"
    return plan


# --- transformers ------------------------------------------------------------------------


def _as_frame(X: Any) -> pd.DataFrame:
    if isinstance(X, pd.DataFrame):
        return X
    return pd.DataFrame(np.asarray(X, dtype=object) if np.ndim(X) == 2 else np.asarray(X).reshape(-1, 1))


def _remember_input(estimator: BaseEstimator, X: Any) -> pd.DataFrame:
    frame = _as_frame(X)
    estimator.n_features_in_ = frame.shape[1]
    if isinstance(X, pd.DataFrame):
        estimator.feature_names_in_ = np.asarray([str(name) for name in X.columns], dtype=object)
    return frame


def iqr_fences(values: np.ndarray, factor: float = IQR_FACTOR) -> tuple[float, float]:
    """Tukey fences (Q1 - factor·IQR, Q3 + factor·IQR), ignoring missing values."""
    finite = values[~np.isnan(values)]
    if len(finite) == 0:
        return -np.inf, np.inf
    q1, q3 = np.percentile(finite, [25, 75])
    iqr = q3 - q1
    return float(q1 - factor * iqr), float(q3 + factor * iqr)


class ToNumeric(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Read every column as numbers; text that is not a number becomes missing (and is imputed next)."""

    def fit(self, X, y=None):
        _remember_input(self, X)
        return self

    def transform(self, X):
        check_is_fitted(self, "n_features_in_")
        frame = _as_frame(X)
        return (
            np.column_stack(
                [
                    pd.to_numeric(frame.iloc[:, i], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
                    for i in range(frame.shape[1])
                ]
            )
            if frame.shape[1]
            else np.empty((len(frame), 0))
        )


class ZerosToMissing(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Read every 0 as a missing value (numeric input): a measurement that is never 0 was not taken."""

    # Lets readers of a fitted pipeline (tabular.ml.inputs) tell a clinician that 0 counts as blank.
    reads_zero_as_missing = True

    def fit(self, X, y=None):
        _remember_input(self, X)
        return self

    def transform(self, X):
        check_is_fitted(self, "n_features_in_")
        values = _as_frame(X).to_numpy(dtype=np.float64, na_value=np.nan)
        return np.where(values == 0, np.nan, values)


class IQRClipper(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Clip each numeric column to fences learned in `fit` (Tukey's IQR rule); missing values pass through."""

    def __init__(self, factor: float = IQR_FACTOR):
        self.factor = factor

    def fit(self, X, y=None):
        frame = _remember_input(self, X)
        values = frame.to_numpy(dtype=np.float64, na_value=np.nan)
        fences = [iqr_fences(values[:, i], self.factor) for i in range(values.shape[1])]
        self.lower_ = np.array([low for low, _ in fences])
        self.upper_ = np.array([high for _, high in fences])
        return self

    def transform(self, X):
        check_is_fitted(self, "lower_")
        values = _as_frame(X).to_numpy(dtype=np.float64, na_value=np.nan)
        return np.clip(values, self.lower_, self.upper_)

    def count_clipped(self, X) -> np.ndarray:
        """How many values of each column lie outside the fences."""
        check_is_fitted(self, "lower_")
        values = _as_frame(X).to_numpy(dtype=np.float64, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            return ((values < self.lower_) | (values > self.upper_)).sum(axis=0)


def _category_text(value: Any) -> Any:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA or value is pd.NaT:
        return np.nan
    if isinstance(value, float | np.floating) and float(value).is_integer():
        # 1.0 (a column made float by a blank) and 1 (a JSON request) are the same category.
        return str(int(value))
    if isinstance(value, np.generic):
        value = value.item()
    return str(value)


class CategoryCaster(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Turn category values into strings (missing stays missing) so encoders see one consistent type."""

    def fit(self, X, y=None):
        _remember_input(self, X)
        return self

    def transform(self, X):
        check_is_fitted(self, "n_features_in_")
        frame = _as_frame(X)
        out = np.empty(frame.shape, dtype=object)
        for i in range(frame.shape[1]):
            out[:, i] = [_category_text(value) for value in frame.iloc[:, i].to_numpy(dtype=object)]
        return out


class FrequencyEncoder(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Replace each category by its share of the training rows; categories unseen in training get 0."""

    def fit(self, X, y=None):
        frame = _remember_input(self, X)
        self.frequencies_ = [
            frame.iloc[:, i].value_counts(normalize=True, dropna=False).to_dict() for i in range(frame.shape[1])
        ]
        return self

    def transform(self, X):
        check_is_fitted(self, "frequencies_")
        frame = _as_frame(X)
        out = np.empty(frame.shape, dtype=np.float64)
        for i, frequencies in enumerate(self.frequencies_):
            out[:, i] = frame.iloc[:, i].map(frequencies).astype(np.float64).fillna(0.0).to_numpy()
        return out


class DatetimeExpander(TransformerMixin, BaseEstimator):
    """Expand each date column into numeric parts (year, month, weekday…); unreadable dates become missing."""

    def __init__(self, parts: tuple[str, ...] = ("year", "month", "weekday")):
        self.parts = parts

    def fit(self, X, y=None):
        _remember_input(self, X)
        for part in self.parts:
            _check_choice(part, DATETIME_PARTS, "datetime part")
        return self

    def transform(self, X):
        check_is_fitted(self, "n_features_in_")
        frame = _as_frame(X)
        blocks = []
        for i in range(frame.shape[1]):
            dates = _to_datetime(frame.iloc[:, i])
            for part in self.parts:
                accessor = {"weekday": "day_of_week", "dayofyear": "day_of_year"}.get(part, part)
                blocks.append(getattr(dates.dt, accessor).astype("float64").to_numpy())
        if not blocks:
            return np.empty((len(frame), 0))
        return np.column_stack(blocks)

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self, "n_features_in_")
        if input_features is None:
            input_features = getattr(self, "feature_names_in_", [f"x{i}" for i in range(self.n_features_in_)])
        return np.asarray([f"{name}_{part}" for name in input_features for part in self.parts], dtype=object)


def _to_datetime(values: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return values
    return pd.to_datetime(values, errors="coerce", format="mixed")


# --- compiling the plan ------------------------------------------------------------------


def _imputer(column: ColumnPlan, *, categorical: bool) -> BaseEstimator:
    if column.impute == "knn":
        return KNNImputer(n_neighbors=5, keep_empty_features=True)
    if column.impute == "iterative":
        # keep_empty_features=True writes into its (read-only, copy-on-write) input under pandas 3.
        return IterativeImputer(random_state=0, max_iter=10)
    fill = column.fill_value
    if column.impute == "constant" and fill is None:
        fill = MISSING_CATEGORY if categorical else 0.0
    if categorical and fill is not None:
        fill = str(fill)
    return SimpleImputer(strategy=column.impute, fill_value=fill, keep_empty_features=True)


def _scaler(method: str) -> BaseEstimator | str:
    return {
        "standard": StandardScaler(),
        "minmax": MinMaxScaler(),
        "robust": RobustScaler(),
        "none": "passthrough",
    }[method]


def _group_key(column: ColumnPlan) -> tuple:
    return (
        column.encode,
        column.impute,
        "clip" if column.outliers == "clip" else "keep",
        column.scale,
        repr(column.fill_value),
        column.zeros_as_missing,
    )


def _group_pipeline(column: ColumnPlan, options: CleaningOptions) -> Pipeline:
    steps: list[tuple[str, Any]] = []
    if column.encode in {"onehot", "ordinal", "frequency"}:
        steps.append(("as_text", CategoryCaster()))
        steps.append(("impute", _imputer(column, categorical=True)))
        if column.encode == "onehot":
            encoder: BaseEstimator = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        elif column.encode == "ordinal":
            encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
        else:
            encoder = FrequencyEncoder()
        steps.append(("encode", encoder))
    else:
        if column.encode == "datetime":
            steps.append(("expand", DatetimeExpander(parts=tuple(options.datetime_parts))))
        else:
            steps.append(("as_number", ToNumeric()))
            if column.zeros_as_missing:
                steps.append(("zeros", ZerosToMissing()))
            if column.outliers == "clip":
                steps.append(("clip", IQRClipper()))
        steps.append(("impute", _imputer(column, categorical=False)))
    steps.append(("scale", _scaler(column.scale)))
    return Pipeline(steps)


def build_preprocessor(plan: CleaningPlan, *, feature_columns: list[str] | None = None) -> Pipeline:
    """Compile the plan into an unfitted `Pipeline` (one `ColumnTransformer`) producing a numeric frame.

    Columns sharing the same settings share one sub-pipeline, so KNN and iterative imputation
    see all the numeric columns they can learn from.
    """
    if not isinstance(plan, CleaningPlan):
        raise TypeError("build_preprocessor takes a CleaningPlan")
    plan.validate()
    kept = plan.feature_columns
    if feature_columns is not None:
        unknown = [name for name in feature_columns if name not in kept]
        if unknown:
            raise PlanError(f"Not columns the plan keeps: {', '.join(map(str, unknown))}.")
        chosen = set(feature_columns)
        kept = [name for name in kept if name in chosen]
        if not kept:
            raise PlanError("Choose at least one column.")
    groups: dict[tuple, list[ColumnPlan]] = {}
    for name in kept:
        column = plan.column(name)
        groups.setdefault(_group_key(column), []).append(column)
    transformers = []
    for index, members in enumerate(groups.values()):
        first = members[0]
        label = f"{first.encode}_{first.impute}_{first.scale}{'_zeros' if first.zeros_as_missing else ''}_{index}"
        transformers.append((label, _group_pipeline(first, plan.options), [column.name for column in members]))
    columns = ColumnTransformer(
        transformers,
        remainder="drop",
        sparse_threshold=0.0,
        verbose_feature_names_out=False,
    )
    return Pipeline([("columns", columns)]).set_output(transform="pandas")


def split_features_target(frame: pd.DataFrame, plan: CleaningPlan) -> tuple[pd.DataFrame, pd.Series]:
    """The preprocessor's input (the kept columns) and the target, from a row-cleaned frame."""
    missing = [name for name in [*plan.feature_columns, plan.target] if name not in frame.columns]
    if missing:
        raise PlanError(f"Columns missing from the data: {', '.join(missing)}.")
    return frame[plan.feature_columns], frame[plan.target]


# --- row steps and the report ------------------------------------------------------------


def apply_row_steps(frame: pd.DataFrame, plan: CleaningPlan) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Drop rows missing the target, exact duplicates and (where chosen) outlier rows; count each reason."""
    if plan.target not in frame.columns:
        raise PlanError(f"The target column {plan.target!r} is not in the data.")
    counts: dict[str, Any] = {"missing_target": 0, "duplicates": 0, "outliers": {}}
    n_before = len(frame)
    if plan.row_steps.get("drop_missing_target", True):
        has_target = frame[plan.target].notna()
        counts["missing_target"] = int((~has_target).sum())
        frame = frame[has_target]
    if plan.row_steps.get("drop_duplicates", True):
        duplicated = frame.duplicated(keep="first")
        counts["duplicates"] = int(duplicated.sum())
        frame = frame[~duplicated]
    outlier_columns = [
        column
        for column in plan.columns
        if column.action == "keep" and column.outliers == "drop_rows" and column.name in frame.columns
    ]
    if outlier_columns:
        drop = np.zeros(len(frame), dtype=bool)
        for column in outlier_columns:
            name = column.name
            values = _numbers_as_read(frame[name], column)
            low, high = iqr_fences(values)
            with np.errstate(invalid="ignore"):
                outside = (values < low) | (values > high)
            counts["outliers"][name] = int(outside.sum())
            drop |= outside
        frame = frame[~drop]
        counts["outlier_rows"] = int(drop.sum())
    else:
        counts["outlier_rows"] = 0
    counts["total"] = n_before - len(frame)
    return frame.reset_index(drop=True), counts


def _numbers_as_read(values: pd.Series, column: ColumnPlan) -> np.ndarray:
    """A numeric column as the pipeline reads it: unparseable text (and, with the zero rule, zeros) missing."""
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    if column.zeros_as_missing:
        numbers = np.where(numbers == 0, np.nan, numbers)
    return numbers


def _n_missing_as_read(values: pd.Series, column: ColumnPlan) -> int:
    """Cells the imputer will fill: missing ones, those the column's reader cannot parse, zeros read as missing."""
    if column.encode == "datetime":
        return int(_to_datetime(values).isna().sum())
    if column.encode == "none":
        return int(np.isnan(_numbers_as_read(values, column)).sum())
    return int(values.isna().sum())


def cleaning_report(frame: pd.DataFrame, plan: CleaningPlan) -> dict[str, Any]:
    """What the plan does to `frame`: rows dropped and why, and per column imputed cells, clipped values, encodings.

    The preprocessor is fitted on the row-cleaned frame here only to describe it; training
    refits it inside each fold.
    """
    plan.validate(known_columns=[str(name) for name in frame.columns])
    cleaned, counts = apply_row_steps(frame, plan)
    if cleaned.empty:
        raise PlanError("No rows are left after the row steps; check the target column and outlier settings.")
    features, target = split_features_target(cleaned, plan)
    preprocessor = build_preprocessor(plan)
    transformed = preprocessor.fit_transform(features, target)
    columns_step: ColumnTransformer = preprocessor.named_steps["columns"]

    outputs: dict[str, list[str]] = {}
    for label, pipeline, names in columns_step.transformers_:
        if label == "remainder" or pipeline == "drop":
            continue
        produced = list(pipeline.get_feature_names_out(names))
        widths = _output_widths(pipeline, names)
        start = 0
        for name, width in zip(names, widths, strict=True):
            outputs[name] = produced[start : start + width]
            start += width

    report_columns = []
    total_imputed = total_clipped = 0
    for column in plan.columns:
        if column.action == "drop":
            continue
        values = features[column.name]
        n_imputed = _n_missing_as_read(values, column)
        n_clipped = 0
        if column.outliers == "clip":
            numbers = _numbers_as_read(values, column)
            low, high = iqr_fences(numbers)
            with np.errstate(invalid="ignore"):
                n_clipped = int(((numbers < low) | (numbers > high)).sum())
        total_imputed += n_imputed
        total_clipped += n_clipped
        report_columns.append(
            {
                "name": column.name,
                "kind": column.kind,
                "impute": column.impute,
                "n_imputed": n_imputed,
                "zeros_as_missing": column.zeros_as_missing,
                "n_zeros_as_missing": int((pd.to_numeric(values, errors="coerce") == 0).sum())
                if column.zeros_as_missing
                else 0,
                "outliers": column.outliers,
                "n_clipped": n_clipped,
                "n_outlier_rows_dropped": counts["outliers"].get(column.name, 0),
                "encode": column.encode,
                "scale": column.scale,
                "n_outputs": len(outputs.get(column.name, [])),
                "output_columns": outputs.get(column.name, [])[:50],
            }
        )
    return {
        "target": plan.target,
        "n_rows_before": len(frame),
        "n_rows_after": len(cleaned),
        "rows_dropped": counts,
        "columns": report_columns,
        "dropped_columns": [{"name": name, "reason": reason} for name, reason in plan.dropped_columns.items()],
        "n_imputed_cells": total_imputed,
        "n_clipped_values": total_clipped,
        "n_features_in": len(plan.feature_columns),
        "n_features_out": int(transformed.shape[1]),
        "feature_names": [str(name) for name in transformed.columns[:1000]],
    }


def _output_widths(pipeline: Pipeline, names: list[str]) -> list[int]:
    encoder = pipeline.named_steps.get("encode")
    if isinstance(encoder, OneHotEncoder):
        return [len(categories) for categories in encoder.categories_]
    expander = pipeline.named_steps.get("expand")
    if isinstance(expander, DatetimeExpander):
        return [len(expander.parts)] * len(names)
    return [1] * len(names)


def with_column_changes(plan: CleaningPlan, changes: dict[str, dict[str, Any]]) -> CleaningPlan:
    """A copy of `plan` with per-column field changes applied and validated."""
    columns = []
    for column in plan.columns:
        edit = changes.get(column.name)
        columns.append(replace(column, **edit) if edit else replace(column))
    updated = CleaningPlan(
        target=plan.target, columns=columns, options=replace(plan.options), row_steps=dict(plan.row_steps)
    )
    updated.validate()
    return updated
