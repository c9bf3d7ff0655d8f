"""Dataset pages: upload (form and script), list, detail with paginated preview, delete, profile, plan, report."""

import pandas as pd
import pytest
from django.conf import settings

from tabular.models import CleaningPlan, Dataset

from .conftest import media_files, small_csv, upload_file

pytestmark = pytest.mark.django_db


def test_pages_need_a_login(client, alice_dataset):
    for url in ("/upload", "/datasets", f"/datasets/{alice_dataset.pk}", f"/datasets/{alice_dataset.pk}/profile"):
        response = client.get(url)
        assert response.status_code == 302 and "/login" in response["Location"], url


def test_upload_page_shows_the_form_and_the_progress_script(alice_web):
    response = alice_web.get("/upload")

    assert response.status_code == 200
    html = response.content.decode()
    assert 'type="file"' in html and "tabular-upload.js" in html and "<progress" in html


def test_upload_form_post_without_script_redirects_to_the_dataset(alice_web, alice):
    response = alice_web.post("/upload", {"file": upload_file(small_csv()), "name": "Ward 3"})

    dataset = Dataset.objects.get(owner=alice)
    assert response.status_code == 302 and response["Location"] == f"/datasets/{dataset.pk}"
    assert dataset.name == "Ward 3"


def test_upload_script_gets_json_with_the_next_page(alice_web, alice):
    response = alice_web.post("/upload", {"file": upload_file(small_csv())}, headers={"Accept": "application/json"})

    assert response.status_code == 201
    assert response.json()["redirect"] == f"/datasets/{Dataset.objects.get(owner=alice).pk}"


def test_a_bad_file_is_shown_plainly_on_the_form_and_nothing_is_stored(alice_web):
    response = alice_web.post("/upload", {"file": upload_file(b"age\n61\n72\n", "single.csv")})

    assert response.status_code == 400
    html = response.content.decode()
    assert "The file was not uploaded" in html and "column" in html
    assert not Dataset.objects.exists() and media_files(settings.MEDIA_ROOT) == []


def test_a_bad_file_sent_by_the_script_gets_json_error(alice_web):
    response = alice_web.post(
        "/upload", {"file": upload_file(b"", "empty.csv")}, headers={"Accept": "application/json"}
    )

    assert response.status_code == 400 and response.json()["code"] == "empty_file"


def test_dataset_list_has_an_empty_state_then_the_dataset(alice_web, alice, make_dataset):
    assert "No datasets yet" in alice_web.get("/datasets").content.decode()
    make_dataset(alice, name="cohort.csv")

    html = alice_web.get("/datasets").content.decode()
    assert "cohort" in html and "No datasets yet" not in html


def test_detail_preview_is_paginated_by_50_rows(alice_web, alice, make_dataset):
    dataset = make_dataset(alice, small_csv(n_rows=120))

    first = alice_web.get(f"/datasets/{dataset.pk}").content.decode()
    last = alice_web.get(f"/datasets/{dataset.pk}?page=3").content.decode()

    assert "R0000" in first and "R0049" in first and "R0050" not in first
    assert "Page 1 of 3" in first and "R0100" in last and "R0119" in last and "R0099" not in last
    assert "Page 3 of 3" in alice_web.get(f"/datasets/{dataset.pk}?page=99").content.decode()


def test_preview_escapes_cell_values(alice_web, alice, make_dataset):
    frame = pd.DataFrame({"note": ["<script>alert(1)</script>", "ok", "fine"], "outcome": ["a", "b", "a"]})
    dataset = make_dataset(alice, frame.to_csv(index=False).encode())

    html = alice_web.get(f"/datasets/{dataset.pk}").content.decode()

    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_delete_asks_first_then_removes_row_and_files(alice_web, alice_dataset, django_capture_on_commit_callbacks):
    confirm = alice_web.get(f"/datasets/{alice_dataset.pk}/delete")
    assert confirm.status_code == 200 and "cannot be undone" in confirm.content.decode()
    assert Dataset.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        response = alice_web.post(f"/datasets/{alice_dataset.pk}/delete")

    assert response.status_code == 302 and response["Location"] == "/datasets"
    assert not Dataset.objects.exists() and media_files(settings.MEDIA_ROOT) == []


def test_charlie_gets_404_for_alices_pages(client, charlie, alice_dataset, alice):
    plan = CleaningPlan.objects.create(owner=alice, dataset=alice_dataset, target="outcome", plan={"columns": []})
    client.force_login(charlie)
    base = f"/datasets/{alice_dataset.pk}"
    for url in (
        base,
        f"{base}/profile",
        f"{base}/delete",
        f"{base}/plan/{plan.pk}",
        f"{base}/plan/{plan.pk}/report",
        f"{base}/plan/{plan.pk}/features",
    ):
        assert client.get(url).status_code == 404, url
    for url in (f"{base}/delete", f"{base}/plan", f"{base}/plan/{plan.pk}", f"{base}/plan/{plan.pk}/apply"):
        assert client.post(url, {"target": "outcome"}).status_code == 404, url
    assert Dataset.objects.filter(pk=alice_dataset.pk).exists()


def test_profile_page_shows_flags_with_explanations_and_chart_data(alice_web, alice_dataset):
    response = alice_web.get(f"/datasets/{alice_dataset.pk}/profile?target=outcome")

    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-flag="identifier"' in html and "record number" in html
    assert 'id="profile-charts"' in html and "chart.umd.min.js" in html and 'id="chart-class-balance"' in html
    assert response.context["charts"]["histograms"]["age"]["counts"]


def test_profile_page_with_an_unknown_target_says_so(alice_web, alice_dataset):
    response = alice_web.get(f"/datasets/{alice_dataset.pk}/profile?target=nope", follow=True)

    assert "nope" in response.content.decode() and response.status_code == 200


def test_plan_edit_save_apply_and_report(alice_web, alice_dataset):
    response = alice_web.post(f"/datasets/{alice_dataset.pk}/plan", {"target": "outcome"})
    plan = CleaningPlan.objects.get()
    assert response["Location"] == f"/datasets/{alice_dataset.pk}/plan/{plan.pk}"
    page = alice_web.get(response["Location"])
    assert page.status_code == 200 and "record_id" in page.content.decode()

    names = [column["name"] for column in plan.plan["columns"]]
    age = names.index("age")
    form = {
        f"col-{i}-{field}": column.get(field) or ""
        for i, column in enumerate(plan.plan["columns"])
        for field in ("action", "impute", "outliers", "encode", "scale")
    }
    form[f"col-{age}-action"] = "drop"
    response = alice_web.post(f"/datasets/{alice_dataset.pk}/plan/{plan.pk}", {**form, "next": "apply"})

    assert response.status_code == 302 and response["Location"].endswith("/report")
    plan.refresh_from_db()
    assert plan.status == "applied" and plan.plan["columns"][age]["action"] == "drop"
    report = alice_web.get(response["Location"])
    assert report.status_code == 200 and "Imputed cells" in report.content.decode()


def test_plan_edit_with_an_invalid_method_shows_the_error_and_keeps_the_plan(alice_web, alice_dataset):
    alice_web.post(f"/datasets/{alice_dataset.pk}/plan", {"target": "outcome"})
    plan = CleaningPlan.objects.get()
    before = plan.plan
    names = [column["name"] for column in plan.plan["columns"]]

    response = alice_web.post(
        f"/datasets/{alice_dataset.pk}/plan/{plan.pk}", {f"col-{names.index('bmi')}-impute": "magic", "next": "save"}
    )

    assert response.status_code == 400 and "magic" in response.content.decode()
    plan.refresh_from_db()
    assert plan.plan == before
