"""The classifier catalogue: seven scikit-learn models and their search spaces at five intensities.

Each catalogue entry says how to build the estimator, whether it accepts class weights, whether it
needs standardised inputs (SVM, k-NN and logistic regression do: without scaling their distances and
penalties are dominated by whichever column has the largest units), and which method gives its
ranking scores.

`param_grid(name, level, n_classes=2)` returns a `SearchSpace`: a grid (levels 1-3) or distributions
sampled `n_iter` times (levels 4-5). Parameter names are prefixed `clf__`, the estimator's step name
in the training pipeline, so a space plugs straight into the pipeline built by `training.py`.

SVM probabilities: `SVC(probability=True)` runs an internal 5-fold Platt scaling on every fit, which
multiplies the SVM's cost by about six (DESIGN §8: half of a whole seven-model search). The catalogue
builds a plain `SVC()` and ranks with `decision_function`; probabilities come from the
calibration step in `calibration.py`, fitted once on out-of-fold decision values the search produced
anyway — the recipe scikit-learn 1.9 itself recommends when deprecating `probability=True`
(`CalibratedClassifierCV(SVC(), ensemble=False)`), minus the refits. `benchmarks/tabular_training.py`
measures both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import loguniform, randint, uniform
from sklearn.base import ClassifierMixin
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import ParameterGrid
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

__all__ = [
    "LEVELS",
    "MODEL_NAMES",
    "ModelSpec",
    "SearchSpace",
    "build_estimator",
    "get_spec",
    "param_grid",
]

LEVELS = (1, 2, 3, 4, 5)
# Randomised search samples this many candidates at levels 4 and 5 (fewer when the space is a finite grid).
RANDOM_SEARCH_ITERATIONS = {4: 20, 5: 50}


@dataclass(frozen=True)
class SearchSpace:
    """What to search for one model: a grid (`kind="grid"`) or distributions sampled `n_iter` times."""

    kind: str
    params: list[dict[str, Any]]
    n_iter: int | None = None

    def n_candidates(self) -> int:
        """How many parameter settings the search will try."""
        if self.kind == "grid":
            return len(ParameterGrid(self.params))
        return int(self.n_iter or 0)


@dataclass(frozen=True)
class ModelSpec:
    """One catalogue entry: display name, builder, and what the training pipeline must know about it."""

    name: str
    label: str
    build: Callable[[int, bool, int], ClassifierMixin]
    supports_class_weight: bool
    needs_scaling: bool
    score_method: str  # "predict_proba" or "decision_function": where ranking scores come from
    grids: Callable[[int, int], SearchSpace]


def _svm(random_state: int, balanced: bool, n_classes: int) -> SVC:
    # A larger kernel cache is cheap memory and saves recomputing kernel rows on mid-sized data.
    return SVC(kernel="rbf", class_weight="balanced" if balanced else None, cache_size=500, random_state=random_state)


def _random_forest(random_state: int, balanced: bool, n_classes: int) -> RandomForestClassifier:
    return RandomForestClassifier(
        n_estimators=200, class_weight="balanced" if balanced else None, random_state=random_state, n_jobs=1
    )


def _logistic_regression(random_state: int, balanced: bool, n_classes: int) -> LogisticRegression:
    return LogisticRegression(
        C=1.0, l1_ratio=0.0, max_iter=2000, class_weight="balanced" if balanced else None, random_state=random_state
    )


def _naive_bayes(random_state: int, balanced: bool, n_classes: int) -> GaussianNB:
    # Equal priors are naive Bayes' form of class weighting: the class-conditional likelihoods decide.
    return GaussianNB(priors=np.full(n_classes, 1.0 / n_classes) if balanced else None)


def _knn(random_state: int, balanced: bool, n_classes: int) -> KNeighborsClassifier:
    return KNeighborsClassifier(n_neighbors=5)


def _decision_tree(random_state: int, balanced: bool, n_classes: int) -> DecisionTreeClassifier:
    return DecisionTreeClassifier(class_weight="balanced" if balanced else None, random_state=random_state)


def _hist_gradient_boosting(random_state: int, balanced: bool, n_classes: int) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(
        max_iter=200, class_weight="balanced" if balanced else None, random_state=random_state
    )


def _space(level: int, grids: dict[int, list[dict[str, Any]]], wide: list[dict[str, Any]]) -> SearchSpace:
    if level <= 3:
        return SearchSpace("grid", grids[level])
    return SearchSpace("random", wide, n_iter=RANDOM_SEARCH_ITERATIONS[level])


def _svm_grids(level: int, n_classes: int) -> SearchSpace:
    grids = {
        1: [{"clf__kernel": ["rbf"], "clf__C": [1.0]}, {"clf__kernel": ["linear"], "clf__C": [1.0]}],
        2: [
            {"clf__kernel": ["rbf"], "clf__C": [0.1, 1.0, 10.0], "clf__gamma": ["scale"]},
            {"clf__kernel": ["linear"], "clf__C": [0.1, 1.0]},
            {"clf__kernel": ["poly"], "clf__degree": [2, 3], "clf__C": [1.0]},
        ],
        3: [
            {"clf__kernel": ["rbf"], "clf__C": [0.1, 0.3, 1.0, 3.0, 10.0, 30.0], "clf__gamma": ["scale", 0.01, 0.1]},
            {"clf__kernel": ["linear"], "clf__C": [0.01, 0.1, 1.0, 10.0]},
            {"clf__kernel": ["poly"], "clf__degree": [2, 3], "clf__C": [0.1, 1.0, 10.0], "clf__coef0": [0.0, 1.0]},
        ],
    }
    wide = [
        {"clf__kernel": ["rbf"], "clf__C": loguniform(1e-2, 1e3), "clf__gamma": loguniform(1e-4, 1.0)},
        {"clf__kernel": ["linear"], "clf__C": loguniform(1e-3, 1e2)},
        {
            "clf__kernel": ["poly"],
            "clf__degree": [2, 3, 4],
            "clf__C": loguniform(1e-2, 1e2),
            "clf__coef0": uniform(0.0, 2.0),
        },
    ]
    return _space(level, grids, wide)


def _random_forest_grids(level: int, n_classes: int) -> SearchSpace:
    grids = {
        1: [{"clf__max_depth": [None, 8]}],
        2: [{"clf__max_depth": [None, 10], "clf__min_samples_leaf": [1, 5]}],
        3: [
            {
                "clf__n_estimators": [200, 400],
                "clf__max_depth": [None, 5, 10, 20],
                "clf__min_samples_leaf": [1, 3, 10],
                "clf__max_features": ["sqrt", 0.5],
            }
        ],
    }
    wide = [
        {
            "clf__n_estimators": randint(100, 600),
            "clf__max_depth": [None, 3, 5, 8, 12, 20, 30],
            "clf__min_samples_leaf": randint(1, 20),
            "clf__max_features": ["sqrt", "log2", 0.3, 0.5, 0.8],
        }
    ]
    return _space(level, grids, wide)


def _logistic_grids(level: int, n_classes: int) -> SearchSpace:
    # lbfgs handles only L2; liblinear is the fast L1 solver but is binary-only, so multiclass L1 uses saga;
    # elastic net needs saga. l1_ratio expresses the penalty (the `penalty` parameter is deprecated in 1.8).
    l1_solver = "liblinear" if n_classes == 2 else "saga"
    grids = {
        1: [{"clf__l1_ratio": [0.0], "clf__solver": ["lbfgs"], "clf__C": [0.1, 1.0]}],
        2: [
            {"clf__l1_ratio": [0.0], "clf__solver": ["lbfgs"], "clf__C": [0.1, 1.0, 10.0]},
            {"clf__l1_ratio": [1.0], "clf__solver": [l1_solver], "clf__C": [0.1, 1.0]},
            {"clf__l1_ratio": [0.5], "clf__solver": ["saga"], "clf__C": [1.0]},
        ],
        3: [
            {"clf__l1_ratio": [0.0], "clf__solver": ["lbfgs"], "clf__C": [0.001, 0.01, 0.1, 1.0, 10.0, 100.0]},
            {"clf__l1_ratio": [1.0], "clf__solver": [l1_solver], "clf__C": [0.01, 0.1, 1.0, 10.0, 100.0]},
            {"clf__l1_ratio": [0.25, 0.5, 0.75], "clf__solver": ["saga"], "clf__C": [0.1, 1.0, 10.0]},
        ],
    }
    wide = [
        {"clf__l1_ratio": [0.0], "clf__solver": ["lbfgs"], "clf__C": loguniform(1e-4, 1e3)},
        {"clf__l1_ratio": [1.0], "clf__solver": [l1_solver], "clf__C": loguniform(1e-3, 1e3)},
        {"clf__l1_ratio": uniform(0.05, 0.9), "clf__solver": ["saga"], "clf__C": loguniform(1e-3, 1e3)},
    ]
    return _space(level, grids, wide)


def _naive_bayes_grids(level: int, n_classes: int) -> SearchSpace:
    grids = {
        1: [{"clf__var_smoothing": [1e-9]}],
        2: [{"clf__var_smoothing": [1e-9, 1e-7, 1e-5]}],
        3: [{"clf__var_smoothing": list(np.logspace(-12, -2, 11))}],
    }
    wide = [{"clf__var_smoothing": loguniform(1e-12, 1e-1)}]
    return _space(level, grids, wide)


def _knn_grids(level: int, n_classes: int) -> SearchSpace:
    grids = {
        1: [{"clf__n_neighbors": [5, 15]}],
        2: [{"clf__n_neighbors": [5, 15], "clf__weights": ["uniform", "distance"]}],
        3: [{"clf__n_neighbors": [3, 5, 9, 15, 25, 41], "clf__weights": ["uniform", "distance"], "clf__p": [1, 2]}],
    }
    wide = [{"clf__n_neighbors": randint(1, 60), "clf__weights": ["uniform", "distance"], "clf__p": [1, 2]}]
    return _space(level, grids, wide)


def _decision_tree_grids(level: int, n_classes: int) -> SearchSpace:
    grids = {
        1: [{"clf__max_depth": [3, 6]}],
        2: [{"clf__max_depth": [3, 5, 8, None], "clf__min_samples_leaf": [1, 10]}],
        3: [
            {
                "clf__max_depth": [2, 3, 4, 5, 6, 8, 12, None],
                "clf__min_samples_leaf": [1, 5, 10, 20],
                "clf__criterion": ["gini", "entropy"],
            }
        ],
    }
    wide = [
        {
            "clf__max_depth": [None, *range(2, 21)],
            "clf__min_samples_leaf": randint(1, 50),
            "clf__criterion": ["gini", "entropy", "log_loss"],
            "clf__ccp_alpha": loguniform(1e-5, 1e-1),
        }
    ]
    return _space(level, grids, wide)


def _hist_gradient_boosting_grids(level: int, n_classes: int) -> SearchSpace:
    grids = {
        1: [{"clf__learning_rate": [0.1]}],
        2: [{"clf__learning_rate": [0.05, 0.1], "clf__max_leaf_nodes": [15, 31]}],
        3: [
            {
                "clf__learning_rate": [0.03, 0.1, 0.3],
                "clf__max_leaf_nodes": [7, 15, 31],
                "clf__min_samples_leaf": [10, 20, 50],
                "clf__l2_regularization": [0.0, 1.0],
            }
        ],
    }
    wide = [
        {
            "clf__learning_rate": loguniform(0.01, 0.5),
            "clf__max_leaf_nodes": randint(4, 64),
            "clf__min_samples_leaf": randint(5, 100),
            "clf__l2_regularization": loguniform(1e-4, 10.0),
            "clf__max_iter": randint(100, 500),
        }
    ]
    return _space(level, grids, wide)


CATALOGUE: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("svm", "Support vector machine", _svm, True, True, "decision_function", _svm_grids),
        ModelSpec("random_forest", "Random forest", _random_forest, True, False, "predict_proba", _random_forest_grids),
        ModelSpec(
            "logistic_regression",
            "Logistic regression",
            _logistic_regression,
            True,
            True,
            "predict_proba",
            _logistic_grids,
        ),
        ModelSpec(
            "naive_bayes", "Gaussian naive Bayes", _naive_bayes, True, False, "predict_proba", _naive_bayes_grids
        ),
        ModelSpec("knn", "k-nearest neighbours", _knn, False, True, "predict_proba", _knn_grids),
        ModelSpec("decision_tree", "Decision tree", _decision_tree, True, False, "predict_proba", _decision_tree_grids),
        ModelSpec(
            "hist_gradient_boosting",
            "Histogram gradient boosting",
            _hist_gradient_boosting,
            True,
            False,
            "predict_proba",
            _hist_gradient_boosting_grids,
        ),
    )
}
MODEL_NAMES: tuple[str, ...] = tuple(CATALOGUE)


def get_spec(name: str) -> ModelSpec:
    """The catalogue entry for `name`; ValueError naming the known models otherwise."""
    try:
        return CATALOGUE[name]
    except KeyError:
        raise ValueError(f"Unknown model {name!r}; choose from {', '.join(MODEL_NAMES)}.") from None


def build_estimator(name: str, *, random_state: int = 0, class_weight: bool = False, n_classes: int = 2):
    """A fresh, unfitted estimator for `name`, class-weighted when asked and supported."""
    spec = get_spec(name)
    return spec.build(random_state, class_weight and spec.supports_class_weight, n_classes)


def param_grid(name: str, level: int, n_classes: int = 2) -> SearchSpace:
    """The search space for `name` at intensity `level` (1 = a few candidates ... 5 = wide random search)."""
    if level not in LEVELS:
        raise ValueError(f"Search level must be one of {LEVELS}, got {level!r}.")
    return get_spec(name).grids(level, n_classes)
