"""Accuracy by distance of the lab models, read from their checkpoints' metadata (the one source of truth),
and the theoretical receptive field that bounds what a plain network can compare."""
from __future__ import annotations

from dataclasses import dataclass, field
from statistics import mean, stdev
from typing import Any

from torch import nn

from sbcore.analysis.erf import stage_receptive_fields
from sbcore.errors import SBCoreError
from sbcore.lab.same_different import DEFAULT_TASK, SameDifferentTask

LAB_WEIGHTS = (  # shipped seed-0 weights: plain, SB, NL, SB+NL
    "lab_resnet14.samediff", "sb_lab_resnet14.samediff", "nl_lab_resnet14.samediff", "sbnl_lab_resnet14.samediff",
)


@dataclass(frozen=True)
class DistanceAccuracy:
    """One model's test accuracy per distance bin (percent) with Wilson 95% intervals, and over seeds."""

    model: str
    bins: list[str]  # "distance 20-37 px"
    accuracy: list[float]
    ci95: list[tuple[float, float]]
    samples: list[int]
    overall: float
    seeds: list[int] = field(default_factory=list)  # seeds behind the mean and spread (the shipped one included)
    seed_mean: list[float] = field(default_factory=list)  # per bin, over ``seeds``
    seed_std: list[float] = field(default_factory=list)  # per bin, sample standard deviation over ``seeds``
    overall_seed_mean: float | None = None
    overall_seed_std: float | None = None


def distance_accuracy(model: nn.Module) -> DistanceAccuracy:
    """The per-distance-bin test accuracy a lab checkpoint records (``metrics.test.groups``) and, when its
    metadata holds ``metrics.seed_runs``, the mean and spread over seeds."""
    meta = model.metadata
    name = meta.pretrained or meta.architecture
    groups = meta.metrics.get("test", {}).get("groups")
    if not groups:
        raise SBCoreError(f"{name} records no accuracy by distance; it is not a trained lab model.")
    result = DistanceAccuracy(
        name, [g["name"] for g in groups], [g["accuracy"] for g in groups], [tuple(g["ci95"]) for g in groups],
        [g["samples"] for g in groups], meta.metrics["test"]["top1"],
    )
    runs = meta.metrics.get("seed_runs") or []
    if len(runs) < 2:
        return result
    per_bin = list(zip(*[run["groups"] for run in runs]))
    overall = [run["top1"] for run in runs]
    return DistanceAccuracy(
        **{**result.__dict__, "seeds": [run["seed"] for run in runs],
           "seed_mean": [round(mean(b), 2) for b in per_bin], "seed_std": [round(stdev(b), 2) for b in per_bin],
           "overall_seed_mean": round(mean(overall), 2), "overall_seed_std": round(stdev(overall), 2)}
    )


def seed_run(metadata_metrics: dict[str, Any], seed: int) -> dict[str, Any]:
    """A run's summary for ``metrics.seed_runs``: its seed, overall top-1 and accuracy per distance bin."""
    test = metadata_metrics["test"]
    return {"seed": seed, "top1": test["top1"], "groups": [g["accuracy"] for g in test["groups"]]}


def reach(model: nn.Module, task: SameDifferentTask = DEFAULT_TASK) -> tuple[int, int]:
    """(last stage's receptive field, the smallest centre distance at which no unit of the conv path sees
    any pixel of both items), pixels. Beyond the second, a plain network with global average pooling and a
    linear head adds the items up and is bounded at 75% on same-different (``sbcore.lab.readout``)."""
    last = list(stage_receptive_fields(model).values())[-1]
    return last, last + task.item_size - 1
