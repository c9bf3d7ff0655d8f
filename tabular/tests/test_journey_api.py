"""Issue 12 acceptance, over JWT: the integrator's journey on a messy hospital export, end to end over HTTP.

A token from the real token endpoint → upload the `;`-separated cp1252 export (decimal commas, "N/A", a patient-name
and an MRN column) → profile → a run predicting the patient's name is refused naming `personal_data` → cleaning
plan → a saved 5-feature selection → a SMOTE run of two fast models trains on exactly those 5 → the model's feature
importance, input schema and report → predictions for rows → select → the model ZIP with the Bearer token.
`messy_export` is shared with the browser journey (tests/browser/test_tabular_journey.py).
"""

import io
import zipfile

import numpy as np
import pytest
from rest_framework.test import APIClient
from sklearn.datasets import load_breast_cancer

from modelhub.models import TrainingModel, TrainingRun

pytestmark = pytest.mark.django_db

PREDICTORS = [
    "mean radius",
    "mean texture",
    "mean perimeter",
    "mean area",
    "mean smoothness",
    "mean compactness",
    "mean concavity",
    "mean concave points",
]
FIRST = ["Zoé", "André", "Jürgen", "Inés", "Noël", "François", "Björn", "Renée", "José", "Chloé", "Søren", "Agnès"]
LAST = ["Müller", "Lefèvre", "Groß", "Peña", "Dubois", "Ångström", "Núñez", "Côté", "Weiß", "Fontaine"]
N_ROWS, N_POSITIVE = 120, 30
MODELS = ["logistic_regression", "naive_bayes"]


def messy_export(seed: int = 12) -> bytes:
    """120 patients of the Wisconsin table (30 malignant: imbalanced), its first 8 measurements with decimal commas
    and some "N/A", a name and an MRN column first, the outcome last; `;`-separated, cp1252, CRLF."""
    data = load_breast_cancer(as_frame=True)
    frame = data.frame
    rng = np.random.default_rng(seed)
    malignant = rng.choice(np.flatnonzero(data.target == 0), N_POSITIVE, replace=False)
    benign = rng.choice(np.flatnonzero(data.target == 1), N_ROWS - N_POSITIVE, replace=False)
    rows = frame.iloc[rng.permutation(np.concatenate([malignant, benign]))]
    lines = [";".join(["patient_name", "MRN", *PREDICTORS, "outcome"])]
    for index, (_, row) in enumerate(rows.iterrows()):
        values = [
            "N/A" if (index * 7 + position) % 23 == 0 else f"{row[name]:.4f}".replace(".", ",")
            for position, name in enumerate(PREDICTORS)
        ]
        name = f"{FIRST[index % 12]} {LAST[(index * 7 + index // 12) % 10]}"
        outcome = "malignant" if row["target"] == 0 else "benign"
        lines.append(";".join([name, f"MRN{400000 + 17 * index}", *values, outcome]))
    return ("\r\n".join(lines) + "\r\n").encode("cp1252")


