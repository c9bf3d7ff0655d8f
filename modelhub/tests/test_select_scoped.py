"""Selection is scoped to one run: the leaderboard's button selects its own row's model, `/select_model/<name>/<metric>`
chooses within the latest finished run (or `?run=`), GET only shows what would be selected, and the selection
history names the run (issue 12 #4, issue 11 #9)."""

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.models import AuditEvent
from modelhub.models import TrainingModel, TrainingRun
from modelhub.tests.factories import TrainingModelFactory, TrainingRunFactory


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _bearer(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


def _run(user, name: str, *, days_ago: int, status=TrainingRun.Status.SUCCEEDED) -> TrainingRun:
    moment = timezone.now() - timedelta(days=days_ago)
    return TrainingRunFactory(
        user=user,
        run_name=name,
        status=status,
        created_at=moment,
        finished_at=moment if status in TrainingRun.TERMINAL_STATUSES else None,
        config={"target": "outcome", "level": 1, "primary_metric": "roc_auc"},
    )


def _model(user, run, name: str, roc_auc: float) -> TrainingModel:
    return TrainingModelFactory(
        user=user, run=run, model_name=name, metric_value=roc_auc, metrics={"roc_auc": roc_auc, "brier": 0.2}
    )


@pytest.fixture
def two_datasets(alice):
    """An older heart-disease run whose SVM scores higher, and a newer Framingham run."""
    heart = _run(alice, "heart.csv: target", days_ago=3)
    framingham = _run(alice, "framingham.csv: TenYearCHD", days_ago=1)
    return {
        "heart": heart,
        "framingham": framingham,
        "heart_svm": _model(alice, heart, "svm", 0.95),
        "framingham_svm": _model(alice, framingham, "svm", 0.70),
        "framingham_forest": _model(alice, framingham, "random_forest", 0.75),
    }


def _selected_ids(user) -> set[int]:
    return set(TrainingModel.objects.filter(user=user, is_selected=True).values_list("pk", flat=True))


def test_the_framingham_leaderboards_button_selects_that_rows_model_never_the_heart_disease_svm(alice, two_datasets):
    client = _client(alice)
    page = client.get(f"/training/runs/{two_datasets['framingham'].pk}").content.decode()
    actions = re.findall(r'<form method="post" action="/models/(\d+)/select"', page)
    assert sorted(map(int, actions)) == sorted(
        [two_datasets["framingham_svm"].pk, two_datasets["framingham_forest"].pk]
    )
    assert str(two_datasets["heart_svm"].pk) not in actions

    response = client.post(
        f"/models/{two_datasets['framingham_svm'].pk}/select",
        {"next": f"/training/runs/{two_datasets['framingham'].pk}"},
    )
    assert response.status_code == 302
    assert response["Location"] == f"/training/runs/{two_datasets['framingham'].pk}"
    assert _selected_ids(alice) == {two_datasets["framingham_svm"].pk}


def test_select_best_without_a_run_chooses_within_the_latest_finished_run(alice, two_datasets):
    response = _client(alice).post("/select_model/svm/roc_auc", HTTP_ACCEPT="application/json")
    assert response.status_code == 200, response.content
    assert response.json()["id"] == two_datasets["framingham_svm"].pk
    assert _selected_ids(alice) == {two_datasets["framingham_svm"].pk}


def test_a_run_still_training_is_not_the_latest_finished_run(alice, two_datasets):
    running = _run(alice, "running", days_ago=0, status=TrainingRun.Status.RUNNING)
    _model(alice, running, "svm", 0.99)
    _client(alice).post("/select_model/svm/roc_auc")
    assert _selected_ids(alice) == {two_datasets["framingham_svm"].pk}


def test_the_run_parameter_chooses_within_that_run(alice, two_datasets):
    client = _client(alice)
    heart = two_datasets["heart"].pk
    assert client.post(f"/select_model/svm/roc_auc?run={heart}").status_code == 302
    assert _selected_ids(alice) == {two_datasets["heart_svm"].pk}
    # The confirmation page's form sends the run in the body.
    client.post("/select_model/svm/roc_auc", {"run": two_datasets["framingham"].pk})
    assert _selected_ids(alice) == {two_datasets["framingham_svm"].pk}


def test_another_users_run_is_404_and_selects_nothing(alice, charlie, two_datasets):
    _model(charlie, _run(charlie, "charlie", days_ago=0), "svm", 0.9)
    response = _client(charlie).post(
        f"/select_model/svm/roc_auc?run={two_datasets['heart'].pk}", HTTP_ACCEPT="application/json"
    )
    assert response.status_code == 404
    assert not TrainingModel.objects.filter(is_selected=True).exists()
    assert _client(charlie).post(f"/models/{two_datasets['heart_svm'].pk}/select").status_code == 404
    for run in ("abc", "0", "99999999999999999999999"):
        response = _client(alice).post(f"/select_model/svm/roc_auc?run={run}", HTTP_ACCEPT="application/json")
        assert response.status_code == 404, run
    assert not TrainingModel.objects.filter(is_selected=True).exists()


def test_get_shows_which_model_run_and_metric_it_would_select_and_changes_nothing(alice, two_datasets):
    response = _client(alice).get("/select_model/svm/roc_auc")
    assert response.status_code == 200
    html = response.content.decode()
    model, run = two_datasets["framingham_svm"], two_datasets["framingham"]
    assert f"model #{model.pk}" in html
    assert "framingham.csv: TenYearCHD" in html and f"run #{run.pk}" in html
    assert "ROC AUC" in html and "0.700" in html
    assert 'method="post"' in html and "csrfmiddlewaretoken" in html
    assert f'name="run" value="{run.pk}"' in html
    assert not TrainingModel.objects.filter(is_selected=True).exists()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.MODEL_SELECTED).exists()


