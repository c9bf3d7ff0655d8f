"""Issue 12 item 2: a saved feature selection decides the predictors of the next runs of that dataset.

Saving "top 3 by ANOVA F" used to change nothing: training still used every kept column. Now the next run trains
on the saved columns (unless switched off), lists them as `features` (API and run page), and the model's report and
input schema are those columns only. The feature-selection page keeps the chosen method and links on to training.
"""

import re

import pytest

from modelhub.models import TrainingRun
from tabular import bundles

from .test_training_service import tiny_breast_cancer_csv

pytestmark = pytest.mark.django_db

ALL_FEATURES = [
    "mean radius",
    "mean texture",
    "mean perimeter",
    "mean area",
    "mean smoothness",
    "mean compactness",
    "mean concavity",
    "mean concave points",
]


@pytest.fixture
def cancer_dataset(alice, make_dataset):
    return make_dataset(alice, tiny_breast_cancer_csv(), name="wdbc.csv")


@pytest.fixture
def saved_selection(alice_api, cancer_dataset):
    """An applied plan for `diagnosis` and a saved top-3 ranking on it, made through the API."""
    plan = alice_api.post(
        f"/api/v1/datasets/{cancer_dataset.pk}/cleaning-plan/", {"target": "diagnosis"}, format="json"
    )
    assert plan.status_code == 201, plan.json()
    plan_id = plan.json()["id"]
    assert alice_api.post(f"/api/v1/cleaning-plans/{plan_id}/apply/").status_code == 200
    ranked = alice_api.post(
        f"/api/v1/cleaning-plans/{plan_id}/feature-selection/", {"method": "anova_f", "k": 3}, format="json"
    )
    assert ranked.status_code == 200, ranked.json()
    chosen = ranked.json()["selected_columns"]
    assert len(chosen) == 3
    return {"plan_id": plan_id, "columns": [name for name in ALL_FEATURES if name in chosen]}


def _train(api, dataset, capture, **extra):
    body = {"dataset": dataset.pk, "target": "diagnosis", "models": ["logistic_regression"], "level": 1}
    body.update({"cv_folds": 3, **extra})
    with capture(execute=True):
        response = api.post("/api/v1/training-runs/", body, format="json")
    assert response.status_code == 202, response.json()
    run = api.get(f"/api/v1/training-runs/{response.json()['id']}/").json()
    assert run["status"] == "succeeded", (run["message"], run["error"])
    return run


def test_the_next_run_trains_on_the_saved_selection_and_lists_it(
    alice_api, cancer_dataset, saved_selection, django_capture_on_commit_callbacks
):
    run = _train(alice_api, cancer_dataset, django_capture_on_commit_callbacks)
    assert run["features"] == saved_selection["columns"]
    model = TrainingRun.objects.get(pk=run["id"]).models.get()
    bundle = bundles.model_bundle_load(model)
    # What the model asks for at prediction time is exactly the selection.
    assert bundle["schema"].names == saved_selection["columns"]
    assert bundle["input_columns"] == saved_selection["columns"]


def test_a_run_can_switch_the_saved_selection_off(
    alice_api, cancer_dataset, saved_selection, django_capture_on_commit_callbacks
):
    run = _train(alice_api, cancer_dataset, django_capture_on_commit_callbacks, use_saved_selection=False)
    assert run["features"] == ALL_FEATURES


def test_without_a_saved_selection_the_run_lists_every_kept_column(
    alice_api, cancer_dataset, django_capture_on_commit_callbacks
):
    run = _train(alice_api, cancer_dataset, django_capture_on_commit_callbacks)
    assert run["features"] == ALL_FEATURES


def test_the_clinicians_own_choice_is_applied_too(
    alice_api, cancer_dataset, saved_selection, django_capture_on_commit_callbacks
):
    own = ["mean texture", "mean smoothness"]
    response = alice_api.put(
        f"/api/v1/cleaning-plans/{saved_selection['plan_id']}/feature-selection/",
        {"selected_columns": own},
        format="json",
    )
    assert response.status_code == 200
    run = _train(alice_api, cancer_dataset, django_capture_on_commit_callbacks)
    assert run["features"] == own


def test_the_training_page_shows_the_selection_and_switches_it_off(
    alice_web, cancer_dataset, saved_selection, django_capture_on_commit_callbacks
):
    page = alice_web.get(f"/training?dataset={cancer_dataset.pk}").content.decode()
    shown = re.search(r"<fieldset class=\"saved-selection\".*?</fieldset>", page, re.S)
    assert shown, "the training page does not show the saved selection"
    assert "3 columns" in shown.group(0) and all(column in shown.group(0) for column in saved_selection["columns"])
    assert 'name="ignore_saved_selection"' in shown.group(0)

    form = {
        "dataset": cancer_dataset.pk,
        "target": "diagnosis",
        "models": ["logistic_regression"],
        "cv_folds": 3,
        "imbalance": "class_weight",
        "level": 1,
        "primary_metric": "roc_auc",
    }
    with django_capture_on_commit_callbacks(execute=True):
        applied = alice_web.post(f"/training?dataset={cancer_dataset.pk}", form)
        ignored = alice_web.post(f"/training?dataset={cancer_dataset.pk}", {**form, "ignore_saved_selection": "on"})
    assert applied.status_code == ignored.status_code == 302
    runs = list(TrainingRun.objects.order_by("pk"))
    assert runs[0].config["features"] == saved_selection["columns"]
    assert runs[1].config["features"] == ALL_FEATURES

    run_page = alice_web.get(applied["Location"]).content.decode()
    listed = re.search(r"<details class=\"run-features\".*?</details>", run_page, re.S)
    assert listed and f"Predictors used ({len(saved_selection['columns'])})" in listed.group(0)
    assert all(f"<li>{column}</li>" in listed.group(0) for column in saved_selection["columns"])
    assert listed.group(0).count("<li>") == len(saved_selection["columns"])

    report = alice_web.get(f"/models/{runs[0].models.get().pk}/report").content.decode()
    used = re.search(r"<p data-predictors-used>(.*?)</p>", report, re.S)
    assert used and f"Predictors used: {', '.join(saved_selection['columns'])}." in used.group(1)
    assert f"saved on cleaning plan {saved_selection['plan_id']}" in used.group(1)


def test_the_selection_page_keeps_the_method_and_links_on_to_training(alice_web, cancer_dataset, saved_selection):
    url = f"/datasets/{cancer_dataset.pk}/plan/{saved_selection['plan_id']}/features"
    response = alice_web.post(url, {"method": "random_forest", "k": 4}, follow=True)
    html = response.content.decode()
    method = re.search(r'<select name="method"[^>]*>(.*?)</select>', html, re.S).group(1)
    assert re.search(r'<option value="random_forest"[^>]*selected', method)
    assert re.search(r'<input type="number" name="k" value="4"', html)
    link = re.search(r'<a href="([^"]+)"[^>]*data-train-link', html)
    assert link and link.group(1) == f"/training?dataset={cancer_dataset.pk}&amp;plan={saved_selection['plan_id']}"

    training = alice_web.get(f"/training?dataset={cancer_dataset.pk}&plan={saved_selection['plan_id']}")
    page = training.content.decode()
    plan_select = re.search(r'<select name="cleaning_plan"[^>]*>(.*?)</select>', page, re.S).group(1)
    assert re.search(rf'<option value="{saved_selection["plan_id"]}"[^>]*selected', plan_select)
