"""Live probes of a same-different model: place two items on a canvas, read P(same), sweep the distance."""
from __future__ import annotations

from dataclasses import dataclass
from statistics import mean
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

from sbcore.data import FASHION_MNIST_CLASSES, FASHION_MNIST_PREPROCESSING
from sbcore.evaluate import wilson_interval
from sbcore.images import model_view
from sbcore.lab.evidence import corners_of
from sbcore.lab.same_different import DEFAULT_TASK, LABELS, SameDifferentTask, compose_canvas, prepare_items

SAME = LABELS.index("same")


def item_from_array(image: np.ndarray | torch.Tensor, task: SameDifferentTask = DEFAULT_TASK) -> torch.Tensor:
    """(H, W) grayscale image, uint8 or float in [0, 1], light object on dark -> (s, s) item for the canvas.

    Photographs with a light background should be inverted first (``sbcore.images.model_view`` does it).
    """
    array = np.asarray(image)
    if array.ndim != 2:
        raise ValueError(f"an item is one (H, W) grayscale image, got shape {array.shape}")
    return prepare_items(array[None], task.item_size)[0]


def item_from_image(image: Image.Image, invert: bool = False, task: SameDifferentTask = DEFAULT_TASK) -> torch.Tensor:
    """A user's picture (e.g. from ``sbcore.images.load_image``) -> (s, s) item in [0, 1], made like the test items.

    The picture is first seen as a Fashion-MNIST image (28x28 grayscale, centre-cropped, mapped
    p -> 255 - p with ``invert`` for a dark object on a light background), then resized to the item size.
    """
    return item_from_array(model_view(image, FASHION_MNIST_PREPROCESSING, invert), task)


def canvas_batch(model: nn.Module, canvases: torch.Tensor) -> torch.Tensor:
    """(B, S, S) canvases in [0, 1] -> (B, 1, S, S) input normalised with the model's own mean and std."""
    pre = model.metadata.preprocessing
    expected = tuple(pre.input_size[1:])
    if tuple(canvases.shape[-2:]) != expected:
        got = tuple(canvases.shape[-2:])
        raise ValueError(f"{model.metadata.architecture} reads {expected[0]}x{expected[1]} canvases, got {got}")
    return ((canvases - pre.mean[0]) / pre.std[0])[:, None]


@torch.no_grad()
def same_probability(model: nn.Module, canvases: torch.Tensor) -> torch.Tensor:
    """(B, S, S) canvases in [0, 1] -> (B,) the model's P(same), in fp32 and eval mode."""
    model.eval()
    device = next(model.parameters()).device
    logits = model(canvas_batch(model, canvases).to(device)).float().cpu()
    return logits.softmax(dim=1)[:, SAME]


def place_pair(
    item_a: np.ndarray | torch.Tensor, item_b: np.ndarray | torch.Tensor, centre_a: tuple[int, int],
    centre_b: tuple[int, int], task: SameDifferentTask = DEFAULT_TASK,
) -> torch.Tensor:
    """(S, S) canvas with two (s, s) items in [0, 1] centred at ``centre_a`` and ``centre_b`` (row, col), pixels."""
    corner_a, corner_b = corners_of(centre_a, centre_b, task)
    return compose_canvas(torch.as_tensor(item_a), torch.as_tensor(item_b), corner_a, corner_b, task.canvas_size)


def sweep_positions(
    centre_a: tuple[int, int], direction: tuple[int, int], distances: Sequence[int],
    task: SameDifferentTask = DEFAULT_TASK,
) -> list[tuple[int, int]]:
    """Centres of the second item at each Chebyshev ``distance`` from ``centre_a`` along ``direction``
    ((0, 1) right, (1, 1) down-right...), dropping those whose item would leave the canvas."""
    d_row, d_col = direction
    if max(abs(d_row), abs(d_col)) != 1:
        raise ValueError(f"direction must be a unit step such as (0, 1) or (1, -1), got {direction}")
    low = task.item_size // 2
    high = task.canvas_size - task.item_size + low  # the item's corner stays on the canvas
    positions = [(centre_a[0] + d * d_row, centre_a[1] + d * d_col) for d in distances]
    return [p for p in positions if low <= p[0] <= high and low <= p[1] <= high]


def distance_sweep(
    model: nn.Module, item_a: np.ndarray | torch.Tensor, item_b: np.ndarray | torch.Tensor, centre_a: tuple[int, int],
    direction: tuple[int, int] = (0, 1), distances: Sequence[int] | None = None,
    task: SameDifferentTask = DEFAULT_TASK,
) -> tuple[list[int], torch.Tensor]:
    """Move the second item away from the first along ``direction``; returns (distances kept, P(same) at each).

    ``distances`` default to every pixel from the item size (touching) to the canvas's largest distance.
    """
    largest = task.canvas_size - task.item_size
    wanted = list(distances) if distances is not None else list(range(task.item_size, largest + 1))
    centres = sweep_positions(centre_a, direction, wanted, task)
    kept = [max(abs(c[0] - centre_a[0]), abs(c[1] - centre_a[1])) for c in centres]
    if not centres:
        return [], torch.zeros(0)
    canvases = torch.stack([place_pair(item_a, item_b, centre_a, c, task) for c in centres])
    return kept, same_probability(model, canvases)


