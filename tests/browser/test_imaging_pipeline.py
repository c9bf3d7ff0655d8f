"""A clinician composes resize → augmentation → classification on /pipeline, is told beside each step what is wrong
with a bad composition, fixes it, runs it, and inspects every step's output (counts and thumbnails)."""

import pytest
from playwright.sync_api import expect

from imaging.tests.conftest import shapes_entries, zip_bytes
from tests.browser.waiting import wait_for_js

pytestmark = pytest.mark.browser

SCREENSHOT = "/tmp/pipeline.png"


@pytest.fixture
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MEDIA_ROOT.mkdir()


def test_compose_validate_run_and_inspect_a_pipeline(page, page_problems, alice, password, media_root):
    import torch
    from django.urls import resolve

    torch.set_num_threads(1)
    # Import the URLconf (torch, torchvision…) here, not inside the browser's first 10-second page load.
    resolve("/pipeline")
    page.goto("/login")
    page.get_by_label("Email").fill(alice.email)
    page.get_by_label("Password").fill(password)
    page.locator("main").get_by_role("button", name="Log in").click()
    page.wait_for_url("**/dashboard")
    page.goto("/pipeline")
    builder = page.locator("#pipeline-builder")
    expect(builder.get_by_role("heading", name="Build a pipeline")).to_be_visible()

    # A bad composition: training first, then a resize to an impossible size.
    add_type, add = builder.get_by_label("Step to add"), builder.get_by_role("button", name="Add step")
    expect(add).to_be_enabled()
    add_type.select_option(label="Classification")
    add.click()
    add_type.select_option(label="Resize")
    add.click()
    builder.get_by_label("Step 2 Size (px)").fill("5")
    builder.get_by_role("button", name="Validate").click()
    steps = builder.locator("#pipeline-steps > li")
    expect(steps.nth(0).locator(".pipeline-step-errors")).to_contain_text("The training step must be the last step.")
    expect(steps.nth(1).locator(".pipeline-step-errors")).to_contain_text("size must be between 16 and 1024")
    expect(builder.locator("#pipeline-error")).to_contain_text("2 problems")

    # Fix it: resize first, augmentation second, classification last, tiny and fast.
    builder.get_by_role("button", name="Move step 2 up").click()
    expect(steps.nth(0).locator("legend")).to_contain_text("Step 1: Resize")
    builder.get_by_label("Step 1 Size (px)").fill("24")
    add_type.select_option(label="Augmentation")
    add.click()
    builder.get_by_role("button", name="Move step 3 up").click()
    expect(steps.nth(1).locator("legend")).to_contain_text("Step 2: Augmentation")
    builder.get_by_label("Step 2 Variants per image").fill("1")
    builder.get_by_label("Step 3 Network").select_option("resnet18")
    builder.get_by_label("Step 3 Level").fill("1")
    builder.get_by_label("Step 3 Input size (px)").fill("24")
    builder.get_by_role("button", name="Validate").click()
    expect(builder.locator("#pipeline-ok")).to_have_text("The pipeline can run: 3 steps.")
    expect(builder.locator(".pipeline-step-errors:visible")).to_have_count(0)

    builder.get_by_label("Images for the pipeline").set_input_files(
        {"name": "shapes.zip", "mimeType": "application/zip", "buffer": zip_bytes(shapes_entries())}
    )
    builder.get_by_role("button", name="Run pipeline").click()
    expect(builder.locator("#pipeline-run-title")).to_contain_text("succeeded", timeout=90_000)

    run_steps = builder.locator("#pipeline-run-steps > li")
    expect(run_steps).to_have_count(3)
    expect(run_steps.nth(0)).to_contain_text("Step 1: Resize done")
    expect(run_steps.nth(0)).to_contain_text("12 images (circle 6, square 6)")
    expect(run_steps.nth(1)).to_contain_text("24 images (circle 12, square 12)")
    expect(run_steps.nth(2)).to_contain_text("validation accuracy")
    thumbnails = builder.locator(".pipeline-thumbs img")
    expect(thumbnails.first).to_be_visible()
    expect(builder.get_by_role("img", name="Step 1 output circle/").first).to_be_visible()
    expect(builder.get_by_role("img", name="Step 2 output square/")).to_have_count(3)
    wait_for_js(
        page,
        "() => [...document.querySelectorAll('.pipeline-thumbs img')].every(i => i.complete && i.naturalWidth > 0)",
    )
    assert thumbnails.count() == 12  # 3 per class in each image step
    link = builder.get_by_role("link", name="Open it in My models")
    expect(link).to_have_attribute("href", "/my_models")

    builder.screenshot(path=SCREENSHOT)
    # Chromium logs every 4xx response; the one expected is the refusal of the bad composition.
    refused = [text for text in page_problems.console_errors if "status of 400" in text]
    assert len(refused) == 1 and len(page_problems.console_errors) == 1, page_problems.console_errors
    assert page_problems.page_errors == []
    # (A page left mid-load, like /login after "Log in", aborts its own image loads: only API calls count here.)
    assert page_problems.external_requests == [] and [r for r in page_problems.failed_requests if "/api/" in r] == []
    assert page_problems.csp_violations(page) == []
