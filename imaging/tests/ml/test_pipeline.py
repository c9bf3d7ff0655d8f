import json

import pytest
from PIL import Image

from imaging.ml.errors import PipelineError
from imaging.ml.pipeline import run_pipeline, validate_pipeline


def test_a_valid_pipeline_has_no_errors():
    steps = [
        {"type": "resize", "params": {"size": 32}},
        {"type": "clahe"},
        {"type": "augment", "params": {"preset": "chest_xray", "per_image": 1}},
        {"type": "train_classifier", "params": {"architecture": "resnet18", "level": 1}},
    ]
    assert validate_pipeline(steps) == []


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        ([], "at least one step"),
        ([{"type": "sharpen_everything"}], "unknown step type"),
        ([{"type": "resize", "params": {"size": 32, "colour": "red"}}], "unknown parameter(s) colour"),
        ([{"type": "resize", "params": {"size": "big"}}], "size must be int"),
        ([{"type": "resize", "params": {"size": True}}], "size must be int"),
        ([{"type": "resize", "params": {"size": 4}}], "between 16 and 1024"),
        ([{"type": "denoise", "params": {"method": "magic"}}], "median, gaussian, nlmeans"),
        ([{"type": "augment", "params": {"preset": "nope"}}], "chest_xray"),
        ([{"type": "train_classifier", "params": {"architecture": "alexnet"}}], "efficientnet_lite0"),
        ([{"type": "train_classifier"}, {"type": "resize"}], "must be the last step"),
        ([{"type": "train_classifier"}, {"type": "train_anomaly"}], "only one training step"),
    ],
)
def test_pipeline_validation_explains_each_problem(steps, expected):
    errors = validate_pipeline(steps)
    assert any(expected in error for error in errors), errors


def test_run_refuses_an_invalid_pipeline(tmp_path):
    with pytest.raises(PipelineError) as caught:
        run_pipeline([{"type": "train_anomaly"}, {"type": "resize"}], tmp_path, tmp_path / "work")
    assert caught.value.code == "invalid_pipeline"


def test_run_keeps_each_step_output_and_trains_last(shapes_folder, tmp_path):
    steps = [
        {"type": "resize", "params": {"size": 32}},
        {"type": "normalize"},
        {"type": "denoise", "params": {"method": "median", "strength": 3}},
        {
            "type": "train_classifier",
            "params": {
                "architecture": "mobilenet_v3_small",
                "level": 1,
                "image_size": 32,
                "pretrained": False,
                "val_fraction": 0.3,
            },
        },
    ]
    events = []
    result = run_pipeline(steps, shapes_folder, tmp_path / "work", progress=events.append)
    work = tmp_path / "work"
    assert sorted(p.name for p in work.iterdir()) == ["01_resize", "02_normalize", "03_denoise", "04_train_classifier"]
    assert Image.open(next((work / "01_resize" / "circle").iterdir())).size == (32, 32)
    assert len(list((work / "03_denoise").rglob("*.png"))) == 18
    metrics = json.loads((work / "04_train_classifier" / "metrics.json").read_text())
    assert metrics["dataset"]["classes"] == ["circle", "square", "triangle"]
    assert (work / "04_train_classifier" / "model.pt").is_file()
    assert result["steps"][-1]["metrics"]["confusion_matrix"]
    overall = [e.overall_fraction for e in events]
    assert overall == sorted(overall) and overall[-1] == pytest.approx(1.0)


def test_run_trains_an_anomaly_detector_on_a_flat_folder(tmp_path):
    from imaging.ml.synthetic import anomaly_sets

    normal = tmp_path / "normal"
    normal.mkdir()
    for i, image in enumerate(anomaly_sets("square", 12, 0, 0, size=16)[0]):
        image.save(normal / f"{i}.png")
    steps = [{"type": "clahe"}, {"type": "train_anomaly", "params": {"image_size": 16, "epochs": 1}}]
    result = run_pipeline(steps, normal, tmp_path / "work")
    summary = result["steps"][-1]
    assert summary["images"] == 12 and summary["threshold"] > 0
    assert (tmp_path / "work" / "02_train_anomaly" / "model.pt").is_file()


def test_stop_during_preprocessing_ends_the_run(shapes_folder, tmp_path):
    result = run_pipeline(
        [{"type": "resize", "params": {"size": 16}}, {"type": "train_anomaly"}],
        shapes_folder,
        tmp_path / "work",
        should_stop=lambda: True,
    )
    assert result["stopped"] and len(result["steps"]) == 1
