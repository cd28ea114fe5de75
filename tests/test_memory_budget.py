"""sbcore.budget: the largest tensor of a forward pass, measured on a meta copy that leaves the model alone."""
from __future__ import annotations

import pytest
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


def test_batch_within_budget_shrinks_the_batch_to_fit_and_refuses_in_one_sentence_when_one_image_does_not():
    from sbcore.budget import MAX_BACKWARD_BYTES, MemoryBudgetError, batch_within_budget

    small = sbcore.create_model("sb_resnet38", in_chans=1)
    assert batch_within_budget(small, (1, 28, 28), 64) == 64  # 28x28 fits many times over
    large = sbcore.create_model("sb_resnet50")
    forward = batch_within_budget(large, (3, 224, 224), 64)
    backward = batch_within_budget(large, (3, 224, 224), 64, backward=True)
    assert 1 <= backward < forward < 64  # a backward pass keeps every tensor of the forward one
    assert backward * 150 * 2**20 <= MAX_BACKWARD_BYTES
    with pytest.raises(MemoryBudgetError, match=r"sb_resnet50 at 3x224x224 needs [\d,]+ MB for its largest tensor on one "
                                                r"image, over the 1 MB budget\."):
        batch_within_budget(large, (3, 224, 224), 8, limit=2**20)
    # a preferred size shrinks the batch down to one image, never to a refusal
    assert batch_within_budget(large, (3, 224, 224), 64, backward=True, preferred=2**20) == 1
    assert batch_within_budget(large, (3, 224, 224), 64, backward=True, preferred=MAX_BACKWARD_BYTES) == backward
    hard = batch_within_budget(small, (1, 28, 28), 64, backward=True)
    assert batch_within_budget(small, (1, 28, 28), 64, backward=True, preferred=2**40) == hard  # never above the limit
