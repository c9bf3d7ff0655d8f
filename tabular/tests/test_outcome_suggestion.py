"""Issue 12 item 1: the outcome column is never defaulted to an identifier, personal data or free text.

The messy clinical export a new user brings (`;`-separated, cp1252, `N/A` for missing, a patient-name and an MRN
column first): the pages pre-select the real outcome with the reason, the API refuses a flagged target with 400
naming the flag unless `allow_flagged_target` is true, and the page forms refuse it unless the box is ticked.
"""

import re

import numpy as np
import pandas as pd
import pytest

from modelhub.models import TrainingRun
from tabular.ml.profiling import profile_frame, suggest_outcome
from tabular.models import CleaningPlan

pytestmark = pytest.mark.django_db

FIRST = ["Zoé", "André", "Jürgen", "Inés", "Noël", "François", "Björn", "Renée", "José", "Chloé", "Søren", "Agnès"]
LAST = ["Müller", "Lefèvre", "Groß", "Peña", "Dubois", "Ångström", "Núñez", "Côté", "Weiß", "Fontaine"]


def messy_frame(n_rows: int = 80, seed: int = 5) -> pd.DataFrame:
    """A Framingham-like export: the name and the MRN come first, the outcome is the 10-year CHD flag."""
    rng = np.random.default_rng(seed)
    age = rng.integers(32, 80, n_rows)
    sys_bp = np.round(rng.normal(132, 18, n_rows), 1)
    risk = (age - 55) / 8 + (sys_bp - 132) / 20 + rng.normal(0, 1, n_rows)
    chol = np.round(rng.normal(236, 40, n_rows)).astype(object)
    chol[rng.choice(n_rows, 6, replace=False)] = "N/A"
    return pd.DataFrame(
        {
            "patient_name": [f"{FIRST[i % 12]} {LAST[(i * 7 + i // 12) % 10]}" for i in range(n_rows)],
            "MRN": [f"MRN{400000 + 17 * i}" for i in range(n_rows)],
            "ward": [f"W{i % 60}" for i in range(n_rows)],
            "notes": [f"seen on day {i} with mild chest pain after exercise" for i in range(n_rows)],
            "male": rng.integers(0, 2, n_rows),
            "age": age,
            "currentSmoker": rng.integers(0, 2, n_rows),
            "prevalentStroke": rng.integers(0, 2, n_rows),
            "totChol": chol,
            "sysBP": sys_bp,
            "TenYearCHD": (risk > 0.8).astype(int),
        }
    )


def messy_csv_bytes() -> bytes:
    return messy_frame().to_csv(index=False, sep=";").encode("cp1252")


@pytest.fixture
def messy_dataset(alice, make_dataset):
    return make_dataset(alice, messy_csv_bytes(), name="framingham_export.csv")


def _selected_option(html: str, select_name: str) -> str | None:
    select = re.search(rf'<select name="{select_name}"[^>]*>(.*?)</select>', html, re.S)
    assert select, f"no select named {select_name}"
    chosen = re.search(r'<option value="([^"]*)"[^>]*\bselected\b', select.group(1))
    return chosen.group(1) if chosen else None


# --- the suggestion itself (pure, no Django) -------------------------------------------------------------------


def test_the_suggestion_is_the_real_outcome_and_says_why():
    suggestion = suggest_outcome(profile_frame(messy_frame()))
    assert suggestion.column == "TenYearCHD"
    assert "TenYearCHD" in suggestion.reason and "two values" in suggestion.reason
    for flagged in ("patient_name", "MRN", "ward", "notes"):
        assert flagged not in suggestion.candidates


def test_without_an_outcome_name_a_two_valued_column_is_suggested_never_an_identifier():
    frame = messy_frame().drop(columns=["TenYearCHD"])
    frame["died"] = frame.pop("currentSmoker")  # the only outcome word
    suggestion = suggest_outcome(profile_frame(frame))
    assert suggestion.column == "died"
    plain = suggest_outcome(profile_frame(messy_frame().drop(columns=["TenYearCHD"])))
    assert plain.column in {"male", "currentSmoker"}  # a baseline condition (prevalentStroke) ranks below
    assert "check" in plain.reason


def test_a_table_with_no_plausible_outcome_gets_no_suggestion():
    frame = messy_frame()[["patient_name", "MRN", "ward", "notes", "age", "sysBP"]]
    suggestion = suggest_outcome(profile_frame(frame))
    assert suggestion.column is None
    assert "choose the outcome yourself" in suggestion.reason


