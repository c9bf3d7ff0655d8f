"""The /pipeline composer: step catalogue, dry-run check with problems beside their steps, per-step outputs and
thumbnails of a run (owner only, confined to the step's folder), and the page that ties them together."""

import io
import json
import re

import pytest
from django.conf import settings
from PIL import Image

from imaging.models import ImageDataset
from imaging.pipeline_outputs import pipeline_run_outputs
from imaging.services import PIPELINE_DATASET_TYPE
from modelhub.models import TrainingRun

from .conftest import media_files, png, shapes_entries, upload, zip_bytes

pytestmark = pytest.mark.django_db

STEPS = [
    {"type": "resize", "params": {"size": 24}},
    {"type": "augment", "params": {"preset": "light", "per_image": 1}},
    {"type": "train_classifier", "params": {"architecture": "resnet18", "level": 1, "image_size": 24}},
]
CLASSIFY = {"type": "train_classifier", "params": {"architecture": "resnet18", "level": 1}}
ANOMALY = {"type": "train_anomaly", "params": {}}


# ----------------------------------------------------------------------------- catalogue
def test_the_catalogue_lists_every_step_with_its_fields_and_choices(alice_api):
    response = alice_api.get("/api/v1/imaging/pipeline/steps")
    assert response.status_code == 200
    steps = {step["type"]: step for step in response.json()["steps"]}
    assert list(steps) == [
        "resize",
        "normalize",
        "clahe",
        "denoise",
        "augment",
        "train_classifier",
        "train_anomaly",
    ]
    assert {steps[name]["group"] for name in ("resize", "normalize", "clahe", "denoise")} == {"preprocessing"}
    assert steps["augment"]["group"] == "augmentation"
    assert steps["train_anomaly"]["group"] == steps["train_classifier"]["group"] == "training"
    size = next(param for param in steps["resize"]["params"] if param["name"] == "size")
    assert (size["kind"], size["default"], size["min"], size["max"]) == ("int", 224, 16, 1024)
    network = next(param for param in steps["train_classifier"]["params"] if param["name"] == "architecture")
    assert network["kind"] == "choice"
    assert {"value": "resnet18", "label": "ResNet-18"} in network["choices"]
    preset = next(param for param in steps["augment"]["params"] if param["name"] == "preset")
    assert "chest_xray" in [choice["value"] for choice in preset["choices"]]
    method = next(param for param in steps["denoise"]["params"] if param["name"] == "method")
    assert [choice["value"] for choice in method["choices"]] == ["median", "gaussian", "nlmeans"]


def test_the_catalogue_needs_a_login(client):
    assert client.get("/api/v1/imaging/pipeline/steps").status_code in (401, 403)


