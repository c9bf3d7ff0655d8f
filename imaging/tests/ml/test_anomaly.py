import numpy as np
import pytest
import torch

from imaging.ml.anomaly import AutoencoderAnomalyDetector, ConvAutoencoder
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


def test_enhanced_mode_ensembles_rank_normalised_scores(sets, tmp_path):
    train, test, _ = sets
    detector = AutoencoderAnomalyDetector(image_size=16, epochs=1, batch_size=8, enhanced=True).fit(train)
    results = detector.score(test)
    assert results[0]["mode"] == "enhanced"
    components = results[0]["components"]
    assert set(components) == {"reconstruction", "isolation_forest", "local_outlier_factor", "one_class_svm"}
    assert results[0]["score"] == pytest.approx(np.mean(list(components.values())))
    assert 0 <= detector.threshold_ <= 1
    loaded = AutoencoderAnomalyDetector.load(detector.save(tmp_path / "e.pt"))
    assert np.allclose(loaded.anomaly_scores(test), detector.anomaly_scores(test))


def test_it_needs_enough_normal_images():
    with pytest.raises(ValueError, match="At least 10"):
        AutoencoderAnomalyDetector(image_size=16).fit(anomaly_sets("circle", 5, 0, 0, size=16)[0])
