"""sbcore.budget: the largest tensor of a forward pass, measured on a meta copy that leaves the model alone."""
from __future__ import annotations

import torch

import sbcore
from sbcore.budget import largest_tensor_bytes


def test_the_measurement_never_runs_or_changes_the_model_other_sessions_share():
    model = sbcore.create_model("sb_resnet38", in_chans=1).eval()
    before = {name: (p.device, p.data_ptr()) for name, p in model.named_parameters()}
    forwards_of_the_original = []
    model.register_forward_pre_hook(lambda module, args: forwards_of_the_original.append(module is model))
    size = largest_tensor_bytes(model, (1, 28, 28))
    assert size >= 64 * 28 * 28 * 4  # stage 1's 64-channel output, fp32
    assert not any(forwards_of_the_original)  # only the meta copy ran
    assert {name: (p.device, p.data_ptr()) for name, p in model.named_parameters()} == before
    assert not model.training and model(torch.zeros(1, 1, 28, 28)).isfinite().all()
