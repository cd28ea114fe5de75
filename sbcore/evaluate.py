"""Test-set metrics (top-1, top-5, per-class accuracy, confusion matrix; accuracy per group of samples,
e.g. distance bins, with 95% intervals) and ``sbcore eval``, which recomputes them for a checkpoint
and checks them against the numbers its metadata records."""
from __future__ import annotations

import argparse
import math
from typing import Any, Iterable

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from sbcore.cli_types import MAX_WORKERS, integer, positive_int
from sbcore.data import (
    DATASETS, DatasetSpec, LabelledSamples, SampleGroups, limited_test_split, load_dataset, sample_groups,
)
from sbcore.errors import SBCoreError
from sbcore.factory import resolve_model
from sbcore.models import CHANNEL_LAYOUTS, set_channel_layout

EVAL_BATCH_SIZE = 256  # the trainer's; fixed so that a re-evaluation runs the same kernels
COMPARED = ("samples", "top1", "top5", "per_class", "confusion", "groups")
Z_95 = 1.959964  # standard normal quantile of a two-sided 95% interval


class MetricsMismatchError(SBCoreError):
    """A checkpoint's recomputed test metrics differ from the ones its metadata records."""


def evaluation_loader(dataset: Dataset, workers: int = 0) -> DataLoader:
    """Batches of ``EVAL_BATCH_SIZE`` in dataset order, as the trainer evaluates."""
    return DataLoader(dataset, EVAL_BATCH_SIZE, num_workers=workers)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    num_classes: int,
    device: str | torch.device = "cpu",
    progress: bool = False,
    groups: SampleGroups | None = None,
) -> dict[str, Any]:
    """Evaluate in fp32 so the numbers are reproducible bit for bit on the same hardware.

    Returns ``{"top1", "top5"}`` in percent, ``"per_class"`` accuracy in percent,
    ``"confusion"`` (rows: true class, columns: predicted) and ``"samples"``; with ``groups`` (the
    group of every sample, in batch order), also ``"groups"``: one ``group_accuracy`` entry per group.
    """
    model.eval()
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)
    top5_hits = 0
    hits: list[torch.Tensor] = []
    for images, labels in tqdm(batches, desc="eval", disable=not progress, leave=False):
        logits = model(images.to(device)).float().cpu()
        k = min(5, num_classes)
        top5_hits += (logits.topk(k, dim=1).indices == labels[:, None]).any(dim=1).sum().item()
        index = labels * num_classes + logits.argmax(dim=1)
        confusion += torch.bincount(index, minlength=num_classes**2).reshape(num_classes, num_classes)
        hits.append(logits.argmax(dim=1) == labels)
    samples = int(confusion.sum())
    per_class = (confusion.diag().double() / confusion.sum(dim=1).clamp(min=1).double() * 100).tolist()
    metrics = {
        "top1": round(float(confusion.diag().sum()) / max(samples, 1) * 100, 4),
        "top5": round(top5_hits / max(samples, 1) * 100, 4),
        "per_class": [round(v, 4) for v in per_class],
        "confusion": confusion.tolist(),
        "samples": samples,
    }
    if groups is not None:
        correct = torch.cat(hits) if hits else torch.zeros(0, dtype=torch.bool)
        if len(groups.index) != len(correct):
            raise ValueError(f"{len(groups.index)} group indices for {len(correct)} evaluated samples")
        index = torch.as_tensor(groups.index, dtype=torch.long)
        metrics["groups"] = [
            group_accuracy(name, int(correct[index == g].sum()), int((index == g).sum()))
            for g, name in enumerate(groups.names)
        ]
    return metrics


