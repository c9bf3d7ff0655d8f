import numpy as np
import pytest
import torch

from imaging.ml.export import export_torchscript, load_torchscript
from imaging.ml.gradcam import explain, grad_cam, overlay_png
from imaging.ml.training import LEVELS, ImageClassifierTrainer


@pytest.fixture(scope="module")
def trained(tiny_split):
    train, val = tiny_split
    events = []
    trainer = ImageClassifierTrainer(
        "resnet18", level=1, image_size=32, batch_size=6, pretrained=False, progress=events.append
    )
    trainer.fit(train, val)
    return trainer, events


def test_levels_are_the_documented_presets():
    assert {k: (v.epochs, v.batch_size, v.learning_rate) for k, v in LEVELS.items()} == {
        1: (1, 32, 0.01),
        2: (2, 24, 0.005),
        3: (3, 16, 0.001),
        4: (5, 16, 0.0005),
        5: (8, 8, 0.0001),
    }
    trainer = ImageClassifierTrainer(level=4)
    assert (trainer.epochs, trainer.batch_size, trainer.learning_rate) == (5, 16, 0.0005)


def test_fit_reports_progress_and_validation_metrics(trained, tiny_split):
    trainer, events = trained
    batch_events = [e for e in events if e.stage == "batch"]
    assert len(batch_events) == 3 and batch_events[-1].fraction == pytest.approx(1.0)
    assert all(e.eta_seconds is not None and e.eta_seconds >= 0 for e in batch_events)
    assert [e.stage for e in events].count("epoch") == 1
    metrics = trainer.metrics_
    assert set(metrics) >= {"accuracy", "per_class", "roc_auc_macro", "confusion_matrix", "macro_f1"}
    assert np.array(metrics["confusion_matrix"]).sum() == len(tiny_split[1])
    assert [row["class"] for row in metrics["per_class"]] == ["circle", "square", "triangle"]
    assert trainer.history_[0]["val_loss"] is not None and trainer.best_epoch_ == 1


def test_predict_and_predict_proba_accept_pil_images_and_paths(trained, tiny_split, tmp_path):
    trainer, _ = trained
    images = tiny_split[1].images[:3]
    images[0].save(tmp_path / "x.png")
    proba = trainer.predict_proba([tmp_path / "x.png", images[1], images[2]])
    assert proba.shape == (3, 3)
    assert np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    assert set(trainer.predict(images)) <= {"circle", "square", "triangle"}


class _WorseningValidation(ImageClassifierTrainer):
    """Validation loss rises after the first epoch, as with an overfitting model."""

    losses = [0.5, 0.9, 1.3, 1.7, 2.1]

    def _validate(self, model, loader, device):
        _, labels, proba = super()._validate(model, loader, device)
        return self.losses[len(self.history_)], labels, proba


def test_early_stopping_restores_the_best_checkpoint(tiny_split):
    snapshots = {}
    trainer = _WorseningValidation(
        "efficientnet_lite0", epochs=5, batch_size=9, learning_rate=0.01, image_size=32, patience=2, pretrained=False
    )
    trainer.progress = lambda e: (
        snapshots.__setitem__(e.epoch, {k: v.clone() for k, v in trainer.model_.state_dict().items()})
        if e.stage == "epoch"
        else None
    )
    trainer.fit(*tiny_split)
    assert trainer.stopped_early_ and len(trainer.history_) == 3
    assert trainer.best_epoch_ == 1
    final = trainer.model_.state_dict()
    assert all(torch.equal(final[k], snapshots[1][k]) for k in final)
    assert not all(torch.equal(final[k], snapshots[3][k]) for k in final)


def test_stop_is_honoured_between_batches_and_keeps_the_best_epoch(tiny_split):
    batches = []
    trainer = ImageClassifierTrainer(
        "efficientnet_lite0", epochs=3, batch_size=6, image_size=32, pretrained=False, patience=5
    )
    trainer.progress = lambda e: batches.append(e) if e.stage == "batch" else None
    trainer.should_stop = lambda: len(batches) >= 4  # after epoch 1 (3 batches) and one batch of epoch 2
    trainer.fit(*tiny_split)
    assert trainer.stopped_ and len(batches) == 4
    assert len(trainer.history_) == 1 and trainer.best_epoch_ == 1


