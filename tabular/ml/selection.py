"""The Feature Selector: rank features by one of several methods and keep the top k or those above a threshold.

`FeatureSelector` is a pipeline step placed after the preprocessor, so during training it is
refitted inside each fold and never sees validation rows. `rank_features` is the same
ranking as a plain function, for the page that shows the scores as a bar chart.

Input is expected to be numeric (the preprocessor's output). For convenience on raw frames,
non-numeric columns are ordinal-coded and missing values median-filled before ranking;
`rank_plan_columns` instead ranks through a cleaning plan's own preprocessing and reports
one score per original column.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.ensemble import RandomForestClassifier
from sklearn.feature_selection import RFE, SelectorMixin, chi2, f_classif, mutual_info_classif
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

__all__ = ["METHODS", "FeatureSelector", "rank_features", "rank_plan_columns"]

METHODS = ("correlation", "mutual_info", "anova_f", "chi2", "random_forest", "l1", "rfe")
# Correlation filter default: drop a feature whose |r| with a better-ranked one is 0.95 or more.
CORRELATION_DEFAULT_THRESHOLD = 0.05


def _numeric_matrix(X: Any) -> tuple[np.ndarray, list[str]]:
    frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X))
    names = [str(name) for name in frame.columns]
    if frame.shape[1] == 0:
        raise ValueError("There are no features to rank.")
    columns = []
    for name in frame.columns:
        values = frame[name]
        if pd.api.types.is_bool_dtype(values.dtype):
            values = values.astype("float64")
        if pd.api.types.is_datetime64_any_dtype(values.dtype):
            values = values.astype("int64").where(values.notna())
        if not pd.api.types.is_numeric_dtype(values.dtype):
            codes, _ = pd.factorize(values)
            values = pd.Series(np.where(codes < 0, np.nan, codes), index=values.index)
        numbers = values.to_numpy(dtype=np.float64, na_value=np.nan)
        if np.isnan(numbers).any():
            fill = np.nanmedian(numbers) if not np.isnan(numbers).all() else 0.0
            numbers = np.where(np.isnan(numbers), fill, numbers)
        columns.append(numbers)
    return np.column_stack(columns), names


def _target_codes(y: Any) -> np.ndarray:
    codes, _ = pd.factorize(pd.Series(np.asarray(y)))
    if (codes < 0).any():
        raise ValueError("The target has missing values; drop those rows first.")
    if len(np.unique(codes)) < 2:
        raise ValueError("The target has a single class; ranking needs at least two.")
    return codes


def _relevance(matrix: np.ndarray, codes: np.ndarray) -> np.ndarray:
    scores, _ = f_classif(matrix, codes)
    return np.nan_to_num(scores, nan=0.0, posinf=np.finfo(float).max)


def _correlation_scores(matrix: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """1 − max |r| with a more relevant feature: near-duplicates of a better feature score near 0."""
    order = np.argsort(-_relevance(matrix, codes), kind="stable")
    with np.errstate(invalid="ignore", divide="ignore"):
        correlation = np.abs(np.corrcoef(matrix, rowvar=False))
    correlation = np.nan_to_num(np.atleast_2d(correlation), nan=0.0)
    scores = np.ones(matrix.shape[1])
    for position, feature in enumerate(order[1:], start=1):
        scores[feature] = 1.0 - correlation[feature, order[:position]].max()
    return np.clip(scores, 0.0, 1.0)


def _l1_scores(matrix: np.ndarray, codes: np.ndarray, random_state: int) -> np.ndarray:
    scaled = StandardScaler().fit_transform(matrix)
    binary = len(np.unique(codes)) == 2
    model = LogisticRegression(
        l1_ratio=1.0,
        solver="liblinear" if binary else "saga",
        C=1.0,
        max_iter=2000,
        random_state=random_state,
    )
    model.fit(scaled, codes)
    return np.abs(model.coef_).max(axis=0)


def _rfe_scores(matrix: np.ndarray, codes: np.ndarray, random_state: int) -> np.ndarray:
    n_features = matrix.shape[1]
    scaled = StandardScaler().fit_transform(matrix)
    estimator = LogisticRegression(max_iter=1000, random_state=random_state)
    # One feature at a time up to 50 features; beyond that a tenth per round keeps RFE affordable.
    step = 1 if n_features <= 50 else max(1, n_features // 10)
    ranking = RFE(estimator, n_features_to_select=1, step=step).fit(scaled, codes).ranking_
    return (ranking.max() - ranking + 1) / ranking.max()


def _scores(matrix: np.ndarray, codes: np.ndarray, method: str, random_state: int) -> np.ndarray:
    if method == "correlation":
        return _correlation_scores(matrix, codes)
    if method == "mutual_info":
        return mutual_info_classif(matrix, codes, random_state=random_state)
    if method == "anova_f":
        return _relevance(matrix, codes)
    if method == "chi2":
        # chi² needs non-negative features: shift each column so its minimum is 0.
        shifted = matrix - matrix.min(axis=0)
        scores, _ = chi2(shifted, codes)
        return np.nan_to_num(scores, nan=0.0)
    if method == "random_forest":
        forest = RandomForestClassifier(n_estimators=100, random_state=random_state, n_jobs=1)
        return forest.fit(matrix, codes).feature_importances_
    if method == "l1":
        return _l1_scores(matrix, codes, random_state)
    if method == "rfe":
        return _rfe_scores(matrix, codes, random_state)
    raise ValueError(f"Unknown selection method {method!r}; choose one of: {', '.join(METHODS)}.")


def rank_features(X: pd.DataFrame, y: Any, *, method: str, random_state: int = 0) -> list[tuple[str, float]]:
    """(feature, score) pairs, best first; higher scores are better for every method."""
    if method not in METHODS:
        raise ValueError(f"Unknown selection method {method!r}; choose one of: {', '.join(METHODS)}.")
    matrix, names = _numeric_matrix(X)
    codes = _target_codes(y)
    if len(codes) != matrix.shape[0]:
        raise ValueError("X and y have different numbers of rows.")
    scores = np.asarray(_scores(matrix, codes, method, random_state), dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    return [(names[i], float(scores[i])) for i in order]


def _choose(scores: np.ndarray, method: str, k: int | None, threshold: float | None) -> np.ndarray:
    mask = np.ones(len(scores), dtype=bool)
    if threshold is None and k is None:
        # Without a choice: drop near-duplicates for the correlation filter, zero-score features otherwise.
        threshold = CORRELATION_DEFAULT_THRESHOLD if method == "correlation" else None
        mask = scores > 0 if threshold is None else mask
    if threshold is not None:
        mask &= scores >= threshold
    if k is not None:
        top = np.argsort(-scores, kind="stable")[:k]
        in_top = np.zeros(len(scores), dtype=bool)
        in_top[top] = True
        mask &= in_top
    if not mask.any():
        mask[int(np.argmax(scores))] = True
    return mask


class FeatureSelector(SelectorMixin, BaseEstimator):
    """Keep the top `k` features, or those scoring at least `threshold`, by `method`; refit on each fit."""

    def __init__(
        self, method: str = "mutual_info", k: int | None = None, threshold: float | None = None, random_state: int = 0
    ):
        self.method = method
        self.k = k
        self.threshold = threshold
        self.random_state = random_state

    def fit(self, X, y):
        if self.method not in METHODS:
            raise ValueError(f"Unknown selection method {self.method!r}; choose one of: {', '.join(METHODS)}.")
        if self.k is not None and (isinstance(self.k, bool) or int(self.k) < 1):
            raise ValueError("k must be a positive whole number.")
        matrix, names = _numeric_matrix(X)
        self.n_features_in_ = matrix.shape[1]
        if isinstance(X, pd.DataFrame):
            self.feature_names_in_ = np.asarray(names, dtype=object)
        codes = _target_codes(y)
        scores = np.asarray(_scores(matrix, codes, self.method, self.random_state), dtype=np.float64)
        self.scores_ = dict(zip(names, scores.tolist(), strict=True))
        self.support_ = _choose(scores, self.method, self.k, self.threshold)
        self.selected_features_ = [name for name, keep in zip(names, self.support_, strict=True) if keep]
        return self

    def _get_support_mask(self):
        check_is_fitted(self, "support_")
        return self.support_

    def transform(self, X):
        check_is_fitted(self, "support_")
        if isinstance(X, pd.DataFrame):
            return X.loc[:, list(X.columns[self.support_])]
        return super().transform(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags


def rank_plan_columns(frame: pd.DataFrame, plan: Any, *, method: str, random_state: int = 0) -> list[tuple[str, float]]:
    """Rank the plan's kept columns through the plan's own preprocessing, one score per original column.

    A one-hot encoded column scores as its best category; a date as its best part. `frame`
    should already have been through `apply_row_steps`.
    """
    from .cleaning import build_preprocessor, split_features_target

    features, target = split_features_target(frame, plan)
    transformed = build_preprocessor(plan).fit_transform(features, target)
    ranking = rank_features(transformed, target, method=method, random_state=random_state)
    owner = _output_owners(plan, list(transformed.columns))
    best: dict[str, float] = {}
    for feature, score in ranking:
        column = owner.get(feature, feature)
        best[column] = max(score, best.get(column, -np.inf))
    return sorted(best.items(), key=lambda item: item[1], reverse=True)


def _output_owners(plan: Any, outputs: list[str]) -> dict[str, str]:
    """Map each preprocessed output name back to the kept column it came from (longest-prefix match)."""
    kept = sorted(plan.feature_columns, key=len, reverse=True)
    owners = {}
    for output in outputs:
        for column in kept:
            if output == column or output.startswith(f"{column}_"):
                owners[output] = column
                break
    return owners
