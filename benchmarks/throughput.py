"""Inference throughput of plain, spatial-bias, non-local and SB+NL ResNets, measured interleaved.

    python benchmarks/throughput.py                  # ResNet-50 family at 224, batch 1 and 8
    python benchmarks/throughput.py --quick          # ResNet-38 family at 28x28 (a smoke run)

Prints the table of sbcore.analysis.measure_throughput and the img/s ratios SB/baseline and SB/NL
(the paper reports SB at 1.6x to 3.3x the img/s of non-local networks).
"""
from __future__ import annotations

import argparse
import csv
from dataclasses import asdict

import torch

from sbcore import create_model
from sbcore.analysis import format_throughput_table, measure_throughput

FAMILIES = {"full": ("resnet50", (3, 224, 224)), "quick": ("resnet38", (1, 28, 28))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="ResNet-38 family at 28x28 with short timings")
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 8], help="batch sizes (default: 1 8)")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--dtype", default="fp32", help="fp32, bf16 or fp16 (default: fp32)")
    parser.add_argument("--min-run-time", type=float, default=None,
                        help="seconds of timing per model and batch size (default: 6, or 0.3 with --quick)")
    parser.add_argument("--csv", default=None, help="also write the rows to this CSV file")
    args = parser.parse_args()
    base, input_size = FAMILIES["quick" if args.quick else "full"]
    names = [base, f"sb_{base}", f"nl_{base}", f"sbnl_{base}"]
    models = {name: create_model(name, in_chans=input_size[0]) for name in names}
    min_run_time = args.min_run_time or (0.3 if args.quick else 6.0)
    print(f"{base} family at {'x'.join(map(str, input_size))}, {args.device}, {args.dtype}, "
          f"{torch.get_num_threads()} threads, {min_run_time:g} s per model and batch size")
    rows = measure_throughput(models, args.batch_sizes, input_size, device=args.device, dtype=args.dtype,
                              min_run_time=min_run_time)
    print(format_throughput_table(rows))
    for row in rows:
        if row.model == f"sb_{base}" and row.error is None:
            print(f"batch {row.batch_size}: SB/baseline {row.vs_baseline:.2f}x, SB/NL {row.vs_non_local:.2f}x img/s")
    if args.csv:
        with open(args.csv, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(asdict(rows[0])))
            writer.writeheader()
            writer.writerows(asdict(r) for r in rows)


if __name__ == "__main__":
    main()
