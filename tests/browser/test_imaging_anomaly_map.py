"""A clinician trains the default (PatchCore) anomaly detector from the page, scores a defective image and sees the
verdict, and the anomaly map over the image at the image's own size, with the threshold on the score histogram."""

import numpy as np
import pytest

from imaging.ml.anomaly_families import make_images, make_normals
from imaging.tests.conftest import png, zip_bytes
from imaging.tests.ml.test_patchcore import CapsuleScene
from tests.browser.clinicians import log_in, verified_clinician

pytestmark = pytest.mark.browser

EMAIL = "lea.patchcore@example.org"
PASSWORD = "a-long-dermatology-password-2024"  # noqa: S105


@pytest.fixture
def clinician(django_user_model, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return verified_clinician(django_user_model, email=EMAIL, password=PASSWORD, first_name="Léa")


def test_train_patchcore_score_a_defective_image_and_see_its_map(page, page_problems, clinician):
    import torch

    torch.set_num_threads(1)
    log_in(page, email=EMAIL, password=PASSWORD)
    page.goto("/anomaly_detection")
    normals = make_normals(CapsuleScene(), 30, 64, np.random.default_rng(3), grey=True)
    page.get_by_label("ZIP of normal images").set_input_files(
        {
            "name": "capsules.zip",
            "mimeType": "application/zip",
            "buffer": zip_bytes({f"capsule_{i}.png": png(image) for i, image in enumerate(normals)}),
        }
    )
    assert page.get_by_label("Kind of detector").input_value() == "patchcore"
    page.get_by_role("button", name="Train").click()
    page.locator("#result-mode").filter(has_text="PatchCore").wait_for(timeout=120_000)
    page.locator("#anomaly-histogram").wait_for()
    assert "held-out normal images" in page.locator("#histogram-summary").inner_text()

    (spotted,), _ = make_images(CapsuleScene(), "spot", 1, 64, np.random.default_rng(21), grey=True)
    wide = spotted.resize((300, 200))
    page.get_by_label("Images or a ZIP of images").set_input_files(
        {"name": "spot.png", "mimeType": "image/png", "buffer": png(wide)}
    )
    page.get_by_role("button", name="Score").click()
    anomaly_map = page.get_by_role("img", name="Anomaly map over spot.png")
    anomaly_map.wait_for()
    card = page.locator(".anomaly-result")
    assert "Anomalous" in card.locator(".verdict").inner_text()
    assert "is-anomalous" in card.get_attribute("class")
    # The map is drawn at the image's own size and shown at it: 300 × 200, not a thumbnail.
    natural = anomaly_map.evaluate("image => [image.naturalWidth, image.naturalHeight]")
    shown = anomaly_map.bounding_box()
    assert natural == [300, 200] and round(shown["width"]) == 300 and round(shown["height"]) == 200
    assert "300 × 200 pixels, the image's own size" in card.locator("figcaption").inner_text()
    assert "Orange marks: the images you scored." in page.locator("#histogram-summary").inner_text()

    assert page_problems.console_errors == [] and page_problems.page_errors == []
    assert page_problems.external_requests == [] and page_problems.csp_violations(page) == []
