"""Activation patching on the same-different task: which component carries the relation between the two items?

A *counterfactual pair* is two test canvases that differ only in the second item: the same first item at the same
place, the second item at the same place but of the first item's class on one canvas ("same") and of the other
class on the other ("different"). Patching a component of the different canvas with its contribution on the same
canvas, and the reverse, shows how much of the model's change in P(same) flows through that component:

    score = mean(P_patched(diff <- same) - P(diff) + P(same) - P_patched(same <- diff)) / (2 mean(P(same) - P(diff)))

1 means the component alone carries the whole difference, 0 that patching it changes nothing. The interval is a
percentile bootstrap over pairs. A model whose intact P(same) barely tells the two canvases apart (mean effect under
``MIN_EFFECT``, e.g. a plain model far away) has nothing to carry: its score and interval are None.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from sbcore.analysis.interventions import Component, intervened
from sbcore.lab.same_different import SameDifferentCanvases, compose_canvas
from sbcore.lab.probe import SAME, canvas_batch

BOOTSTRAP_RESAMPLES = 2000
MIN_EFFECT = 0.05  # mean P(same) difference between the pair's canvases below which no share is defined


@dataclass(frozen=True)
class PatchingScore:
    """How much of the same/different effect one set of components carries, over counterfactual pairs."""

    label: str
    components: list[str]
    pairs: int
    score: float | None  # share of the effect carried, see the module docstring; None without an effect
    ci95: tuple[float, float] | None
    shift_towards_same: float  # mean P_patched(diff <- same) - P(diff)
    shift_towards_different: float  # mean P(same) - P_patched(same <- diff)
    effect: float  # mean P(same) - P(diff) of the intact model


def counterfactual_pair(canvases: SameDifferentCanvases, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(different canvas, same canvas, distance px), both (S, S) in [0, 1], built from test sample ``index``: its
    first item and both positions are kept; the second item becomes one of the first's class (a different garment
    than the first) on the same canvas and one of the other class on the different canvas."""
    placement = canvases.placement(index)
    first_class = canvases.task.item_classes.index(placement.classes[0])
    other_class = (first_class + 1) % len(canvases.task.item_classes)
    rng = np.random.default_rng([canvases.seed, 7, index])
    same_pool = canvases.pools[first_class][canvases.pools[first_class] != placement.items[0]]
    other_pool = canvases.pools[other_class]
    item_a = canvases.items[placement.items[0]]
    same_b = canvases.items[int(same_pool[rng.integers(len(same_pool))])]
    other_b = canvases.items[int(other_pool[rng.integers(len(other_pool))])]
    size = canvases.task.canvas_size
    return (compose_canvas(item_a, other_b, *placement.corners, size),
            compose_canvas(item_a, same_b, *placement.corners, size), placement.distance)


def counterfactual_pairs(canvases: SameDifferentCanvases, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(different canvases, same canvases), each (len(indices), S, S), of ``counterfactual_pair``."""
    different, same, _ = zip(*(counterfactual_pair(canvases, i) for i in indices))
    return torch.stack(different), torch.stack(same)


def _bootstrap_ratio(numerator: np.ndarray, denominator: np.ndarray, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    picks = rng.integers(len(numerator), size=(BOOTSTRAP_RESAMPLES, len(numerator)))
    ratios = numerator[picks].mean(axis=1) / np.maximum(denominator[picks].mean(axis=1), 1e-12)
    low, high = np.percentile(ratios, [2.5, 97.5])
    return round(float(low), 4), round(float(high), 4)


@torch.no_grad()
def patching_scores(
    model: nn.Module, different: torch.Tensor, same: torch.Tensor,
    settings: Sequence[tuple[str, Sequence[Component]]], batch_size: int = 100,
    progress: Callable[[int, int], None] | None = None,
) -> list[PatchingScore]:
    """A ``PatchingScore`` per (label, components) setting over the counterfactual pairs (``different`` and
    ``same``: (P, S, S) canvases in [0, 1], pair by pair)."""
    model.eval()
    device = next(model.parameters()).device
    p_diff, p_same = [], []
    patched = [([], []) for _ in settings]
    steps, done = len(settings) + 1, 0
    for start in range(0, len(different), batch_size):
        x_diff = canvas_batch(model, different[start:start + batch_size]).to(device)
        x_same = canvas_batch(model, same[start:start + batch_size]).to(device)
        prob = lambda x: model(x).float().softmax(dim=1)[:, SAME].cpu()  # noqa: E731
        p_diff.append(prob(x_diff))
        p_same.append(prob(x_same))
        for (towards_same, towards_different), (_, targets) in zip(patched, settings):
            with intervened(model, targets, "patch", source=x_same):
                towards_same.append(prob(x_diff))
            with intervened(model, targets, "patch", source=x_diff):
                towards_different.append(prob(x_same))
        done += 1
        if progress is not None:
            progress(done * steps, -(-len(different) // batch_size) * steps)
    base_diff, base_same = torch.cat(p_diff).numpy(), torch.cat(p_same).numpy()
    effect = base_same - base_diff
    scores = []
    for (label, targets), (towards_same, towards_different) in zip(settings, patched):
        up = torch.cat(towards_same).numpy() - base_diff
        down = base_same - torch.cat(towards_different).numpy()
        numerator = (up + down) / 2
        defined = effect.mean() >= MIN_EFFECT
        scores.append(PatchingScore(
            label, [c.name for c in targets], len(effect),
            round(float(numerator.mean() / effect.mean()), 4) if defined else None,
            _bootstrap_ratio(numerator, effect) if defined else None, round(float(up.mean()), 4),
            round(float(down.mean()), 4), round(float(effect.mean()), 4),
        ))
    return scores
