"""Issue 12 item 3: `imbalance: "smote"` works with the real preprocessing, inside each cross-validation fold only.

It used to fail every model with "All intermediate steps of the chain should not be Pipelines": the compiled
cleaning plan is a Pipeline, and imbalanced-learn's pipeline refuses a nested one. Tested on scikit-learn's
breast-cancer table made messy (blank cells, a categorical column with missing values), end to end through the API.
"""

import math

import numpy as np
import pandas as pd
import pytest
from imblearn.over_sampling import SMOTE
from sklearn.datasets import load_breast_cancer

from modelhub.models import TrainingRun
from tabular import bundles
from tabular.ml import cleaning, profiling
from tabular.ml import training as ml_training
from tabular.ml.models import MODEL_NAMES

METRICS = ("roc_auc", "pr_auc", "accuracy", "balanced_accuracy", "sensitivity", "specificity", "brier")


def messy_breast_cancer(seed: int = 11) -> pd.DataFrame:
    """569 rows: ten numeric measurements with blanks, a categorical `site` with blanks, the diagnosis last.

    Malignant cases are thinned to about a fifth of the rows, so SMOTE has a rare class to oversample.
    """
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.drop(columns="target").iloc[:, :10].copy()
    frame["diagnosis"] = np.where(data.target == 0, "malignant", "benign")
    rng = np.random.default_rng(seed)
    malignant = np.flatnonzero(frame["diagnosis"] == "malignant")
    frame = frame.drop(index=frame.index[rng.choice(malignant, size=110, replace=False)]).reset_index(drop=True)
    n_rows = len(frame)
    for column in ("mean radius", "mean texture", "mean smoothness"):
        frame.loc[rng.choice(n_rows, 25, replace=False), column] = np.nan
    site = rng.choice(["north", "south", "east", "west"], size=n_rows).astype(object)
    site[rng.choice(n_rows, 40, replace=False)] = None
    frame.insert(3, "site", site)
    return frame


def test_smote_trains_every_model_through_the_compiled_cleaning_plan(monkeypatch):
    frame = messy_breast_cancer()
    plan = cleaning.plan_cleaning(profiling.profile_frame(frame, target="diagnosis"), "diagnosis")
    assert plan.column("site").encode == "onehot" and plan.column("mean radius").impute != "none"
    X, y = cleaning.split_features_target(frame, plan)

    sizes: list[int] = []
    original = SMOTE.fit_resample

    def counting(self, X_part, y_part, **params):
        sizes.append(len(X_part))
        return original(self, X_part, y_part, **params)

    monkeypatch.setattr(SMOTE, "fit_resample", counting)
    result = ml_training.train_models(
        X,
        y,
        preprocessor=cleaning.build_preprocessor(plan),
        models=list(MODEL_NAMES),
        imbalance="smote",
        level=1,
        cv_folds=3,
        n_bootstrap=100,
    )
    assert result.errors == []
    assert sorted(model.name for model in result.models) == sorted(MODEL_NAMES)
    for model in result.models:
        assert model.imbalance == "smote"
        for key in METRICS:
            assert math.isfinite(model.metrics[key]), (model.name, key)
        assert model.metrics["roc_auc"] > 0.8, model.name
        # The served pipeline takes raw rows with blanks and unseen gaps, as prediction will send them.
        proba = model.estimator.predict_proba(X.iloc[result.test_positions])
        assert np.isfinite(proba).all()

    # SMOTE saw fold-training rows (2/3 of the training part) and, for each refit, the training part; never more.
    n_train = result.n_train
    assert sizes and max(sizes) == n_train
    assert all(size in {n_train} or abs(size - n_train * 2 / 3) <= 2 for size in sizes)
    assert sizes.count(n_train) == len(MODEL_NAMES)


@pytest.mark.django_db
def test_a_smote_run_through_the_api_succeeds_with_finite_metrics(
    alice_api, make_dataset, alice, django_capture_on_commit_callbacks
):
    dataset = make_dataset(alice, messy_breast_cancer().to_csv(index=False).encode(), name="wdbc_messy.csv")
    body = {
        "dataset": dataset.pk,
        "target": "diagnosis",
        "models": ["logistic_regression", "knn", "random_forest"],
        "imbalance": "smote",
        "level": 1,
        "cv_folds": 3,
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_api.post("/api/v1/training-runs/", body, format="json")
    assert response.status_code == 202, response.json()

    run = alice_api.get(f"/api/v1/training-runs/{response.json()['id']}/").json()
    assert run["status"] == "succeeded", (run["message"], run["error"])
    assert run["error"] == ""
    assert sorted(model["model_name"] for model in run["models"]) == sorted(body["models"])
    for model in run["models"]:
        for key in METRICS:
            assert math.isfinite(model["metrics"][key]), (model["model_name"], key)
        assert all(math.isfinite(bound) for bound in model["intervals"]["roc_auc"])
    assert "site" in run["features"]

    stored = TrainingRun.objects.get(pk=run["id"]).models.first()
    bundle = bundles.model_bundle_load(stored)
    assert bundle["imbalance"] == "smote"
    rows = messy_breast_cancer().drop(columns="diagnosis").head(8)
    assert set(bundle["pipeline"].predict(rows)) <= {"benign", "malignant"}