def test_the_selection_history_says_which_run(alice, two_datasets):
    client = _client(alice)
    model = two_datasets["framingham_svm"]
    client.post(f"/models/{model.pk}/select")
    event = AuditEvent.objects.get(action=AuditEvent.Action.MODEL_SELECTED)
    assert event.details["run_id"] == model.run_id
    assert event.details["run_name"] == "framingham.csv: TenYearCHD"
    assert event.details["new_id"] == model.pk and event.details["how"] == "by_id"
    html = client.get("/my_models").content.decode()
    history = html.split("Selection history", 1)[1]
    assert f"of run #{model.run_id} (framingham.csv: TenYearCHD)" in history


def test_a_bearer_token_selects_with_post_and_only_previews_with_get(alice, two_datasets):
    client = _bearer(alice)
    preview = client.get("/select_model/svm/roc_auc")
    assert preview.status_code == 200, preview.content
    body = preview.json()
    assert body["model"]["id"] == two_datasets["framingham_svm"].pk
    assert body["run"] == two_datasets["framingham"].pk and body["metric"] == "roc_auc"
    assert not TrainingModel.objects.filter(is_selected=True).exists()

    response = client.post(f"/select_model/svm/roc_auc?run={two_datasets['heart'].pk}")
    assert response.status_code == 200, response.content
    assert response.json()["id"] == two_datasets["heart_svm"].pk and response.json()["is_selected"] is True
    assert _selected_ids(alice) == {two_datasets["heart_svm"].pk}


def test_the_api_selects_by_model_id_and_refuses_other_users(alice, charlie, two_datasets):
    model = two_datasets["framingham_forest"]
    assert _bearer(charlie).post(f"/api/v1/models/{model.pk}/select/").status_code == 404
    assert APIClient().post(f"/api/v1/models/{model.pk}/select/").status_code == 401
    response = _bearer(alice).post(f"/api/v1/models/{model.pk}/select/")
    assert response.status_code == 200 and response.json()["is_selected"] is True
    assert _selected_ids(alice) == {model.pk}


def test_anonymous_visitors_are_sent_to_the_login_page(two_datasets):
    response = Client().get("/select_model/svm/roc_auc")
    assert response.status_code == 302 and response["Location"].startswith("/login")
    assert APIClient().post("/select_model/svm/roc_auc", format="json").status_code in (401, 302)
    assert not TrainingModel.objects.filter(is_selected=True).exists()
