"""PatchCore: the memory bank, its coreset, the threshold from normal images only, the pixel map, and the bundle.

The normal images here come from ``CapsuleScene`` below, not from the benchmark's scenes
(benchmarks/anomaly_families.py), so neither is the one the detector was tuned on.
"""

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import roc_auc_score

from imaging.ml.anomaly import AutoencoderAnomalyDetector, load_anomaly_detector
from imaging.ml.anomaly_families import (
    FAMILIES,
    Layers,
    Scene,
    coordinates,
    draw_mask,
    fill_ellipse,
    fill_polygon,
    make_images,
    make_normals,
)
from imaging.ml.patchcore import PatchCoreAnomalyDetector, greedy_coreset

SIZE = 64


class CapsuleScene(Scene):
    """A grey capsule lying flat with a dark marker at its left end, on a background lit from the top."""

    name = "capsule"
    families = FAMILIES

    def sample(self, rng):
        return {
            "cx": 0.5 + rng.uniform(-0.04, 0.04),
            "cy": 0.5 + rng.uniform(-0.04, 0.04),
            "length": rng.uniform(0.28, 0.32),
            "radius": rng.uniform(0.11, 0.13),
            "level": rng.uniform(0.62, 0.7),
            "top": rng.uniform(0.3, 0.34),
        }

    def render(self, p, size, *, shape=False, texture=False):
        ys, xs = coordinates(size)
        background = np.repeat((p["top"] - 0.15 * ys)[..., None], 3, axis=2)
        cx, cy, half, radius = p["cx"], p["cy"], p["length"], p["radius"]

        def capsule(canvas, scale):
            if shape:  # a diamond of the same extent
                fill_polygon(
                    canvas,
                    np.array(
                        [
                            (cx - half - radius, cy),
                            (cx, cy - radius * 1.3),
                            (cx + half + radius, cy),
                            (cx, cy + radius * 1.3),
                        ]
                    ),
                    scale,
                )
                return
            fill_ellipse(canvas, cx - half, cy, radius, radius, 0)
            fill_ellipse(canvas, cx + half, cy, radius, radius, 0)
            fill_polygon(
                canvas,
                np.array(
                    [
                        (cx - half, cy - radius),
                        (cx + half, cy - radius),
                        (cx + half, cy + radius),
                        (cx - half, cy + radius),
                    ]
                ),
                scale,
            )

        alpha = draw_mask(size, capsule)
        marker = draw_mask(
            size, lambda canvas, _s: fill_ellipse(canvas, cx - half, cy, radius * 0.45, radius * 0.45, 0)
        )
        level = p["level"] - 0.3 * marker
        if texture:
            level = level + 0.12 * np.sign(np.sin(2 * np.pi * xs / 0.08))
        return Layers(background, np.repeat(level[..., None], 3, axis=2), alpha)


@pytest.fixture(scope="module")
def normals():
    rng = np.random.default_rng(7)
    return make_normals(CapsuleScene(), 40, SIZE, rng, grey=True), make_normals(
        CapsuleScene(), 20, SIZE, rng, grey=True
    )


@pytest.fixture(scope="module")
def detector(normals):
    return PatchCoreAnomalyDetector(input_size=128, coreset_ratio=0.1, random_state=0).fit(normals[0])


@pytest.fixture(scope="module")
def normal_scores(detector, normals):
    return detector.anomaly_scores(normals[1])


def test_greedy_coreset_keeps_the_outliers_and_is_seeded():
    generator = torch.Generator().manual_seed(0)
    cluster = torch.randn(500, 8, generator=generator) * 0.1
    outliers = torch.tensor([[10.0] * 8, [-10.0] * 8, [10.0] * 4 + [-10.0] * 4])
    features = torch.cat([cluster, outliers])
    chosen = greedy_coreset(features, 10, projection_dim=None, random_state=3)
    assert len(chosen) == 10 and len(set(chosen.tolist())) == 10
    assert {500, 501, 502} <= set(chosen.tolist())  # the farthest points come first
    again = greedy_coreset(features, 10, projection_dim=None, random_state=3)
    assert chosen.tolist() == again.tolist()
    assert greedy_coreset(features, 10_000, projection_dim=4, random_state=0).shape == (503,)


def test_the_memory_bank_is_a_coreset_of_the_training_patches(detector):
    assert detector.train_images_ == 32  # 20 % of 40 held out for the threshold
    assert detector.grid_ == (16, 16)  # stride 8 at 128 px
    assert detector.patches_seen_ == 32 * 16 * 16
    assert len(detector.memory_bank_) == int(np.ceil(0.1 * detector.patches_seen_))
    assert detector.memory_bank_.shape[1] == 40 + 112  # blocks 4 and 10 of EfficientNet-Lite0
    capped = PatchCoreAnomalyDetector(input_size=64, coreset_ratio=1.0, max_bank_size=50).fit(
        make_normals(CapsuleScene(), 12, SIZE, np.random.default_rng(1), grey=False)
    )
    assert len(capped.memory_bank_) == 50


