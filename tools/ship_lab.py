"""Copy the finished lab runs from runs/lab into assets/checkpoints: seed 0 as ``NAME.samediff``, seeds 1 and 2 as
``NAME.samediff-s1`` and ``NAME.samediff-s2``, each with every shipped seed's per-bin results in its metadata
(``metrics.seed_runs``) and its training log. A seed whose run is not in runs/lab but is already shipped keeps its
shipped files (its summary still counts).

    python tools/ship_lab.py            # after bash tools/train_lab.sh; prints the sha256 lines for
                                        # sbcore/models/pretrained.py
    python tools/ship_lab.py --interventions benchmarks/lab_interventions.json   # also each seed's ablation
                                        # and patching summary (metrics.interventions), for the model cards
    sbcore card NAME.samediff --out assets/checkpoints/NAME_samediff.md   # then each model card
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from sbcore.checkpoint import checkpoint_paths, file_sha256
from sbcore.lab.results import LAB_WEIGHTS, seed_run

REPO = Path(__file__).resolve().parents[1]
SEEDS = (0, 1, 2)


def shipped_tag(name: str, seed: int) -> str:
    """``sb_lab_resnet14.samediff`` for seed 0, ``sb_lab_resnet14.samediff-s1`` for seed 1."""
    return name if seed == 0 else f"{name}-s{seed}"


def asset_stem(assets: Path, tag: str) -> Path:
    """assets/checkpoints/ARCH_TAG (without suffix), as ``sbcore.models.pretrained`` looks it up."""
    return assets / tag.replace(".", "_")


def intervention_summaries(measured: dict, name: str) -> list[dict]:
    """``metrics.interventions`` of lab model ``name``: every seed's ablation and patching results in
    ``measured`` (the JSON of benchmarks/lab_interventions.py), one entry per component and seed."""
    entries = []
    for seed in SEEDS:
        run = measured["models"].get(shipped_tag(name, seed))
        if run is None or "ablations" not in run:
            continue
        for ablation, patch in zip(run["ablations"], run["patching"]):
            overall, far = ablation["overall"], ablation["groups"][-1]
            entries.append({"seed": seed, "label": ablation["label"], "mode": ablation["mode"],
                            "samples": overall["samples"], "change": overall["change"],
                            "change_ci95": overall["change_ci95"], "far_change": far["change"],
                            "far_change_ci95": far["change_ci95"], "patching": patch["score"],
                            "patching_ci95": patch["ci95"]})
    return entries


def ship(runs: Path, assets: Path, name: str, measured: dict | None = None) -> dict[str, str]:
    """Ship every finished seed of ``name`` (``arch.tag``), with the intervention summaries in ``measured``;
    returns {shipped tag: sha256}."""
    architecture = name.split(".")[0]
    documents: dict[int, dict] = {}
    for seed in SEEDS:
        run = runs / f"{architecture}_s{seed}" / f"{architecture}.safetensors"
        target = asset_stem(assets, shipped_tag(name, seed))
        if run.is_file():
            weights, meta = checkpoint_paths(run)
            shutil.copyfile(weights, target.with_suffix(".safetensors"))
            shutil.copyfile(weights.parent / "log.jsonl", target.with_name(target.name + ".log.jsonl"))
            documents[seed] = json.loads(meta.read_text())
        elif target.with_suffix(".json").is_file():
            documents[seed] = json.loads(target.with_suffix(".json").read_text())
    runs_summary = [seed_run(document["metrics"], seed) for seed, document in sorted(documents.items())]
    interventions = intervention_summaries(measured, name) if measured else []
    hashes = {}
    for seed, document in documents.items():
        tag, target = shipped_tag(name, seed), asset_stem(assets, shipped_tag(name, seed))
        document["metrics"]["seed_runs"] = runs_summary
        if interventions:
            document["metrics"]["interventions"] = interventions
        target.with_suffix(".json").write_text(json.dumps(document, indent=2) + "\n")
        hashes[tag] = file_sha256(target.with_suffix(".safetensors"))
    print(f"{name}: shipped seeds {', '.join(map(str, sorted(documents)))}")
    return hashes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "lab", help="folder of the training runs")
    parser.add_argument("--assets", type=Path, default=REPO / "assets" / "checkpoints", help="shipped checkpoints")
    parser.add_argument("--interventions", type=Path, default=None,
                        help="JSON of benchmarks/lab_interventions.py to summarise in every seed's metadata")
    args = parser.parse_args()
    measured = json.loads(args.interventions.read_text()) if args.interventions else None
    for name in LAB_WEIGHTS:
        for tag, digest in ship(args.runs, args.assets, name, measured).items():
            print(f'    "{tag}": "{digest}",')


if __name__ == "__main__":
    main()
