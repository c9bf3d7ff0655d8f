"""A clinician trains an image classifier from a ZIP in a real browser, reads the results, then classifies an image
and sees its heatmap; the anomaly and augmentation pages load cleanly."""

import pytest

from imaging.tests.conftest import shapes_entries, zip_bytes
from tests.browser.clinicians import log_in, verified_clinician

pytestmark = pytest.mark.browser

EMAIL = "ines.imaging@example.org"
PASSWORD = "a-long-radiology-password-2024"  # noqa: S105


@pytest.fixture
def clinician(django_user_model, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return verified_clinician(django_user_model, email=EMAIL, password=PASSWORD, first_name="Inés")


def test_train_a_classifier_read_the_results_and_classify_an_image(page, page_problems, clinician):
    import torch

    torch.set_num_threads(1)
    log_in(page, email=EMAIL, password=PASSWORD)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Images").click()
    page.wait_for_url("**/pipeline")
    page.get_by_label("ZIP of class folders").set_input_files(
        {"name": "shapes.zip", "mimeType": "application/zip", "buffer": zip_bytes(shapes_entries())}
    )
    page.get_by_label("Architecture").select_option("resnet18")
    assert "from scratch" in page.locator("#weights-text").inner_text()
    page.get_by_label("Image size (pixels)").fill("32")
    page.get_by_role("button", name="Train").click()
    page.get_by_role("heading", name="Validation results").wait_for(timeout=60_000)
    assert page.locator("#result-confusion tbody tr").count() == 2

    image = next(iter(shapes_entries(per_class=1, seed=7).values()))
    page.get_by_label("Images or a ZIP of images").set_input_files(
        {"name": "new.png", "mimeType": "image/png", "buffer": image}
    )
    page.get_by_role("button", name="Classify").click()
    page.get_by_role("img", name="Grad-CAM heatmap over new.png").wait_for()

    page.goto("/anomaly_detection")
    normal = {name.split("/")[-1]: data for name, data in shapes_entries(shapes=("circle",), per_class=12).items()}
    page.get_by_label("ZIP of normal images").set_input_files(
        {"name": "normal.zip", "mimeType": "application/zip", "buffer": zip_bytes(normal)}
    )
    page.get_by_role("button", name="Train").click()
    page.locator("#train-result").wait_for(timeout=60_000)
    page.locator("#anomaly-histogram").wait_for()
    page.get_by_label("Move the threshold").fill("0")
    page.get_by_role("button", name="Save this threshold for the detector").click()
    page.get_by_text("Saved: new scores use threshold").wait_for()

    page.goto("/augment")
    page.locator("h1").wait_for()

    assert page_problems.console_errors == [] and page_problems.page_errors == []
    assert page_problems.external_requests == [] and page_problems.csp_violations(page) == []
