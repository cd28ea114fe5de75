"""The fused spatial-bias branch (one Triton kernel for reduction, BN, ReLU and pooling) computes the torch path's
numbers, checked on the CPU by Triton's interpreter (``TRITON_INTERPRET=1``, in a child process so that it is set
before Triton compiles anything)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

import sbcore
from sbcore.layers.fused_branch import triton_available
from sbcore.models import set_fused_branch

CHECK = textwrap.dedent("""
    import json, sys
    import torch, torch.nn.functional as F
    import sbcore
    from sbcore.layers.fused_branch import fused_reduce_pool
    from sbcore.models import set_channel_layout, set_fused_branch

    def error(actual, expected):
        return float((actual - expected).abs().max() / expected.abs().max())

    torch.manual_seed(0)
    errors = {}
    for batch, channels, height, width, grid in [(2, 16, 13, 9, 6), (1, 40, 28, 28, 10), (3, 8, 4, 5, 6)]:
        x = torch.randn(batch, channels, height, width)
        weight, bias = torch.randn(5, channels, 1, 1) * 0.3, torch.randn(5) * 0.1
        expected = F.adaptive_avg_pool2d(F.conv2d(x, weight, bias).relu(), grid)
        errors[f"kernel {height}x{width} grid {grid}"] = error(fused_reduce_pool(x, weight, bias, grid), expected)
        last = x.contiguous(memory_format=torch.channels_last)
        errors[f"kernel {height}x{width} grid {grid} channels_last"] = error(fused_reduce_pool(last, weight, bias, grid), expected)
    model = sbcore.create_model("sb_resnet38.fmnist", pretrained=True).eval()
    images = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        expected = model(images)
        errors["sb_resnet38.fmnist"] = error(set_fused_branch(model)(images), expected)
        errors["sb_resnet38.fmnist, padded layout"] = error(set_channel_layout(model, "padded")(images), expected)
    print(json.dumps(errors))
""")


def test_triton_ships_with_this_torch():
    assert triton_available()


def test_the_fused_kernel_matches_the_torch_branch_and_the_model_its_logits():
    environment = {**os.environ, "TRITON_INTERPRET": "1"}
    done = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, env=environment, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    errors = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(errors) == 8 and all(value <= 1e-5 for value in errors.values()), errors


def test_the_fused_branch_is_an_inference_switch_that_leaves_the_weights_alone():
    model = sbcore.create_model("sb_resnet38.fmnist", pretrained=True)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    branches = [m for m in model.modules() if isinstance(m, sbcore.SpatialBias)]
    assert branches and not any(b.fused_kernel for b in branches)
    set_fused_branch(model)
    assert all(b.fused_kernel for b in branches)
    set_fused_branch(model, False)
    assert not any(b.fused_kernel for b in branches)
    assert all(v.equal(state[k]) for k, v in model.state_dict().items())


def test_without_triton_the_fused_branch_is_refused_in_one_sentence(monkeypatch):
    monkeypatch.setattr("sbcore.models.resnet.triton_available", lambda: False)
    with pytest.raises(sbcore.SBCoreError, match="needs Triton"):
        set_fused_branch(sbcore.create_model("sb_resnet38"))