def test_the_threshold_is_a_percentile_of_held_out_normal_scores(detector):
    scores = detector.validation_scores()
    assert len(scores) == 8
    assert detector.threshold_ == pytest.approx(np.percentile(scores, 95))
    detector.set_threshold(value=float(scores.max()))
    assert detector.threshold_percentile == pytest.approx(100.0)
    detector.set_threshold(percentile=95)
    histogram = detector.histogram(bins=5)
    assert sum(histogram["counts"]) == 8 and histogram["threshold"] == detector.threshold_


@pytest.mark.parametrize("family", FAMILIES)
def test_it_flags_every_anomaly_family(detector, normal_scores, family):
    """40 normal capsules (64 px, seed 7); 20 held-out normals against 12 anomalies of each family (seed 11)."""
    images, _ = make_images(CapsuleScene(), family, 12, SIZE, np.random.default_rng(11), grey=True)
    results = detector.score(images)
    anomaly_scores = np.array([item["score"] for item in results])
    auroc = roc_auc_score([0] * len(normal_scores) + [1] * len(anomaly_scores), np.r_[normal_scores, anomaly_scores])
    assert auroc >= 0.9, (family, auroc)
    flagged = [item["is_anomaly"] for item in results]
    assert np.mean(flagged) >= 0.75, (family, flagged)


def test_most_held_out_normal_images_pass(detector, normal_scores):
    assert np.mean(normal_scores > detector.threshold_) <= 0.2


@pytest.mark.parametrize("family", ["spot", "scratch", "missing_part"])
def test_the_map_points_at_the_defect(detector, family):
    images, masks = make_images(CapsuleScene(), family, 6, SIZE, np.random.default_rng(5), grey=True)
    scores, maps = detector.score_with_maps(images)
    assert all(item.shape == (SIZE, SIZE) for item in maps)
    truth = np.concatenate([mask.ravel() for mask in masks])
    assert roc_auc_score(truth, np.concatenate([item.ravel() for item in maps])) >= 0.9
    # The image score is the largest (unsmoothed) patch distance, so it is at least the smoothed map's peak.
    assert all(score >= item.max() - 1e-6 for score, item in zip(scores, maps, strict=True))


def test_the_map_and_overlay_have_the_images_own_size(detector, normals):
    wide = normals[1][0].resize((96, 40))
    anomaly_map = detector.anomaly_map(wide)
    assert anomaly_map.shape == (40, 96)
    png = detector.overlay_png(wide, anomaly_map)
    assert Image.open(__import__("io").BytesIO(png)).size == (96, 40)
    shrunk = detector.overlay_png(wide.resize((960, 400)), max_side=480)
    assert Image.open(__import__("io").BytesIO(shrunk)).size == (480, 200)
    colours = detector.map_colours(np.array([detector.map_floor_, detector.threshold_, detector.threshold_ * 3]))
    assert colours.tolist() == [0.0, 1.0, 1.0]


def test_the_bundle_round_trips_and_refuses_other_weights(detector, normals, tmp_path):
    path = detector.save(tmp_path / "patchcore.pt")
    loaded = load_anomaly_detector(path)
    assert isinstance(loaded, PatchCoreAnomalyDetector)
    assert loaded.threshold_ == detector.threshold_ and loaded.layers == detector.layers
    np.testing.assert_allclose(loaded.anomaly_scores(normals[1][:3]), detector.anomaly_scores(normals[1][:3]))
    bundle = torch.load(path, weights_only=True)
    bundle["backbone_fingerprint"] += 1.0
    with pytest.raises(ValueError, match="other EfficientNet-Lite0 weights"):
        PatchCoreAnomalyDetector.from_bundle(bundle)
    with pytest.raises(ValueError, match="not a DeepMed PatchCore"):
        PatchCoreAnomalyDetector.from_bundle({"format": "something else"})


def test_autoencoder_bundles_still_load_through_the_same_loader(normals, tmp_path):
    small = [image.resize((16, 16)) for image in normals[0][:12]]
    autoencoder = AutoencoderAnomalyDetector(image_size=16, epochs=1, batch_size=8).fit(small)
    loaded = load_anomaly_detector(autoencoder.save(tmp_path / "ae.pt"))
    assert isinstance(loaded, AutoencoderAnomalyDetector) and loaded.threshold_ == autoencoder.threshold_


def test_a_stop_request_keeps_a_usable_smaller_detector(normals):
    calls = []

    def stop() -> bool:
        calls.append(1)
        return True

    stopped = PatchCoreAnomalyDetector(input_size=64, batch_size=8, should_stop=stop).fit(normals[0])
    assert stopped.stopped_ and stopped.train_images_ == 8 and calls
    assert np.isfinite(stopped.threshold_) and len(stopped.score(normals[1][:2])) == 2


def test_it_needs_ten_normal_images_and_sane_settings(normals):
    with pytest.raises(ValueError, match="At least 10"):
        PatchCoreAnomalyDetector().fit(normals[0][:9])
    with pytest.raises(ValueError, match="input size"):
        PatchCoreAnomalyDetector(input_size=32)
    with pytest.raises(ValueError, match="coreset ratio"):
        PatchCoreAnomalyDetector(coreset_ratio=0)
