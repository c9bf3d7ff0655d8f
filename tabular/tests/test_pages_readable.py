"""A clinician can read every page of a trained run: plain words for internal values, no raw Python structures.

One real run through the platform (upload → cleaning plan → feature ranking → training, eager), then every page a
clinician opens for it is rendered over HTTP and its visible text is checked.
"""

import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from django.test import Client
from django.utils import dateformat, timezone

from tabular import services, training

from .conftest import upload_file

pytestmark = pytest.mark.django_db

# Words a page must never show: Python's repr of dicts and lists, missing numbers and crashes.
RAW_STRUCTURES = re.compile(r"\{'|\[\{|\bNone\b|\b(?i:nan)\b|Traceback")
INTERNAL_NAMES = ("svm", "roc_auc", "class_weight", "mutual_info", "logistic_regression", "most_frequent")


def clinical_frame(n_rows: int = 160, seed: int = 7) -> pd.DataFrame:
    """A Framingham-like table: age and blood pressure drive the 0/1 outcome; cholesterol has zeros and blanks."""
    rng = np.random.default_rng(seed)
    age = rng.integers(32, 80, n_rows)
    sys_bp = np.round(rng.normal(132, 18, n_rows), 1)
    chol = np.round(rng.normal(236, 40, n_rows)).astype(float)
    chol[rng.choice(n_rows, 9, replace=False)] = 0.0
    chol[rng.choice(n_rows, 5, replace=False)] = np.nan
    risk = (age - 55) / 8 + (sys_bp - 132) / 20 + rng.normal(0, 1, n_rows)
    return pd.DataFrame(
        {
            "age": age,
            "sex": rng.choice(["F", "M"], n_rows),
            "smoker": rng.choice(["yes", "no"], n_rows),
            "diabetes": rng.choice([0, 1], n_rows, p=[0.85, 0.15]),
            "totChol": chol,
            "sysBP": sys_bp,
            "TenYearCHD": (risk > 1.0).astype(int),
        }
    )


@pytest.fixture
def trained_run(alice, django_capture_on_commit_callbacks):
    """A finished platform run of two models on the clinical table, its applied plan, then a feature ranking."""
    dataset = services.dataset_create(
        user=alice, uploaded_file=upload_file(clinical_frame().to_csv(index=False).encode(), "framingham.csv")
    )
    plan = services.cleaning_plan_create(user=alice, dataset=dataset, target="TenYearCHD")
    services.cleaning_plan_apply(plan=plan)
    with django_capture_on_commit_callbacks(execute=True):
        run = training.training_run_start(
            user=alice,
            dataset=dataset,
            target="TenYearCHD",
            cleaning_plan=plan,
            models=["svm", "logistic_regression"],
            level=1,
            cv_folds=3,
            imbalance="class_weight",
        )
    run.refresh_from_db()
    assert run.status == run.Status.SUCCEEDED, (run.message, run.error)
    # Ranked after training, so the run above used every kept column whatever a saved selection does.
    services.feature_selection_run(plan=plan, method="mutual_info", k=4)
    return {"dataset": dataset, "plan": plan, "run": run, "models": list(run.models.order_by("pk"))}


class _VisibleText(HTMLParser):
    """The text a reader sees: text nodes outside <script>/<style>, and the attributes browsers show."""

    SHOWN_ATTRIBUTES = {"title", "placeholder", "aria-label", "alt"}

    def __init__(self):
        super().__init__()
        self.parts: list[str] = []
        self._hidden_depth = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._hidden_depth += 1
        for name, value in attrs:
            if value and (name in self.SHOWN_ATTRIBUTES or (tag == "input" and name == "value")):
                self.parts.append(value)

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self._hidden_depth:
            self._hidden_depth -= 1

    def handle_data(self, data):
        if not self._hidden_depth:
            self.parts.append(data)


def visible_text(response) -> str:
    parser = _VisibleText()
    parser.feed(response.content.decode())
    return " ".join(" ".join(parser.parts).split())


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _pages(trained_run) -> dict[str, str]:
    dataset, plan, run, model = (
        trained_run["dataset"],
        trained_run["plan"],
        trained_run["run"],
        trained_run["models"][0],
    )
    return {
        "run detail and leaderboard": f"/training/runs/{run.pk}",
        "model report": f"/models/{model.pk}/report",
        "predict form": f"/predict?model_id={model.pk}",
        "profile": f"/datasets/{dataset.pk}/profile?target=TenYearCHD",
        "cleaning plan": f"/datasets/{dataset.pk}/plan/{plan.pk}",
        "cleaning report": f"/datasets/{dataset.pk}/plan/{plan.pk}/report",
        "feature selection": f"/datasets/{dataset.pk}/plan/{plan.pk}/features",
        "feature importance": f"/feature_importance?model_id={model.pk}",
        "my models": "/my_models",
    }


def test_no_page_of_a_trained_run_shows_raw_python_structures(alice, trained_run):
    client = _client(alice)
    problems = {}
    for name, url in _pages(trained_run).items():
        response = client.get(url)
        assert response.status_code == 200, (name, response.status_code)
        found = sorted(set(RAW_STRUCTURES.findall(visible_text(response))))
        if found:
            problems[name] = found
    model = trained_run["models"][0]
    answer = client.post(
        "/predict",
        {"model_id": model.pk, "col_age": "61", "col_sex": "F", "col_smoker": "", "col_totChol": "", "col_sysBP": ""},
    )
    assert answer.status_code == 200
    found = sorted(set(RAW_STRUCTURES.findall(visible_text(answer))))
    if found:
        problems["prediction result"] = found
    assert problems == {}


