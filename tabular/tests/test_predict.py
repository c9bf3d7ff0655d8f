"""POST /api/predict_tabular and the prediction pages, on a really trained model."""

import io
import json

import pandas as pd
import pytest
from django.test import Client

from modelhub.models import TrainingModel
from tabular.tests.factories_models import patients_frame, trained_models

URL = "/api/predict_tabular"


@pytest.fixture
def alice_model(alice):
    return trained_models(alice, models=("logistic_regression",))[0]


def _rows(n=3):
    return patients_frame(20, seed=5).drop(columns=["outcome"]).head(n).to_dict(orient="records")


def test_json_rows_get_label_confidence_probabilities_and_explanations(alice_api, alice_model):
    response = alice_api.post(URL, {"model_id": alice_model.pk, "rows": _rows(3)}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["model_id"] == alice_model.pk
    assert len(body["predictions"]) == 3
    for prediction in body["predictions"]:
        assert prediction["label"] in ("sick", "well")
        assert set(prediction["probabilities"]) == {"sick", "well"}
        assert sum(prediction["probabilities"].values()) == pytest.approx(1.0)
        assert prediction["confidence"] == pytest.approx(prediction["probabilities"][prediction["label"]])
        assert prediction["explanation"], "each prediction names the features that pushed it"
        assert {item["feature"] for item in prediction["explanation"]} <= {"age", "bmi", "smoker"}


def test_label_uses_the_bundles_threshold_not_one_half(alice_api, alice_model):
    from tabular.bundles import model_bundle_load

    bundle = model_bundle_load(alice_model)
    threshold, positive = bundle["threshold"], bundle["positive_label"]
    frame = patients_frame(150, seed=9).drop(columns=["outcome"])
    response = alice_api.post(URL, {"model_id": alice_model.pk, "rows": frame.to_dict(orient="records")}, format="json")
    for prediction in response.json()["predictions"]:
        expected_positive = prediction["probabilities"][positive] >= threshold
        assert (prediction["label"] == positive) == expected_positive


def test_missing_required_column_is_400_naming_it(alice_api, alice_model):
    rows = [{"bmi": 25.0, "smoker": "no"}]
    response = alice_api.post(URL, {"model_id": alice_model.pk, "rows": rows}, format="json")
    assert response.status_code == 400
    assert "'age'" in response.json()["detail"]


def test_wrong_type_is_400_naming_row_and_column(alice_api, alice_model):
    rows = _rows(2)
    rows[1]["age"] = "old"
    response = alice_api.post(URL, {"model_id": alice_model.pk, "rows": rows}, format="json")
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "Row 2" in detail and "'age'" in detail


def test_extra_columns_are_ignored_and_listed(alice_api, alice_model):
    rows = [dict(row, ward="B4") for row in _rows(1)]
    response = alice_api.post(URL, {"model_id": alice_model.pk, "rows": rows}, format="json")
    assert response.status_code == 200
    assert response.json()["ignored_columns"] == ["ward"]


def test_charlie_gets_404_for_alices_model(charlie_api, alice_model):
    response = charlie_api.post(URL, {"model_id": alice_model.pk, "rows": _rows(1)}, format="json")
    assert response.status_code == 404


def test_unknown_model_is_404(alice_api, alice_model):
    response = alice_api.post(URL, {"model_id": alice_model.pk + 999, "rows": _rows(1)}, format="json")
    assert response.status_code == 404


def test_anonymous_caller_is_refused(alice_model):
    from rest_framework.test import APIClient

    response = APIClient().post(URL, {"model_id": alice_model.pk, "rows": _rows(1)}, format="json")
    assert response.status_code in (401, 403)


def test_tampered_artifact_is_refused_with_a_clear_message(alice_api, alice_model, settings):
    path = settings.MEDIA_ROOT / alice_model.file_name
    path.write_bytes(path.read_bytes() + b"tampered")
    response = alice_api.post(URL, {"model_id": alice_model.pk, "rows": _rows(1)}, format="json")
    assert response.status_code == 409
    assert "checksum" in response.json()["detail"]


def test_csv_batch_returns_csv_with_prediction_columns_appended(alice_api, alice_model):
    frame = patients_frame(12, seed=3).drop(columns=["outcome"])
    upload = io.BytesIO(frame.to_csv(index=False).encode())
    upload.name = "batch.csv"
    response = alice_api.post(URL, {"model_id": alice_model.pk, "file": upload}, format="multipart")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    out = pd.read_csv(io.BytesIO(response.content))
    assert list(out.columns[:3]) == ["age", "bmi", "smoker"]
    assert {"predicted_label", "confidence", "probability_sick", "probability_well"} <= set(out.columns)
    assert len(out) == 12
    assert out["age"].tolist() == frame["age"].tolist()


def test_csv_batch_missing_column_is_400(alice_api, alice_model):
    frame = patients_frame(5).drop(columns=["outcome", "bmi"])
    upload = io.BytesIO(frame.to_csv(index=False).encode())
    upload.name = "batch.csv"
    response = alice_api.post(URL, {"model_id": alice_model.pk, "file": upload}, format="multipart")
    assert response.status_code == 400
    assert "'bmi'" in response.json()["detail"]


def test_explanations_are_left_out_with_a_note_when_the_dataset_is_gone(alice_api, alice_model):
    from tabular.models import Dataset

    Dataset.objects.filter(owner=alice_model.user).delete()
    response = alice_api.post(URL, {"model_id": alice_model.pk, "rows": _rows(1)}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["predictions"][0]["explanation"] == []
    assert "no longer stored" in body["explanation_note"]


def _client(user):
    client = Client()
    client.force_login(user)
    return client


def test_prediction_page_builds_a_form_from_the_schema_and_predicts_one_patient(alice, alice_model):
    client = _client(alice)
    page = client.get(f"/predict?model_id={alice_model.pk}")
    assert page.status_code == 200
    html = page.content.decode()
    for column in ("col_age", "col_bmi", "col_smoker"):
        assert f'name="{column}"' in html
    answer = client.post("/predict", {"model_id": alice_model.pk, "col_age": "80", "col_bmi": "27", "col_smoker": "no"})
    assert answer.status_code == 200
    assert "What pushed this prediction" in answer.content.decode()


def test_prediction_page_shows_schema_errors(alice, alice_model):
    answer = _client(alice).post("/predict", {"model_id": alice_model.pk, "col_age": "old"})
    assert answer.status_code == 400
    assert "&#x27;age&#x27;" in answer.content.decode() or "'age'" in answer.content.decode()


def test_prediction_page_batch_returns_csv(alice, alice_model):
    frame = patients_frame(4).drop(columns=["outcome"])
    upload = io.BytesIO(frame.to_csv(index=False).encode())
    upload.name = "batch.csv"
    answer = _client(alice).post("/predict", {"model_id": alice_model.pk, "file": upload})
    assert answer.status_code == 200
    assert answer["Content-Type"].startswith("text/csv")


def test_charlie_gets_404_on_prediction_and_importance_pages_for_alices_model(charlie, alice_model):
    client = _client(charlie)
    assert client.get(f"/predict?model_id={alice_model.pk}").status_code == 404
    assert client.get(f"/feature_importance?model_id={alice_model.pk}").status_code == 404


def test_feature_importance_page_lists_the_models_own_importances(alice, alice_model):
    page = _client(alice).get(f"/feature_importance?model_id={alice_model.pk}")
    assert page.status_code == 200
    html = page.content.decode()
    assert "The model&#x27;s own importances" in html or "The model's own importances" in html
    assert "age" in html


def test_feature_importance_api_says_which_figures_it_gives(alice_api, charlie_api, alice_model):
    response = alice_api.get(f"/api/v1/models/{alice_model.pk}/feature-importance/")
    assert response.status_code == 200
    body = response.json()
    assert body["permutation"] is None
    assert "own importances" in body["source"]
    features = [item["feature"] for item in body["model"]]
    assert set(features) == {"age", "bmi", "smoker"}
    assert features[0] == "age", "age drives the outcome in this data"
    assert charlie_api.get(f"/api/v1/models/{alice_model.pk}/feature-importance/").status_code == 404


def test_feature_importance_uses_holdout_rows_when_the_bundle_has_them(alice_api, alice_model):

    from modelhub.artifacts import artifact_load_object, artifact_save_object

    bundle = artifact_load_object(alice_model)
    frame = patients_frame(60, seed=11)
    bundle["holdout_X"], bundle["holdout_y"] = frame.drop(columns=["outcome"]), frame["outcome"]
    stored = artifact_save_object(bundle, user_id=alice_model.user_id, run_id=alice_model.run_id)
    TrainingModel.objects.filter(pk=alice_model.pk).update(file_name=stored.file_name, sha256=stored.sha256)
    body = alice_api.get(f"/api/v1/models/{alice_model.pk}/feature-importance/").json()
    assert body["permutation"][0]["feature"] == "age"
    assert "hold-out" in body["source"]


def test_feature_importance_of_a_platform_run_uses_the_rebuilt_holdout(
    alice, alice_api, charlie_api, make_dataset, django_capture_on_commit_callbacks
):
    from tabular import training
    from tabular.tests.test_training_service import tiny_breast_cancer_csv

    dataset = make_dataset(alice, tiny_breast_cancer_csv(), name="wdbc.csv")
    with django_capture_on_commit_callbacks(execute=True):
        run = training.training_run_start(
            user=alice, dataset=dataset, target="diagnosis", models=["random_forest"], level=1, cv_folds=3
        )
    model = TrainingModel.objects.get(run=run)
    body = alice_api.get(f"/api/v1/models/{model.pk}/feature-importance/").json()
    assert body["permutation"], body["source"]
    assert "hold-out rows" in body["source"]
    assert body["model"]
    n_test = sum(sum(row) for row in model.metrics["confusion_matrix"]["matrix"])
    assert f"the {n_test} hold-out rows" in body["source"]
    # It was stored with the model at training: deleting the dataset does not lose it.
    from tabular.models import Dataset

    Dataset.objects.filter(pk=dataset.pk).delete()
    assert alice_api.get(f"/api/v1/models/{model.pk}/feature-importance/").json() == body
    # A model without a stored figure and without its dataset: the answer says so instead of guessing.
    TrainingModel.objects.filter(pk=model.pk).update(feature_importance=None)
    body = alice_api.get(f"/api/v1/models/{model.pk}/feature-importance/").json()
    assert body["permutation"] is None
    assert "could not be recovered" in body["source"]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"rows": [{"age": 50}]}, "model_id"),
        ({"model_id": None, "rows": "age=50"}, "model_id"),
        ({"rows": "age=50"}, "model_id"),
    ],
)
def test_request_without_model_id_is_400_saying_what_to_send(alice_api, alice_model, payload, message):
    response = alice_api.post(URL, payload, format="json")
    assert response.status_code == 400
    assert message in response.json()["detail"]