def test_stop_before_the_first_epoch_ends_still_leaves_a_validated_model(tiny_split):
    trainer = ImageClassifierTrainer("efficientnet_lite0", epochs=2, batch_size=6, image_size=32, pretrained=False)
    trainer.should_stop = lambda: True
    trainer.fit(*tiny_split)
    assert trainer.stopped_ and trainer.history_[0]["train_loss"] is None
    assert trainer.predict_proba(tiny_split[1].images[:1]).shape == (1, 3)


def test_save_and_load_round_trip_gives_identical_predictions(trained, tiny_split, tmp_path):
    trainer, _ = trained
    path = trainer.save(tmp_path / "model.pt")
    loaded = ImageClassifierTrainer.load(path)
    images = tiny_split[1].images
    assert loaded.class_names_ == trainer.class_names_ and loaded.image_size == 32
    assert loaded.metrics_ == trainer.metrics_
    assert np.allclose(loaded.predict_proba(images), trainer.predict_proba(images), atol=1e-6)


def test_load_refuses_a_file_that_is_not_a_classifier_bundle(tmp_path):
    torch.save({"format": "something else"}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="not a DeepMed image classifier"):
        ImageClassifierTrainer.load(tmp_path / "x.pt")


def test_torchscript_export_matches_the_eager_model(trained, tiny_split, tmp_path):
    trainer, _ = trained
    path = export_torchscript(trainer, tmp_path / "model.ts")
    scripted = load_torchscript(path)
    images = tiny_split[1].images
    assert scripted.class_names == trainer.class_names_
    assert np.allclose(scripted.predict_proba(images), trainer.predict_proba(images), atol=1e-5)


def test_grad_cam_gives_a_unit_range_heatmap_at_input_size_and_a_png():
    from imaging.ml.architectures import build_model

    model, info = build_model("resnet18", 3, pretrained=False)
    heatmap, index = grad_cam(model, info.cam_layer, torch.randn(1, 3, 64, 64))
    assert heatmap.shape == (64, 64) and 0 <= index < 3
    assert heatmap.min() >= 0 and heatmap.max() <= 1
    assert model.training  # the caller's mode is restored
    from PIL import Image

    png = overlay_png(Image.new("L", (40, 50), 90), heatmap)
    assert png.startswith(b"\x89PNG") and Image.open(__import__("io").BytesIO(png)).size == (40, 50)


def test_explain_works_for_efficientnet_lite0(tiny_split):
    trainer = ImageClassifierTrainer("efficientnet_lite0", epochs=1, batch_size=9, image_size=32, pretrained=False)
    trainer.fit(*tiny_split)
    result = explain(trainer, tiny_split[1].images[0])
    assert result["label"] in trainer.class_names_
    assert result["heatmap"].shape == (32, 32) and result["overlay_png"].startswith(b"\x89PNG")
    assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)


def test_augmentation_applies_to_training_images_only(tiny_split):
    seen = []

    def augment(image):
        seen.append(image.size)
        return image

    trainer = ImageClassifierTrainer(
        "mobilenet_v3_small", epochs=1, batch_size=9, image_size=32, pretrained=False, augment=augment
    )
    trainer.fit(*tiny_split)
    assert len(seen) == len(tiny_split[0])


def test_augmentation_preset_by_name_is_accepted(tiny_split):
    trainer = ImageClassifierTrainer(
        "mobilenet_v3_small", epochs=1, batch_size=9, image_size=32, pretrained=False, augment="chest_xray"
    )
    trainer.fit(*tiny_split)
    assert trainer.config()["augment"] == "chest_xray"


def test_the_same_seed_trains_the_same_model(tiny_split):
    def run():
        trainer = ImageClassifierTrainer("mobilenet_v3_small", epochs=1, batch_size=6, image_size=32, pretrained=False)
        return trainer.fit(*tiny_split).predict_proba(tiny_split[1].images)

    assert np.allclose(run(), run(), atol=1e-6)


def test_fit_refuses_an_empty_validation_set(tiny_split):
    from imaging.ml.datasets import PilListDataset

    with pytest.raises(ValueError, match="at least one training and one validation"):
        ImageClassifierTrainer("resnet18", image_size=32).fit(tiny_split[0], PilListDataset([], [], ["a", "b", "c"]))
