"""POST /api/pipeline: a validated composition runs as one run; each step's output is kept; refusals store nothing."""

import json

import pytest
from django.conf import settings

from imaging.models import ImageDataset
from modelhub.models import TrainingModel, TrainingRun

from .conftest import media_files, shapes_entries, upload, zip_bytes

pytestmark = pytest.mark.django_db

STEPS = [
    {"type": "resize", "params": {"size": 32}},
    {"type": "augment", "params": {"preset": "light", "per_image": 1}},
    {"type": "train_classifier", "params": {"architecture": "resnet18", "level": 1, "image_size": 32}},
]


def test_a_pipeline_runs_every_step_keeps_their_outputs_and_lands_a_model(
    alice_api, charlie_api, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        data = {"file": upload(zip_bytes(shapes_entries())), "steps": json.dumps(STEPS)}
        response = alice_api.post("/api/pipeline", data, format="multipart")
    assert response.status_code == 202, response.json()
    run = alice_api.get(f"/api/v1/imaging/runs/{response.json()['id']}/").json()
    assert run["status"] == "succeeded", run
    assert [step["type"] for step in run["config"]["steps"]] == ["resize", "augment", "train_classifier"]
    model = TrainingModel.objects.get(id=run["model_id"])
    assert model.metric_name == "accuracy" and model.metrics["class_names"] == ["circle", "square"]
    work = settings.MEDIA_ROOT / TrainingRun.objects.get(id=run["id"]).config["work_folder"]
    augmented = list((work / "steps" / "02_augment").rglob("*.png"))
    assert len(augmented) == 24 and not (work / "input").exists()
    assert charlie_api.get(f"/api/v1/imaging/runs/{run['id']}/").status_code == 404


@pytest.mark.parametrize(
    ("steps", "code"),
    [
        ([{"type": "train_classifier", "params": {}}, {"type": "resize", "params": {}}], "invalid_pipeline"),
        ([{"type": "sharpen_everything", "params": {}}], "invalid_pipeline"),
        ([{"type": "resize", "params": {"size": 32}}], "no_training_step"),
    ],
)
def test_an_invalid_pipeline_is_refused_with_its_problems_and_nothing_stored(alice_api, steps, code):
    response = alice_api.post(
        "/api/pipeline", {"file": upload(zip_bytes(shapes_entries())), "steps": json.dumps(steps)}, format="multipart"
    )
    assert response.status_code == 400 and response.json()["code"] == code
    if code == "invalid_pipeline":
        assert response.json()["problems"]
    assert media_files(settings.MEDIA_ROOT) == [] and not ImageDataset.objects.exists()


@pytest.mark.parametrize("steps", [True, 7, "resize"])
def test_the_check_refuses_steps_that_are_a_scalar_with_400_not_500(alice_api, steps):
    """Found by schemathesis (benchmarks/api_fuzz.py): multipart `steps=true` crashed while choosing the code."""
    response = alice_api.post("/api/v1/imaging/pipeline/validate", {"steps": json.dumps(steps)}, format="multipart")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_pipeline"
    message = 'The pipeline must be a list of {"type", "params"} steps.'
    assert body["step_problems"] == [{"step": None, "message": message}]
