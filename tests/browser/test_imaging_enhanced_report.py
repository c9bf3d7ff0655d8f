"""A clinician ticks enhanced mode on the anomaly page, scores an image and sees each detector's rank, then opens the
detector's printable report (histogram and training curve drawn server-side) from the page and from My models."""

import pytest

from imaging.tests.conftest import shapes_entries, zip_bytes
from tests.browser.clinicians import log_in, verified_clinician

pytestmark = pytest.mark.browser

EMAIL = "omar.anomaly@example.org"
PASSWORD = "a-long-pathology-password-2024"  # noqa: S105


@pytest.fixture
def clinician(django_user_model, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return verified_clinician(django_user_model, email=EMAIL, password=PASSWORD, first_name="Omar")


def test_train_an_enhanced_detector_score_an_image_and_read_its_report(page, page_problems, clinician):
    import torch

    torch.set_num_threads(1)
    log_in(page, email=EMAIL, password=PASSWORD)

    page.goto("/anomaly_detection")
    normal = {name.split("/")[-1]: data for name, data in shapes_entries(shapes=("circle",), per_class=12).items()}
    page.get_by_label("ZIP of normal images").set_input_files(
        {"name": "normal.zip", "mimeType": "application/zip", "buffer": zip_bytes(normal)}
    )
    page.get_by_label("Enhanced mode").check()
    page.get_by_role("button", name="Train").click()
    page.locator("#result-mode").filter(has_text="enhanced").wait_for(timeout=60_000)

    probe = next(iter(shapes_entries(shapes=("triangle",), per_class=1, seed=7).values()))
    page.get_by_label("Images or a ZIP of images").set_input_files(
        {"name": "probe.png", "mimeType": "image/png", "buffer": probe}
    )
    page.get_by_role("button", name="Score").click()
    ranks = page.get_by_role("list", name="Detector ranks among normal images")
    ranks.wait_for()
    text = ranks.inner_text()
    for name in ("Reconstruction error", "Isolation Forest", "Local Outlier Factor", "One-Class SVM"):
        assert name in text

    page.get_by_role("link", name="Model report").click()
    page.wait_for_url("**/models/*/report")
    page.get_by_role("heading", name="4. Threshold").wait_for()
    assert "Enhanced" in page.locator("main").inner_text()
    assert page.locator(".report-charts svg").count() == 2

    page.goto("/my_models")
    page.get_by_role("link", name="Report").first.click()
    page.wait_for_url("**/models/*/report")

    assert page_problems.console_errors == [] and page_problems.page_errors == []
    assert page_problems.external_requests == [] and page_problems.csp_violations(page) == []
