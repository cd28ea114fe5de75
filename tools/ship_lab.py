"""Copy the seed-0 lab checkpoints from runs/lab into assets/checkpoints as ``NAME.samediff``, with every
finished seed's per-bin results in their metadata (``metrics.seed_runs``) and their training log.

    python tools/ship_lab.py            # after bash tools/train_lab.sh; prints the sha256 lines for
                                        # sbcore/models/pretrained.py
    sbcore card NAME.samediff --out assets/checkpoints/NAME_samediff.md   # then each model card
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from sbcore.checkpoint import checkpoint_paths, file_sha256, read_metadata
from sbcore.lab.results import LAB_WEIGHTS, seed_run

REPO = Path(__file__).resolve().parents[1]


def finished_runs(runs: Path, architecture: str) -> list[tuple[int, Path]]:
    """(seed, checkpoint path) of every finished run of ``architecture``, by seed."""
    found = []
    for folder in sorted(runs.glob(f"{architecture}_s*")):
        weights = folder / f"{architecture}.safetensors"
        if weights.is_file():
            found.append((int(folder.name.rsplit("_s", 1)[1]), weights))
    return sorted(found)


def ship(runs: Path, assets: Path, name: str) -> str | None:
    """Ship seed 0 of ``name`` (``arch.tag``) with every finished seed's summary; returns its sha256."""
    architecture, tag = name.split(".")
    runs_done = finished_runs(runs, architecture)
    if not runs_done or runs_done[0][0] != 0:
        print(f"{name}: seed 0 has not finished; nothing shipped")
        return None
    source_weights, source_meta = checkpoint_paths(runs_done[0][1])
    target = assets / f"{architecture}_{tag}"
    document = json.loads(source_meta.read_text())
    document["metrics"]["seed_runs"] = [seed_run(read_metadata(path)[0].metrics, seed) for seed, path in runs_done]
    shutil.copyfile(source_weights, target.with_suffix(".safetensors"))
    target.with_suffix(".json").write_text(json.dumps(document, indent=2) + "\n")
    shutil.copyfile(source_weights.parent / "log.jsonl", target.with_name(target.name + ".log.jsonl"))
    seeds = ", ".join(str(seed) for seed, _ in runs_done)
    print(f"{name}: shipped seed 0 (seeds with results: {seeds})")
    return file_sha256(target.with_suffix(".safetensors"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "lab", help="folder of the training runs")
    parser.add_argument("--assets", type=Path, default=REPO / "assets" / "checkpoints", help="shipped checkpoints")
    args = parser.parse_args()
    hashes = {name: ship(args.runs, args.assets, name) for name in LAB_WEIGHTS}
    for name, digest in hashes.items():
        if digest:
            print(f'    "{name}": "{digest}",')


if __name__ == "__main__":
    main()
