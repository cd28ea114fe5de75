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


def test_grad_cam_never_hooks_the_model_it_was_given(sb, image, monkeypatch):
    """The app shares one model between sessions: a hook on it would catch the other sessions' forwards."""
    hooked, register = [], torch.nn.Module.register_forward_hook

    def spy(module, *args, **kwargs):
        hooked.append(module is sb.layer3)
        return register(module, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "register_forward_hook", spy)
    result = attribute(sb, image, "grad_cam", target=0, stage="layer3")
    assert hooked and not any(hooked)  # Captum hooked a layer, never the given model's
    assert result.raw.shape == (28, 28) and result.raw.max() > 0


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


def test_integrated_gradients_adds_steps_until_completeness_is_within_the_bound(sb, image):
    result = attribute(sb, image, "integrated_gradients", target=4, max_completeness_error=0.01)
    with torch.no_grad():
        gap = float(sb(image)[0, 4] - sb(torch.zeros_like(image))[0, 4])
    assert result.completeness_error == pytest.approx(abs(result.raw.sum() - gap) / abs(gap), rel=1e-3, abs=1e-6)
    assert result.completeness_error < 0.01 or result.n_steps == 256
    coarse = attribute(sb, image, "integrated_gradients", target=4, n_steps=4)
    assert coarse.n_steps == 4 and coarse.completeness_error > result.completeness_error


@pytest.fixture
def half_grey(sb):
    """The SB model with preprocessing mean 0.5 and std 0.25, so black is (0 - 0.5) / 0.25 = -2."""
    from sbcore.models.metadata import ModelMetadata, Preprocessing

    saved = getattr(sb, "metadata", None)
    sb.metadata = ModelMetadata("sb_resnet38", preprocessing=Preprocessing(input_size=(1, 28, 28), mean=(0.5,), std=(0.25,)))
    yield sb
    sb.metadata = saved


@pytest.mark.parametrize("method", ["integrated_gradients", "occlusion"])
def test_black_baseline_gives_zero_attribution_where_the_image_is_black(half_grey, method):
    x = torch.full((1, 1, 28, 28), -2.0)
    x[..., 8:20, 8:20] = 2.0  # a bright square on black
    result = attribute(half_grey, x, method, target=1, baseline="black")
    assert result.baseline == "black"
    far = np.ones((28, 28), bool)
    far[3:25, 3:25] = False  # farther from the square than any 7-pixel occlusion window (stride 3) reaches
    inside = np.abs(result.raw[8:20, 8:20]).max()
    assert inside > 0 and np.abs(result.raw[far]).max() <= 1e-4 * inside  # zero up to batched float rounding


def test_baselines_differ_and_an_unknown_one_is_refused(half_grey, image):
    maps = {b: attribute(half_grey, image, "occlusion", target=0, baseline=b).raw for b in ("black", "blurred", "mean")}
    assert not np.allclose(maps["black"], maps["mean"]) and not np.allclose(maps["blurred"], maps["mean"])
    with pytest.raises(SBCoreError, match="black, blurred, mean"):
        attribute(half_grey, image, "occlusion", baseline="white")
