"""Issue 12 acceptance in Chromium: a new user's whole journey on a messy hospital export.

Log in → upload the `;`-separated cp1252 export (decimal commas, "N/A", a patient-name and an MRN column first) →
the profile suggests the real outcome, not the name → cleaning plan → a 5-feature selection saved → the training
page shows it → a SMOTE run of two fast models → a leaderboard with nothing clipped at 1280 px that lists the five
predictors → a report with no raw structures that lists them → the stored feature importance → a prediction that
keeps the typed values and reads in plain words → select the model → download its ZIP.
"""

import io
import re
import zipfile
from pathlib import Path

import pytest
from playwright.sync_api import expect

from modelhub.models import TrainingModel, TrainingRun
from tabular.tests.test_journey_api import N_POSITIVE, N_ROWS, PREDICTORS, messy_export
from tabular.tests.test_pages_readable import RAW_STRUCTURES
from tests.browser.clinicians import log_in, verified_clinician
from tests.browser.test_leaderboard_layout import OVERFLOW

pytestmark = pytest.mark.browser

EMAIL = "nadia.newcomer@example.org"
PASSWORD = "a-long-cardiology-password-2024"  # noqa: S105
KEEP = {"logistic_regression", "naive_bayes"}
TRAINING_CLICK_MS = 60_000  # tasks run eagerly here: the POST answers once the run has trained
# What a clinician types for one new patient: a large tumour.
PATIENT = {
    "mean radius": "20.6",
    "mean texture": "29.3",
    "mean perimeter": "140.1",
    "mean area": "1265",
    "mean smoothness": "0.117",
    "mean compactness": "0.277",
    "mean concavity": "0.351",
    "mean concave points": "0.152",
}


@pytest.fixture
def newcomer(django_user_model):
    return verified_clinician(django_user_model, email=EMAIL, password=PASSWORD, first_name="Nadia")


# The words of main a clinician reads, less the choices of its selects ("None" is a fair label for "no imbalance
# handling") and less its scripts (the charts' JSON).
MAIN_TEXT = """(() => {
  const main = document.querySelector('main').cloneNode(true);
  main.querySelectorAll('option, script, template, style').forEach((node) => node.remove());
  return main.textContent;
})()"""


def _assert_readable(page) -> None:
    text = page.evaluate(MAIN_TEXT)
    assert text.strip(), f"nothing to read on {page.url}"
    raw = RAW_STRUCTURES.search(text)
    if raw is not None:
        around = text[max(0, raw.start() - 80) : raw.end() + 80]
        raise AssertionError(f"raw structure {raw.group(0)!r} on {page.url}: …{around}…")


def _server_ms(page) -> float:
    """How long the server took to answer the page's own request (navigation timing, measured in the browser)."""
    timing = "performance.getEntriesByType('navigation')[0]"
    return page.evaluate(f"(() => {{ const n = {timing}; return n.responseStart - n.requestStart; }})()")


