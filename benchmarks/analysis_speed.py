"""Wall-clock time of the analysis instruments against the goals of issues 4 and 11.

    python benchmarks/analysis_speed.py            # everything below
    python benchmarks/analysis_speed.py --quick    # only the four shipped 28x28 models

Each figure is the median of --repeats runs after one warm-up run, batch 1, on the CPU by default.
Goals (issue 4): SB-ResNet-50 at 224: prediction + all SB maps 0.3 s, Integrated Gradients (32
steps) 8 s, ERF of one stage over 16 images 15 s; SB-ResNet-38 at 28x28: each under 1 s.
Goals (issue 11): each attribution method, as the app runs it, under 5 s for the four shipped 28x28
models together, measured beside the same method run one input per forward pass; Integrated
Gradients' completeness error under 5% of the logit gap on the bundled samples.
Goal (issue 21): the Compare page's default run (the four 28x28 models, IG from black, faithfulness scores
included) under 10 s, run as the app runs it: jobs of a scheduler with one single-threaded worker per core.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Callable

import torch

from sbcore import create_model, list_models
from sbcore.analysis import (
    ATTRIBUTION_METHODS, attribute, effective_receptive_field, noise_images, score_attribution, spatial_bias_maps,
)
from sbcore.images import load_image, preprocess
from sbcore.runtime import keep_freed_memory
from sbcore.scheduler import Scheduler

SAMPLES = Path(__file__).resolve().parents[1] / "assets" / "samples"
# (model name, create_model kwargs, ERF stage, goals in seconds: maps, IG, ERF)
CASES = {
    "sb_resnet50 @ 224": ("sb_resnet50", {}, "layer3", (0.3, 8.0, 15.0)),
    "sb_resnet38.fmnist @ 28": ("sb_resnet38.fmnist", {"pretrained": True}, "layer3", (1.0, 1.0, 1.0)),
}
FOUR_MODELS_GOAL = 5.0  # seconds per method for the four shipped models
COMPARE_GOAL = 10.0  # seconds for the Compare page's default run, faithfulness included
APP_SETTINGS = [  # (label, method, smoothgrad) as the Compare page offers them
    *[(ATTRIBUTION_METHODS[m], m, False) for m in ATTRIBUTION_METHODS],
    *[(f"{ATTRIBUTION_METHODS[m]} + SmoothGrad", m, True) for m in ("saliency", "input_x_gradient", "integrated_gradients")],
]
BATCHED = 64  # the library default: inputs per forward pass


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


def _shipped(device: str) -> dict[str, torch.nn.Module]:
    """The four shipped 28x28 Fashion-MNIST models (the lab's 128 px models are not part of the goal)."""
    return {name: create_model(name, pretrained=True).eval().to(device) for name in list_models("*.fmnist", pretrained=True)}


def _sample(model: torch.nn.Module, file: str, device: str) -> torch.Tensor:
    return preprocess(load_image(SAMPLES / file), model.metadata.preprocessing).to(device)


def run_four_models(repeats: int, device: str) -> None:
    """Each method as the app runs it (batched, black baseline) over the four shipped models, beside one input per pass."""
    models = _shipped(device)
    inputs = {name: _sample(model, "fmnist_0000_ankle_boot.png", device) for name, model in models.items()}
    print(f"\nFour shipped 28x28 models ({', '.join(models)}), one image, {device}, {torch.get_num_threads()} threads, "
          f"machine load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"  {'method':<36} {'batched':>9} {'one per pass':>13} {'speed-up':>9}   goal < {FOUR_MODELS_GOAL:g} s")
    for label, method, smoothgrad in APP_SETTINGS:
        def run_all(batch: int) -> None:
            for name, model in models.items():
                attribute(model, inputs[name], method, baseline="black", smoothgrad=smoothgrad, internal_batch_size=batch)

        batched = _median_seconds(lambda: run_all(BATCHED), repeats)
        single = _median_seconds(lambda: run_all(1), 1) if method in ("occlusion", "integrated_gradients") or smoothgrad else None
        ratio = f"{single / batched:8.1f}x" if single else f"{'-':>9}"
        verdict = "ok" if batched < FOUR_MODELS_GOAL else "OVER GOAL"
        print(f"  {label:<36} {batched:8.2f}s {f'{single:.2f}s' if single else '-':>13} {ratio}   {verdict}")


def run_compare_default(repeats: int, device: str) -> None:
    """The Compare page's default Run through a scheduler as the app's (fixed policy, 1 thread per worker): each
    model's IG map, then its faithfulness scores as the map arrives; beside the maps alone."""
    models = _shipped(device)
    inputs = {name: _sample(model, "fmnist_0000_ankle_boot.png", device) for name, model in models.items()}

    pool = Scheduler(policy="fixed", threads=1, watch_other_processes=False)
    runs = iter(range(1_000_000))  # a fresh key per run: nothing comes from the cache

    def compare(scored: bool) -> None:
        run = next(runs)
        maps = {name: pool.submit(("ig", name, run), lambda report, n=name: attribute(
            models[n], inputs[n], "integrated_gradients", baseline="black"), long=True) for name in models}
        scores = [pool.submit(("faithfulness", name, run), lambda report, n=name, a=ticket.result(): score_attribution(
            models[n], inputs[n], a), long=True) for name, ticket in maps.items()] if scored else list(maps.values())
        for ticket in scores:
            ticket.result()

    alone, scored = _median_seconds(lambda: compare(False), repeats), _median_seconds(lambda: compare(True), repeats)
    print(f"\nCompare's default run, four 28x28 models, {os.cpu_count()} workers x 1 thread, load average "
          f"{os.getloadavg()[0]:.1f}: IG maps {alone:.2f} s; with faithfulness scores {scored:.2f} s "
          f"({scored / alone:.1f}x)   goal < {COMPARE_GOAL:g} s   {'ok' if scored < COMPARE_GOAL else 'OVER GOAL'}")


def run_completeness(device: str) -> None:
    """IG's completeness error (share of the logit gap) and chosen steps per model, sample and baseline."""
    models = _shipped(device)
    files = [entry["file"] for entry in json.loads((SAMPLES / "samples.json").read_text())][::6]
    print(f"\nIntegrated Gradients completeness on {len(files)} samples (error as a share of the logit gap; goal < 5%)")
    for baseline in ("black", "blurred", "mean"):
        for name, model in models.items():
            results = [attribute(model, _sample(model, f, device), "integrated_gradients", baseline=baseline) for f in files]
            worst = max(r.completeness_error for r in results)
            steps = sorted({r.n_steps for r in results})
            print(f"  {baseline:<8} {name:<22} worst {worst:6.2%}   steps used {steps}   {'ok' if worst < 0.05 else 'OVER GOAL'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="only the four shipped 28x28 models")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per task; the median is reported")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    args = parser.parse_args()
    keep_freed_memory()  # as the app runs
    if not args.quick:
        for label in CASES:
            run_case(label, args.repeats, args.device)
    run_compare_default(args.repeats, args.device)
    run_four_models(args.repeats, args.device)
    run_completeness(args.device)


if __name__ == "__main__":
    main()
