import numpy as np
import pytest
import torch

from sbcore import create_model
from sbcore.analysis import (
    AREA_THRESHOLDS,
    effective_receptive_field,
    noise_images,
    radial_profile,
    theoretical_receptive_field,
)
from sbcore.errors import SBCoreError


def test_theoretical_receptive_fields_are_computed_from_the_layers(plain, sb):
    assert [theoretical_receptive_field(plain, s) for s in ("layer1", "layer2", "layer3")] == [11, 25, 53]
    assert theoretical_receptive_field(sb, "layer2") == 25  # global branches do not count
    resnet50 = create_model("resnet50")
    assert [theoretical_receptive_field(resnet50, f"layer{i}") for i in (1, 2, 3, 4)] == [35, 91, 267, 427]


def _outside_rf(contribution: np.ndarray, centre: tuple[float, float], size: int) -> np.ndarray:
    rows, cols = np.indices(contribution.shape)
    half = (size - 1) / 2
    return (np.abs(rows - centre[0]) > half) | (np.abs(cols - centre[1]) > half)


def test_plain_resnet_gradient_is_exactly_zero_outside_the_theoretical_receptive_field(plain):
    images = noise_images(4, (1, 32, 32))
    result = effective_receptive_field(plain, images, "layer1")
    outside = _outside_rf(result.contribution, result.centre, result.receptive_field)
    assert result.centre == (16.0, 16.0) and outside.sum() == 32 * 32 - 11 * 11
    assert np.all(result.contribution[outside] == 0.0)
    assert np.count_nonzero(result.contribution[~outside]) > 0.9 * 121
    assert result.outside_rf_share == 0.0


def test_spatial_bias_reaches_outside_the_theoretical_receptive_field(sb):
    result = effective_receptive_field(sb, noise_images(4, (1, 32, 32)), "layer1")
    outside = _outside_rf(result.contribution, result.centre, result.receptive_field)
    assert np.count_nonzero(result.contribution[outside]) > 0.9 * outside.sum()
    assert 0.0 < result.outside_rf_share < 1.0


def test_erf_result_fields(plain):
    calls = []
    images = noise_images(5, (1, 32, 32))
    result = effective_receptive_field(plain, images, "layer2", progress=lambda *a: calls.append(a), batch_size=2)
    assert calls == [(2, 5), (4, 5), (5, 5)]
    assert result.stage == "layer2" and result.num_images == 5 and result.receptive_field == 25
    assert result.contribution.shape == result.log_scaled.shape == (32, 32)
    assert result.log_scaled.min() >= 0 and result.log_scaled.max() == pytest.approx(1.0)
    ratios = [result.area_ratios[t] for t in AREA_THRESHOLDS]
    assert ratios == sorted(ratios) and 0 < ratios[0]
    assert ratios[-1] <= 25 * 25 / (32 * 32)  # nothing lies outside the theoretical receptive field


def test_erf_sums_over_images(plain):
    images = noise_images(4, (1, 32, 32), seed=3)
    whole = effective_receptive_field(plain, images, "layer1").contribution
    parts = sum(effective_receptive_field(plain, images[i : i + 1], "layer1").contribution for i in range(4))
    np.testing.assert_allclose(whole, parts, rtol=1e-5)


def test_erf_leaves_the_model_in_its_mode(plain):
    plain.train()
    try:
        effective_receptive_field(plain, noise_images(2, (1, 32, 32)), "layer1")
        assert plain.training
    finally:
        plain.eval()


def test_unknown_stage_and_empty_batches_are_refused(plain):
    with pytest.raises(SBCoreError, match="layer1, layer2, layer3"):
        effective_receptive_field(plain, noise_images(1, (1, 32, 32)), "layer4")
    with pytest.raises(SBCoreError, match="non-empty"):
        effective_receptive_field(plain, torch.zeros(0, 1, 32, 32), "layer1")


def test_radial_profile_averages_rings_around_the_centre():
    contribution = np.zeros((9, 9))
    contribution[4, 4] = 8.0
    contribution[4, 6] = contribution[2, 4] = 4.0  # two of the 12 pixels at rounded distance 2
    radii, values = radial_profile(contribution)
    assert radii[:3].tolist() == [0.0, 1.0, 2.0]
    assert values[0] == 8.0 and values[1] == 0.0
    assert values[2] == pytest.approx(8.0 / np.count_nonzero(np.rint(np.hypot(*np.indices((9, 9)) - 4)) == 2))


def test_noise_images_are_seeded():
    assert noise_images(3, (1, 8, 8), seed=5).shape == (3, 1, 8, 8)
    assert torch.equal(noise_images(3, (1, 8, 8), seed=5), noise_images(3, (1, 8, 8), seed=5))
    assert not torch.equal(noise_images(3, (1, 8, 8), seed=5), noise_images(3, (1, 8, 8), seed=6))
