"""Issue acceptance, end to end through the API: the Wisconsin breast-cancer data with blanked cells, a fake name
column and an ID column → upload → profile flags name and ID → the plan drops both with reasons → apply → the
report counts exactly the blanked cells as imputed."""

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

from .conftest import upload_file

pytestmark = pytest.mark.django_db

N_BLANKED = 300
FIRST_NAMES = ["Anna", "Ben", "Clara", "David", "Emma", "Felix", "Greta", "Hugo", "Ida", "Jonas", "Karin", "Lukas"]
LAST_NAMES = ["Meyer", "Schmidt", "Dubois", "Rossi", "Novak", "Jensen", "Silva", "Kowalski", "Smith", "Garcia"]


def breast_cancer_csv(seed: int = 7) -> bytes:
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.drop(columns="target")
    rng = np.random.default_rng(seed)
    cells = rng.choice(frame.size, size=N_BLANKED, replace=False)
    values = frame.to_numpy(dtype="float64", copy=True)
    values[np.unravel_index(cells, values.shape)] = np.nan
    frame.loc[:, :] = values
    frame.insert(0, "patient_id", [f"P{100000 + index}" for index in range(len(frame))])
    frame.insert(
        1,
        "patient_name",
        [f"{FIRST_NAMES[i % len(FIRST_NAMES)]} {LAST_NAMES[(i * 7) % len(LAST_NAMES)]}-{i}" for i in range(len(frame))],
    )
    frame["diagnosis"] = np.where(data.target == 0, "malignant", "benign")
    return frame.to_csv(index=False).encode()


def test_breast_cancer_upload_profile_plan_apply_counts_imputed_cells_exactly(alice_api):
    response = alice_api.post(
        "/api/v1/datasets/", {"file": upload_file(breast_cancer_csv(), "wdbc.csv")}, format="multipart"
    )
    assert response.status_code == 201, response.json()
    dataset = response.json()
    assert (dataset["n_rows"], dataset["n_columns"]) == (569, 33)
    assert sum(column["n_missing"] for column in dataset["columns"]) == N_BLANKED

    profile = alice_api.get(f"/api/v1/datasets/{dataset['id']}/profile/", {"target": "diagnosis"}).json()
    flags = {column["name"]: column["flags"] for column in profile["columns"]}
    assert "personal_data" in flags["patient_name"]
    assert "identifier" in flags["patient_id"]
    assert {item["value"] for item in profile["target"]["class_counts"]} == {"malignant", "benign"}

    response = alice_api.post(
        f"/api/v1/datasets/{dataset['id']}/cleaning-plan/", {"target": "diagnosis"}, format="json"
    )
    assert response.status_code == 201, response.json()
    plan = response.json()
    columns = {column["name"]: column for column in plan["columns"]}
    for dropped in ("patient_name", "patient_id"):
        assert columns[dropped]["action"] == "drop"
        assert columns[dropped]["reason"]
    assert "personal" in columns["patient_name"]["reason"].lower()
    assert any(word in columns["patient_id"]["reason"].lower() for word in ("identif", "record number"))
    assert all(columns[name]["action"] == "keep" for name in columns if not name.startswith("patient_"))

    response = alice_api.post(f"/api/v1/cleaning-plans/{plan['id']}/apply/")
    assert response.status_code == 200, response.json()
    result = response.json()
    assert result["n_rows_before"] == 569 and result["n_rows_after"] == 569
    assert result["report"]["n_imputed_cells"] == N_BLANKED