def test_no_page_of_a_trained_run_shows_internal_identifiers(alice, trained_run):
    client = _client(alice)
    problems = {}
    for name, url in _pages(trained_run).items():
        text = visible_text(client.get(url))
        shown = [word for word in INTERNAL_NAMES if re.search(rf"\b{word}\b", text)]
        if shown:
            problems[name] = shown
    assert problems == {}


def test_pages_name_models_metrics_and_methods_in_plain_words(alice, trained_run):
    client = _client(alice)
    pages = _pages(trained_run)
    leaderboard = visible_text(client.get(pages["run detail and leaderboard"]))
    assert "Support vector machine" in leaderboard
    assert "Logistic regression" in leaderboard
    assert "ROC AUC" in leaderboard
    assert "class weighting" in leaderboard
    report = visible_text(client.get(f"/models/{trained_run['models'][0].pk}/report"))
    assert "ROC AUC" in report and "class weighting" in report
    assert "mutual information" in visible_text(client.get(pages["feature selection"]))
    assert "Support vector machine" in visible_text(client.get(pages["my models"]))


def test_the_report_shows_missing_data_and_cleaning_as_a_table(alice, trained_run):
    model = trained_run["models"][0]
    html = _client(alice).get(f"/models/{model.pk}/report").content.decode()
    section = html[html.index("Missing data and cleaning") : html.index("Class balance")]
    assert "<table" in section and "<pre" not in section
    text = " ".join(re.sub(r"<[^>]+>", " ", section).split())
    # totChol has 5 blank cells; they are imputed with the median.
    assert re.search(r"totChol \S+ 5 median", text), text


def test_the_leaderboard_links_each_model_to_its_report_and_predict_pages(alice, trained_run):
    html = _client(alice).get(f"/training/runs/{trained_run['run'].pk}").content.decode()
    for model in trained_run["models"]:
        assert f'href="/models/{model.pk}/report"' in html
        assert f'href="/predict?model_id={model.pk}"' in html


def test_my_models_shows_dataset_outcome_run_and_date_grouped_by_run(alice, trained_run):
    run = trained_run["run"]
    html = _client(alice).get("/my_models").content.decode()
    group = re.search(rf'<section[^>]*data-run="{run.pk}"[^>]*>(.*?)</section>', html, re.DOTALL)
    assert group, "each run is a section of its own"
    text = " ".join(re.sub(r"<[^>]+>", " ", group.group(1)).split())
    assert "Dataset framingham" in text and "Outcome TenYearCHD" in text
    assert f"run {run.pk}" in text
    assert f"Started {dateformat.format(timezone.localtime(run.created_at), 'j M Y, H:i')}" in text
    for model in trained_run["models"]:
        assert f'href="/models/{model.pk}/report"' in group.group(1)


# --- the predict form ------------------------------------------------------------------------------------------


def _field(html: str, name: str) -> str:
    """The <select> or <input> element named `name`, whole."""
    match = re.search(rf'<select[^>]*name="{name}"[^>]*>.*?</select>', html, re.DOTALL) or re.search(
        rf'<input[^>]*name="{name}"[^>]*>', html
    )
    assert match, f"no field {name}"
    return match.group(0)


def test_predict_form_offers_selects_for_yes_no_and_categories_and_shows_ranges_and_imputation(alice, trained_run):
    model = trained_run["models"][0]
    html = _client(alice).get(f"/predict?model_id={model.pk}").content.decode()
    diabetes = _field(html, "col_diabetes")
    assert diabetes.startswith("<select") and ">Yes</option>" in diabetes and ">No</option>" in diabetes
    sex = _field(html, "col_sex")
    assert sex.startswith("<select") and ">F</option>" in sex and ">M</option>" in sex
    age = _field(html, "col_age")
    assert 'type="number"' in age and " min=" not in age  # a value outside the training range is allowed
    text = " ".join(re.sub(r"<[^>]+>", " ", html).split())
    model.refresh_from_db()
    low, high = model.input_ranges["age"]
    frame = clinical_frame()
    assert frame.age.min() <= low < high <= frame.age.max()
    assert f"Training range: {low:g} to {high:g}." in text
    # A blank cholesterol is imputed with the training median: the form says so before anything is sent.
    assert re.search(r"If left blank: \S+ \(median of the training rows\)", text), text


def test_predict_form_keeps_the_values_typed_and_reads_the_result_in_plain_words(alice, trained_run):
    model = trained_run["models"][0]
    posted = {"col_age": "71", "col_sex": "M", "col_smoker": "yes", "col_diabetes": "1", "col_sysBP": "168.5"}
    answer = _client(alice).post("/predict", {"model_id": model.pk, **posted, "col_totChol": ""})
    html = answer.content.decode()
    assert answer.status_code == 200
    assert 'value="71"' in _field(html, "col_age")
    assert 'value="168.5"' in _field(html, "col_sysBP")
    assert re.search(r'<option value="M" selected>', _field(html, "col_sex"))
    assert re.search(r'<option value="yes" selected>', _field(html, "col_smoker"))
    assert re.search(r'<option value="1" selected>', _field(html, "col_diabetes"))
    text = visible_text(answer)
    assert re.search(r"(Higher|Lower) risk: \d+\.\d% \(this model flags patients from \d+\.\d%\)", text), text
    assert "with probability" not in text
