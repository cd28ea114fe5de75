"""Which blocks do the lab models rely on, across seeds? Mean ablation and patching of every SB / NL component of
every shipped lab model and seed, and the far-pair read-outs of the plain models (the 75% bound).

    python benchmarks/lab_interventions.py                 # 1,000 test canvases per model, 200 far pairs (~15 min)
    python benchmarks/lab_interventions.py --limit 300 --pairs 50 --workers 1   # a quick look

Each model runs in its own process with one torch thread (``--workers`` at a time). Prints Markdown tables (the
README's) and writes every number to ``--json``. Ablation: accuracy change in points, ablated minus intact on the
same canvases, with Newcombe's paired 95% interval, over all bins and over the far bin (94-108 px). Patching:
the share of the same/different effect a component carries on far counterfactual pairs (``sbcore.lab.patching``),
bootstrap 95% interval.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from multiprocessing import get_context
from pathlib import Path

import torch

import sbcore
from sbcore.lab.results import LAB_WEIGHTS

REPO = Path(__file__).resolve().parents[1]
SEED_SUFFIXES = {0: "", 1: "-s1", 2: "-s2"}


def shipped_seeds(name: str) -> dict[int, str]:
    """{seed: shipped tag} of a lab model, for the seeds that are shipped."""
    shipped = set(sbcore.list_models("*", pretrained=True))
    return {seed: name + suffix for seed, suffix in SEED_SUFFIXES.items() if name + suffix in shipped}


def measure(job: tuple[str, int, int]) -> dict:
    """One model: mean ablation of each component and of all, patching on far pairs; or, for a plain model, the
    far-pair read-outs."""
    tag, limit, pairs = job
    torch.set_num_threads(1)
    from torch.utils.data import DataLoader, Subset

    from sbcore.analysis.ablation import evaluate_ablations, model_test_data, training_reference_means
    from sbcore.analysis.interventions import components
    from sbcore.lab.patching import counterfactual_pairs, patching_scores
    from sbcore.lab.readout import far_indices, far_pair_readout

    model = sbcore.create_model(tag, pretrained=True).eval()
    _, spec = model_test_data(model)
    far = spec.test.task.bin_edges[-2]
    found = components(model)
    if not found:
        return {"model": tag, "readouts": [asdict(r) for r in far_pair_readout(model, spec.train, spec.test, far)]}
    settings = [(c.label, [c]) for c in found] + [("all", found)]
    test = Subset(spec.test, range(limit))
    bins, names = spec.test.sample_groups()
    ablations = evaluate_ablations(model, DataLoader(test, 100), settings, "mean", groups=bins[:limit],
                                   group_names=names, means=training_reference_means(model, spec))
    different, same = counterfactual_pairs(spec.test, far_indices(spec.test, pairs, far))
    patched = patching_scores(model, different, same, settings)
    return {"model": tag, "ablations": [asdict(a) for a in ablations], "patching": [asdict(p) for p in patched]}


def _change(group: dict) -> str:
    low, high = group["change_ci95"]
    return f"{group['change']:+.1f} [{low:+.1f}, {high:+.1f}]"


def ablation_table(name: str, runs: dict[int, dict]) -> str:
    """Rows: components; a column per seed: change over all bins, change at the far bin, patching share."""
    seeds = sorted(runs)
    header = ["switched off (mean)", *[f"seed {s}: all bins · 94-108 px · carries" for s in seeds]]
    lines = [f"`{name}` (intact: " + ", ".join(
        f"seed {s} {runs[s]['ablations'][0]['overall']['intact']:.1f}%" for s in seeds) + ")", "",
        "| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    labels = [a["label"] for a in runs[seeds[0]]["ablations"]]
    for row, label in enumerate(labels):
        cells = []
        for s in seeds:
            ablation, patch = runs[s]["ablations"][row], runs[s]["patching"][row]
            carries = "-" if patch["score"] is None else f"{patch['score']:.2f}"
            cells.append(f"{_change(ablation['overall'])} · {_change(ablation['groups'][-1])} · {carries}")
        lines.append("| " + " | ".join([label, *cells]) + " |")
    return "\n".join(lines)


def readout_table(runs: dict[int, dict]) -> str:
    """The plain models' far-pair accuracy: trained head, logistic read-out, the 75% strategy."""
    lines = ["| seed | read-out | far accuracy (94-108 px) | per pair type |", "| --- | --- | --- | --- |"]
    for seed, run in sorted(runs.items()):
        for r in run["readouts"]:
            types = ", ".join(f"{k} {v:.0f}%" for k, v in r["per_pair_type"].items())
            lines.append(f"| {seed} | {r['name']} | {r['accuracy']:.1f}% [{r['ci95'][0]:.1f}, {r['ci95'][1]:.1f}] "
                         f"| {types} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=1000, help="test canvases per model (stratified; default 1000)")
    parser.add_argument("--pairs", type=int, default=200, help="far counterfactual pairs for patching (default 200)")
    parser.add_argument("--workers", type=int, default=2, help="models measured at once (default 2)")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "lab_interventions.json")
    parser.add_argument("--tables-only", action="store_true", help="print the tables of an earlier run's --json")
    args = parser.parse_args()
    if args.tables_only:
        measured = json.loads(args.json.read_text())["models"]
    else:
        jobs = [(tag, args.limit, args.pairs) for name in LAB_WEIGHTS for tag in shipped_seeds(name).values()]
        with get_context("spawn").Pool(args.workers) as pool:
            measured = {result["model"]: result for result in pool.imap(measure, jobs)}
        args.json.write_text(json.dumps({"limit": args.limit, "pairs": args.pairs, "models": measured}, indent=2) + "\n")
    for name in LAB_WEIGHTS:
        runs = {seed: measured[tag] for seed, tag in shipped_seeds(name).items()}
        print(readout_table(runs) if "readouts" in next(iter(runs.values())) else ablation_table(name, runs))
        print()
    if not args.tables_only:
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