def _bearer(access: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client


def test_the_integrators_journey_over_jwt(alice, password, django_capture_on_commit_callbacks):
    token = APIClient().post("/api/v1/auth/token/", {"email": alice.email, "password": password}, format="json")
    assert token.status_code == 200, token.content[:300]
    api = _bearer(token.json()["access"])

    # Upload the export as a hospital system sends it.
    upload = io.BytesIO(messy_export())
    upload.name = "cardiology export.csv"
    response = api.post("/api/v1/datasets/", {"file": upload}, format="multipart")
    assert response.status_code == 201, response.json()
    dataset = response.json()
    assert (dataset["n_rows"], dataset["n_columns"]) == (N_ROWS, 11)
    columns = {column["name"]: column for column in dataset["columns"]}
    assert columns["patient_name"]["n_missing"] == 0
    assert sum(columns[name]["n_missing"] for name in PREDICTORS) > 0  # "N/A" read as missing

    profile = api.get(f"/api/v1/datasets/{dataset['id']}/profile/", {"target": "outcome"})
    assert profile.status_code == 200, profile.json()
    flags = {column["name"]: column["flags"] for column in profile.json()["columns"]}
    assert "personal_data" in flags["patient_name"] and "personal_data" in flags["MRN"]
    balance = {item["value"]: item for item in profile.json()["target"]["class_counts"]}
    assert set(balance) == {"malignant", "benign"}

    # The patient's name is not an outcome: refused before any run exists.
    body = {"dataset": dataset["id"], "models": MODELS, "level": 1, "cv_folds": 3, "imbalance": "smote"}
    refused = api.post("/api/v1/training-runs/", {**body, "target": "patient_name"}, format="json")
    assert refused.status_code == 400, refused.json()
    assert refused.json()["code"] == "personal_data" and "personal_data" in refused.json()["detail"]
    assert not TrainingRun.objects.exists()

    # Cleaning plan: the name and the MRN are dropped with their reasons; applied.
    plan = api.post(f"/api/v1/datasets/{dataset['id']}/cleaning-plan/", {"target": "outcome"}, format="json")
    assert plan.status_code == 201, plan.json()
    actions = {column["name"]: column["action"] for column in plan.json()["columns"]}
    assert actions["patient_name"] == actions["MRN"] == "drop"
    plan_id = plan.json()["id"]
    applied = api.post(f"/api/v1/cleaning-plans/{plan_id}/apply/")
    assert applied.status_code == 200, applied.json()
    assert applied.json()["report"]["n_imputed_cells"] > 0

    # Five predictors by mutual information, saved on the plan.
    ranked = api.post(
        f"/api/v1/cleaning-plans/{plan_id}/feature-selection/", {"method": "mutual_info", "k": 5}, format="json"
    )
    assert ranked.status_code == 200, ranked.json()
    chosen = ranked.json()["selected_columns"]
    assert len(chosen) == 5 and set(chosen) <= set(PREDICTORS)
    assert api.get(f"/api/v1/cleaning-plans/{plan_id}/feature-selection/").json()["selected_columns"] == chosen

    # Level 1, SMOTE, two fast models; tasks run eagerly once the request's transaction commits.
    with django_capture_on_commit_callbacks(execute=True):
        started = api.post("/api/v1/training-runs/", {**body, "target": "outcome"}, format="json")
    assert started.status_code == 202, started.json()
    run = api.get(f"/api/v1/training-runs/{started.json()['id']}/")
    assert run.status_code == 200
    run = run.json()
    assert run["status"] == "succeeded", (run["message"], run["error"])
    assert sorted(run["features"]) == sorted(chosen)
    models = list(TrainingModel.objects.filter(run_id=run["id"]))
    assert sorted(model.model_name for model in models) == sorted(MODELS)
    model = next(model for model in models if model.model_name == "logistic_regression")

    assert model.feature_importance, "feature importance is stored at training time, not computed on request"
    importance = api.get(f"/api/v1/models/{model.pk}/feature-importance/")
    assert importance.status_code == 200, importance.json()
    assert importance.json()["source"].startswith("permutation importance on the")
    assert {item["feature"] for item in importance.json()["permutation"]} == set(chosen)

    schema = api.get(f"/api/v1/models/{model.pk}/schema/")
    assert schema.status_code == 200, schema.json()
    assert sorted(column["name"] for column in schema.json()["columns"]) == sorted(chosen)

    report = api.get(f"/api/v1/models/{model.pk}/report/")
    assert report.status_code == 200, report.json()
    assert sorted(column["name"] for column in report.json()["predictors"]) == sorted(chosen)
    assert report.json()["imbalance"] == "smote" and report.json()["run"]["id"] == run["id"]

    # Two new patients, a large and a small tumour, each with the five chosen measurements, get a prediction.
    rows = [
        {"mean radius": 20.6, "mean texture": 29.3, "mean perimeter": 140.1, "mean area": 1265.0},
        {"mean radius": 11.2, "mean texture": 14.9, "mean perimeter": 71.9, "mean area": 386.0},
    ]
    patient_values = {
        "mean smoothness": 0.1,
        "mean compactness": 0.08,
        "mean concavity": 0.05,
        "mean concave points": 0.03,
    }
    rows = [{name: {**row, **patient_values}[name] for name in chosen} for row in rows]
    predicted = api.post("/api/predict_tabular", {"model_id": model.pk, "rows": rows}, format="json")
    assert predicted.status_code == 200, predicted.json()
    predictions = predicted.json()["predictions"]
    assert len(predictions) == 2
    assert all(prediction["label"] in {"malignant", "benign"} for prediction in predictions)

    selected = api.post(f"/api/v1/models/{model.pk}/select/")
    assert selected.status_code == 200, selected.json()
    assert selected.json()["is_selected"] is True

    download = api.get(f"/download_model/{model.pk}")
    assert download.status_code == 200, download.content[:300]
    assert download["Content-Type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(download.content)).namelist()
    assert "pipeline.joblib" in names
