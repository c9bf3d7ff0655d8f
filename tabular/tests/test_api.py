"""The datasets/profile/plan API: shapes of DESIGN.md §4 and the refusals (anonymous, other users, bad input)."""

import pytest
from django.conf import settings

from tabular.models import Dataset

from .conftest import media_files, small_csv, upload_file

pytestmark = pytest.mark.django_db


def _upload(client, content=None, file_name="patients.csv", **fields):
    return client.post(
        "/api/v1/datasets/", {"file": upload_file(content or small_csv(), file_name), **fields}, format="multipart"
    )


def test_upload_answers_201_with_the_contract_shape(alice_api):
    response = _upload(alice_api, file_name="ward.csv", name="Ward 3")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert {"id", "name", "n_rows", "n_columns", "columns", "sha256"} <= set(body)
    assert body["name"] == "Ward 3" and body["n_rows"] == 30 and body["n_columns"] == 5
    assert body["columns"][0].keys() >= {"name", "dtype", "n_missing"}
    assert len(body["sha256"]) == 64


def test_a_bad_file_gets_400_with_a_message_and_nothing_is_stored(alice_api):
    response = _upload(alice_api, content=b"age,sex,outcome\n", file_name="header.csv")

    assert response.status_code == 400
    assert response.json()["code"] == "header_only" and response.json()["detail"]
    assert not Dataset.objects.exists() and media_files(settings.MEDIA_ROOT) == []


def test_a_declared_length_over_the_limit_is_refused_before_parsing(alice_api, settings):
    settings.MAX_UPLOAD_MB = 1
    response = _upload(alice_api, content=small_csv() + b"0" * (2 * 1024 * 1024))

    assert response.status_code == 400 and response.json()["code"] == "file_too_large"
    assert media_files(settings.MEDIA_ROOT) == []


def test_missing_file_field_is_a_400_naming_it(alice_api):
    response = alice_api.post("/api/v1/datasets/", {"name": "x"}, format="multipart")

    assert response.status_code == 400 and "file" in response.json()["detail"]


def test_anonymous_gets_401(api_client, alice_dataset):
    for url in (
        "/api/v1/datasets/",
        f"/api/v1/datasets/{alice_dataset.pk}/",
        f"/api/v1/datasets/{alice_dataset.pk}/profile/",
    ):
        assert api_client.get(url).status_code == 401, url
    assert api_client.post("/api/extract_features", {}, format="json").status_code == 401


def test_the_list_holds_only_the_callers_datasets(alice_api, charlie, make_dataset, alice_dataset):
    make_dataset(charlie)

    body = alice_api.get("/api/v1/datasets/").json()

    assert [item["id"] for item in body["results"]] == [alice_dataset.pk]


def test_the_schema_documents_the_list_as_paginated_like_the_response(alice_api, alice_dataset):
    """Found by schemathesis (benchmarks/api_fuzz.py): the schema said one Dataset, the view answers a page."""
    schema = alice_api.get("/api/schema/", {"format": "json"}).json()
    operation = schema["paths"]["/api/v1/datasets/"]["get"]
    page_ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    page = schema["components"]["schemas"][page_ref.rsplit("/", 1)[1]]

    body = alice_api.get("/api/v1/datasets/", {"limit": 1, "offset": 0}).json()

    assert set(page["properties"]) == set(body) == {"count", "next", "previous", "results"}
    assert page["properties"]["results"]["items"] == {"$ref": "#/components/schemas/Dataset"}
    assert {"limit", "offset"} <= {parameter["name"] for parameter in operation["parameters"]}


