"""SpatialBias: the paper's branch, its shapes for any K, R, N, batch size 1, channels_last and autocast."""
from __future__ import annotations

import copy

import pytest
import torch

import sbcore
from sbcore.layers import SpatialBias


@pytest.mark.parametrize(
    ("reduced", "grid", "kernel", "size"),
    [(5, 10, 3, (14, 14)), (5, 6, 3, (28, 28)), (7, 4, 3, (9, 13)), (4, 3, 2, (2, 2))],
)
@pytest.mark.parametrize("batch", [1, 3])
def test_spatial_bias_gives_n_maps_of_r_by_r_for_any_k_r_n_and_input_size(reduced, grid, kernel, size, batch):
    branch = SpatialBias(8, reduced_channels=reduced, grid_size=grid, kernel_size=kernel)
    maps = branch(torch.randn(batch, 8, *size))
    assert branch.num_maps == reduced - kernel + 1
    assert maps.shape == (batch, reduced - kernel + 1, grid, grid)


def test_spatial_bias_steps_expose_every_stage_with_its_shape():
    branch = SpatialBias(16, reduced_channels=5, grid_size=6).eval()
    x = torch.randn(2, 16, 20, 20)
    steps = branch.steps(x, output_size=(10, 10))
    assert steps.reduced.shape == (2, 5, 20, 20)
    assert steps.pooled.shape == (2, 5, 6, 6)
    assert steps.mixed.shape == (2, 3, 6, 6)
    assert steps.upsampled.shape == (2, 3, 10, 10)
    torch.testing.assert_close(steps.mixed, branch(x))


def test_spatial_bias_mixes_all_grid_positions_with_a_conv1d_along_the_reduced_channels():
    """maps[b, n, p] = bias[p] + sum_{q, k} W[p, q, k] * pooled[b, n + k, q]: every grid position p
    sees every position q (the paper's global mixing), the kernel slides over the K channels."""
    torch.manual_seed(0)
    branch = SpatialBias(8, reduced_channels=5, grid_size=4).eval()
    pooled = torch.randn(2, 5, 4, 4)
    weight, bias = branch.grid_mixing.weight, branch.grid_mixing.bias  # (R*R, R*R, 3), (R*R,)
    flat = pooled.flatten(2)  # (B, K, R*R)
    windows = torch.stack([flat[:, n : n + 3] for n in range(3)], dim=1)  # (B, N, 3, R*R)
    expected = torch.einsum("pqk,bnkq->bnp", weight, windows) + bias[None, None]
    torch.testing.assert_close(branch.mix(pooled), expected.reshape(2, 3, 4, 4))


def test_spatial_bias_on_one_image_equals_its_row_in_a_batch():
    """The reference code squeezes away the batch dimension at B = 1; here a lone image gives the same maps."""
    branch = SpatialBias(8).eval()
    batch = torch.randn(4, 8, 12, 12)
    torch.testing.assert_close(branch(batch[2:3]), branch(batch)[2:3])


def test_spatial_bias_rejects_a_kernel_wider_than_the_reduced_channels():
    with pytest.raises(ValueError, match="reduced_channels"):
        SpatialBias(8, reduced_channels=2, grid_size=4, kernel_size=3)


def test_spatial_bias_settings_k_r_n_reach_every_block_of_a_model(make_model):
    model = make_model("sb_resnet38", spatial_bias={"reduced_channels": 7, "grid_size": 4, "stages": [1, 3]})
    out = model.forward_intermediates(torch.randn(2, 1, 28, 28))
    assert sorted(out.spatial_bias) == [f"layer{s}.{b}" for s in (1, 3) for b in range(4)]
    for name, maps in out.spatial_bias.items():
        assert maps.shape == (2, 5, 4, 4), name
    # upsampled to the 3x3 conv output of its block: 28x28 in stage 1, 7x7 in stage 3
    assert out.spatial_bias_upsampled["layer1.0"].shape == (2, 5, 28, 28)
    assert out.spatial_bias_upsampled["layer3.0"].shape == (2, 5, 7, 7)