# ----------------------------------------------------------------------------- dry-run check
def test_a_valid_composition_comes_back_with_its_defaults_filled_in(alice_api):
    response = alice_api.post("/api/v1/imaging/pipeline/validate", {"steps": STEPS}, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["valid"] is True and [step["step"] for step in body["steps"]] == [1, 2, 3]
    assert body["steps"][0]["params"] == {"size": 24, "keep_aspect": False}
    assert body["steps"][2]["params"]["val_fraction"] == 0.2


@pytest.mark.parametrize(
    ("steps", "code", "expected"),
    [
        (
            [{"type": "resize", "params": {"size": 32}}],
            "no_training_step",
            [(None, "Add a training step at the end")],
        ),
        ([CLASSIFY, {"type": "resize", "params": {}}], "invalid_pipeline", [(1, "must be the last step")]),
        ([{"type": "resize", "params": {}}, CLASSIFY, ANOMALY], "invalid_pipeline", [(3, "only one training step")]),
        ([{"type": "sharpen_everything"}, CLASSIFY], "invalid_pipeline", [(1, "unknown step type 'sharpen_")]),
        (
            [{"type": "resize", "params": {"size": 5}}, CLASSIFY],
            "invalid_pipeline",
            [(1, "size must be between 16 and 1024")],
        ),
        (
            [{"type": "denoise", "params": {"method": "bilateral", "radius": 2}}, CLASSIFY],
            "invalid_pipeline",
            [(1, "unknown parameter(s) radius"), (1, "method must be one of median, gaussian, nlmeans")],
        ),
        ([{"type": "resize", "params": {"size": "big"}}, CLASSIFY], "invalid_pipeline", [(1, "size must be int")]),
        ([], "invalid_pipeline", [(None, "at least one step")]),
        ([{"type": ["resize"]}, CLASSIFY], "invalid_pipeline", [(1, "unknown step type ['resize']")]),
    ],
)
def test_a_bad_composition_is_refused_with_each_problem_beside_its_step(alice_api, steps, code, expected):
    response = alice_api.post("/api/v1/imaging/pipeline/validate", {"steps": steps}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == code and body["detail"].startswith("The pipeline cannot run")
    placed = [(item["step"], item["message"]) for item in body["step_problems"]]
    assert len(placed) == len(expected), placed
    for (step, fragment), (got_step, message) in zip(expected, placed, strict=True):
        assert got_step == step and fragment in message, (step, fragment, got_step, message)
    assert body["problems"] == [message for _step, message in placed]


def test_the_check_refuses_steps_that_are_not_a_list(alice_api):
    response = alice_api.post("/api/v1/imaging/pipeline/validate", {"steps": {"type": "resize"}}, format="json")
    assert response.status_code == 400 and response.json()["step_problems"][0]["step"] is None


@pytest.mark.parametrize(
    ("steps", "fragment"),
    [
        ([{"type": "resize", "params": {}}, CLASSIFY, ANOMALY], "only one training step"),
        ([{"type": "clahe", "params": {"clip_limit": 99}}, CLASSIFY], "Step 1, clahe: clip_limit must be between"),
        ([{"type": {"name": "resize"}}, CLASSIFY], "Step 1: unknown step type"),
    ],
)
def test_running_a_bad_composition_is_refused_per_step_and_stores_nothing(alice_api, steps, fragment):
    data = {"file": upload(zip_bytes(shapes_entries())), "steps": json.dumps(steps)}
    response = alice_api.post("/api/pipeline", data, format="multipart")
    assert response.status_code == 400 and response.json()["code"] == "invalid_pipeline"
    assert any(fragment in problem for problem in response.json()["problems"])
    assert media_files(settings.MEDIA_ROOT) == [] and not ImageDataset.objects.exists()


# ----------------------------------------------------------------------------- a run's outputs
@pytest.fixture
def finished_run(alice_api, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        data = {"file": upload(zip_bytes(shapes_entries())), "steps": json.dumps(STEPS)}
        response = alice_api.post("/api/pipeline", data, format="multipart")
    assert response.status_code == 202, response.json()
    return TrainingRun.objects.get(id=response.json()["id"])


def test_a_finished_run_shows_each_steps_counts_samples_and_its_model(alice_api, finished_run):
    response = alice_api.get(f"/api/v1/imaging/runs/{finished_run.id}/steps/")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "succeeded" and body["model_id"] == finished_run.models.get().id
    assert body["models_url"] == "/my_models"
    resize, augment, train = body["steps"]
    assert [step["state"] for step in body["steps"]] == ["done", "done", "done"]
    assert [step["progress"] for step in body["steps"]] == [1.0, 1.0, 1.0]
    assert resize["images"] == 12 and resize["classes"] == {"circle": 6, "square": 6}
    assert augment["images"] == 24 and augment["classes"] == {"circle": 12, "square": 12}
    assert resize["params"] == {"size": 24, "keep_aspect": False}
    # A few per class, not the whole folder.
    assert len(augment["samples"]) == 6 and {sample["class"] for sample in augment["samples"]} == {"circle", "square"}
    # The trainer's own index (exact duplicates among the variants are dropped) gives what it trained on.
    assert set(train["classes"]) == {"circle", "square"} and train["images"] == sum(train["classes"].values())
    assert train["samples"] == [] and 0 <= train["result"]["accuracy"] <= 1

    thumbnail = alice_api.get(resize["samples"][0]["url"])
    assert thumbnail.status_code == 200 and thumbnail["Content-Type"] == "image/png"
    with Image.open(io.BytesIO(b"".join(thumbnail))) as image:
        assert image.size == (24, 24)


def test_a_large_output_image_comes_back_as_a_small_thumbnail(alice_api, alice):
    run = _hand_made_run(alice, status=TrainingRun.Status.SUCCEEDED, folders=1)
    folder = settings.MEDIA_ROOT / run.config["work_folder"] / "steps" / "01_resize" / "circle"
    (folder / "big.png").write_bytes(png(Image.new("RGB", (800, 400), "white")))
    response = alice_api.get(f"/api/v1/imaging/runs/{run.id}/steps/1/samples/circle/big.png")
    assert response.status_code == 200
    with Image.open(io.BytesIO(b"".join(response))) as image:
        assert image.size == (160, 80)


def test_charlie_gets_404_for_alices_run_steps_and_thumbnails(charlie_api, alice_api, finished_run):
    sample = alice_api.get(f"/api/v1/imaging/runs/{finished_run.id}/steps/").json()["steps"][0]["samples"][0]["url"]
    steps = charlie_api.get(f"/api/v1/imaging/runs/{finished_run.id}/steps/")
    assert steps.status_code == 404 and steps.json()["code"] == "not_found"
    assert charlie_api.get(sample).status_code == 404


@pytest.mark.parametrize(
    "name",
    [
        "../02_augment/circle/circle_0.png",  # another step's folder
        "../../steps/01_resize/circle/circle_0.png/..",
        "circle/missing.png",
        "circle",  # a folder, not an image
        "../02_augment/../../../../../../etc/passwd",
    ],
)
def test_a_thumbnail_never_leaves_its_steps_folder(alice_api, finished_run, name):
    response = alice_api.get(f"/api/v1/imaging/runs/{finished_run.id}/steps/1/samples/{name}")
    assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_a_link_planted_in_a_steps_folder_is_not_followed(alice_api, alice, tmp_path):
    run = _hand_made_run(alice, status=TrainingRun.Status.SUCCEEDED, folders=1)
    outside = tmp_path / "secret.png"
    outside.write_bytes(png(Image.new("L", (8, 8))))
    folder = settings.MEDIA_ROOT / run.config["work_folder"] / "steps" / "01_resize" / "circle"
    (folder / "link.png").symlink_to(outside)
    assert alice_api.get(f"/api/v1/imaging/runs/{run.id}/steps/1/samples/circle/link.png").status_code == 404
    listed = alice_api.get(f"/api/v1/imaging/runs/{run.id}/steps/").json()["steps"][0]
    assert "circle/link.png" not in [sample["name"] for sample in listed["samples"]]


def test_steps_out_of_range_and_runs_that_are_not_pipelines_are_404(alice_api, alice, finished_run):
    url = f"/api/v1/imaging/runs/{finished_run.id}/steps/9/samples/circle/circle_0.png"
    assert alice_api.get(url).status_code == 404
    plain = TrainingRun.objects.create(user=alice, kind=TrainingRun.Kind.IMAGE, config={})
    assert alice_api.get(f"/api/v1/imaging/runs/{plain.id}/steps/").status_code == 404


def _hand_made_run(user, *, status, folders: int, progress: float = 0.0) -> TrainingRun:
    """A pipeline run whose first `folders` step folders exist, as run_pipeline leaves them mid-way."""
    steps = [{"type": "resize", "params": {"size": 16}}, {"type": "clahe", "params": {}}, CLASSIFY]
    work_folder = f"{user.id}/pipelines/handmade"
    run = TrainingRun.objects.create(
        user=user,
        kind=TrainingRun.Kind.IMAGE,
        status=status,
        progress=progress,
        config={"pipeline": steps, "work_folder": work_folder},
        dataset_type=PIPELINE_DATASET_TYPE,
    )
    for position, step in enumerate(steps[:folders], start=1):
        folder = settings.MEDIA_ROOT / work_folder / "steps" / f"{position:02d}_{step['type']}" / "circle"
        folder.mkdir(parents=True)
        (folder / "a.png").write_bytes(png(Image.new("L", (16, 16))))
    return run


def test_a_running_pipeline_reports_which_step_runs_and_how_far_it_is(alice):
    run = _hand_made_run(alice, status=TrainingRun.Status.RUNNING, folders=2, progress=0.5)
    body = pipeline_run_outputs(run=run)
    assert [step["state"] for step in body["steps"]] == ["done", "running", "pending"]
    assert [step["progress"] for step in body["steps"]] == [1.0, 0.5, 0.0]
    assert body["steps"][1]["images"] == 1 and body["steps"][2]["images"] is None
    assert body["model_id"] is None


@pytest.mark.parametrize(
    ("status", "states"),
    [
        (TrainingRun.Status.QUEUED, ["pending", "pending", "pending"]),
        (TrainingRun.Status.FAILED, ["done", "failed", "not_run"]),
        (TrainingRun.Status.STOPPED, ["done", "stopped", "not_run"]),
    ],
)
def test_a_queued_failed_or_stopped_run_says_what_each_step_did(alice, status, states):
    run = _hand_made_run(alice, status=status, folders=0 if status == TrainingRun.Status.QUEUED else 2)
    assert [step["state"] for step in pipeline_run_outputs(run=run)["steps"]] == states


# ----------------------------------------------------------------------------- the page
def test_the_page_offers_the_composer_with_no_inline_script_and_lists_only_the_users_runs(client, alice, charlie):
    _hand_made_run(charlie, status=TrainingRun.Status.SUCCEEDED, folders=0)
    client.force_login(alice)
    page = client.get("/pipeline").content.decode()
    assert "Build a pipeline" in page and 'data-steps-url="/api/v1/imaging/pipeline/steps"' in page
    assert "js/imaging-pipeline.js" in page and "js/imaging.js" in page
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page) is None
    assert "Your recent pipeline runs" not in page
    mine = _hand_made_run(alice, status=TrainingRun.Status.SUCCEEDED, folders=0)
    page = client.get("/pipeline").content.decode()
    assert f'data-run-id="{mine.id}"' in page and page.count('class="outline secondary pipeline-show"') == 1
