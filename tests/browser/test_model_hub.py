"""A clinician finds a trained model in My models, reads its report, pins it and predicts for one patient."""

import pytest
from django.test import Client
from playwright.sync_api import expect

from modelhub.models import TrainingModel


@pytest.fixture
def trained_model(alice, settings, tmp_path):
    from tabular.tests.factories_models import trained_models

    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MEDIA_ROOT.mkdir()
    return trained_models(alice, models=("logistic_regression",))[0]


@pytest.fixture
def signed_in_page(page, alice, live_server):
    client = Client()
    client.force_login(alice)
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    return page


def test_my_models_report_pin_and_predict_one_patient(signed_in_page, trained_model, page_problems):
    page = signed_in_page
    page.goto("/my_models")
    expect(page.get_by_role("heading", name="My models")).to_be_visible()
    expect(page.get_by_text("days left")).to_be_visible()

    page.get_by_role("button", name="Pin").click()
    expect(page.get_by_text("Pinned", exact=True)).to_be_visible()
    trained_model.refresh_from_db()
    assert trained_model.pinned

    page.get_by_role("link", name="Report").click()
    expect(page.get_by_role("heading", name="10. Threshold and confusion matrix")).to_be_visible()
    expect(page.locator(".report-charts svg")).to_have_count(3)

    page.goto(f"/predict?model_id={trained_model.pk}")
    page.get_by_label("age").fill("82")
    page.get_by_label("bmi").fill("27.5")
    page.get_by_label("smoker").select_option("no")
    page.get_by_role("button", name="Predict", exact=True).click()
    expect(page.get_by_role("heading", name="Prediction")).to_be_visible()
    expect(page.get_by_text("What pushed this prediction")).to_be_visible()

    assert TrainingModel.objects.filter(pk=trained_model.pk, pinned=True).exists()
    assert page_problems.console_errors == [] and page_problems.page_errors == []
    assert page_problems.external_requests == []
    assert page_problems.csp_violations(page) == []
