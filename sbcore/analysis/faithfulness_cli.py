"""``sbcore faithfulness``: every attribution method's faithfulness over a test set, with intervals over images.

For the same-different lab models it also reports where each map puts its evidence: the shares of |attribution|
on item A, item B and the background (``sbcore.lab.evidence``), the question being whether a model with global
context uses both far-apart items where a plain one cannot.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn
from torch.utils.data import Dataset
from tqdm import tqdm

from sbcore.analysis import figures
from sbcore.analysis.ablation import model_test_data
from sbcore.analysis.ablation_cli import _distance_range
from sbcore.analysis.attribution import ATTRIBUTION_METHODS, BASELINES, attribute, make_baseline
from sbcore.analysis.cli import MODEL_HELP, TERMINAL_ONLY, _add_output_options, load_model, write_csv_rows
from sbcore.analysis.faithfulness import FAITHFULNESS_METRICS, Faithfulness, random_curves, score_attribution
from sbcore.cli_types import integer
from sbcore.errors import SBCoreError
from sbcore.evaluate import Z_95
from sbcore.lab.evidence import evidence_shares, uniform_shares
from sbcore.lab.same_different import SameDifferentCanvases, SameDifferentTask
from sbcore.output_files import write_text

SHARES = ("item_a", "item_b", "background", "weaker_item")


def mean_interval(values: Sequence[float]) -> dict[str, Any]:
    """``{"mean": m, "ci95": [low, high], "n": n}``: the mean with its normal-approximation 95% interval."""
    array = np.asarray(values, dtype=np.float64)
    mean = float(array.mean())
    half = Z_95 * float(array.std(ddof=1)) / math.sqrt(len(array)) if len(array) > 1 else float("nan")
    return {"mean": mean, "ci95": [mean - half, mean + half], "n": len(array)}


def test_indices(dataset: Dataset, limit: int, distance: tuple[int, int] | None) -> list[int]:
    """The first ``limit`` test samples; lab canvases only from the distance bins whose centre is in ``distance``."""
    if distance is None:
        return list(range(min(limit, len(dataset))))
    if not isinstance(dataset, SameDifferentCanvases):
        raise SBCoreError("--distance applies to the same-different lab models only.")
    bins = {b for b, centre in enumerate(dataset.task.bin_centres) if distance[0] <= centre <= distance[1]}
    indices = dataset.indices_in_bins(bins)[:limit]
    if not indices:
        raise SBCoreError(f"No test canvas has its distance bin's centre within {distance[0]}-{distance[1]} px.")
    return indices


def score_image(model: nn.Module, x: torch.Tensor, methods: Sequence[str], baseline: str, sanity: bool,
                seed: int) -> tuple[int, dict[str, tuple[Faithfulness, np.ndarray]]]:
    """(predicted class, {method: (its faithfulness, its raw map)}) for one image, explaining the prediction."""
    with torch.no_grad():
        target = int(model(x).argmax(dim=1))
    random = random_curves(model, x, target, make_baseline(model, x, baseline), seed=seed)
    scored = {}
    for method in methods:
        attribution = attribute(model, x, method, target, baseline=baseline)
        scored[method] = (score_attribution(model, x, attribution, baseline=baseline, sanity=sanity, random=random,
                                       seed=seed), attribution.raw)
    return target, scored


def faithfulness_figure(model_name: str, curves: dict[str, dict[str, list[np.ndarray]]],
                        fractions: np.ndarray) -> Figure:
    """Mean deletion and insertion curves per method over the images, each beside the random-map curve."""
    figure = Figure(figsize=(9, 3.6), layout="constrained")
    for ax, kind in zip(figure.subplots(1, 2), ("deletion", "insertion")):
        for method, runs in curves.items():
            ax.plot(fractions, np.mean(runs[kind], axis=0), label=ATTRIBUTION_METHODS[method])
        random = next(iter(curves.values()))[f"random_{kind}"]
        ax.plot(fractions, np.mean(random, axis=0), color="grey", linestyle="--", label="random map")
        ax.set_xlabel(f"share of pixels {'removed' if kind == 'deletion' else 'inserted'}, most relevant first")
        ax.set_ylabel("P(target)")
        ax.set_title(f"{kind} ({'lower' if kind == 'deletion' else 'higher'} area is better)", fontsize=10)
    ax.legend(fontsize=7)
    figure.suptitle(f"{model_name}: mean over {len(random)} test images", fontsize=10)
    return figure


def _run_faithfulness(args: argparse.Namespace) -> None:
    model, out = load_model(args.model, args.device), Path(args.out)
    name, spec = model_test_data(model, args.data)
    lab = isinstance(spec.test, SameDifferentCanvases)
    indices = test_indices(spec.test, args.limit, args.distance)
    rows, curves = [], {m: {"deletion": [], "insertion": [], "random_deletion": [], "random_insertion": []}
                        for m in args.methods}
    for index in tqdm(indices, desc="faithfulness", unit="image", disable=TERMINAL_ONLY):
        image, label = spec.test[index]
        target, scored = score_image(model, image[None].to(args.device), args.methods, args.baseline,
                                     not args.no_sanity, args.seed)
        for method, (result, raw) in scored.items():
            row = {"index": index, "label": int(label), "target": target, "method": method, **result.scores()}
            if lab:
                placement = spec.test.placement(index)
                shares = evidence_shares(raw, placement.corners, spec.test.task)
                row.update(distance=placement.distance, **{s: getattr(shares, s) for s in SHARES})
            rows.append(row)
            for kind in ("deletion", "insertion"):
                curves[method][kind].append(getattr(result, kind).scores)
                curves[method][f"random_{kind}"].append(result.random[kind].scores)
    document = summary(args, name, rows, lab, spec.test.task if lab else None)
    print(format_summary(document))
    write_text(out / "faithfulness.json", json.dumps({**document, "images": rows}, indent=1, allow_nan=True) + "\n")
    write_csv_rows(out / "faithfulness.csv", list(rows[0]), [list(r.values()) for r in rows])
    fractions = result.deletion.fractions
    figures.save(faithfulness_figure(args.model, curves, fractions), out / "faithfulness.png")
    print(f"wrote {out}/faithfulness.json, .csv, .png")


def summary(args: argparse.Namespace, dataset: str, rows: list[dict], lab: bool,
            task: SameDifferentTask | None) -> dict[str, Any]:
    """Per method: every score's mean and 95% interval over the images (and the evidence shares for the lab)."""
    methods = {}
    for method in args.methods:
        chosen = [r for r in rows if r["method"] == method]
        scores = {key: mean_interval([r[key] for r in chosen]) for key in chosen[0]
                  if key.endswith(("_auc", "_correlation"))}
        if lab:
            scores.update({f"share_{s}": mean_interval([r[s] for r in chosen]) for s in SHARES})
        methods[method] = scores
    document = {"model": args.model, "dataset": dataset, "samples": len(rows) // len(args.methods),
                "baseline": args.baseline, "sanity_check": not args.no_sanity, "distance_px": args.distance,
                "target": "the model's predicted class", "methods": methods}
    if lab:
        document["uniform_shares"] = {"item_a": uniform_shares(task).item_a, "background": uniform_shares(task).background}
    return document


