"""Familiarity scores and their calibration: AUROC, percentiles, threshold, the shipped calibration."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import sbcore
from sbcore.analysis import ood
from sbcore.errors import SBCoreError
from sbcore.images import load_image, preprocess

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_CALIBRATION = ROOT / "assets" / "ood_calibration.json"


def test_auroc_counts_pairs_and_half_ties():
    assert ood.auroc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0
    assert ood.auroc(np.array([1.0, 2.0]), np.array([3.0, 4.0])) == 0.0
    assert ood.auroc(np.array([1.0, 2.0]), np.array([1.0, 0.0])) == pytest.approx(3.5 / 4)
    rng = np.random.default_rng(0)
    a, b = rng.normal(1, 1, 300).round(1), rng.normal(0, 1, 200).round(1)
    brute = np.mean([(x > y) + 0.5 * (x == y) for x in a for y in b])
    assert ood.auroc(a, b) == pytest.approx(brute)


def test_density_scores_are_minus_the_squared_mahalanobis_distance_to_the_nearest_class():
    features = torch.tensor([[0.0, 0.0], [2.0, 0.0], [10.0, 0.0], [12.0, 0.0]])
    # Shared covariance: variance 1 along x, 0 along y; the ridge (1) keeps y's precision finite.
    density = ood.fit_density(features, torch.tensor([0, 0, 1, 1]), 2, ridge=1.0)
    np.testing.assert_allclose(density.means.numpy(), [[1.0, 0.0], [11.0, 0.0]])
    scores = density.scores(torch.tensor([[1.0, 0.0], [3.0, 0.0], [6.0, 0.0]]))
    np.testing.assert_allclose(scores.numpy(), [0.0, -4.0 / 2.0, -25.0 / 2.0], rtol=1e-5)  # variance 1 + ridge 1


def test_energy_is_the_log_sum_exp_of_the_logits():
    logits = torch.tensor([[0.0, 0.0], [5.0, 0.0]])
    np.testing.assert_allclose(ood.energy_scores(logits).numpy(), [np.log(2), np.log(np.exp(5) + 1)], rtol=1e-6)


def _calibration(familiar: np.ndarray, unfamiliar: np.ndarray) -> ood.Calibration:
    identity = ood.FeatureDensity(torch.zeros(1, 2), torch.eye(2))
    return ood.calibrate(identity, familiar, unfamiliar, "in", "out")


def test_calibration_places_scores_among_the_test_scores_and_flags_the_low_tail():
    calibration = _calibration(np.linspace(-10.0, 0.0, 1001), np.array([-20.0, -9.8]))
    assert calibration.threshold == pytest.approx(-9.5)  # the 5th percentile
    assert calibration.auroc == pytest.approx(1 - 0.5 * 20 / 1001, abs=1e-3)  # -9.8 beats the 2% of test below it
    assert calibration.quantiles[50] == pytest.approx(-5.0)


def test_calibrations_survive_a_round_trip_and_a_broken_file_is_one_error(tmp_path):
    calibration = _calibration(np.arange(100.0), np.arange(10.0))
    ood.save_calibrations({"m": calibration}, tmp_path / "c.json")
    loaded = ood.load_calibrations(tmp_path / "c.json")["m"]
    assert loaded.quantiles == calibration.quantiles and loaded.threshold == calibration.threshold
    assert torch.equal(loaded.density.precision, calibration.density.precision)
    (tmp_path / "bad.json").write_text('{"m": {"quantiles": 3}}')
    with pytest.raises(SBCoreError, match="bad.json"):
        ood.load_calibrations(tmp_path / "bad.json")


def _app_input(model, file: str) -> torch.Tensor:
    from app.inputs import light_background

    image = load_image(ROOT / "assets" / "samples" / file)
    preprocessing = model.metadata.preprocessing
    return preprocess(image, preprocessing, preprocessing.dark_background and light_background(image))


FAMILIAR_SAMPLES = {"fmnist": ("fmnist_0009_sneaker.png", "fmnist_0018_bag.png"), "samediff": ("samediff_far_bags.png",)}


def test_shipped_calibration_tells_its_inputs_from_photos_and_noise_for_every_shipped_model():
    calibrations = ood.load_calibrations(SHIPPED_CALIBRATION)
    # every shipped model: the garment classifiers and the lab's same-different models
    assert sorted(calibrations) == sorted(sbcore.list_models("*.fmnist", pretrained=True)
                                          + sbcore.list_models("*.samediff", pretrained=True))
    for name, calibration in calibrations.items():
        assert calibration.auroc > 0.9, name
        assert all(np.isfinite(calibration.quantiles)), name
        model = sbcore.create_model(name, pretrained=True).eval()
        preprocessing = model.metadata.preprocessing
        mean, std = preprocessing.mean[0], preprocessing.std[0]
        for familiar in FAMILIAR_SAMPLES[name.rsplit(".", 1)[1]]:
            assert not ood.assess(model, _app_input(model, familiar), calibration).unusual, (name, familiar)
        for photo in ("photo_coffee.jpg", "photo_rocket.jpg", "photo_astronaut.jpg"):
            assert ood.assess(model, _app_input(model, photo), calibration).unusual, (name, photo)
        noise = torch.rand(1, 1, *preprocessing.input_size[-2:], generator=torch.Generator().manual_seed(0))
        assert ood.assess(model, (noise - mean) / std, calibration).unusual, name


def test_a_class_without_features_is_one_error_not_a_density_of_nans():
    # the lab's canvases alternate labels, so every 10th canvas is of one class: the old fit gave NaN means
    with pytest.raises(SBCoreError, match=r"no features of class \[1\]"):
        ood.fit_density(torch.randn(6, 3), torch.zeros(6, dtype=torch.long), 2)
