"""Training-service overhead vs bare scikit-learn doing identical work, plus in-process prediction latency.

Run: `.venv/bin/python benchmarks/tabular_training.py [--skip-big]`

For each data set both sides get the same pipelines (preprocessor → scaler where the catalogue puts
one → estimator with the same class weights), the same candidates and the same folds, one native thread
per fit (as `train_models` runs), and must deliver the same things: the tuned model refitted on the
training part, out-of-fold scores of the best candidate (for calibration and threshold), and hold-out
probabilities. The bare side is `GridSearchCV(refit=True)` + `cross_val_predict` of the best candidate +
`predict_proba` on the hold-out; the platform side is `train_models`, which additionally calibrates,
picks thresholds, bootstraps intervals and computes curves. Figures printed:

- wall time of each side, the ratio platform / bare, and bare `GridSearchCV` alone;
- best hold-out ROC AUC per side;
- SVC(probability=True) vs SVC() + Platt scaling on out-of-fold decision values (fit cost);
- vectorised bootstrap vs a loop over roc_auc_score;
- in-process `predict_proba` latency for 1 row (p50/p99) and 10,000 rows, and explanation time per row.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, make_classification
from sklearn.impute import SimpleImputer
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, cross_val_predict
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tabular.ml.calibration import CalibrationMap  # noqa: E402
from tabular.ml.explain import explain_rows  # noqa: E402
from tabular.ml.metrics import bootstrap_intervals  # noqa: E402
from tabular.ml.models import MODEL_NAMES, build_estimator, get_spec, param_grid  # noqa: E402
from tabular.ml.training import _folds, _holdout_split, train_models  # noqa: E402

RANDOM_STATE = 0


def preprocessor(columns) -> ColumnTransformer:
    numbers = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    return ColumnTransformer([("num", numbers, list(columns))], sparse_threshold=0.0)


def bare_search(X, y, *, models, level, cv_folds, grids=None):
    """What a data scientist would write with scikit-learn alone for the same deliverables."""
    y_array = np.asarray(y)
    classes = sorted(set(y_array.tolist()))
    counts = pd.Series(y_array).value_counts()
    positive = min(reversed(classes), key=lambda label: counts[label])
    train, test = _holdout_split(y_array, None, 0.2, RANDOM_STATE)
    y_index = np.array([classes.index(v) for v in y_array[train]])
    folds = _folds(y_index, None, cv_folds, RANDOM_STATE)
    X_train, X_test, y_train, y_test = X.iloc[train], X.iloc[test], y_array[train], y_array[test]
    best_auc, search_only = 0.0, 0.0
    with threadpool_limits(limits=1):
        for name in models:
            spec = get_spec(name)
            steps = [("prep", preprocessor(X.columns))]
            if spec.needs_scaling:
                steps.append(("scale", StandardScaler()))
            steps.append(("clf", build_estimator(name, random_state=RANDOM_STATE, class_weight=True)))
            space = param_grid(name, level)
            grid = grids[name] if grids and name in grids else space.params
            started = time.perf_counter()
            search = GridSearchCV(Pipeline(steps), grid, scoring="roc_auc", cv=folds, refit=True, n_jobs=1)
            search.fit(X_train, y_train)
            search_only += time.perf_counter() - started
            cross_val_predict(clone(search.best_estimator_), X_train, y_train, cv=folds, method=spec.score_method)
            scores = getattr(search.best_estimator_, spec.score_method)(X_test)
            if scores.ndim == 2:
                scores = scores[:, 1]
            column_positive = list(search.best_estimator_.classes_).index(positive) == 1
            auc = roc_auc_score(y_test == positive, scores if column_positive else -scores)
            best_auc = max(best_auc, auc)
    return best_auc, search_only


def compare(label, X, y, *, models, level, cv_folds, grids=None):
    print(
        f"\n== {label}: {X.shape[0]:,} rows × {X.shape[1]} columns, models={len(models)}, level={level}, "
        f"{cv_folds}-fold =="
    )
    started = time.perf_counter()
    result = train_models(
        X,
        y,
        preprocessor=preprocessor(X.columns),
        models=models,
        level=level,
        cv_folds=cv_folds,
        random_state=RANDOM_STATE,
        param_grids=grids,
        n_jobs=1,
    )
    platform_seconds = time.perf_counter() - started
    assert not result.errors, result.errors
    started = time.perf_counter()
    bare_auc, search_only = bare_search(X, y, models=models, level=level, cv_folds=cv_folds, grids=grids)
    bare_seconds = time.perf_counter() - started
    best = result.best_model()
    candidates = sum(m.n_candidates for m in result.models)
    print(f"candidates: {candidates}; fits per side: {candidates * cv_folds} search + refits")
    print(
        f"platform train_models:            {platform_seconds:8.1f} s   best hold-out ROC AUC "
        f"{best.metrics['roc_auc']:.4f} ({best.name}, 95% CI {best.intervals['roc_auc'][0]:.3f}-"
        f"{best.intervals['roc_auc'][1]:.3f})"
    )
    print(f"bare GridSearchCV + OOF predict:  {bare_seconds:8.1f} s   best hold-out ROC AUC {bare_auc:.4f}")
    print(f"bare GridSearchCV alone:          {search_only:8.1f} s")
    print(
        f"overhead ratio platform / bare:   {platform_seconds / bare_seconds:8.2f}×   "
        f"(vs GridSearchCV alone {platform_seconds / search_only:.2f}×)"
    )
    for model in result.models:
        print(
            f"  {model.name:24s} AUC {model.metrics['roc_auc']:.4f}  search {model.search_seconds:6.1f} s  "
            f"refit {model.fit_seconds:5.2f} s  calibration {model.calibration:8s} threshold {model.threshold:.3f}"
        )
    return result


def latency(result, X):
    best = result.best_model()
    pipeline = best.estimator
    one = X.iloc[[0]]
    pipeline.predict_proba(one)
    samples = []
    for _ in range(200):
        started = time.perf_counter()
        pipeline.predict_proba(one)
        samples.append(time.perf_counter() - started)
    big = X.iloc[np.resize(np.arange(len(X)), 10_000)]
    batch = []
    for _ in range(5):
        started = time.perf_counter()
        pipeline.predict_proba(big)
        batch.append(time.perf_counter() - started)
    print(f"\n== in-process predict_proba ({best.name}) ==")
    p50, p99 = np.percentile(samples, [50, 99]) * 1e3
    print(f"1 row:       p50 {p50:6.2f} ms   p99 {p99:6.2f} ms")
    print(f"10,000 rows: median {np.median(batch) * 1e3:7.1f} ms   throughput {10_000 / np.median(batch):,.0f} rows/s")
    for model in result.models:
        rows = X.iloc[:20]
        started = time.perf_counter()
        explain_rows(model.estimator, rows, background=X, top_k=5)
        per_row = (time.perf_counter() - started) / len(rows) * 1e3
        print(f"explain_rows {model.name:24s} {per_row:6.2f} ms per row ({X.shape[1]} columns)")


def svm_probability_cost(X, y):
    from sklearn.svm import SVC

    Xs = StandardScaler().fit_transform(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # probability=True is deprecated in scikit-learn 1.9
        timings = {}
        for label, model in (("SVC(probability=True)", SVC(probability=True)), ("SVC() decision", SVC())):
            started = time.perf_counter()
            for _ in range(5):
                clone(model).fit(Xs, y)
            timings[label] = (time.perf_counter() - started) / 5
    decision = SVC().fit(Xs, y).decision_function(Xs)
    y_index = (np.asarray(y) == sorted(set(np.asarray(y).tolist()))[1]).astype(int)
    CalibrationMap("sigmoid", "decision_function").fit(decision, y_index, 2)  # warm-up: first-call imports
    started = time.perf_counter()
    CalibrationMap("sigmoid", "decision_function").fit(decision, y_index, 2)
    platt = time.perf_counter() - started
    print(f"\n== SVM probabilities on {X.shape[0]:,} rows ==")
    for label, seconds in timings.items():
        print(f"{label:24s} fit {seconds * 1e3:8.1f} ms")
    ratio = timings["SVC(probability=True)"] / timings["SVC() decision"]
    print(
        f"probability=True costs {ratio:.1f}× a plain fit on every search fit; the platform instead fits one "
        f"Platt map on out-of-fold decision values: {platt * 1e3:.1f} ms once per model."
    )


def bootstrap_cost():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=850)
    p = np.clip(0.3 * y + rng.uniform(0, 0.7, size=850), 0, 1)
    started = time.perf_counter()
    bootstrap_intervals(y, p, 0.5, 1, n_resamples=1000)
    vectorised = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(1000):
        idx = rng.integers(0, 850, size=850)
        roc_auc_score(y[idx], p[idx])
    loop = time.perf_counter() - started
    print("\n== bootstrap, 1,000 resamples of 850 rows ==")
    print(f"vectorised, all nine metrics: {vectorised * 1e3:7.1f} ms")
    print(f"loop over roc_auc_score alone: {loop * 1e3:7.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-big", action="store_true", help="skip the 50,000 × 40 synthetic set")
    args = parser.parse_args()
    print(f"CPUs: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}")

    data = load_breast_cancer(as_frame=True)
    X = data.data
    y = data.target.map({0: "malignant", 1: "benign"}).rename("diagnosis")
    result = compare("breast cancer", X, y, models=list(MODEL_NAMES), level=2, cv_folds=5)
    latency(result, X)
    svm_probability_cost(X, y)
    bootstrap_cost()

    if not args.skip_big:
        features, target = make_classification(
            n_samples=50_000, n_features=40, n_informative=12, weights=[0.8, 0.2], random_state=RANDOM_STATE
        )
        X_big = pd.DataFrame(features, columns=[f"x{i}" for i in range(40)])
        y_big = pd.Series(np.where(target == 1, "event", "none"), name="outcome")
        # SVC (quadratic in rows) and k-NN (a distance scan per prediction) are left out at this size, and the
        # forest is smaller, so both sides finish in minutes; the work is identical on both sides.
        grids = {"random_forest": {"clf__n_estimators": [50], "clf__max_depth": [12]}}
        compare(
            "synthetic",
            X_big,
            y_big,
            models=["logistic_regression", "naive_bayes", "decision_tree", "random_forest", "hist_gradient_boosting"],
            level=1,
            cv_folds=3,
            grids=grids,
        )
        svm_probability_cost(X_big.iloc[:5000], y_big.iloc[:5000])


if __name__ == "__main__":
    main()
