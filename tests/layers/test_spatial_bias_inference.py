"""The spatial-bias inference path (folded BN, pooling, mixing and upsampling as matrix products) computes the
layers' numbers: fp32, relative error <= 1e-5, and never with weights older than the model's."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import sbcore
from sbcore.cost import count_flops
from sbcore.layers import SpatialBias, reference_formulation, upsample_maps
from sbcore.layers.resampling import dense_pooling_pays, dense_upsampling_pays, pooling_matrix, upsampling_matrix
from sbcore.layers.spatial_bias_inference import banded_mixing_matrix

TOLERANCE = 1e-5
CPU = torch.device("cpu")


def _relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return float((actual - expected).abs().max() / expected.abs().max().clamp(min=1e-12))


def _trained_branch(in_channels: int = 16, **kwargs: int) -> SpatialBias:
    """A branch whose BN statistics and scales are not the trivial ones, in eval mode."""
    torch.manual_seed(0)
    branch = SpatialBias(in_channels, **kwargs)
    with torch.no_grad():
        branch.channel_reduction[1].weight.uniform_(0.5, 2.0)
        branch.channel_reduction[1].bias.normal_()
        branch.train()(torch.randn(8, in_channels, 12, 12) * 3 + 1)
    return branch.eval()


def _reference(branch: SpatialBias, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    with torch.no_grad():
        return upsample_maps(branch(x), size)


def _inference(branch: SpatialBias, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    with torch.inference_mode():
        return branch.upsampled_maps(x, size)


@pytest.mark.parametrize(("height", "width", "grid"), [(32, 32, 6), (13, 9, 6), (7, 7, 10), (4, 5, 6), (56, 56, 10)])
def test_pooling_matrix_is_adaptive_average_pooling(height, width, grid):
    x = torch.randn(3, 5, height, width)
    expected = F.adaptive_avg_pool2d(x, grid).reshape(15, grid * grid)
    actual = x.reshape(15, height * width) @ pooling_matrix(height, width, grid, torch.float32, CPU)
    assert _relative_error(actual, expected) <= TOLERANCE


@pytest.mark.parametrize(("grid", "height", "width"), [(6, 32, 32), (6, 9, 13), (10, 7, 7), (10, 56, 56), (6, 3, 4)])
def test_upsampling_matrix_is_bilinear_upsampling(grid, height, width):
    maps = torch.randn(2, 3, grid, grid)
    expected = upsample_maps(maps, (height, width)).reshape(6, height * width)
    actual = maps.reshape(6, grid * grid) @ upsampling_matrix(grid, height, width, torch.float32, CPU)
    assert _relative_error(actual, expected) <= TOLERANCE


@pytest.mark.parametrize("shape", [(5, 6, 3), (7, 4, 3), (4, 3, 2)], ids=["paper", "k7", "kernel2"])
def test_banded_matrix_mixes_every_window_like_the_papers_conv1d(shape):
    reduced, grid, kernel = shape
    branch = _trained_branch(8, reduced_channels=reduced, grid_size=grid, kernel_size=kernel)
    pooled = torch.randn(4, reduced, grid, grid)
    matrix = banded_mixing_matrix(branch.grid_mixing.weight.detach(), reduced)
    mixed = pooled.reshape(4, -1) @ matrix + branch.grid_mixing.bias.detach().repeat(branch.num_maps)
    assert _relative_error(mixed, branch.mix(pooled).detach().reshape(4, -1)) <= TOLERANCE


@pytest.mark.parametrize(
    ("in_channels", "grid", "input_size", "output_size"),
    [
        (16, 6, (32, 32), (32, 32)),  # CIFAR stage 1: dense pooling and upsampling
        (32, 6, (32, 32), (16, 16)),  # a strided block: maps go to the 3x3 conv's smaller output
        (64, 10, (56, 56), (56, 56)),  # ImageNet stage 1: adaptive pooling and bilinear upsampling
        (8, 10, (7, 9), (7, 9)),  # a map smaller than the grid
    ],
)
@pytest.mark.parametrize("batch", [1, 4])
def test_inference_path_equals_the_branch_as_defined(in_channels, grid, input_size, output_size, batch):
    branch = _trained_branch(in_channels, grid_size=grid)
    x = torch.randn(batch, in_channels, *input_size)
    expected = _reference(branch, x, output_size)
    actual = _inference(branch, x, output_size)
    assert actual.shape == expected.shape == (batch, 3, *output_size)
    assert _relative_error(actual, expected) <= TOLERANCE


def test_inference_path_covers_both_dense_and_layer_resampling():
    """The parametrised shapes above exercise both ways of pooling and upsampling."""
    assert dense_pooling_pays(32, 32, 6) and dense_upsampling_pays(6, 32, 32)
    assert not dense_pooling_pays(56, 56, 10) and not dense_upsampling_pays(10, 56, 56)


def test_inference_path_reads_channels_last_input():
    branch = _trained_branch(16, grid_size=6)
    x = torch.randn(2, 16, 20, 20).contiguous(memory_format=torch.channels_last)
    assert _relative_error(_inference(branch, x, (20, 20)), _reference(branch, x, (20, 20))) <= TOLERANCE


@pytest.mark.parametrize(
    "change",
    [
        lambda branch: branch.channel_reduction[0].weight.mul_(-1.5),
        lambda branch: branch.channel_reduction[1].running_var.fill_(4.0),
        lambda branch: branch.channel_reduction[1].running_mean.add_(1.0),
        lambda branch: branch.grid_mixing.weight.mul_(2.0),
        lambda branch: branch.grid_mixing.bias.add_(1.0),
        lambda branch: setattr(branch.channel_reduction[1], "eps", 0.5),
        lambda branch: branch.load_state_dict(_trained_branch(16, grid_size=6, reduced_channels=5).state_dict()),
        lambda branch: branch.load_state_dict(
            {k: v * 2 for k, v in branch.state_dict().items()}, assign=True),
    ],
    ids=["conv-weight", "bn-var", "bn-mean", "mixing-weight", "mixing-bias", "bn-eps", "load", "load-assign"],
)
def test_inference_path_follows_every_change_of_the_weights(change):
    branch = _trained_branch(16, grid_size=6)
    torch.nn.init.normal_(branch.channel_reduction[0].weight)  # unlike the freshly built branch that "load" loads
    x = torch.randn(2, 16, 12, 12)
    before = _inference(branch, x, (12, 12))
    with torch.no_grad():
        change(branch)
    after = _inference(branch, x, (12, 12))
    assert not torch.allclose(after, before)
    assert _relative_error(after, _reference(branch, x, (12, 12))) <= TOLERANCE


def test_a_copy_folds_its_own_weights():
    """A deep copy (an EMA model, say) changed in place must not keep the original's folded weights."""
    branch = SpatialBias(16, grid_size=6).eval()  # fresh: every version counter still at 0, as in the copy
    x = torch.randn(2, 16, 12, 12)
    original = _inference(branch, x, (12, 12))
    twin = copy.deepcopy(branch)
    with torch.no_grad():
        twin.grid_mixing.bias.add_(1.0)
    assert _relative_error(_inference(twin, x, (12, 12)), _reference(twin, x, (12, 12))) <= TOLERANCE
    assert torch.equal(_inference(branch, x, (12, 12)), original)


