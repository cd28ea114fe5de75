"""Benchmark budgets: FLOPs and memory from the meta device, and estimates that grow with the request."""
from __future__ import annotations

import pytest

from sbcore import create_model
from sbcore.analysis.budget import LIVE_ACTIVATIONS, estimate_benchmark, model_cost
from sbcore.budget import largest_tensor_bytes
from sbcore.cost import count_flops, count_parameters
from sbcore.errors import SBCoreError


def test_model_cost_matches_a_real_model_without_building_one():
    cost = model_cost("sb_resnet38", (1, 28, 28))
    real = create_model("sb_resnet38", in_chans=1)
    assert cost.params == count_parameters(real)[0]
    assert cost.flops == count_flops(real, (1, 28, 28))
    assert cost.peak_activation_bytes >= 64 * 28 * 28 * 4  # stage 1's 64-channel output, fp32


def test_estimates_grow_with_batch_size_input_size_and_compile():
    names = ["resnet38", "sb_resnet38"]
    small = estimate_benchmark(names, [1], (1, 28, 28), rounds=3, min_run_time=0.3)
    assert small.seconds >= 0.3 * len(names) and small.memory_mb > 0
    bigger_batch = estimate_benchmark(names, [1, 64], (1, 28, 28), rounds=3, min_run_time=0.3)
    assert bigger_batch.seconds > small.seconds and bigger_batch.memory_mb > small.memory_mb
    bigger_input = estimate_benchmark(names, [1], (1, 112, 112), rounds=3, min_run_time=0.3)
    assert bigger_input.memory_mb > small.memory_mb
    compiled = estimate_benchmark(names, [1], (1, 28, 28), rounds=3, min_run_time=0.3, compile=True)
    assert compiled.seconds > small.seconds + 60


def test_the_largest_page_request_is_predicted_to_be_far_over_budget():
    """ResNet-50 family at 512x512 and batch 256: gigabytes and hours, known before anything is built."""
    family = ["resnet50", "sb_resnet50", "nl_resnet50", "sbnl_resnet50"]
    estimate = estimate_benchmark(family, [256], (3, 512, 512), rounds=3, min_run_time=1.0)
    assert estimate.memory_mb > 10_000 and estimate.seconds > 600


def test_an_unknown_model_is_refused_with_its_name():
    with pytest.raises(SBCoreError, match="no_such_net"):
        estimate_benchmark(["no_such_net"], [1], (3, 32, 32))


def test_peak_memory_is_the_refusal_checks_largest_tensor_and_sees_the_non_local_affinity():
    """One estimator of the largest tensor (sbcore.budget) serves both the refusals and the page's estimate."""
    real = create_model("nl_resnet38", in_chans=1)
    cost = model_cost("nl_resnet38", (1, 224, 224))
    assert cost.peak_activation_bytes == largest_tensor_bytes(real, (1, 224, 224)) * LIVE_ACTIVATIONS
    # layer2 at 112 x 112 queries 56 x 56 subsampled keys: a 12,544 x 3,136 fp32 affinity per image
    assert cost.peak_activation_bytes >= 12_544 * 3_136 * 4
    assert cost.peak_activation_bytes > 10 * model_cost("sb_resnet38", (1, 224, 224)).peak_activation_bytes
