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


def test_familiarity_is_the_log_sum_exp_of_the_logits_and_grows_with_confidence():
    logits = torch.tensor([[0.0, 0.0], [5.0, 0.0]])
    np.testing.assert_allclose(ood.familiarity_scores(logits).numpy(), [np.log(2), np.log(np.exp(5) + 1)], rtol=1e-6)


def test_assess_places_an_input_among_the_test_scores_and_flags_the_low_tail():
    familiar = np.linspace(0.0, 10.0, 1001)
    calibration = ood.calibrate(familiar, np.array([-1.0, 0.2]), "in", "out")
    assert calibration.threshold == pytest.approx(0.5)  # the 5th percentile
    high = ood.assess(torch.tensor([[9.0, -50.0]]), calibration)  # logsumexp ~ 9
    low = ood.assess(torch.tensor([[0.1, -50.0]]), calibration)
    assert high.percentile == pytest.approx(0.9, abs=0.01) and not high.unusual
    assert low.percentile == pytest.approx(0.01, abs=0.01) and low.unusual


def test_calibrations_survive_a_round_trip_and_a_broken_file_is_one_error(tmp_path):
    calibration = ood.calibrate(np.arange(100.0), np.arange(10.0), "in", "out")
    ood.save_calibrations({"m": calibration}, tmp_path / "c.json")
    assert ood.load_calibrations(tmp_path / "c.json") == {"m": calibration}
    (tmp_path / "bad.json").write_text('{"m": {"quantiles": 3}}')
    with pytest.raises(SBCoreError, match="bad.json"):
        ood.load_calibrations(tmp_path / "bad.json")


def test_shipped_calibration_tells_a_test_garment_from_noise_for_every_shipped_model():
    calibrations = ood.load_calibrations(SHIPPED_CALIBRATION)
    assert sorted(calibrations) == sorted(sbcore.list_models(pretrained=True))
    noise = torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    for name, calibration in calibrations.items():
        assert 0.5 < calibration.auroc <= 1.0
        model = sbcore.create_model(name, pretrained=True).eval()
        garment = preprocess(load_image(ROOT / "assets" / "samples" / "fmnist_0009_sneaker.png"), model.metadata.preprocessing)
        noisy = (noise - model.metadata.preprocessing.mean[0]) / model.metadata.preprocessing.std[0]
        with torch.no_grad():
            assert not ood.assess(model(garment), calibration).unusual
            assert ood.assess(model(noisy), calibration).unusual