def test_delete_removes_row_and_files(alice_api, alice_dataset, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_api.delete(f"/api/v1/datasets/{alice_dataset.pk}/")

    assert response.status_code == 204
    assert not Dataset.objects.exists() and media_files(settings.MEDIA_ROOT) == []


def test_profile_has_the_contract_shape_and_flags_the_identifier(alice_api, alice_dataset):
    response = alice_api.get(f"/api/v1/datasets/{alice_dataset.pk}/profile/", {"target": "outcome"})

    assert response.status_code == 200
    body = response.json()
    assert body["n_rows"] == 30 and body["n_columns"] == 5
    columns = {column["name"]: column for column in body["columns"]}
    assert {"name", "kind", "n_missing", "n_unique", "flags"} <= set(columns["age"])
    assert "identifier" in columns["record_id"]["flags"]
    assert body["target"]["name"] == "outcome"
    assert {item["value"]: item["count"] for item in body["target"]["class_counts"]} == {"well": 22, "sick": 8}


def test_profile_is_cached_per_target(alice_api, alice_dataset):
    from tabular.models import DatasetProfile

    alice_api.get(f"/api/v1/datasets/{alice_dataset.pk}/profile/", {"target": "outcome"})
    alice_api.get(f"/api/v1/datasets/{alice_dataset.pk}/profile/", {"target": "outcome"})
    alice_api.get(f"/api/v1/datasets/{alice_dataset.pk}/profile/")

    assert sorted(DatasetProfile.objects.values_list("target", flat=True)) == ["", "outcome"]


def test_unknown_target_is_a_400_naming_it(alice_api, alice_dataset):
    response = alice_api.get(f"/api/v1/datasets/{alice_dataset.pk}/profile/", {"target": "mortality"})

    assert response.status_code == 400
    assert response.json()["code"] == "unknown_column" and "mortality" in response.json()["detail"]


def _plan(client, dataset, target="outcome"):
    response = client.post(f"/api/v1/datasets/{dataset.pk}/cleaning-plan/", {"target": target}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def test_cleaning_plan_has_the_contract_shape_and_drops_the_identifier(alice_api, alice_dataset):
    plan = _plan(alice_api, alice_dataset)

    assert {"id", "target", "columns"} <= set(plan) and plan["target"] == "outcome"
    columns = {column["name"]: column for column in plan["columns"]}
    for column in columns.values():
        assert {"name", "action", "reason", "impute", "outliers", "encode", "scale"} <= set(column)
    assert columns["record_id"]["action"] == "drop" and columns["record_id"]["reason"]
    assert columns["age"]["action"] == "keep"


def test_plan_for_an_unknown_target_is_a_400(alice_api, alice_dataset):
    response = alice_api.post(f"/api/v1/datasets/{alice_dataset.pk}/cleaning-plan/", {"target": "nope"}, format="json")

    assert response.status_code == 400 and "nope" in response.json()["detail"]


def test_put_changes_one_column_and_keeps_the_rest(alice_api, alice_dataset):
    plan = _plan(alice_api, alice_dataset)

    response = alice_api.put(
        f"/api/v1/cleaning-plans/{plan['id']}/", {"columns": [{"name": "age", "action": "drop"}]}, format="json"
    )

    assert response.status_code == 200, response.json()
    columns = {column["name"]: column for column in response.json()["columns"]}
    assert columns["age"]["action"] == "drop"
    assert columns["bmi"] == {c["name"]: c for c in plan["columns"]}["bmi"]
    assert alice_api.get(f"/api/v1/cleaning-plans/{plan['id']}/").json()["columns"] == response.json()["columns"]


def test_put_with_an_unknown_column_is_a_400_naming_it_and_changes_nothing(alice_api, alice_dataset):
    plan = _plan(alice_api, alice_dataset)

    response = alice_api.put(
        f"/api/v1/cleaning-plans/{plan['id']}/", {"columns": [{"name": "weight", "action": "drop"}]}, format="json"
    )

    assert response.status_code == 400 and "weight" in response.json()["detail"]
    assert alice_api.get(f"/api/v1/cleaning-plans/{plan['id']}/").json()["columns"] == plan["columns"]


def test_put_with_an_unknown_method_is_a_400_naming_it(alice_api, alice_dataset):
    plan = _plan(alice_api, alice_dataset)

    response = alice_api.put(
        f"/api/v1/cleaning-plans/{plan['id']}/", {"columns": [{"name": "bmi", "impute": "magic"}]}, format="json"
    )

    assert response.status_code == 400 and "magic" in response.json()["detail"]


def test_apply_returns_the_report_and_stores_preprocessing_data(alice_api, alice_dataset, alice):
    from modelhub.models import PreprocessingData

    plan = _plan(alice_api, alice_dataset)
    response = alice_api.post(f"/api/v1/cleaning-plans/{plan['id']}/apply/")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert {"report", "n_rows_before", "n_rows_after"} <= set(body)
    assert body["n_rows_before"] == 30 and body["n_rows_after"] == 30
    stored = PreprocessingData.objects.get(cleaning_plan_id=plan["id"])
    assert stored.user == alice and stored.run is None
    assert stored.cleaning_report == body["report"]
    assert stored.original_columns == ["record_id", "age", "bmi", "smoker", "outcome"]
    assert stored.cleaner_config["columns"] == plan["columns"]


def test_feature_selection_ranks_kept_columns_and_the_override_is_stored(alice_api, alice_dataset):
    from modelhub.models import PreprocessingData

    plan = _plan(alice_api, alice_dataset)
    url = f"/api/v1/cleaning-plans/{plan['id']}/feature-selection/"
    assert alice_api.post(url, {"method": "mutual_info", "k": 2}, format="json").status_code == 400  # not applied
    alice_api.post(f"/api/v1/cleaning-plans/{plan['id']}/apply/")

    response = alice_api.post(url, {"method": "mutual_info", "k": 2}, format="json")

    assert response.status_code == 200, response.json()
    body = response.json()
    ranked = [item["feature"] for item in body["ranking"]]
    assert "record_id" not in ranked and "outcome" not in ranked and "age" in ranked
    assert len(body["selected_columns"]) == 2
    stored = PreprocessingData.objects.get(cleaning_plan_id=plan["id"])
    assert stored.selected_columns == body["selected_columns"]
    assert stored.feature_selector_config["method"] == "mutual_info"

    response = alice_api.put(url, {"selected_columns": ["smoker"]}, format="json")
    assert response.status_code == 200 and response.json()["selected_columns"] == ["smoker"]
    assert PreprocessingData.objects.get(cleaning_plan_id=plan["id"]).selected_columns == ["smoker"]
    response = alice_api.put(url, {"selected_columns": ["record_id"]}, format="json")
    assert response.status_code == 400 and "record_id" in response.json()["detail"]


def test_extract_features_makes_a_new_version_recording_its_parent(alice_api, alice_dataset):
    response = alice_api.post(
        "/api/extract_features",
        {"dataset": alice_dataset.pk, "spec": {"ratios": [["bmi", "age"]]}, "name": "with ratio"},
        format="json",
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["parent"] == alice_dataset.pk and body["name"] == "with ratio"
    assert body["n_columns"] > alice_dataset.n_columns and body["derivation"]["new_columns"]
    assert Dataset.objects.get(pk=body["id"]).parent == alice_dataset


def test_extract_features_with_an_unknown_column_is_a_400(alice_api, alice_dataset):
    response = alice_api.post(
        "/api/extract_features", {"dataset": alice_dataset.pk, "spec": {"ratios": [["weight", "age"]]}}, format="json"
    )

    assert response.status_code == 400 and "weight" in response.json()["detail"]
    assert Dataset.objects.count() == 1


def test_charlie_gets_404_for_every_one_of_alices_objects(alice_api, charlie_api, alice_dataset):
    plan = _plan(alice_api, alice_dataset)
    alice_api.post(f"/api/v1/cleaning-plans/{plan['id']}/apply/")
    dataset_url = f"/api/v1/datasets/{alice_dataset.pk}/"
    plan_url = f"/api/v1/cleaning-plans/{plan['id']}/"
    refusals = [
        charlie_api.get(dataset_url),
        charlie_api.delete(dataset_url),
        charlie_api.get(dataset_url + "profile/", {"target": "outcome"}),
        charlie_api.post(dataset_url + "cleaning-plan/", {"target": "outcome"}, format="json"),
        charlie_api.get(plan_url),
        charlie_api.put(plan_url, {"columns": [{"name": "age", "action": "drop"}]}, format="json"),
        charlie_api.post(plan_url + "apply/"),
        charlie_api.get(plan_url + "feature-selection/"),
        charlie_api.post(plan_url + "feature-selection/", {"method": "mutual_info", "k": 1}, format="json"),
        charlie_api.put(plan_url + "feature-selection/", {"selected_columns": ["age"]}, format="json"),
        charlie_api.post(
            "/api/extract_features", {"dataset": alice_dataset.pk, "spec": {"ratios": [["bmi", "age"]]}}, format="json"
        ),
    ]

    assert [response.status_code for response in refusals] == [404] * len(refusals)
    assert Dataset.objects.filter(pk=alice_dataset.pk).exists()
    assert alice_api.get(plan_url).json()["columns"] == plan["columns"]
