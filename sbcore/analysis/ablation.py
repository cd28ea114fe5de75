"""Accuracy under intervention: a test set evaluated intact and with components switched off, per group of samples
(distance bins of the lab, classes of Fashion-MNIST), with Wilson intervals and a paired interval on the change."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from sbcore.analysis.interventions import REFERENCE_SIZE, Component, intervened_logits, reference_means
from sbcore.data import DatasetSpec
from sbcore.errors import SBCoreError
from sbcore.evaluate import Z_95, model_dataset, wilson_interval


@dataclass(frozen=True)
class GroupChange:
    """One group's accuracy intact and under an intervention, percent, with 95% intervals."""

    name: str
    samples: int
    intact: float | None  # None for a group without samples
    intact_ci95: tuple[float, float]
    ablated: float | None
    ablated_ci95: tuple[float, float]
    change: float | None  # ablated - intact, points
    change_ci95: tuple[float, float]  # Newcombe's paired interval


@dataclass(frozen=True)
class AblationResult:
    """One intervention (a label such as ``"SB layer1.0"`` or ``"stage 3"``) over a test set."""

    label: str
    components: list[str]
    mode: str
    groups: list[GroupChange]
    overall: GroupChange


@dataclass
class AblationReport:
    """Every intervention of one model over one test set."""

    model: str
    mode: str
    samples: int
    reference: str  # what the mean was taken over
    results: list[AblationResult] = field(default_factory=list)


def model_test_data(model: nn.Module, data: str | None = None) -> tuple[str, DatasetSpec]:
    """(dataset name, its splits) of the dataset ``model`` was trained on, from its metadata."""
    meta = model.metadata
    name = meta.training.get("dataset")
    if not name:
        raise SBCoreError(
            f"{meta.pretrained or meta.architecture} records no training dataset; ablation evaluates trained "
            "checkpoints on their own test set (e.g. sb_lab_resnet14.samediff)."
        )
    return name, model_dataset(model, name, data)


def training_reference_means(model: nn.Module, spec: DatasetSpec, count: int = REFERENCE_SIZE,
                             batch_size: int = 100) -> dict[str, torch.Tensor]:
    """``reference_means`` over the first ``count`` training images of ``spec`` (evaluation transform; for the lab,
    training canvases): what mean ablation puts in place of each component."""
    device = next(model.parameters()).device
    reference = Subset(spec.train_eval, range(min(count, len(spec.train_eval))))
    return reference_means(model, (images.to(device) for images, _ in DataLoader(reference, batch_size)))


def paired_change_interval(both: int, only_intact: int, only_ablated: int, neither: int,
                           z: float = Z_95) -> tuple[float, float]:
    """95% interval (percent points) of accuracy ablated minus intact on the same samples: Newcombe's (1998)
    hybrid score interval for a difference of paired proportions (method 10), from the 2x2 table of correct
    (both, only intact, only ablated, neither)."""
    n = both + only_intact + only_ablated + neither
    if n == 0:
        return -100.0, 100.0
    p_ablated, p_intact = (both + only_ablated) / n, (both + only_intact) / n
    low_a, high_a = (v / 100 for v in wilson_interval(both + only_ablated, n, z))
    low_i, high_i = (v / 100 for v in wilson_interval(both + only_intact, n, z))
    margins = (both + only_intact) * (only_ablated + neither) * (both + only_ablated) * (only_intact + neither)
    phi = (both * neither - only_intact * only_ablated) / math.sqrt(margins) if margins else 0.0
    change = p_ablated - p_intact
    below = math.sqrt(max((p_ablated - low_a) ** 2 - 2 * phi * (p_ablated - low_a) * (high_i - p_intact)
                          + (high_i - p_intact) ** 2, 0.0))
    above = math.sqrt(max((high_a - p_ablated) ** 2 - 2 * phi * (high_a - p_ablated) * (p_intact - low_i)
                          + (p_intact - low_i) ** 2, 0.0))
    return round(100 * max(change - below, -1.0), 4), round(100 * min(change + above, 1.0), 4)


def group_change(name: str, intact: torch.Tensor, ablated: torch.Tensor) -> GroupChange:
    """Accuracies and the paired change from two (n,) bool tensors of correct answers on the same samples."""
    n = len(intact)
    both = int((intact & ablated).sum())
    only_intact, only_ablated = int((intact & ~ablated).sum()), int((~intact & ablated).sum())
    right_intact, right_ablated = both + only_intact, both + only_ablated
    if n == 0:  # a class absent from a --limit subset: no accuracy, the widest intervals
        return GroupChange(name, 0, None, (0.0, 100.0), None, (0.0, 100.0), None, (-100.0, 100.0))
    return GroupChange(
        name, n, round(100 * right_intact / n, 4), wilson_interval(right_intact, n), round(100 * right_ablated / n, 4),
        wilson_interval(right_ablated, n), round(100 * (right_ablated - right_intact) / n, 4),
        paired_change_interval(both, only_intact, only_ablated, n - both - only_intact - only_ablated),
    )


def batch_size_for(samples: int, mode: str, preferred: int = 100) -> int:
    """``preferred``, or one less when ``resample`` would leave a last batch of one sample (it needs another)."""
    return preferred - 1 if mode == "resample" and samples % preferred == 1 and samples > 1 else preferred


@torch.no_grad()
def evaluate_ablations(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    settings: Sequence[tuple[str, Sequence[Component]]],
    mode: str,
    *,
    groups: Sequence[int],
    group_names: Sequence[str],
    means: Mapping[str, torch.Tensor] | None = None,
    progress: Callable[[int, int], None] | None = None,
    total: int | None = None,
    seed: int = 0,
) -> list[AblationResult]:
    """Run every (label, components) setting on the same samples beside the intact model.

    ``batches`` yields (images (B, C, H, W), labels (B,)); ``groups`` gives each sample's group index, in batch
    order. ``resample`` draws each batch's derangement from ``seed`` and the batch's position (use
    ``batch_size_for`` so that no batch holds a single sample).
    """
    model.eval()
    device = next(model.parameters()).device
    intact_hits: list[torch.Tensor] = []
    ablated_hits: list[list[torch.Tensor]] = [[] for _ in settings]
    done = 0
    for batch_index, (images, labels) in enumerate(batches):
        images = images.to(device)
        intact_hits.append(model(images).argmax(dim=1).cpu() == labels)
        for hits, (_, targets) in zip(ablated_hits, settings):
            logits = intervened_logits(model, images, targets, mode, means=means, seed=seed + batch_index)
            hits.append(logits.argmax(dim=1).cpu() == labels)
        done += len(labels)
        if progress is not None:
            progress(done, total or done)
    intact = torch.cat(intact_hits)
    index = torch.as_tensor(list(groups), dtype=torch.long)
    if len(index) != len(intact):
        raise ValueError(f"{len(index)} group indices for {len(intact)} evaluated samples")
    results = []
    for (label, targets), hits in zip(settings, ablated_hits):
        ablated = torch.cat(hits)
        per_group = [group_change(name, intact[index == g], ablated[index == g]) for g, name in enumerate(group_names)]
        results.append(AblationResult(label, [c.name for c in targets], mode, per_group,
                                      group_change("all", intact, ablated)))
    return results
