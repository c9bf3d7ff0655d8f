"""Issue 11 #9: `GET /select_model/<name>/<metric>` changed the selection, so a link or an image on any site could
change which model a clinician uses. GET now only shows a confirmation page; a session must POST with its CSRF token;
an integrator's Bearer token (no ambient credential) may POST without one."""

import re

from django.test import Client
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.models import AuditEvent
from modelhub.models import TrainingModel, TrainingRun
from modelhub.tests.factories import TrainingModelFactory, TrainingRunFactory


def _browser(user) -> Client:
    """A browser with alice's session cookie that, like a real one, is held to Django's CSRF check."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def _forest(user) -> TrainingModel:
    run = TrainingRunFactory(user=user, status=TrainingRun.Status.SUCCEEDED)
    return TrainingModelFactory(user=user, run=run, model_name="random_forest", metrics={"roc_auc": 0.8})


def _nothing_selected() -> bool:
    return (
        not TrainingModel.objects.filter(is_selected=True).exists()
        and not AuditEvent.objects.filter(action=AuditEvent.Action.MODEL_SELECTED).exists()
    )


def test_a_cross_site_get_changes_nothing(alice):
    _forest(alice)
    # What an <img src> or a link on another site makes the browser send: a GET with the session cookie.
    response = _browser(alice).get("/select_model/random_forest/roc_auc", HTTP_REFERER="https://evil.example/")
    assert response.status_code == 200
    assert _nothing_selected()


def test_a_cross_site_post_without_the_csrf_token_is_refused(alice):
    model = _forest(alice)
    browser = _browser(alice)
    assert browser.post("/select_model/random_forest/roc_auc", HTTP_REFERER="https://evil.example/").status_code == 403
    assert browser.post(f"/models/{model.pk}/select").status_code == 403
    assert _nothing_selected()


def test_the_confirmation_pages_form_selects_with_its_token(alice):
    model = _forest(alice)
    browser = _browser(alice)
    page = browser.get("/select_model/random_forest/roc_auc").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    run = re.search(r'name="run" value="(\d+)"', page).group(1)
    response = browser.post("/select_model/random_forest/roc_auc", {"csrfmiddlewaretoken": token, "run": run})
    assert response.status_code == 302
    model.refresh_from_db()
    assert model.is_selected


def test_a_bearer_token_selects_without_a_csrf_token(alice):
    model = _forest(alice)
    client = APIClient(enforce_csrf_checks=True)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(alice).access_token}")
    assert client.post("/select_model/random_forest/roc_auc").status_code == 200
    model.refresh_from_db()
    assert model.is_selected
