"""The padded layout (no concatenation, aligned channels) computes the concatenation's function: outputs, every
gradient and bn2's running statistics, fp32 relative error <= 1e-5; checkpoints and state dicts unchanged."""
from __future__ import annotations

import copy

import pytest
import torch

import sbcore
from sbcore.analysis.interventions import intervened, resolve_components
from sbcore.layers import reference_formulation
from sbcore.layers.padded_layout import padded_width
from sbcore.models import CHANNEL_LAYOUTS, set_channel_layout
from sbcore.models.resnet import Bottleneck

TOLERANCE = 1e-5


def _relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return float((actual - expected).detach().abs().max() / expected.detach().abs().max().clamp(min=1e-12))


def _model(name: str, **kwargs) -> torch.nn.Module:
    """A model with non-trivial BN statistics and scales everywhere (a fresh one is too regular to test)."""
    torch.manual_seed(0)
    model = sbcore.create_model(name, in_chans=1, num_classes=10, **kwargs)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.2)
        model.train()(torch.randn(8, 1, 32, 32))
    return model.eval()


@pytest.mark.parametrize(("channels", "maps", "width"), [(64, 3, 72), (128, 3, 136), (16, 3, 24), (61, 3, 64), (5, 3, 8)])
def test_padded_width_is_the_next_multiple_of_8_that_holds_the_maps(channels, maps, width):
    assert padded_width(channels, maps) == width


@pytest.mark.parametrize("name", ["sb_resnet38", "sbnl_resnet38", "sb_resnet50"])
def test_inference_in_the_padded_layout_matches_the_concatenation(name):
    model = _model(name)
    x = torch.randn(3, 1, 40, 40)
    with torch.no_grad():  # both with the branch's inference path
        expected = set_channel_layout(model, "concat")(x)
        padded = set_channel_layout(model, "padded")(x)
    assert _relative_error(padded, expected) <= TOLERANCE
    padded = model(x)  # under autograd the branch runs its layers as written
    with reference_formulation():  # the written formulation: the layers as defined, concatenated
        written = model(x)
    assert _relative_error(padded, written) <= TOLERANCE
    blocks = [m for m in model.modules() if isinstance(m, Bottleneck) and m.spatial_bias is not None]
    assert blocks and all(m.uses_padded_layout(x) for m in blocks)


def test_training_in_the_padded_layout_matches_outputs_gradients_and_running_statistics():
    concat = set_channel_layout(_model("sbnl_resnet38").train(), "concat")
    padded = set_channel_layout(copy.deepcopy(concat), "padded")
    x = torch.randn(6, 1, 32, 32)
    target = torch.randint(0, 10, (6,))
    outputs = []
    for model in (concat, padded):
        logits = model(x)
        torch.nn.functional.cross_entropy(logits, target).backward()
        outputs.append(logits)
    assert _relative_error(outputs[1], outputs[0]) <= TOLERANCE
    for (name, expected), (_, actual) in zip(concat.named_parameters(), padded.named_parameters()):
        assert actual.grad.shape == expected.shape, name
        assert _relative_error(actual.grad, expected.grad) <= TOLERANCE, name
    for (name, expected), (_, actual) in zip(concat.named_buffers(), padded.named_buffers()):
        assert actual.shape == expected.shape, name
        assert torch.allclose(actual.float(), expected.float(), rtol=TOLERANCE, atol=1e-7), name


def test_the_state_dict_is_the_same_in_every_layout_and_shipped_weights_give_the_same_logits():
    model = sbcore.create_model("sb_resnet38.fmnist", pretrained=True).eval()
    keys = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    from sbcore.data import FASHION_MNIST_PREPROCESSING, FashionMNIST, build_transforms

    test = FashionMNIST(None, False, build_transforms(FASHION_MNIST_PREPROCESSING, False, "fashion-mnist"))
    images = torch.stack([test[i][0] for i in range(64)])
    with torch.no_grad():
        concat = set_channel_layout(model, "concat")(images)
        padded = set_channel_layout(model, "padded")(images)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == keys
    assert _relative_error(padded, concat) <= TOLERANCE and torch.equal(padded.argmax(1), concat.argmax(1))


def test_padded_weights_follow_an_in_place_change_of_the_parameters():
    model = set_channel_layout(_model("sb_resnet38"), "padded")
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        model(x)  # pads and keeps the weights
        block = model.layer1[0]
        block.conv3.weight.mul_(1.5)
        block.bn2.running_var.mul_(2.0)
        padded = model(x)
        expected = set_channel_layout(model, "concat")(x)
    assert _relative_error(padded, expected) <= TOLERANCE


def test_an_intervention_on_the_maps_acts_the_same_in_both_layouts():
    model = _model("sb_resnet38")
    x = torch.randn(4, 1, 32, 32)
    components = resolve_components(model, ["layer1.0", "layer2.0"])
    results = []
    for layout in ("concat", "padded"):
        set_channel_layout(model, layout)
        with torch.no_grad(), intervened(model, components, "zero"):
            results.append(model(x))
    assert _relative_error(results[1], results[0]) <= TOLERANCE


@pytest.mark.parametrize("dtype", [torch.bfloat16])
def test_autocast_in_the_padded_layout_stays_within_low_precision_rounding(dtype):
    model = _model("sb_resnet50")
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        expected = set_channel_layout(model, "concat")(x)
        with torch.autocast("cpu", dtype=dtype):
            padded = set_channel_layout(model, "padded")(x)
    assert padded.dtype == dtype and (padded.float() - expected).norm() / expected.norm() <= 2e-2


def test_auto_pads_on_a_gpu_only_and_unknown_layouts_are_refused():
    model = _model("sb_resnet38")
    block = model.layer1[0]
    assert block.channel_layout == "auto" and not block.uses_padded_layout(torch.zeros(1))
    assert set(CHANNEL_LAYOUTS) == {"auto", "concat", "padded"}
    with pytest.raises(ValueError, match="Unknown channel layout 'aligned'"):
        set_channel_layout(model, "aligned")
