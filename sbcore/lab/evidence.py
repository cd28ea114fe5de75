"""Where an attribution map puts its evidence on a same-different canvas: item A, item B or the background."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sbcore.lab.same_different import DEFAULT_TASK, SameDifferentTask

Corners = tuple[tuple[int, int], tuple[int, int]]  # the two items' top-left corners (row, col), A first


@dataclass(frozen=True)
class EvidenceShares:
    """Shares of |attribution| on each item's square and on the rest of the canvas; they add up to 1."""

    item_a: float
    item_b: float
    background: float

    @property
    def weaker_item(self) -> float:
        """The smaller of the two item shares: high only when both items carry evidence."""
        return min(self.item_a, self.item_b)


def item_masks(corners: Corners, task: SameDifferentTask = DEFAULT_TASK) -> tuple[np.ndarray, np.ndarray]:
    """(S, S) boolean masks of item A's and item B's squares, from their top-left corners (row, col)."""
    masks = []
    for row, col in corners:
        mask = np.zeros((task.canvas_size, task.canvas_size), dtype=bool)
        mask[max(row, 0):row + task.item_size, max(col, 0):col + task.item_size] = True
        masks.append(mask)
    return masks[0], masks[1]


def evidence_shares(raw: np.ndarray, corners: Corners, task: SameDifferentTask = DEFAULT_TASK) -> EvidenceShares:
    """Shares of the map's absolute mass on item A, item B (where it overlaps A: counted for A) and the background;
    a map of zeros spreads evenly by area (what a uniform map gives)."""
    mask_a, mask_b = item_masks(corners, task)
    magnitude = np.abs(raw).astype(np.float64)
    if magnitude.sum() <= 0:
        magnitude = np.ones_like(magnitude)
    total = magnitude.sum()
    item_a, item_b = magnitude[mask_a].sum() / total, magnitude[mask_b & ~mask_a].sum() / total
    return EvidenceShares(float(item_a), float(item_b), float(1.0 - item_a - item_b))


def corners_of(centre_a: tuple[int, int], centre_b: tuple[int, int],
               task: SameDifferentTask = DEFAULT_TASK) -> Corners:
    """The items' top-left corners from their centres, as ``sbcore.lab.probe.place_pair`` places them."""
    half = task.item_size // 2
    return (centre_a[0] - half, centre_a[1] - half), (centre_b[0] - half, centre_b[1] - half)


def uniform_shares(task: SameDifferentTask = DEFAULT_TASK) -> EvidenceShares:
    """The shares of a uniform map: each item's area over the canvas's (2.4% each at 20 px on 128 px)."""
    item = task.item_size ** 2 / task.canvas_size ** 2
    return EvidenceShares(item, item, 1.0 - 2 * item)