def test_a_new_users_journey_from_a_messy_export_to_a_downloaded_model(page, page_problems, newcomer):
    page.set_viewport_size({"width": 1280, "height": 800})
    log_in(page, email=EMAIL, password=PASSWORD)

    # Upload.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Data").click()
    page.get_by_role("button", name="Upload a dataset").first.click()
    page.wait_for_url("**/upload")
    page.get_by_label("Data file").set_input_files(
        {"name": "cardiology export.csv", "mimeType": "text/csv", "buffer": messy_export()}
    )
    page.get_by_label("Dataset name").fill("Cardiology export")
    page.get_by_role("button", name="Upload").click()
    page.wait_for_url(re.compile(r".*/datasets/\d+$"))
    page.get_by_role("heading", name="Cardiology export").wait_for()
    assert f"{N_ROWS} rows × 11 columns" in page.locator("main").inner_text()
    assert "Müller" in page.locator("table").inner_text()  # cp1252 read correctly

    # Profile: the suggested outcome is the real one, with its reason; the name and the MRN are flagged.
    page.locator("main").get_by_role("button", name="Profile").click()
    outcome = page.get_by_label("Outcome column", exact=True)
    assert outcome.input_value() == "outcome"
    expect(page.locator("[data-outcome-suggestion]").first).to_contain_text("outcome")
    page.get_by_role("button", name="Show class balance").click()
    page.get_by_role("heading", name="Outcome “outcome”").wait_for()
    main = page.locator("main").inner_text()
    assert str(N_POSITIVE) in main and str(N_ROWS - N_POSITIVE) in main  # class balance with counts
    flags = page.locator("ul.flag-list")
    assert flags.locator('li[data-column="patient_name"] [data-flag="personal_data"]').is_visible()
    assert flags.locator('li[data-column="MRN"] [data-flag="personal_data"]').is_visible()
    _assert_readable(page)

    # Cleaning plan with the suggested outcome as it stands: the name and the MRN go.
    page.get_by_role("link", name="Cardiology export").click()
    assert page.get_by_label("Outcome column", exact=True).input_value() == "outcome"
    page.get_by_role("button", name="Make a cleaning plan").click()
    page.get_by_role("heading", name="Cleaning plan for “outcome”").wait_for()
    assert page.get_by_label("Action for patient_name").input_value() == "drop"
    assert page.get_by_label("Action for MRN").input_value() == "drop"
    _assert_readable(page)
    page.get_by_role("button", name="Save and apply").click()
    page.get_by_role("heading", name="Cleaning report for “outcome”").wait_for()
    _assert_readable(page)

    # Feature selection: the best five by mutual information, saved for the next runs.
    page.locator("main").get_by_role("button", name="Feature selection").click()
    page.get_by_label("Method").select_option("mutual_info")
    page.get_by_label("Keep the best k").fill("5")
    page.get_by_role("button", name="Rank features").click()
    page.get_by_role("heading", name=re.compile("^Ranking by mutual information", re.I)).wait_for()
    assert page.get_by_label("Method").input_value() == "mutual_info"  # the chosen method is kept
    checked = page.locator("input[name=selected]:checked")
    expect(checked).to_have_count(5)
    chosen = [box.get_attribute("value") for box in checked.all()]
    assert set(chosen) <= set(PREDICTORS)
    page.get_by_role("button", name="Save my choice").click()
    expect(page.locator("input[name=selected]:checked")).to_have_count(5)
    _assert_readable(page)

    # The training page shows the saved selection; level 1, SMOTE, two fast models, three folds.
    page.get_by_role("button", name="Train with these columns").click()
    expect(page.get_by_role("heading", name="Train models")).to_be_visible()
    assert page.get_by_label("Outcome column", exact=True).input_value() == "outcome"
    saved = page.locator("[data-saved-selection]")
    expect(saved).to_contain_text("5 columns")
    expect(saved).not_to_contain_text("mutual_info")
    for column in chosen:
        expect(saved).to_contain_text(column)
    _assert_readable(page)
    for checkbox in page.locator("input[name=models]").all():
        if checkbox.get_attribute("value") not in KEEP:
            checkbox.uncheck()
    page.get_by_label("Cross-validation folds").fill("3")
    page.get_by_label("Search intensity", exact=False).fill("1")
    page.get_by_label("Imbalance handling").select_option("smote")
    page.get_by_role("button", name="Start training").click(timeout=TRAINING_CLICK_MS)

    # The leaderboard: both models, nothing clipped at 1280 px, the five predictors listed.
    expect(page.get_by_role("heading", name="Leaderboard")).to_be_visible(timeout=TRAINING_CLICK_MS)
    run = TrainingRun.objects.get()
    assert run.status == TrainingRun.Status.SUCCEEDED, (run.message, run.error)
    assert run.config["imbalance"] == "smote"
    expect(page.get_by_role("button", name=re.compile("^Select "))).to_have_count(2)
    assert page.evaluate(OVERFLOW) == []
    predictors = page.locator("[data-run-features]")
    expect(predictors).to_contain_text("Predictors used (5)")
    predictors.locator("summary").click()
    assert sorted(predictors.locator("li").all_inner_texts()) == sorted(chosen)
    _assert_readable(page)
    run_url = page.url

    # The report: plain words, the predictors it used.
    model = run.models.get(model_name="logistic_regression")
    page.get_by_role("link", name="Logistic regression", exact=True).click()
    page.wait_for_url(f"**/models/{model.pk}/report")
    _assert_readable(page)
    used = page.locator("[data-predictors-used]")
    for column in chosen:
        expect(used).to_contain_text(column)

    # Feature importance: stored at training time, read at once.
    assert TrainingModel.objects.get(pk=model.pk).feature_importance, "importance was not stored at training"
    page.get_by_role("link", name="Feature importance").click()
    expect(page.get_by_role("heading", name="Feature importance of Logistic regression")).to_be_visible()
    assert _server_ms(page) < 2_000
    expect(page.locator("main")).to_contain_text("permutation importance on the")
    importance_rows = page.locator("table").first.locator("tbody tr td:first-child").all_inner_texts()
    assert sorted(importance_rows) == sorted(chosen)
    _assert_readable(page)

    # Predict one patient: the typed values stay, the answer reads in plain words.
    page.goto(run_url)
    page.get_by_role("link", name="Predict with Logistic regression").click()
    expect(page.get_by_role("heading", name="One patient")).to_be_visible()
    form = page.locator("form.predict-form")
    for column in chosen:
        form.get_by_label(re.compile(rf"^{re.escape(column)}\b")).fill(PATIENT[column])
    form.get_by_role("button", name="Predict").click()
    headline = page.get_by_test_id("prediction-headline")
    expect(headline).to_have_text(re.compile(r"^(Higher|Lower) risk: \d+(\.\d+)?%"))
    form = page.locator("form.predict-form")
    for column in chosen:
        assert float(form.get_by_label(re.compile(rf"^{re.escape(column)}\b")).input_value()) == float(PATIENT[column])
    _assert_readable(page)

    # Select this model on the leaderboard.
    page.goto(run_url)
    page.get_by_role("button", name="Select Logistic regression").click()
    expect(page.locator("table.leaderboard .model-cell").filter(has_text="Selected")).to_contain_text(
        "Logistic regression"
    )
    assert TrainingModel.objects.get(pk=model.pk).is_selected

    # Download the model ZIP from its report.
    page.get_by_role("link", name="Logistic regression", exact=True).click()
    page.wait_for_url(f"**/models/{model.pk}/report")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download (ZIP)").click()
    download = download_info.value
    assert download.suggested_filename.endswith(".zip")
    archive = zipfile.ZipFile(io.BytesIO(Path(download.path()).read_bytes()))
    assert archive.testzip() is None
    assert "pipeline.joblib" in archive.namelist()

    assert page_problems.console_errors == [] and page_problems.page_errors == []
    assert page_problems.external_requests == []
    assert page_problems.csp_violations(page) == []
