"""Wall-clock time of the analysis instruments against the goals of issue 4.

    python benchmarks/analysis_speed.py            # SB-ResNet-50 at 224 and SB-ResNet-38 at 28
    python benchmarks/analysis_speed.py --quick    # SB-ResNet-38 at 28 only

Each figure is the median of --repeats runs after one warm-up run, batch 1, on the CPU by default.
Goals: SB-ResNet-50 at 224: prediction + all SB maps 0.3 s, Integrated Gradients (32 steps) 8 s,
ERF of one stage over 16 images 15 s; CIFAR-style models at 28x28: each under 1 s.
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch

from sbcore import create_model
from sbcore.analysis import attribute, effective_receptive_field, noise_images, spatial_bias_maps

# (model name, create_model kwargs, ERF stage, goals in seconds: maps, IG, ERF)
CASES = {
    "sb_resnet50 @ 224": ("sb_resnet50", {}, "layer3", (0.3, 8.0, 15.0)),
    "sb_resnet38.fmnist @ 28": ("sb_resnet38.fmnist", {"pretrained": True}, "layer3", (1.0, 1.0, 1.0)),
}


def _median_seconds(task: Callable[[], object], repeats: int) -> float:
    task()  # warm-up: first-call allocations and kernel selection
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        task()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_case(label: str, repeats: int, device: str) -> None:
    name, kwargs, stage, goals = CASES[label]
    model = create_model(name, **kwargs).eval().to(device)
    input_size = model.metadata.preprocessing.input_size
    x = torch.randn(1, *input_size, device=device)
    noise = noise_images(16, input_size).to(device)
    tasks = {
        "prediction + all SB maps": lambda: spatial_bias_maps(model, x),
        "Integrated Gradients, 32 steps": lambda: attribute(model, x, "integrated_gradients", n_steps=32),
        f"ERF of {stage}, 16 images": lambda: effective_receptive_field(model, noise, stage),
    }
    print(f"{label} (batch 1, {device}, {torch.get_num_threads()} threads)")
    for (task_name, task), goal in zip(tasks.items(), goals):
        seconds = _median_seconds(task, repeats)
        verdict = "ok" if seconds < goal else "OVER GOAL"
        print(f"  {task_name:<32} {seconds:8.3f} s   goal < {goal:g} s   {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="only the CIFAR-style model at 28x28")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per task; the median is reported")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    args = parser.parse_args()
    labels = [label for label in CASES if not args.quick or "@ 28" in label]
    for label in labels:
        run_case(label, args.repeats, args.device)


if __name__ == "__main__":
    main()