@dataclass(frozen=True)
class PairAccuracy:
    """A model's answers over many test-item pairs placed at the same two centres: how many were right, and the
    share right per pair type (``"Trouser+Bag"`` -> percent)."""

    correct: int
    total: int
    by_type: dict[str, float]

    @property
    def accuracy(self) -> float:
        """Percent right."""
        return 100.0 * self.correct / self.total

    @property
    def ci95(self) -> tuple[float, float]:
        """Wilson 95% interval of ``accuracy``, percent."""
        return wilson_interval(self.correct, self.total)


def pair_types(task: SameDifferentTask = DEFAULT_TASK) -> list[tuple[int, int]]:
    """The four pair types as positions in ``task.item_classes``: both first, both second, then the two mixed
    orders (trouser+trouser, bag+bag, trouser+bag, bag+trouser)."""
    count = len(task.item_classes)
    same = [(k, k) for k in range(count)]
    return same + [(a, b) for a in range(count) for b in range(count) if a != b]


def draw_pairs(pools: Sequence[np.ndarray], per_type: int, seed: int = 0) -> list[tuple[int, int, int]]:
    """``per_type`` random (pair type, item a, item b) per pair type, items drawn from ``pools`` (item indices
    per class); the two items of a same pair are different items."""
    rng = np.random.default_rng(seed)
    pairs = []
    for kind, (first, second) in enumerate(pair_types()):
        for _ in range(per_type):
            a = int(rng.choice(pools[first]))
            b = int(rng.choice(pools[second][pools[second] != a]))
            pairs.append((kind, a, b))
    return pairs


def pair_accuracy(
    model: nn.Module, items: torch.Tensor, pools: Sequence[np.ndarray], centre_a: tuple[int, int],
    centre_b: tuple[int, int], per_type: int = 25, seed: int = 0, task: SameDifferentTask = DEFAULT_TASK,
) -> PairAccuracy:
    """Accuracy over ``per_type`` x 4 test-item pairs (``draw_pairs``) of ``items`` (M, s, s) placed at the two
    centres: one pair can look right by luck, many pairs show whether the model tells same from different there."""
    pairs = draw_pairs(pools, per_type, seed)
    canvases = torch.stack([place_pair(items[a], items[b], centre_a, centre_b, task) for _, a, b in pairs])
    said_same = same_probability(model, canvases) > 0.5
    types = pair_types(task)
    right = [bool(said_same[i]) == (types[kind][0] == types[kind][1]) for i, (kind, _, _) in enumerate(pairs)]
    names = [pair_name(kind, task) for kind in types]
    by_type = {name: 100.0 * mean(r for (kind, _, _), r in zip(pairs, right) if kind == index)
               for index, name in enumerate(names)}
    return PairAccuracy(sum(right), len(right), by_type)


def pair_name(kind: tuple[int, int], task: SameDifferentTask = DEFAULT_TASK) -> str:
    """``"Trouser+Bag"`` for a pair type."""
    return "+".join(FASHION_MNIST_CLASSES[task.item_classes[k]] for k in kind)


def sweep_accuracy(
    model: nn.Module, items: torch.Tensor, pools: Sequence[np.ndarray], centre_a: tuple[int, int],
    direction: tuple[int, int], distances: Sequence[int], per_type: int = 15, seed: int = 0,
    task: SameDifferentTask = DEFAULT_TASK,
) -> list[tuple[int, PairAccuracy]]:
    """``pair_accuracy`` at each distance along ``direction`` that keeps the second item on the canvas, the same
    pairs at every distance."""
    centres = sweep_positions(centre_a, direction, distances, task)
    return [(max(abs(c[0] - centre_a[0]), abs(c[1] - centre_a[1])),
             pair_accuracy(model, items, pools, centre_a, c, per_type, seed, task)) for c in centres]


def sweep_limit(centre_a: tuple[int, int], direction: tuple[int, int], task: SameDifferentTask = DEFAULT_TASK) -> int:
    """The largest distance a sweep from ``centre_a`` along ``direction`` reaches before item b leaves the canvas."""
    largest = task.canvas_size - task.item_size
    kept = sweep_positions(centre_a, direction, range(largest + 1), task)
    return max((max(abs(c[0] - centre_a[0]), abs(c[1] - centre_a[1])) for c in kept), default=0)