def test_spatial_bias_maps_are_upsampled_to_odd_conv_output_sizes(make_model):
    model = make_model("sb_resnet38")
    out = model.forward_intermediates(torch.randn(1, 1, 29, 29))
    assert out.spatial_bias_upsampled["layer2.0"].shape[-2:] == (15, 15)
    assert out.spatial_bias_upsampled["layer3.0"].shape[-2:] == (8, 8)


def test_spatial_bias_maps_change_the_output_of_a_trained_block(make_model):
    """With non-zero conv3 weights on the extra channels, the maps feed into the block's output."""
    model = make_model("sb_resnet38")
    x = torch.randn(2, 1, 28, 28)
    before = model(x)
    with torch.no_grad():
        model.layer2[0].spatial_bias.grid_mixing.bias.add_(3.0)
    assert not torch.allclose(model(x), before)


def _calibrated(name: str) -> torch.nn.Module:
    """A fresh CIFAR-style model whose BN statistics come from a real batch and whose non-local
    blocks are switched on, so its fp32 output is a fair reference for autocast."""
    torch.manual_seed(0)
    model = sbcore.create_model(name, in_chans=1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, sbcore.NonLocal2d):
                module.out_bn.weight.fill_(1.0)
            if isinstance(module, torch.nn.BatchNorm2d):
                module.momentum = None
        model.train()(torch.randn(8, 1, 28, 28))
    return model.to(memory_format=torch.channels_last)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("name", ["sb_resnet38", "sbnl_resnet38"])
def test_spatial_bias_model_runs_channels_last_under_autocast(name, training, dtype):
    model = _calibrated(name).train(training)
    x = torch.randn(4, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=dtype):
        out = model.forward_intermediates(x)
    assert out.logits.shape == (4, 10) and torch.isfinite(out.logits).all()
    assert len(out.spatial_bias) == 12 and all(torch.isfinite(m).all() for m in out.spatial_bias.values())
    if training:
        out.logits.float().sum().backward()
        grad = model.layer1[0].spatial_bias.grid_mixing.weight.grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    elif name == "sb_resnet38":  # non-local affinities are too sensitive to rounding for a tight bound
        reference = model(x)
        assert (out.logits.float() - reference).abs().max() < 0.1 * reference.abs().max()


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_spatial_bias_trains_channels_last_on_one_cpu_thread_with_float64_gradients(one_thread):
    """A trainer's setting: channels_last, one thread, batch 128 at 28x28. PyTorch's CPU batch norm in
    channels_last sums its statistics coarsely on one thread; through it this input gradient was 1e-1 off."""
    torch.manual_seed(0)
    branch = SpatialBias(16, grid_size=6).train()
    twin = copy.deepcopy(branch).double()
    features = torch.randn(128, 16, 28, 28).relu()
    grad_out = torch.randn(128, 3, 28, 28)
    results = []
    for module, x in ((branch, features.contiguous(memory_format=torch.channels_last)), (twin, features.double())):
        x.requires_grad_()
        module.upsampled_maps(x, (28, 28)).backward(grad_out.to(x.dtype))
        results.append([x.grad] + [p.grad for p in module.parameters()])
    for actual, expected in zip(*results):
        assert float((actual.double() - expected).abs().max() / expected.abs().max()) <= 1e-4


def test_spatial_bias_runs_at_batch_size_one_in_train_mode(make_model):
    model = make_model("sb_resnet38").train()
    logits = model(torch.randn(1, 1, 28, 28))
    logits.sum().backward()
    assert logits.shape == (1, 10)
    assert model.layer3[3].spatial_bias.channel_reduction[0].weight.grad is not None


def test_spatial_bias_is_exported_at_top_level():
    assert sbcore.SpatialBias is SpatialBias