def test_a_bn_switched_to_training_normalises_by_batch_statistics():
    """BN recalibration puts only the BN layers in training mode: folding the running statistics would be wrong."""
    branch = _trained_branch(16, grid_size=6)
    x = torch.randn(4, 16, 12, 12) * 2 + 3
    _inference(branch, x, (12, 12))
    twin = copy.deepcopy(branch)
    branch.channel_reduction[1].train()
    twin.channel_reduction[1].train()
    with torch.no_grad():
        expected = upsample_maps(twin(x), (12, 12))
    assert _relative_error(_inference(branch, x, (12, 12)), expected) <= TOLERANCE
    torch.testing.assert_close(branch.channel_reduction[1].running_mean, twin.channel_reduction[1].running_mean)


class _Upsampled(torch.nn.Module):
    def __init__(self, branch: SpatialBias) -> None:
        super().__init__()
        self.branch = branch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.branch.upsampled_maps(x, (12, 12))


@pytest.mark.filterwarnings("ignore:`torch.jit.trace:FutureWarning")  # deprecated, still used (ONNX export)
def test_a_trace_records_the_layers_as_defined():
    """torch.jit.trace runs the model once: what it records must not bake in the folded weights."""
    module = _Upsampled(_trained_branch(16, grid_size=6))
    with torch.no_grad():
        traced = torch.jit.trace(module, torch.randn(2, 16, 12, 12))
    assert "adaptive_avg_pool2d" in str(traced.inlined_graph)


def test_inference_path_follows_a_change_of_dtype():
    branch = _trained_branch(16, grid_size=6)
    x = torch.randn(2, 16, 12, 12)
    _inference(branch, x, (12, 12))
    branch.double()
    actual = _inference(branch, x.double(), (12, 12))
    assert actual.dtype == torch.float64
    assert _relative_error(actual, _reference(branch, x.double(), (12, 12))) <= 1e-12


def test_inference_path_works_on_weights_made_under_inference_mode():
    """Such tensors have no version counter to watch, so their folded weights are never reused."""
    with torch.inference_mode():
        branch = SpatialBias(16, grid_size=6).eval()
        x = torch.randn(2, 16, 12, 12)
        first = branch.upsampled_maps(x, (12, 12))
        branch.grid_mixing.bias.add_(1.0)
        second = branch.upsampled_maps(x, (12, 12))
        assert _relative_error(second, upsample_maps(branch(x), (12, 12))) <= TOLERANCE
    assert not torch.allclose(first, second)


def test_with_autograd_on_the_branch_runs_as_defined_and_trains_every_parameter():
    branch = _trained_branch(16, grid_size=6)
    branch.upsampled_maps(torch.randn(2, 16, 12, 12), (12, 12)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in branch.parameters())


@pytest.mark.parametrize(("name", "size"), [("sb_resnet38", 32), ("sbnl_resnet38", 28), ("sb_resnet50", 96)])
def test_model_inference_equals_its_readable_definition(name, size):
    torch.manual_seed(0)
    model = sbcore.create_model(name)
    with torch.no_grad():
        model.train()(torch.randn(4, 3, size, size))
    model.eval()
    x = torch.randn(3, 3, size, size)
    with torch.inference_mode():
        fast = model(x)
        readable = model.forward_intermediates(x).logits  # never takes the inference path
    assert _relative_error(fast, readable) <= TOLERANCE


def test_flops_count_the_architecture_not_the_inference_matrices():
    model = sbcore.create_model("sb_resnet38").eval()
    x = torch.zeros(1, 3, 32, 32)
    with torch.inference_mode(), FlopCounterMode(display=False) as inference:
        model(x)
    with torch.inference_mode(), reference_formulation(), FlopCounterMode(display=False) as defined:
        model(x)
    assert inference.get_total_flops() > defined.get_total_flops()  # the dense resampling multiplies by zeros
    assert count_flops(model, (3, 32, 32)) == defined.get_total_flops()
