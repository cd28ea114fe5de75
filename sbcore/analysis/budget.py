"""What a throughput benchmark will cost before it runs: seconds and memory, estimated from FLOPs and tensor
sizes on the meta device (no weights are allocated and nothing is computed), so a caller can refuse or
shrink a request that would take minutes or gigabytes."""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from sbcore.analysis.throughput import WARMUP_CALLS
from sbcore.budget import largest_tensor_bytes
from sbcore.errors import SBCoreError
from sbcore.factory import create_model

LIVE_ACTIVATIONS = 4  # tensors as large as the largest one alive at once: a block's input, two intermediates, its output
COMPILE_SECONDS = 60.0  # torch.compile of one ResNet on a CPU, a rough guess


@dataclass(frozen=True)
class ModelCost:
    """One architecture at one input size: per image FLOPs and the largest tensor a forward holds."""

    params: int
    flops: int  # per image
    peak_activation_bytes: int  # per image, fp32: LIVE_ACTIVATIONS times the largest tensor (sbcore.budget)


@dataclass(frozen=True)
class BenchmarkEstimate:
    """Predicted cost of ``measure_throughput`` for some models and batch sizes."""

    seconds: float
    memory_mb: float  # weights of every model plus the largest batch's live activations


@functools.lru_cache(maxsize=64)
def model_cost(name: str, input_size: tuple[int, int, int]) -> ModelCost:
    """Parameters, FLOPs and peak activation of an architecture at (C, H, W), on the meta device."""
    with torch.device("meta"):
        model = create_model(name, in_chans=input_size[0]).eval()
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, *input_size, device="meta"))
    params = sum(p.numel() for p in model.parameters())
    peak = largest_tensor_bytes(model, input_size) * LIVE_ACTIVATIONS
    return ModelCost(params, int(counter.get_total_flops()), peak)


@functools.lru_cache(maxsize=4)
def device_gflops(device: str) -> float:
    """Sustained fp32 GFLOP/s of one 3x3 convolution on ``device`` (a 0.1 s probe, cached per process)."""
    target = torch.device(device)
    x = torch.randn(8, 64, 28, 28, device=target)
    conv = nn.Conv2d(64, 64, 3, padding=1, bias=False).to(target).eval()
    flops = 2 * 8 * 64 * 64 * 9 * 28 * 28
    with torch.inference_mode():
        conv(x)
        calls, start = 0, time.perf_counter()
        while calls < 3 or time.perf_counter() - start < 0.1:
            conv(x)
            calls += 1
        if target.type == "cuda":
            torch.cuda.synchronize(target)
        elapsed = time.perf_counter() - start
    return flops * calls / elapsed / 1e9


def estimate_benchmark(
    names: Sequence[str],
    batch_sizes: Sequence[int],
    input_size: tuple[int, int, int],
    *,
    device: str = "cpu",
    rounds: int = 8,
    min_run_time: float = 1.0,
    compile: bool = False,
) -> BenchmarkEstimate:
    """Seconds and MB that ``measure_throughput(models named names, ...)`` will take, from FLOPs at the
    probed speed of ``device``: warm-up calls, then per round at least one call or ``min_run_time / rounds``.

    Raises:
        SBCoreError: a name is unknown or the input is too small for the architecture.
    """
    try:
        costs = [model_cost(name, tuple(input_size)) for name in names]
    except (RuntimeError, ValueError) as error:
        raise SBCoreError(f"These models cannot run on a {'x'.join(map(str, input_size))} input: {error}") from None
    rate = device_gflops(device) * 1e9
    seconds = COMPILE_SECONDS * len(costs) if compile else 0.0
    for batch in batch_sizes:
        for cost in costs:
            call = cost.flops * batch / rate
            seconds += (WARMUP_CALLS + 1) * call + rounds * max(call, min_run_time / rounds)
    weights = sum(cost.params for cost in costs) * 4
    activations = max(cost.peak_activation_bytes for cost in costs) * max(batch_sizes)
    return BenchmarkEstimate(seconds, (weights + activations) / 2**20)
