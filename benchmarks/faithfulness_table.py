"""How faithful is each attribution method for each shipped model? The README's faithfulness tables.

    python benchmarks/faithfulness_table.py                  # 200 test images per model, 8 models (~2.5 CPU hours)
    python benchmarks/faithfulness_table.py --limit 20       # a quick look
    python benchmarks/faithfulness_table.py --print-only     # the tables from what is already measured

Runs ``sbcore faithfulness MODEL --limit N --out out/faithfulness/MODEL`` for the four Fashion-MNIST ResNet-38s
(their first N test images) and the four seed-0 lab ResNet-14s (N far test canvases, 94-108 px apart), each in
its own process with one torch thread, ``--workers`` at a time; a model whose result exists for the same N is
not run again, so an interrupted run resumes. Prints Markdown tables (mean [95% interval] over images, each
beside the random map's) and writes every summary to ``--json``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FASHION = ["resnet38.fmnist", "sb_resnet38.fmnist", "nl_resnet38.fmnist", "sbnl_resnet38.fmnist"]
LAB = ["lab_resnet14.samediff", "sb_lab_resnet14.samediff", "nl_lab_resnet14.samediff", "sbnl_lab_resnet14.samediff"]
FAR = "94-108"
METRICS = [("deletion_auc", "deletion ↓"), ("insertion_auc", "insertion ↑"), ("road_morf_auc", "ROAD MoRF ↓"),
           ("road_lerf_auc", "ROAD LeRF ↑"), ("sanity_correlation", "randomised ρ ↓")]
SHARES = [("share_item_a", "item A"), ("share_item_b", "item B"), ("share_background", "background"),
          ("share_weaker_item", "weaker item")]


def result_path(out: Path, model: str) -> Path:
    return out / model / "faithfulness.json"


def run_model(model: str, limit: int, out: Path) -> str:
    """Measure one model in a child process with one thread; returns a line saying how it went."""
    path = result_path(out, model)
    if path.exists() and json.loads(path.read_text())["samples"] == limit:
        return f"{model}: already measured"
    command = [sys.executable, "-m", "sbcore", "faithfulness", model, "--limit", str(limit), "--out", str(out / model)]
    if model in LAB:
        command += ["--distance", FAR]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run(command, env=environment, capture_output=True, text=True)
    return f"{model}: " + ("done" if done.returncode == 0 else f"failed: {done.stderr.strip()[-400:]}")


def cell(score: dict) -> str:
    low, high = score["ci95"]
    return f"{score['mean']:.3f} [{low:.3f}, {high:.3f}]"


def faithfulness_table(summaries: dict[str, dict]) -> str:
    """Markdown: one row per model and method, one column per metric, then the random map's row per model."""
    lines = ["| model | method | " + " | ".join(label for _, label in METRICS) + " |",
             "|---" * (len(METRICS) + 2) + "|"]
    for model, summary in summaries.items():
        methods = summary["methods"]
        for method, scores in methods.items():
            lines.append(f"| {model} | {method} | " + " | ".join(cell(scores[key]) for key, _ in METRICS) + " |")
        first = next(iter(methods.values()))
        lines.append(f"| {model} | *random map* | " + " | ".join(cell(first["random_" + key]) for key, _ in METRICS) + " |")
    return "\n".join(lines)


def shares_table(summaries: dict[str, dict]) -> str:
    """Markdown: the lab models' evidence shares per method (a uniform map's in the header)."""
    lab = {m: s for m, s in summaries.items() if "uniform_shares" in s}
    if not lab:
        return ""
    uniform = next(iter(lab.values()))["uniform_shares"]
    lines = [f"Uniform map: {uniform['item_a']:.3f} per item, {uniform['background']:.3f} background.", "",
             "| model | method | " + " | ".join(label for _, label in SHARES) + " |", "|---" * (len(SHARES) + 2) + "|"]
    for model, summary in lab.items():
        for method, scores in summary["methods"].items():
            lines.append(f"| {model} | {method} | " + " | ".join(cell(scores[key]) for key, _ in SHARES) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=200, help="test images per model (default: 200)")
    parser.add_argument("--workers", type=int, default=2, help="models measured at once (default: 2)")
    parser.add_argument("--out", type=Path, default=REPO / "out" / "faithfulness", help="per-model results")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "faithfulness.json", help="summaries")
    parser.add_argument("--models", nargs="+", default=FASHION + LAB, help="models (default: the eight shipped)")
    parser.add_argument("--print-only", action="store_true", help="print the tables from existing results")
    args = parser.parse_args()
    if not args.print_only:
        order = [m for pair in zip(FASHION, LAB) for m in pair if m in args.models]  # each worker finishes one of each
        order += [m for m in args.models if m not in order]
        with ThreadPoolExecutor(args.workers) as pool:
            for line in pool.map(lambda m: run_model(m, args.limit, args.out), order):
                print(line, flush=True)
    summaries = {}
    for model in args.models:
        path = result_path(args.out, model)
        if path.exists():
            summary = json.loads(path.read_text())
            summary.pop("images")
            summaries[model] = summary
    if not summaries:
        sys.exit("nothing measured yet")
    args.json.write_text(json.dumps(summaries, indent=1) + "\n")
    print(faithfulness_table(summaries))
    print()
    print(shares_table(summaries))


if __name__ == "__main__":
    main()
