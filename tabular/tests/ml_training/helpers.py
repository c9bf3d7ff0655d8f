"""Tiny synthetic data and a plain preprocessor for the training-core tests (no Django, no cleaning plan)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_classification
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

NUMERIC = ["age", "bmi", "glucose", "pressure", "marker"]


def patients(n_rows: int = 240, *, n_classes: int = 2, weights=None, random_state: int = 0):
    """(X, y): five informative-ish numbers with a few blanks, one category ('site'); y as words."""
    features, target = make_classification(
        n_samples=n_rows,
        n_features=5,
        n_informative=3,
        n_redundant=1,
        n_classes=n_classes,
        n_clusters_per_class=1,
        weights=weights,
        class_sep=1.2,
        random_state=random_state,
    )
    X = pd.DataFrame(features, columns=NUMERIC)
    rng = np.random.default_rng(random_state)
    X.loc[rng.choice(n_rows, size=n_rows // 20, replace=False), "bmi"] = np.nan
    X["site"] = rng.choice(["north", "south", "east"], size=n_rows)
    names = np.array(["healthy", "sick", "critical"][:n_classes], dtype=object)
    return X, pd.Series(names[target], name="outcome")


def preprocessor(numeric=NUMERIC, categorical=("site",)) -> ColumnTransformer:
    """Median-impute and standardise numbers, one-hot the categories; dense output."""
    return ColumnTransformer(
        [
            (
                "num",
                Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]),
                list(numeric),
            ),
            (
                "cat",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="most_frequent")),
                        ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                    ]
                ),
                list(categorical),
            ),
        ],
        sparse_threshold=0.0,
    )
