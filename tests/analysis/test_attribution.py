import numpy as np
import pytest
import torch

from sbcore.analysis import ATTRIBUTION_METHODS, attribute, normalise_heatmap
from sbcore.errors import SBCoreError


@pytest.mark.parametrize("method", list(ATTRIBUTION_METHODS))
def test_every_method_gives_an_input_sized_heatmap_on_the_common_scale(sb, image, method):
    result = attribute(sb, image, method, n_steps=8)
    with torch.no_grad():
        predicted = int(sb(image).argmax())
    assert result.method == method and result.target == predicted
    assert result.raw.shape == result.heatmap.shape == (28, 28)
    assert result.heatmap.min() >= 0 and result.heatmap.max() == pytest.approx(1.0)
    assert (result.convergence_delta is not None) == (method == "integrated_gradients")


def test_saliency_equals_the_absolute_input_gradient(sb, image):
    target = 3
    x = image.clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(sb(x)[0, target], x)
    result = attribute(sb, image, "saliency", target=target)
    np.testing.assert_allclose(result.raw, gradient[0].abs().sum(0).numpy(), rtol=1e-5, atol=1e-8)


def test_integrated_gradients_delta_is_its_completeness_error(sb, image):
    target = 7
    result = attribute(sb, image, "integrated_gradients", target=target, n_steps=16, internal_batch_size=4)
    with torch.no_grad():
        difference = float(sb(image)[0, target] - sb(torch.zeros_like(image))[0, target])
    assert abs(result.raw.sum() - difference) == pytest.approx(result.convergence_delta, rel=1e-3, abs=1e-5)


def test_grad_cam_uses_the_chosen_stage(sb, image):
    early = attribute(sb, image, "grad_cam", target=0, stage="layer1")
    late = attribute(sb, image, "grad_cam", target=0, stage="layer3")
    assert early.raw.shape == late.raw.shape == (28, 28)
    assert early.raw.min() >= 0  # ReLU'd as in Grad-CAM
    assert not np.allclose(early.raw, late.raw)


def test_smoothgrad_averages_noisy_gradients(sb, image):
    plain = attribute(sb, image, "saliency", target=2)
    smooth = attribute(sb, image, "saliency", target=2, smoothgrad=True, smoothgrad_samples=4)
    assert smooth.heatmap.shape == (28, 28) and smooth.heatmap.max() == pytest.approx(1.0)
    assert not np.allclose(plain.raw, smooth.raw)


def test_heatmap_normalisation_ignores_the_scale_of_the_model():
    raw = np.random.default_rng(0).normal(size=(28, 28))
    np.testing.assert_allclose(normalise_heatmap(raw), normalise_heatmap(-250.0 * raw), rtol=1e-6)
    assert normalise_heatmap(np.zeros((4, 4))).max() == 0


def test_unknown_method_lists_the_choices(sb, image):
    with pytest.raises(SBCoreError, match="integrated_gradients, saliency"):
        attribute(sb, image, "lime")


@pytest.mark.parametrize("target", [10, -1])
def test_target_outside_the_classes_is_refused(sb, image, target):
    with pytest.raises(SBCoreError, match="classes 0 to 9"):
        attribute(sb, image, "saliency", target=target)


def test_unknown_grad_cam_stage_is_refused(sb, image):
    with pytest.raises(SBCoreError, match="layer1, layer2, layer3"):
        attribute(sb, image, "grad_cam", stage="layer4")


def test_smoothgrad_on_occlusion_is_refused(sb, image):
    with pytest.raises(SBCoreError, match="Occlusion"):
        attribute(sb, image, "occlusion", smoothgrad=True)