def _cell(score: dict[str, Any]) -> str:
    low, high = score["ci95"]
    return f"{score['mean']:.3f} [{low:.3f}, {high:.3f}]"


def format_summary(document: dict[str, Any]) -> str:
    """One line per method: each metric's mean [95% interval] beside the random map's."""
    lines = [f"{document['model']}: {document['samples']} {document['dataset']} test images, baseline "
             f"{document['baseline']}, explaining the predicted class"]
    for method, scores in document["methods"].items():
        lines.append(f"  {ATTRIBUTION_METHODS[method]}")
        for key, (label, direction) in FAITHFULNESS_METRICS.items():
            if key in scores:
                lines.append(f"    {label + ' (' + direction + ')':<52} {_cell(scores[key]):>26}   random map "
                             f"{_cell(scores['random_' + key]):>26}")
        for share in SHARES:
            if f"share_{share}" in scores:
                lines.append(f"    {'evidence share on ' + share.replace('_', ' '):<52} {_cell(scores['share_' + share]):>26}")
    return "\n".join(lines)


def configure_faithfulness(subparsers: argparse._SubParsersAction) -> None:
    """Add ``sbcore faithfulness MODEL [--methods ...] [--limit N] --out DIR``."""
    parser = subparsers.add_parser(
        "faithfulness", help="how faithful each attribution method is, over test images",
        description="Score attribution maps of a trained model on its own test set, explaining each image's "
        "predicted class: deletion and insertion AUC (pixel flipping to --baseline), ROAD MoRF/LeRF AUC (imputed "
        "removal) and the cascading model-randomisation sanity check (Spearman correlation with the trained map), "
        "each beside the same score for random maps, as means with 95% intervals over the images. Lab models "
        "also get the shares of |attribution| on item A, item B and the background. Writes faithfulness.json, "
        ".csv and .png.",
    )
    parser.add_argument("model", help=MODEL_HELP)
    _add_output_options(parser)
    parser.add_argument("--methods", nargs="+", choices=list(ATTRIBUTION_METHODS), default=list(ATTRIBUTION_METHODS),
                        help="methods to score (default: all)")
    parser.add_argument("--limit", type=integer(2, 10_000), default=200, help="test images, 2 to 10000 (default: 200)")
    parser.add_argument("--distance", type=_distance_range, default=None, metavar="LOW-HIGH",
                        help="lab models: only canvases whose distance bin's centre is in LOW-HIGH px, e.g. 94-108")
    parser.add_argument("--baseline", choices=list(BASELINES), default="black",
                        help="reference of IG and Occlusion, and what deletion removes pixels to (default: black)")
    parser.add_argument("--no-sanity", action="store_true", help="skip the randomisation check (the slow part)")
    parser.add_argument("--seed", type=integer(0, 2**31 - 1), default=0, help="seed of the random maps and re-initialisation")
    parser.add_argument("--data", default=None, help="dataset folder (default: the training run's, or found automatically)")
    parser.set_defaults(run=_run_faithfulness)
