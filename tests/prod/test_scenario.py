"""A clinician's day on the production shape, over HTTPS through nginx: every step served by the real processes.

Register through the allauth form and the e-mailed link (conftest's `clinician`), JWT, upload a CSV, train on a
Celery worker over Redis, predict, ask the chatbot (knowledge base in PostgreSQL+pgvector), train a tiny image
model on the imaging worker; static files from nginx; the probes.
"""

import re

import pytest

from .helpers import assert_storage_consistent, breast_cancer_csv, breast_cancer_examples, shapes_zip, wait_for_run

TRAINING_SECONDS = 240


@pytest.fixture(scope="module")
def dataset(api):
    response = api.post(
        f"{api.base_url}/api/v1/datasets/",
        files={"file": ("breast_cancer.csv", breast_cancer_csv(), "text/csv")},
        data={"name": "Breast cancer (prod shape)"},
        timeout=60,
    )
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture(scope="module")
def tabular_run(api, dataset):
    response = api.post(
        f"{api.base_url}/api/v1/training-runs/",
        json={
            "dataset": dataset["id"],
            "target": "diagnosis",
            "models": ["logistic_regression"],
            "level": 1,
            "cv_folds": 3,
            "run_name": "prod shape scenario",
        },
        timeout=60,
    )
    assert response.status_code == 202, response.text
    return wait_for_run(api, response.json()["id"], seconds=TRAINING_SECONDS)


def test_the_site_answers_over_https_with_its_probes_and_security_headers(shape):
    health = shape.get("/healthz", timeout=10)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    ready = shape.get("/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ok"
    # Django sees HTTPS through X-Forwarded-Proto: HSTS on, and no redirect loop to https.
    home = shape.get("/", timeout=10, allow_redirects=False)
    assert home.status_code == 200, home.status_code
    assert "max-age=" in home.headers.get("Strict-Transport-Security", "")
    # The request id nginx made is the one Django logged and answered with.
    assert re.fullmatch(r"[0-9a-f]{32}", home.headers["X-Request-ID"])


def test_static_files_come_from_nginx_with_a_cache_header(shape):
    page = shape.get("/login", timeout=10)
    assert page.status_code == 200
    stylesheet = re.search(r'href="(/static/[^"]+\.css)"', page.text)
    assert stylesheet, "the login page links no stylesheet under /static/"
    response = shape.get(stylesheet.group(1), timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/css")
    assert "max-age=" in response.headers["Cache-Control"] and "public" in response.headers["Cache-Control"]
    # Served by nginx itself, not by Django (which would add its request id and CSP headers).
    assert "X-Request-ID" not in response.headers and "Content-Security-Policy" not in response.headers
    assert shape.get("/static/no-such-file.css", timeout=10).status_code == 404


def test_the_registered_clinician_is_verified_and_signs_in_with_jwt(shape, clinician, api):
    me = api.get(f"{api.base_url}/api/v1/me/", timeout=30)
    assert me.status_code == 200, me.text
    assert me.json()["email"] == clinician["email"]
    wrong = shape.http.post(
        shape.url("/api/v1/auth/token/"), json={"email": clinician["email"], "password": "not-the-password"}, timeout=30
    )
    assert wrong.status_code == 401 and wrong.json()["code"]


def test_a_csv_uploads_and_a_tabular_run_succeeds_on_a_real_worker(api, dataset, tabular_run, shape):
    assert dataset["n_rows"] == 300 and dataset["n_columns"] == 31
    assert tabular_run["status"] == "succeeded", tabular_run
    assert tabular_run["progress"] == 1.0
    (model,) = tabular_run["models"]
    assert model["model_name"] == "logistic_regression"
    assert model["metrics"]["roc_auc"] > 0.9, model["metrics"]
    worker_logs = shape.services["worker-a"].tail(200_000) + shape.services["worker-b"].tail(200_000)
    assert "tabular.tasks.train_tabular_run" in worker_logs


def test_the_trained_model_predicts(api, tabular_run):
    model_id = tabular_run["models"][0]["id"]
    malignant, benign = breast_cancer_examples()
    response = api.post(
        f"{api.base_url}/api/predict_tabular", json={"model_id": model_id, "rows": [malignant, benign]}, timeout=60
    )
    assert response.status_code == 200, response.text
    first, second = response.json()["predictions"]
    assert (first["label"], second["label"]) == ("malignant", "benign"), (first, second)
    assert set(first["probabilities"]) == {"benign", "malignant"}
    assert first["explanation"] and first["confidence"] > 0.5


def test_the_chatbot_answers_from_the_knowledge_base_with_sources(api):
    start = api.post(f"{api.base_url}/chat/start", json={}, timeout=30)
    assert start.status_code in (200, 201), start.text
    conversation_id = start.json()["conversation_id"]
    response = api.post(
        f"{api.base_url}/chat/message",
        json={"conversation_id": conversation_id, "message": "How do I train a model on my CSV file?"},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["answer"].strip()
    assert body["sources"], body
    assert all(source["title"] and source["excerpt"] for source in body["sources"])


def test_a_tiny_image_model_trains_on_the_imaging_worker(api, shape):
    response = api.post(
        f"{api.base_url}/api/train_model",
        files={"file": ("shapes.zip", shapes_zip(per_class=8, size=32), "application/zip")},
        data={"architecture": "mobilenet_v3_small", "level": "1", "image_size": "32"},
        timeout=60,
    )
    assert response.status_code == 202, response.text
    run = wait_for_run(api, response.json()["id"], seconds=TRAINING_SECONDS)
    assert run["status"] == "succeeded", run
    (model,) = run["models"]
    assert model["model_name"] == "mobilenet_v3_small" and model["metric_name"] == "accuracy"
    # Only worker B listens on `imaging`: the queue routing holds in production too.
    assert "imaging.tasks.train_image_classifier" in shape.services["worker-b"].tail(200_000)
    assert "imaging.tasks.train_image_classifier" not in shape.services["worker-a"].tail(200_000)


def test_every_stored_file_belongs_to_a_row_and_every_row_has_its_file(shape):
    report = assert_storage_consistent(shape)
    assert report["file_count"] > 0
