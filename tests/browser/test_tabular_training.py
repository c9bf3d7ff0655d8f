"""In Chromium: a clinician starts a small run on /training and reads the leaderboard with its overlaid curves."""

import pytest
from django.test import Client
from playwright.sync_api import expect

from modelhub.models import TrainingRun
from tabular.tests.conftest import upload_file
from tabular.tests.test_training_service import tiny_breast_cancer_csv
from tests.browser.waiting import wait_for_js

pytestmark = pytest.mark.browser

KEEP = {"logistic_regression", "naive_bayes"}


@pytest.fixture
def signed_in_page(page, alice, live_server):
    from tabular.services import dataset_create

    dataset_create(user=alice, uploaded_file=upload_file(tiny_breast_cancer_csv(), "wdbc.csv"))
    client = Client()
    client.force_login(alice)
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    return page


def test_start_a_run_in_the_browser_and_read_the_leaderboard(signed_in_page, page_problems):
    tab = signed_in_page
    tab.goto("/training")
    expect(tab.get_by_role("heading", name="Train models")).to_be_visible()
    tab.get_by_label("Outcome column").select_option("diagnosis")
    for checkbox in tab.locator("input[name=models]").all():
        if checkbox.get_attribute("value") not in KEEP:
            checkbox.uncheck()
    tab.get_by_label("Cross-validation folds").fill("3")
    tab.get_by_label("Search intensity", exact=False).fill("1")
    # Tasks run eagerly here: the POST answers once the run has trained and stored its models (with their feature
    # importance), so the click waits as long as the leaderboard does, not the 10 s default.
    tab.get_by_role("button", name="Start training").click(timeout=60_000)

    expect(tab.get_by_role("heading", name="Leaderboard")).to_be_visible(timeout=60_000)
    expect(tab.get_by_role("button", name="Select ")).to_have_count(2)
    for chart in ("roc-chart", "pr-chart", "calibration-chart"):
        # Chart.js registers every chart it drew on its canvas.
        # Wait for it: the charts are drawn after the page's scripts load, and a finishing run reloads the page.
        wait_for_js(
            tab, f"!!window.Chart && !!window.Chart.getChart(document.getElementById('{chart}'))", timeout_ms=15_000
        )
    assert TrainingRun.objects.get().status == TrainingRun.Status.SUCCEEDED
    assert page_problems.console_errors == [] and page_problems.page_errors == []
    assert page_problems.external_requests == []
    assert page_problems.csp_violations(tab) == []
