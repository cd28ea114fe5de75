"""The fast forward passes compute the readable definitions' numbers: fp32, relative error <= 1e-5,
in train and eval mode, for outputs and for every gradient."""
from __future__ import annotations

import copy

import pytest
import torch

import sbcore
from sbcore.layers import NonLocal2d, SpatialBias

TOLERANCE = 1e-5


def _relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    actual, expected = actual.detach(), expected.detach()
    return float((actual - expected).abs().max() / expected.abs().max().clamp(min=1e-12))


def _gradients(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.grad.clone() for name, p in module.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("shape", [(5, 6, 3), (7, 4, 3), (4, 3, 2)], ids=["paper", "k7", "kernel2"])
def test_mixing_as_one_matmul_equals_the_papers_conv1d_with_its_gradients(shape, batch):
    reduced, grid, kernel = shape
    torch.manual_seed(0)
    branch = SpatialBias(8, reduced_channels=reduced, grid_size=grid, kernel_size=kernel)
    pooled = torch.randn(batch, reduced, grid, grid, requires_grad=True)
    grad_out = torch.randn(batch, branch.num_maps, grid, grid)
    results = []
    for mix in (branch.mix, branch.mix_as_matmul):
        branch.zero_grad()
        pooled.grad = None
        out = mix(pooled)
        out.backward(grad_out)
        results.append((out.detach(), pooled.grad.clone(), _gradients(branch)))
    (reference, reference_input_grad, reference_grads), (fast, fast_input_grad, fast_grads) = results
    assert fast.shape == reference.shape
    assert _relative_error(fast, reference) <= TOLERANCE
    assert _relative_error(fast_input_grad, reference_input_grad) <= TOLERANCE
    assert reference_grads.keys() == fast_grads.keys() == {"grid_mixing.weight", "grid_mixing.bias"}
    for name in reference_grads:
        assert _relative_error(fast_grads[name], reference_grads[name]) <= TOLERANCE, name


def test_mixing_as_one_matmul_reads_channels_last_input():
    branch = SpatialBias(8, grid_size=6).eval()
    pooled = torch.randn(2, 5, 6, 6).contiguous(memory_format=torch.channels_last)
    assert _relative_error(branch.mix_as_matmul(pooled), branch.mix(pooled)) <= TOLERANCE


def _trained_non_local(subsample: bool) -> NonLocal2d:
    torch.manual_seed(0)
    block = NonLocal2d(16, subsample=subsample)
    with torch.no_grad():
        block.out_bn.weight.normal_()  # a new block is the identity, which would hide any difference
    return block


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("subsample", [True, False])
def test_fused_attention_equals_the_materialised_affinity_with_its_gradients(subsample, training):
    fused, explicit = _trained_non_local(subsample).train(training), _trained_non_local(subsample).train(training)
    x = torch.randn(3, 16, 7, 9)
    inputs = [x.clone().requires_grad_(), x.clone().requires_grad_()]
    grad_out = torch.randn_like(x)
    out_fused = fused(inputs[0])
    out_explicit = explicit.forward_with_attention(inputs[1])[0]
    # compare what the block adds to its input, not the residual sum that would dwarf a difference
    assert _relative_error(out_fused - x, out_explicit - x) <= TOLERANCE
    out_fused.backward(grad_out)
    out_explicit.backward(grad_out)
    assert _relative_error(inputs[0].grad, inputs[1].grad) <= TOLERANCE
    explicit_grads = _gradients(explicit)
    for name, grad in _gradients(fused).items():
        assert _relative_error(grad, explicit_grads[name]) <= TOLERANCE, name
    if training:
        torch.testing.assert_close(fused.out_bn.running_var, explicit.out_bn.running_var)


def _calibrated(name: str) -> torch.nn.Module:
    """A fresh model whose BN statistics and non-local output scales are not the trivial ones."""
    torch.manual_seed(0)
    model = sbcore.create_model(name, in_chans=1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, NonLocal2d):
                module.out_bn.weight.fill_(0.5)
        model.train()(torch.randn(8, 1, 28, 28))
    return model


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name", ["sb_resnet38", "nl_resnet38", "sbnl_resnet38"])
def test_fast_forward_equals_the_readable_block_definitions_with_every_gradient(name, training):
    """``model(x)`` (matmul mixing, fused attention) against ``forward_intermediates`` (Conv1d mixing,
    explicit affinity, the paper's formulation), on identical copies of one model."""
    fast = _calibrated(name).train(training)
    readable = copy.deepcopy(fast)
    x = torch.randn(4, 1, 28, 28)
    logits_fast = fast(x)
    logits_readable = readable.forward_intermediates(x).logits
    assert _relative_error(logits_fast, logits_readable) <= TOLERANCE
    grad = torch.randn_like(logits_fast)
    logits_fast.backward(grad)
    logits_readable.backward(grad)
    readable_grads = _gradients(readable)
    fast_grads = _gradients(fast)
    assert fast_grads.keys() == readable_grads.keys()
    for key, value in fast_grads.items():
        assert _relative_error(value, readable_grads[key]) <= TOLERANCE, key
    if training:
        for (key, a), (_, b) in zip(fast.named_buffers(), readable.named_buffers()):
            torch.testing.assert_close(a, b, msg=key)


def test_spatial_bias_blocks_keep_their_widened_parameters():
    """Same state-dict keys and shapes as the paper's layout: bn2 and conv3 see planes + N channels."""
    model = sbcore.create_model("sb_resnet38")
    state = model.state_dict()
    assert state["layer1.0.conv3.weight"].shape == (64, 16 + 3, 1, 1)
    assert state["layer3.3.bn2.running_mean"].shape == (64 + 3,)
    assert state["layer2.0.spatial_bias.grid_mixing.weight"].shape == (36, 36, 3)
