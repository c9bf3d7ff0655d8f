"""The object-access matrix: every URL that names one object by id × owner / other user / staff / anonymous.

The routes come from the live URLconf, not from a list typed here: a new route with an id in its path fails
`test_every_object_route_is_in_the_matrix` until it is given an object below, so no endpoint escapes the matrix.

What must hold, for every such route and every method it answers:
- charlie (another clinician) and bob (staff, not the owner) get 404 — or 403 — and nothing changes; where a view
  checks the body first (400 on an empty body), the answer must be exactly the one for an id that does not exist,
  so the response is no oracle for what other users own;
- an anonymous caller is sent to log in (pages) or gets 401 (API);
- alice, the owner, can read what she owns (GET is not 404).
Staff-only routes (the shared knowledge base) are in `STAFF_ONLY`: their access rules are tested in test_staff_mfa.py.
"""

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from accounts.services import token_pair_issue
from modelhub.models import TrainingModel, TrainingRun

# Routes outside the matrix: the admin and allauth keep their own checks, `login/<path:action>` names no object,
# `select_model/<name>/<metric>` names a model kind (its run scoping is tested in test_select_model_csrf.py).
NOT_OBJECT_ROUTES = re.compile(r"^(admin/|accounts/|login/|docs/|select_model/)")
STAFF_ONLY = ("chat/knowledge/<int:document_id>/delete", "api/v1/knowledge/documents/<int:document_id>/")

# Which of alice's objects each route's ids name. Keys are the route's text as Django prints it.
ROUTE_OBJECTS = {
    "download_model/<int:model_id>": {"model_id": "model"},
    "models/<int:model_id>/report": {"model_id": "model"},
    "models/<int:model_id>/pin": {"model_id": "model"},
    "models/<int:model_id>/select": {"model_id": "model"},
    "models/<int:model_id>/delete": {"model_id": "model"},
    "runs/<int:run_id>/delete": {"run_id": "run"},
    "datasets/<int:pk>": {"pk": "dataset"},
    "datasets/<int:pk>/delete": {"pk": "dataset"},
    "datasets/<int:pk>/profile": {"pk": "dataset"},
    "datasets/<int:pk>/plan": {"pk": "dataset"},
    "datasets/<int:pk>/plan/<int:plan_id>": {"pk": "dataset", "plan_id": "plan"},
    "datasets/<int:pk>/plan/<int:plan_id>/apply": {"pk": "dataset", "plan_id": "plan"},
    "datasets/<int:pk>/plan/<int:plan_id>/report": {"pk": "dataset", "plan_id": "plan"},
    "datasets/<int:pk>/plan/<int:plan_id>/features": {"pk": "dataset", "plan_id": "plan"},
    "training/runs/<int:pk>": {"pk": "run"},
    "training/runs/<int:pk>/progress": {"pk": "run"},
    "training/runs/<int:pk>/stop": {"pk": "run"},
    "api/v1/models/<int:pk>/": {"pk": "model"},
    "api/v1/models/<int:pk>/select/": {"pk": "model"},
    "api/v1/models/<int:pk>/pin/": {"pk": "model"},
    "api/v1/models/<int:pk>/schema/": {"pk": "model"},
    "api/v1/models/<int:pk>/report/": {"pk": "model"},
    "api/v1/models/<int:pk>/feature-importance/": {"pk": "model"},
    "api/v1/datasets/<int:pk>/": {"pk": "dataset"},
    "api/v1/datasets/<int:pk>/profile/": {"pk": "dataset"},
    "api/v1/datasets/<int:pk>/cleaning-plan/": {"pk": "dataset"},
    "api/v1/cleaning-plans/<int:pk>/": {"pk": "plan"},
    "api/v1/cleaning-plans/<int:pk>/apply/": {"pk": "plan"},
    "api/v1/cleaning-plans/<int:pk>/feature-selection/": {"pk": "plan"},
    "api/v1/training-runs/<int:pk>/": {"pk": "run"},
    "api/v1/training-runs/<int:pk>/stop/": {"pk": "run"},
    "api/v1/imaging/runs/<int:pk>/": {"pk": "image_run"},
    "api/v1/imaging/runs/<int:pk>/stop/": {"pk": "image_run"},
    "api/v1/imaging/runs/<int:pk>/steps/": {"pk": "image_run"},
    "api/v1/imaging/runs/<int:pk>/steps/<int:step>/samples/<path:name>": {
        "pk": "image_run",
        "step": "zero",
        "name": "sample",
    },
    "api/v1/imaging/models/<int:pk>/": {"pk": "image_model"},
    "api/v1/imaging/datasets/<int:pk>/": {"pk": "image_dataset"},
    "api/v1/anomaly/models/<int:pk>/threshold": {"pk": "anomaly_model"},
    "api/v1/augment/<int:pk>/": {"pk": "augmentation"},
    "api/v1/augment/<int:pk>/download": {"pk": "augmentation"},
    "chat/documents/<int:document_id>": {"document_id": "attached_document"},
}
# JSON routes outside /api/ (the chat's documented paths): called with a JWT, like the API.
JSON_ROUTES = re.compile(r"^(api/|chat/documents)")