# --- the API --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "code", "flags"),
    [
        ("patient_name", "personal_data", {"personal_data"}),
        ("MRN", "personal_data", {"personal_data", "identifier"}),
        ("ward", "high_cardinality", {"high_cardinality"}),
        ("notes", "high_cardinality", {"high_cardinality"}),
    ],
)
def test_the_api_refuses_a_flagged_target_with_400_naming_the_flag(alice_api, messy_dataset, target, code, flags):
    body = {"dataset": messy_dataset.pk, "target": target, "models": ["naive_bayes"], "level": 1, "cv_folds": 3}
    response = alice_api.post("/api/v1/training-runs/", body, format="json")
    assert response.status_code == 400, response.json()
    answer = response.json()
    assert answer["code"] == code and code in answer["detail"]
    assert answer["field"] == "target" and set(answer["flags"]) == flags
    assert not TrainingRun.objects.exists()

    plan = alice_api.post(f"/api/v1/datasets/{messy_dataset.pk}/cleaning-plan/", {"target": target}, format="json")
    assert plan.status_code == 400 and plan.json()["code"] == code
    assert not CleaningPlan.objects.exists()


def test_the_api_takes_a_flagged_target_when_the_request_insists(alice_api, messy_dataset):
    body = {"dataset": messy_dataset.pk, "target": "ward", "models": ["naive_bayes"], "level": 1, "cv_folds": 3}
    response = alice_api.post("/api/v1/training-runs/", {**body, "allow_flagged_target": True}, format="json")
    assert response.status_code == 202, response.json()
    assert TrainingRun.objects.get().config["target_flags"] == ["high_cardinality"]

    plan = alice_api.post(
        f"/api/v1/datasets/{messy_dataset.pk}/cleaning-plan/",
        {"target": "ward", "allow_flagged_target": True},
        format="json",
    )
    assert plan.status_code == 201, plan.json()
    assert "allow_flagged_target" not in CleaningPlan.objects.get().options


def test_the_api_takes_the_real_outcome_without_any_flag(alice_api, messy_dataset):
    body = {"dataset": messy_dataset.pk, "target": "TenYearCHD", "models": ["naive_bayes"], "level": 1}
    assert alice_api.post("/api/v1/training-runs/", body, format="json").status_code == 202


# --- the pages ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("page", ["/datasets/{pk}", "/datasets/{pk}/profile", "/training?dataset={pk}"])
def test_each_page_pre_selects_the_suggested_outcome_with_its_reason(alice_web, messy_dataset, page):
    response = alice_web.get(page.format(pk=messy_dataset.pk))
    assert response.status_code == 200
    html = response.content.decode()
    assert _selected_option(html, "target") == "TenYearCHD"
    assert "Suggested because the name “TenYearCHD” reads like an outcome" in html
    # The flagged columns say why they are not outcomes.
    assert re.search(r'<option value="patient_name"[^>]*>patient_name \(personal data\)</option>', html)


def test_a_page_never_falls_back_to_the_first_column(alice_web, alice, make_dataset):
    frame = messy_frame()[["patient_name", "MRN", "age", "sysBP"]]
    dataset = make_dataset(alice, frame.to_csv(index=False).encode(), name="no_outcome.csv")
    for page in (f"/datasets/{dataset.pk}", f"/training?dataset={dataset.pk}"):
        html = alice_web.get(page).content.decode()
        assert _selected_option(html, "target") in (None, "")
        assert "Choose the outcome column" in html


def test_the_plan_form_refuses_a_flagged_outcome_unless_confirmed(alice_web, messy_dataset):
    url = f"/datasets/{messy_dataset.pk}/plan"
    refused = alice_web.post(url, {"target": "patient_name"}, follow=True)
    assert not CleaningPlan.objects.exists()
    assert "personal data" in refused.content.decode() and "This really is the outcome" in refused.content.decode()

    confirmed = alice_web.post(url, {"target": "patient_name", "allow_flagged_target": "on"})
    assert confirmed.status_code == 302
    assert CleaningPlan.objects.get().target == "patient_name"


def test_the_training_form_refuses_a_flagged_outcome_unless_confirmed(
    alice_web, messy_dataset, django_capture_on_commit_callbacks
):
    form = {
        "dataset": messy_dataset.pk,
        "target": "MRN",
        "models": ["naive_bayes"],
        "cv_folds": 3,
        "imbalance": "class_weight",
        "level": 1,
        "primary_metric": "roc_auc",
    }
    refused = alice_web.post(f"/training?dataset={messy_dataset.pk}", form)
    assert refused.status_code == 400
    assert "flagged as personal data and identifier" in refused.content.decode()
    assert not TrainingRun.objects.exists()

    confirmed = alice_web.post(f"/training?dataset={messy_dataset.pk}", {**form, "allow_flagged_target": "on"})
    assert confirmed.status_code == 302
    assert TrainingRun.objects.get().config["target"] == "MRN"


def test_the_profile_api_tells_an_integrator_the_likely_outcome_and_the_refused_columns(alice, alice_api, make_dataset):
    dataset = make_dataset(alice)
    body = alice_api.get(f"/api/v1/datasets/{dataset.pk}/profile/").json()
    assert body["suggested_outcome"]["column"] == "outcome"
    assert body["suggested_outcome"]["reason"]
    assert "identifier" in body["flagged_targets"]["record_id"]
