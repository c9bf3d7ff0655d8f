"""In Chromium: the leaderboard of a finished run fits a 1280 px screen and a 390 px phone — nothing scrolls sideways,
no button or link is clipped — and each model name links to its report and its predict page."""

import pytest
from django.test import Client
from playwright.sync_api import expect

from tabular.tests.conftest import upload_file
from tabular.tests.test_pages_readable import clinical_frame

pytestmark = pytest.mark.browser

# The longest model names of the catalogue, so the widest labels are laid out.
MODELS = ["hist_gradient_boosting", "svm", "logistic_regression"]

# Everything that overflows: the page itself, the leaderboard's own box, and any control outside the viewport or
# outside the leaderboard's visible box (a clipped button).
OVERFLOW = """() => {
  const problems = [];
  const page = document.documentElement;
  if (page.scrollWidth > window.innerWidth) problems.push(`page: ${page.scrollWidth}px in ${window.innerWidth}px`);
  const table = [...document.querySelectorAll('table')].find(
    (t) => t.caption && t.caption.textContent.trim().startsWith('Models ranked'));
  if (!table) return ['no leaderboard'];
  const wrap = table.parentElement;
  if (wrap.scrollWidth > wrap.clientWidth + 1) problems.push(`table: ${wrap.scrollWidth}px in ${wrap.clientWidth}px`);
  const box = wrap.getBoundingClientRect();
  const left = Math.max(0, box.left), right = Math.min(window.innerWidth, box.right);
  for (const control of table.querySelectorAll('button, a')) {
    const r = control.getBoundingClientRect();
    const name = control.getAttribute('aria-label') || control.textContent.trim();
    if (r.width === 0 || r.height === 0) problems.push(`${name}: not shown`);
    else if (r.left < left - 1 || r.right > right + 1) problems.push(`${name}: ${r.left}-${r.right} clipped`);
  }
  return problems;
}"""


@pytest.fixture
def finished_run(alice, live_server):
    from tabular import services, training

    dataset = services.dataset_create(
        user=alice, uploaded_file=upload_file(clinical_frame().to_csv(index=False).encode(), "framingham.csv")
    )
    # Celery runs eagerly here and the live-server database commits at once: the run is finished on return.
    run = training.training_run_start(
        user=alice, dataset=dataset, target="TenYearCHD", models=MODELS, level=1, cv_folds=3
    )
    run.refresh_from_db()
    assert run.status == run.Status.SUCCEEDED, (run.message, run.error)
    return run


@pytest.fixture
def signed_in_page(page, alice, live_server):
    client = Client()
    client.force_login(alice)
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    return page


@pytest.mark.parametrize(("width", "height"), [(1280, 800), (390, 844)], ids=["desktop-1280", "phone-390"])
def test_the_leaderboard_fits_without_clipping(signed_in_page, finished_run, page_problems, width, height):
    tab = signed_in_page
    tab.set_viewport_size({"width": width, "height": height})
    tab.goto(f"/training/runs/{finished_run.pk}")
    expect(tab.get_by_role("heading", name="Leaderboard")).to_be_visible()
    expect(tab.locator("table:has(caption) tbody tr").filter(has=tab.get_by_role("button"))).to_have_count(len(MODELS))

    assert tab.evaluate(OVERFLOW) == []
    for button in tab.locator("table button").all():
        expect(button).to_be_visible()
    if width >= 1280:
        # The wide layout is a table whose header row is shown, one line per model.
        expect(tab.locator(".leaderboard thead")).to_be_visible()
    assert page_problems.console_errors == [] and page_problems.page_errors == []
    assert page_problems.external_requests == []


def test_model_names_link_to_their_report_and_predict_pages(signed_in_page, finished_run):
    tab = signed_in_page
    tab.set_viewport_size({"width": 1280, "height": 800})
    tab.goto(f"/training/runs/{finished_run.pk}")
    model = finished_run.models.get(model_name="svm")

    tab.get_by_role("link", name="Support vector machine", exact=True).click()
    tab.wait_for_url(f"**/models/{model.pk}/report")
    expect(tab.get_by_role("heading", name="Model report: Support vector machine")).to_be_visible()

    tab.go_back()
    tab.get_by_role("link", name="Predict with Support vector machine").click()
    tab.wait_for_url(f"**/predict?model_id={model.pk}")
    expect(tab.get_by_role("heading", name="One patient")).to_be_visible()