MISSING_ID = 987654


def _walk(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern.callback


def object_routes() -> dict[str, object]:
    """Every route whose path carries a parameter, minus those outside the matrix, with its view."""
    routes = {}
    for route, callback in _walk(get_resolver().url_patterns):
        if ("<" in route or "(?P" in route) and not NOT_OBJECT_ROUTES.match(route):
            routes[route] = callback
    return routes


def methods_of(callback) -> list[str]:
    """The methods a view answers: DRF/class views say so; function views are tried with GET and POST."""
    view_class = getattr(callback, "view_class", None) or getattr(callback, "cls", None)
    if view_class is not None:
        return [m for m in ("get", "post", "put", "patch", "delete") if hasattr(view_class, m)]
    return ["get", "post"]


def fill(route: str, ids: dict[str, str]) -> str:
    path = route
    for name, value in ids.items():
        value = "sample.png" if name == "name" and value == MISSING_ID else value
        path = re.sub(rf"<(?:\w+:)?{name}>", str(value), path)
    assert "<" not in path, f"{route}: an id is not filled in"
    return "/" + path


@pytest.fixture
def alice_objects(alice, settings, tmp_path):
    """One object of every kind, owned by alice; the values are the ids the routes use."""
    from chatbot.models import Conversation, KnowledgeDocument
    from imaging.models import AugmentationJob, ImageDataset
    from tabular.services import cleaning_plan_create
    from tabular.tests.factories_models import trained_models

    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MEDIA_ROOT.mkdir()
    model = trained_models(alice)[0]
    dataset = model.run.dataset_id
    from tabular.models import Dataset

    dataset = Dataset.objects.get(pk=model.run.dataset_id)
    plan = cleaning_plan_create(user=alice, dataset=dataset, target="outcome")
    image_dataset = ImageDataset.objects.create(owner=alice, name="shapes", folder=f"{alice.pk}/images/x")
    image_run = TrainingRun.objects.create(
        user=alice, kind=TrainingRun.Kind.IMAGE, status=TrainingRun.Status.SUCCEEDED, config={"architecture": "x"}
    )
    image_model = TrainingModel.objects.create(
        user=alice, run=image_run, model_name="resnet18", metric_name="accuracy", metric_value=0.9
    )
    anomaly_run = TrainingRun.objects.create(
        user=alice, kind=TrainingRun.Kind.ANOMALY, status=TrainingRun.Status.SUCCEEDED, config={}
    )
    anomaly_model = TrainingModel.objects.create(
        user=alice, run=anomaly_run, model_name="anomaly", metric_name="auroc", metric_value=0.9
    )
    augmentation = AugmentationJob.objects.create(
        owner=alice, preset="light", per_image=2, folder=f"{alice.pk}/augment/x"
    )
    conversation = Conversation.objects.create(owner=alice)
    attached = KnowledgeDocument.objects.create(
        key=f"attached:{alice.pk}:1",
        title="My discharge letter",
        source="Attached by you",
        content="Private text.",
        content_sha256="0" * 64,
        owner=alice,
        conversation=conversation,
    )
    return {
        "attached_document": attached.pk,
        "model": model.pk,
        "run": model.run_id,
        "dataset": dataset.pk,
        "plan": plan.pk,
        "image_run": image_run.pk,
        "image_model": image_model.pk,
        "image_dataset": image_dataset.pk,
        "anomaly_model": anomaly_model.pk,
        "augmentation": augmentation.pk,
        "zero": 0,
        "sample": "sample.png",
    }


def snapshot(alice) -> dict:
    """What an attack could change: alice's rows and the flags of her models."""
    from chatbot.models import KnowledgeDocument
    from imaging.models import AugmentationJob, ImageDataset
    from tabular.models import CleaningPlan, Dataset

    return {
        "datasets": sorted(Dataset.objects.filter(owner=alice).values_list("pk", flat=True)),
        "plans": sorted(CleaningPlan.objects.filter(owner=alice).values_list("pk", "updated_at")),
        "runs": sorted(TrainingRun.objects.filter(user=alice).values_list("pk", "status")),
        "models": sorted(TrainingModel.objects.filter(user=alice).values_list("pk", "is_selected", "pinned")),
        "image_datasets": sorted(ImageDataset.objects.filter(owner=alice).values_list("pk", flat=True)),
        "augmentations": sorted(AugmentationJob.objects.filter(owner=alice).values_list("pk", "status")),
        "attached": sorted(KnowledgeDocument.objects.filter(owner=alice).values_list("pk", "updated_at")),
    }


def caller(user, *, api: bool):
    """A real sign-in: a JWT from the token service for the API, a session for pages."""
    if api:
        client = APIClient()
        if user is not None:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_pair_issue(user=user)['access']}")
        return client
    from django.test import Client

    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def call(client, method: str, path: str):
    if isinstance(client, APIClient):
        return getattr(client, method)(path, {}, format="json")
    return getattr(client, method)(path)


