import numpy as np
import pytest
import torch

from imaging.ml.anomaly import (
    AutoencoderAnomalyDetector,
    ConvAutoencoder,
    _rank_against,
    _smooth_rank_against,
    pseudo_anomalies,
    pseudo_anomaly_weights,
)
from imaging.ml.synthetic import anomaly_sets


@pytest.fixture(scope="module")
def sets():
    return anomaly_sets("circle", 30, 5, 5, size=16, seed=0)


@pytest.fixture(scope="module")
def detector(sets):
    train, _, _ = sets
    return AutoencoderAnomalyDetector(image_size=16, epochs=2, batch_size=8, ssim_weight=0.1).fit(train)


def test_autoencoder_has_the_documented_shape():
    model = ConvAutoencoder(image_size=32, channels=1)
    convs = [m for m in model.encoder_conv if isinstance(m, torch.nn.Conv2d)]
    norms = [m for m in model.encoder_conv if isinstance(m, torch.nn.BatchNorm2d)]
    deconvs = [m for m in model.decoder_conv if isinstance(m, torch.nn.ConvTranspose2d)]
    assert len(convs) == 4 and len(norms) == 4 and len(deconvs) == 4
    assert model.to_latent.out_features == 256
    assert isinstance(model.decoder_conv[-1], torch.nn.Sigmoid)
    out = model(torch.rand(2, 1, 32, 32))
    assert out.shape == (2, 1, 32, 32) and out.min() >= 0 and out.max() <= 1


def test_threshold_is_the_chosen_percentile_of_validation_errors(detector):
    errors = detector.val_reconstruction_errors_
    assert len(errors) == 6  # 20 % of 30 held out
    assert detector.threshold_ == pytest.approx(np.percentile(errors, 95))
    detector.set_threshold(percentile=50)
    assert detector.threshold_ == pytest.approx(np.median(errors))
    detector.set_threshold(value=float(errors.max()))
    assert detector.threshold_percentile == pytest.approx(100.0)
    detector.set_threshold(percentile=95)


def test_score_flags_exactly_the_images_above_the_threshold(detector, sets):
    _, test, _ = sets
    results = detector.score(test)
    assert len(results) == 10
    for item in results:
        assert set(item) >= {"score", "threshold", "is_anomaly"}
        assert item["is_anomaly"] == (item["score"] > item["threshold"])
    detector.set_threshold(value=-1.0)
    assert all(r["is_anomaly"] for r in detector.score(test[:3]))
    detector.set_threshold(percentile=95)


def test_histogram_and_heatmap_for_the_page(detector, sets):
    histogram = detector.histogram(bins=5)
    assert sum(histogram["counts"]) == 6 and len(histogram["edges"]) == 6
    assert histogram["threshold"] == detector.threshold_
    heatmap = detector.error_heatmap(sets[1][0])
    assert heatmap.shape == (16, 16) and heatmap.min() >= 0 and heatmap.max() <= 1
    assert detector.error_heatmap_png(sets[1][0]).startswith(b"\x89PNG")


def test_save_and_load_keep_scores_and_threshold(detector, sets, tmp_path):
    path = detector.save(tmp_path / "anomaly.pt")
    loaded = AutoencoderAnomalyDetector.load(path)
    assert loaded.threshold_ == pytest.approx(detector.threshold_)
    assert np.allclose(loaded.anomaly_scores(sets[1]), detector.anomaly_scores(sets[1]), atol=1e-6)


@pytest.fixture(scope="module")
def enhanced(sets):
    return AutoencoderAnomalyDetector(image_size=16, epochs=1, batch_size=8, enhanced=True).fit(sets[0])


