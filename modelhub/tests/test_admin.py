import pytest

from .factories import PreprocessingDataFactory, TrainingModelFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, django_user_model, settings):
    # Two-factor login for staff is tested with the accounts app; here it would only stand in the way.
    settings.MFA_REQUIRED_FOR_STAFF = False
    superuser = django_user_model.objects.create_superuser(email="root@example.org", password="x" * 16)
    client.force_login(superuser)
    return client


@pytest.mark.parametrize("model", ["trainingrun", "trainingmodel", "preprocessingdata"])
def test_admin_lists_filter_and_search(admin_client, alice, model):
    PreprocessingDataFactory(user=alice, run=TrainingModelFactory(user=alice).run)

    response = admin_client.get(f"/admin/modelhub/{model}/", {"q": "alice"})

    assert response.status_code == 200
    assert "alice@example.org" in response.content.decode()


def test_run_admin_shows_its_models_inline(admin_client, alice):
    model = TrainingModelFactory(user=alice, model_name="hist_gradient_boosting")

    response = admin_client.get(f"/admin/modelhub/trainingrun/{model.run_id}/change/")

    assert response.status_code == 200
    assert "hist_gradient_boosting" in response.content.decode()


def test_run_admin_filters_by_status(admin_client, alice):
    TrainingModelFactory(user=alice, run__run_name="finished-run", run__status="succeeded")
    TrainingModelFactory(user=alice, run__run_name="waiting-run")

    body = admin_client.get("/admin/modelhub/trainingrun/", {"status__exact": "succeeded"}).content.decode()

    assert "finished-run" in body and "waiting-run" not in body