def wilson_interval(correct: int, samples: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a proportion, in percent (95% by default); (0, 100) for no samples."""
    if samples == 0:
        return 0.0, 100.0
    p = correct / samples
    centre = (p + z * z / (2 * samples)) / (1 + z * z / samples)
    half = z * math.sqrt(p * (1 - p) / samples + z * z / (4 * samples * samples)) / (1 + z * z / samples)
    return round(100 * max(centre - half, 0.0), 4), round(100 * min(centre + half, 1.0), 4)


def group_accuracy(name: str, correct: int, samples: int) -> dict[str, Any]:
    """``{"name", "correct", "samples", "accuracy", "ci95"}``: accuracy in percent (None without samples)
    and its Wilson 95% interval."""
    accuracy = round(100 * correct / samples, 4) if samples else None
    return {"name": name, "correct": correct, "samples": samples, "accuracy": accuracy,
            "ci95": list(wilson_interval(correct, samples))}


def metric_differences(measured: dict[str, Any], recorded: dict[str, Any], class_names: list[str]) -> list[str]:
    """Readable differences between recomputed and recorded metrics (empty when they agree exactly)."""
    differences = []
    for key in COMPARED:
        if key not in recorded or measured[key] == recorded[key]:
            continue
        if key == "per_class":
            differences += [
                f"{name} {m:.2f}% (recorded {r:.2f}%)"
                for name, m, r in zip(class_names, measured[key], recorded[key])
                if m != r
            ]
        elif key == "confusion":
            differences.append("the confusion matrix differs")
        elif key == "groups":
            differences += [
                f"{m['name']} {_percent(m['accuracy'])} (recorded {_percent(r['accuracy'])})"
                for m, r in zip(measured.get(key, []), recorded[key])
                if m != r
            ] or ["the sample groups differ"]
        else:
            differences.append(f"{key} {measured[key]} (recorded {recorded[key]})")
    return differences


def _percent(value: float | None) -> str:
    return "no samples" if value is None else f"{value:.2f}%"


def format_metrics(metrics: dict[str, Any], class_names: list[str]) -> str:
    """Top-1, top-5 and per-class accuracy as text."""
    lines = [f"  top-1  {metrics['top1']:7.2f}%", f"  top-5  {metrics['top5']:7.2f}%", "  per class:"]
    lines += [f"    {name:<14} {accuracy:7.2f}%" for name, accuracy in zip(class_names, metrics["per_class"])]
    if metrics.get("groups"):
        lines.append("  per group (95% interval):")
        width = max(len(g["name"]) for g in metrics["groups"])
        lines += [f"    {g['name']:<{width}} {g['accuracy']:7.2f}%  [{g['ci95'][0]:.1f}, {g['ci95'][1]:.1f}]  "
                  f"({g['correct']}/{g['samples']})" if g["samples"] else f"    {g['name']:<{width}}  no samples"
                  for g in metrics["groups"]]
    return "\n".join(lines)


def model_dataset(model: nn.Module, name: str, data: str | None = None) -> DatasetSpec:
    """The splits of dataset ``name`` (from ``data``, else the training run's folder) at ``model``'s input size, its
    classes checked against the model's."""
    meta = model.metadata
    spec = load_dataset(name, data or meta.training.get("data"), meta.preprocessing.input_size[-1])
    if spec.class_names != list(meta.class_names):
        raise SBCoreError(f"The {name} classes {spec.class_names} are not the model's {meta.class_names}.")
    return spec


def _evaluation_set(args: argparse.Namespace, model: nn.Module) -> tuple[Dataset, str, int | None]:
    """(dataset, description, limit) for ``sbcore eval``: the labelled samples or the test split."""
    meta = model.metadata
    if args.samples:
        dataset = LabelledSamples(args.samples, meta.class_names, meta.preprocessing)
        return dataset, f"{len(dataset)} labelled samples in {args.samples}", None
    name = args.dataset or meta.training.get("dataset")
    if not name:
        raise SBCoreError("The checkpoint does not record its dataset; pass --dataset (and --data).")
    spec = model_dataset(model, name, args.data)
    limit = args.limit if args.limit is not None else meta.metrics.get("test_limit")
    dataset = limited_test_split(spec, limit)
    return dataset, f"{name} test split, {len(dataset)} images", limit


def _run_eval(args: argparse.Namespace) -> None:
    model = set_channel_layout(resolve_model(args.checkpoint), args.channel_layout)
    meta = model.metadata
    dataset, description, limit = _evaluation_set(args, model)
    measured = evaluate(
        model, evaluation_loader(dataset, args.workers), len(meta.class_names), progress=True,
        groups=sample_groups(dataset),
    )
    print(f"{meta.pretrained or meta.architecture} on {description}")
    print(format_metrics(measured, meta.class_names))
    recorded = meta.metrics.get("test")
    if args.samples:
        print("Not compared: the checkpoint's recorded metrics are for its test split, not these samples.")
    elif not recorded:
        print("Not compared: the checkpoint records no test metrics.")
    elif limit != meta.metrics.get("test_limit"):
        print(f"Not compared: the recorded metrics cover {recorded.get('samples')} test images, this run {len(dataset)}.")
    else:
        differences = metric_differences(measured, recorded, meta.class_names)
        if differences:
            raise MetricsMismatchError(
                f"{args.checkpoint} does not reproduce its recorded test metrics: {'; '.join(differences)}."
            )
        grouped = ", accuracy per group" if recorded.get("groups") else ""
        print(f"Reproduces the recorded test metrics exactly (top-1 {recorded['top1']:.2f}%, "
              f"top-5 {recorded['top5']:.2f}%, per-class accuracy and confusion matrix{grouped}).")


def configure_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add ``sbcore eval CHECKPOINT``."""
    parser = subparsers.add_parser(
        "eval", help="recompute test metrics of a checkpoint and check them against its metadata"
    )
    parser.add_argument("checkpoint", help="checkpoint path (.safetensors or .json) or shipped weights (sb_resnet38.fmnist)")
    parser.add_argument("--dataset", default=None, choices=DATASETS,
                        help="dataset kind (default: the one the checkpoint was trained on)")
    parser.add_argument("--data", default=None, help="dataset folder (default: the training run's, or found automatically)")
    parser.add_argument("--limit", type=positive_int, default=None,
                        help="first N test images (default: as recorded in the checkpoint)")
    parser.add_argument("--samples", default=None, metavar="DIR", help="evaluate the labelled images of DIR/samples.json instead")
    parser.add_argument("--workers", type=integer(0, MAX_WORKERS), default=0, help="data-loader worker processes")
    parser.add_argument("--channel-layout", choices=list(CHANNEL_LAYOUTS), default="auto",
                        help="how spatial-bias blocks join their maps (the same function): auto (padded on a GPU), "
                        "concat or padded")
    parser.set_defaults(run=_run_eval)