def test_every_object_route_is_in_the_matrix(db):
    routes = set(object_routes())
    unknown = sorted(routes - set(ROUTE_OBJECTS) - set(STAFF_ONLY))
    assert not unknown, f"object routes missing from ROUTE_OBJECTS (add each with the object it names): {unknown}"
    gone = sorted(set(ROUTE_OBJECTS) - routes)
    assert not gone, f"routes in the matrix that no longer exist: {gone}"


@pytest.mark.parametrize("who", ["charlie", "bob"])
def test_another_user_gets_404_and_changes_nothing(who, alice, charlie, bob, alice_objects):
    intruder = {"charlie": charlie, "bob": bob}[who]
    before = snapshot(alice)
    failures = []
    for route, callback in sorted(object_routes().items()):
        if route in STAFF_ONLY:
            continue
        path = fill(route, {name: alice_objects[kind] for name, kind in ROUTE_OBJECTS[route].items()})
        api = bool(JSON_ROUTES.match(route))
        missing = fill(route, {name: MISSING_ID for name in ROUTE_OBJECTS[route]})
        for method in methods_of(callback):
            response = call(caller(intruder, api=api), method, path)
            status = response.status_code
            if status in (403, 404, 405):
                continue
            if status == 400 and call(caller(intruder, api=api), method, missing).status_code == 400:
                continue  # refused before any lookup, exactly as for an object that does not exist
            failures.append(f"{method.upper()} {path} as {who}: {status}")
    assert not failures, "\n".join(failures)
    assert snapshot(alice) == before


def test_anonymous_is_sent_to_log_in(alice, alice_objects):
    before = snapshot(alice)
    failures = []
    for route, callback in sorted(object_routes().items()):
        if route in STAFF_ONLY:
            path = fill(route, {"document_id": MISSING_ID})
        else:
            path = fill(route, {name: alice_objects[kind] for name, kind in ROUTE_OBJECTS[route].items()})
        api = bool(JSON_ROUTES.match(route))
        for method in methods_of(callback):
            response = call(caller(None, api=api), method, path)
            if api:
                ok = response.status_code in (401, 403, 405)
            else:
                ok = response.status_code in (401, 403, 405) or (
                    response.status_code == 302 and "login" in response["Location"]
                )
            if not ok:
                failures.append(f"{method.upper()} {path} anonymous: {response.status_code}")
    assert not failures, "\n".join(failures)
    assert snapshot(alice) == before


def test_the_owner_can_read_what_she_owns(alice, alice_objects):
    readable = [
        "download_model/<int:model_id>",
        "models/<int:model_id>/report",
        "datasets/<int:pk>",
        "datasets/<int:pk>/profile",
        "datasets/<int:pk>/plan/<int:plan_id>",
        "training/runs/<int:pk>",
        "api/v1/models/<int:pk>/",
        "api/v1/models/<int:pk>/schema/",
        "api/v1/models/<int:pk>/report/",
        "api/v1/datasets/<int:pk>/",
        "api/v1/datasets/<int:pk>/profile/",
        "api/v1/cleaning-plans/<int:pk>/",
        "api/v1/training-runs/<int:pk>/",
        "api/v1/imaging/runs/<int:pk>/",
        "api/v1/imaging/datasets/<int:pk>/",
        "api/v1/augment/<int:pk>/",
    ]
    failures = []
    for route in readable:
        path = fill(route, {name: alice_objects[kind] for name, kind in ROUTE_OBJECTS[route].items()})
        response = call(caller(alice, api=bool(JSON_ROUTES.match(route))), "get", path)
        if response.status_code != 200:
            failures.append(f"GET {path} as owner: {response.status_code}")
    assert not failures, "\n".join(failures)
