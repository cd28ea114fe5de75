"""What the spatial-bias inference path buys: plain, SB as defined, and SB on its inference path, interleaved.

    python benchmarks/spatial_bias_paths.py            # ResNet-38 at 32x32 batch 8, ResNet-50 at 224 batch 1 and 8
    python benchmarks/spatial_bias_paths.py --quick    # a smoke run

"SB as defined" runs the branch's layers as written (``reference_formulation()``: 1x1 conv, BN, ReLU, adaptive
pooling, the mixing as one matmul, bilinear upsampling); "SB inference path" is what ``model(x)`` runs under
``torch.inference_mode()`` (``sbcore/layers/spatial_bias_inference.py``). Same weights, one thread, fp32,
wall time; prints img/s and the ratios over plain with 95% bootstrap intervals over rounds.
"""
from __future__ import annotations

import argparse
import time
from typing import Callable

import numpy as np
import torch

from sbcore import create_model
from sbcore.analysis.throughput import format_ratio, ratio_interval, time_interleaved
from sbcore.layers import reference_formulation
from sbcore.runtime import keep_freed_memory

SETTINGS = (("resnet38", 32, 8, 20.0), ("resnet50", 224, 1, 30.0), ("resnet50", 224, 8, 60.0))  # seconds per model


def runs(family: str, size: int, batch_size: int) -> dict[str, Callable[[], object]]:
    """The three forward passes of one setting, on one fixed random batch."""
    torch.manual_seed(0)
    plain, spatial_bias = create_model(family).eval(), create_model("sb_" + family).eval()
    x = torch.randn(batch_size, 3, size, size)

    def as_defined() -> None:
        with reference_formulation():
            spatial_bias(x)

    return {"plain": lambda: plain(x), "SB as defined": as_defined, "SB inference path": lambda: spatial_bias(x)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 rounds of tiny time slices: checks the script runs")
    parser.add_argument("--rounds", type=int, default=12, help="rounds per setting (default: 12)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    keep_freed_memory()  # as the app and the CLI run
    rounds = 3 if args.quick else args.rounds
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, 1 thread, torch {torch.__version__}, fp32, wall time")
    for family, size, batch_size, seconds in SETTINGS:
        calls = runs(family, size, batch_size)
        with torch.inference_mode():
            for call in calls.values():
                call()  # warm-up: allocator, folded weights, resampling matrices
            timing = time_interleaved(calls, rounds, 0.01 if args.quick else seconds / rounds)
        print(f"\n{family} {size}x{size} batch {batch_size}")
        for name, times in timing.per_round.items():
            print(f"  {name:<18} {batch_size / float(np.median(times)):8.2f} img/s")
        for name in ("SB as defined", "SB inference path"):
            ratio = ratio_interval(timing.per_round[name], timing.per_round["plain"])
            print(f"  {name + '/plain':<24} {format_ratio(*ratio) if ratio else 'not measured'}")
        if timing.others_cpu_share is not None:
            print(f"  other processes used {timing.others_cpu_share:.0%} of the machine's cores meanwhile")


if __name__ == "__main__":
    main()
