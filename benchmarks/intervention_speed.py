"""How long the Global context page's "Switch off and measure" takes: accuracy by distance intact and with one
block switched off, on the page's stratified subset, with the app's thread count.

    python benchmarks/intervention_speed.py            # SB layer3.0, mean and zero, 100 canvases per bin (the app's)
    python benchmarks/intervention_speed.py --per-bin 60 --threads 1

"first click" includes the mean reference (512 training canvases, computed once per model and shared by every
session); "later clicks" reuse it. The canvases themselves are generated on the fly each time, as in the app.
"""
from __future__ import annotations

import argparse
import platform
import time

import torch
from torch.utils.data import DataLoader, Subset

import sbcore
from sbcore.analysis.ablation import evaluate_ablations, model_test_data, training_reference_means
from sbcore.analysis.interventions import resolve_components


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="sb_lab_resnet14.samediff")
    parser.add_argument("--block", default="layer3.0")
    parser.add_argument("--per-bin", type=int, default=100, help="test canvases per distance bin (the app's: 100)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads (default: all)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = sbcore.create_model(args.model, pretrained=True).eval()
    _, spec = model_test_data(model)
    subset = Subset(spec.test, range(args.per_bin * spec.test.task.num_bins))
    bins, names = spec.test.sample_groups()
    targets = [("x", resolve_components(model, [args.block]))]
    print(f"{args.model}, {args.block} off, {len(subset)} test canvases, {args.threads} torch thread(s), "
          f"{platform.processor() or platform.machine()}")

    def measure(mode: str, means) -> float:
        started = time.perf_counter()
        evaluate_ablations(model, DataLoader(subset, 100), targets, mode, groups=bins[:len(subset)], group_names=names,
                           means=means)
        return time.perf_counter() - started

    started = time.perf_counter()
    means = training_reference_means(model, spec)
    reference = time.perf_counter() - started
    first = reference + measure("mean", means)
    later = sorted(measure(mode, means) for mode in ("mean", "zero") for _ in range(args.repeats))
    print(f"first click (mean reference {reference:.1f} s included): {first:.1f} s")
    print(f"later clicks: median {later[len(later) // 2]:.1f} s, range {later[0]:.1f}-{later[-1]:.1f} s "
          f"over {len(later)} runs (mean and zero)")


if __name__ == "__main__":
    main()