def test_rows_that_are_not_a_list_of_objects_are_400(alice_api, alice_model):
    response = alice_api.post(URL, {"model_id": alice_model.pk, "rows": ["age", 50]}, format="json")
    assert response.status_code == 400
    assert "list of objects" in response.json()["detail"]


def test_empty_rows_are_400(alice_api, alice_model):
    response = alice_api.post(URL, {"model_id": alice_model.pk, "rows": []}, format="json")
    assert response.status_code == 400
    assert "No rows" in response.json()["detail"]


@pytest.mark.parametrize("body", [[None, None], [], "rows", 7, None])
def test_a_body_that_is_not_a_json_object_is_400_not_500(alice_api, alice_model, body):
    """Found by schemathesis (benchmarks/api_fuzz.py): a JSON list as the body crashed with AttributeError."""
    response = alice_api.post(URL, data=json.dumps(body), content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_body"
    assert "JSON object" in response.json()["detail"]


@pytest.mark.parametrize("content", [b"", b"\n", b"  \r\n"])
def test_csv_batch_that_is_empty_is_400_saying_so_not_500(alice_api, alice_model, content):
    """Found by schemathesis (benchmarks/api_fuzz.py): pandas' delimiter sniffer raised csv.Error on an empty file."""
    upload = io.BytesIO(content)
    upload.name = "batch.csv"
    response = alice_api.post(URL, {"model_id": alice_model.pk, "file": upload}, format="multipart")
    assert response.status_code == 400
    assert response.json()["code"] == "empty_file"


def test_csv_batch_with_one_column_is_read_and_refused_for_the_missing_columns(alice_api, alice_model):
    upload = io.BytesIO(b"age\n50\n61\n")
    upload.name = "batch.csv"
    response = alice_api.post(URL, {"model_id": alice_model.pk, "file": upload}, format="multipart")
    assert response.status_code == 400
    assert "'bmi'" in response.json()["detail"] and "'smoker'" in response.json()["detail"]