def test_enhanced_mode_ensembles_weighted_rank_normalised_scores(enhanced, sets, tmp_path):
    _, test, _ = sets
    results = enhanced.score(test)
    assert results[0]["mode"] == "enhanced"
    components, weights = results[0]["components"], results[0]["weights"]
    assert (
        set(components)
        == set(weights)
        == {"reconstruction", "isolation_forest", "local_outlier_factor", "one_class_svm"}
    )
    assert sum(weights.values()) == pytest.approx(1.0) and min(weights.values()) >= 0
    assert weights == pytest.approx(pseudo_anomaly_weights(enhanced.pseudo_anomaly_auroc_))
    assert results[0]["score"] == pytest.approx(sum(weights[k] * components[k] for k in components))
    assert 0 <= enhanced.threshold_ <= 1
    loaded = AutoencoderAnomalyDetector.load(enhanced.save(tmp_path / "e.pt"))
    assert loaded.ensemble_weights_ == pytest.approx(enhanced.ensemble_weights_)
    assert loaded.threshold_ == pytest.approx(enhanced.threshold_)
    assert np.allclose(loaded.anomaly_scores(test), enhanced.anomaly_scores(test))


def test_an_enhanced_bundle_saved_before_the_weighted_ensemble_still_loads_and_scores_as_before(
    enhanced, sets, tmp_path
):
    """Bundles written before ensemble version 2 lack its keys: they keep the equal mean of step ranks."""
    _, test, _ = sets
    bundle = torch.load(enhanced.save(tmp_path / "new.pt"), weights_only=True)
    for key in ("ensemble_version", "ensemble_weights", "pseudo_anomaly_auroc"):
        del bundle[key]
    old_threshold = 0.8
    bundle["threshold"] = old_threshold
    torch.save(bundle, tmp_path / "old.pt")
    loaded = AutoencoderAnomalyDetector.load(tmp_path / "old.pt")
    assert loaded.ensemble_version_ == 1 and loaded.ensemble_weights_ is None
    assert loaded.threshold_ == pytest.approx(old_threshold)
    data = loaded._stack(test)
    components = loaded._component_scores(loaded._features(data), loaded._errors(data))
    legacy = np.mean([_rank_against(loaded.val_component_scores_[k], v) for k, v in components.items()], axis=0)
    assert np.allclose(loaded.anomaly_scores(test), legacy)
    results = loaded.score(test)
    assert all(item["score"] == pytest.approx(np.mean(list(item["components"].values()))) for item in results)
    assert all(item["is_anomaly"] == (item["score"] > old_threshold) for item in results)


def test_smooth_rank_is_strictly_increasing_bounded_and_matches_the_validation_positions():
    reference = np.array([3.0, 1.0, 2.0, 4.0])
    values = np.array([-5.0, 0.5, 1.0, 1.5, 2.0, 4.0, 4.5, 40.0])
    ranks = _smooth_rank_against(reference, values)
    assert np.all(np.diff(ranks) > 0) and ranks.min() > 0 and ranks.max() < 1
    assert _smooth_rank_against(reference, np.array([1.0, 2.0, 3.0, 4.0])) == pytest.approx([0.2, 0.4, 0.6, 0.8])
    # Past the most unusual normal score, farther means higher (the step CDF would tie these at 1).
    assert list(_rank_against(reference, values[-2:])) == [1.0, 1.0]


def test_pseudo_anomaly_weights_favour_the_detector_that_finds_pseudo_anomalies():
    weights = pseudo_anomaly_weights({"a": 0.9, "b": 0.8, "c": 0.5, "d": 0.3})
    assert sum(weights.values()) == pytest.approx(1.0)
    assert weights["a"] > 0.9 and 0 < weights["b"] < 0.1 and weights["c"] == weights["d"] == 0
    assert pseudo_anomaly_weights({"a": 0.4, "b": 0.5}) == {"a": 0.5, "b": 0.5}


def test_pseudo_anomalies_change_a_patch_and_leave_the_originals_alone(sets):
    data = torch.rand(4, 1, 16, 16)
    original = data.clone()
    fakes = pseudo_anomalies(data, seed=0, copies=3)
    assert fakes.shape == (12, 1, 16, 16) and torch.equal(data, original)
    changed = (fakes != data.repeat_interleave(3, dim=0)).flatten(1).float().mean(dim=1)
    assert (changed > 0).all() and (changed < 0.34).all()
    assert torch.equal(fakes, pseudo_anomalies(data, seed=0, copies=3))


def test_it_needs_enough_normal_images():
    with pytest.raises(ValueError, match="At least 10"):
        AutoencoderAnomalyDetector(image_size=16).fit(anomaly_sets("circle", 5, 0, 0, size=16)[0])
