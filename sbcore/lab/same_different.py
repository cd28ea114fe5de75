"""Same-different at a distance: a long-range task built on the fly from Fashion-MNIST items.

A canvas holds two items; the label says whether they are of the same class (Kim, Ricci & Serre
2018, "Not-So-CLEVR"). The distance between them is the larger of |dx| and |dy| between the item
centres (Chebyshev distance, pixels). With square receptive fields this makes the reach argument
exact: two items of side s whose centres are d >= r + s - 1 apart never fall, even in part, into
one window of side r. Beyond that distance a network whose units see at most r pixels, followed by
global average pooling and a linear head, computes ``g(a) + g(b)`` from separately seen items, and
no such sum separates "same" from "different" (add the two same pairs of two classes and the two
mixed pairs: the sums are equal), so at most three of the four pair types can be right there: such a
network is bounded at 75%, not at chance (``sbcore.lab.readout`` shows a read-out that reaches it).

Every sample is a pure function of (seed, split, index): no state, nothing written to disk,
identical in every DataLoader worker and DDP rank. Training and validation canvases use
Fashion-MNIST training items, test canvases its test items.
"""
from __future__ import annotations

from dataclasses import dataclass
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from sbcore.models.metadata import Preprocessing

LABELS = ("different", "same")  # class 1 is "same": P(same) is the softmax's second entry
SPLIT_CODES = {"train": 0, "test": 1}


@dataclass(frozen=True)
class SameDifferentTask:
    """Canvas geometry, item classes and distance bins of the task (pixels).

    Distances are Chebyshev distances between item centres, drawn uniformly within a bin, bins
    visited in turn so every split is stratified over them. ``bin_edges`` must start at
    ``item_size`` or more (items never overlap) and end at ``canvas_size - item_size`` or less
    (both items fit).
    """

    canvas_size: int = 128
    item_size: int = 20
    item_classes: tuple[int, ...] = (1, 8)  # Fashion-MNIST Trouser and Bag
    bin_edges: tuple[int, ...] = (20, 38, 56, 75, 94, 109)  # 5 bins: [20, 38), ..., [94, 109)
    mean: float = 0.0142  # pixel statistics of 2,000 generated training canvases
    std: float = 0.0969

    def __post_init__(self) -> None:
        if self.bin_edges[0] < self.item_size or self.bin_edges[-1] - 1 > self.canvas_size - self.item_size:
            raise ValueError(
                f"distances {self.bin_edges[0]}-{self.bin_edges[-1] - 1} px do not fit items of {self.item_size} px "
                f"on a {self.canvas_size} px canvas without overlap"
            )
        if list(self.bin_edges) != sorted(set(self.bin_edges)):
            raise ValueError(f"bin_edges must increase strictly, got {self.bin_edges}")

    @property
    def num_bins(self) -> int:
        return len(self.bin_edges) - 1

    @property
    def bin_names(self) -> list[str]:
        """``"20-33"``: the integer distances each bin holds, both ends included."""
        return [f"{lo}-{hi - 1}" for lo, hi in zip(self.bin_edges[:-1], self.bin_edges[1:])]

    @property
    def bin_centres(self) -> list[float]:
        """The middle distance (px) of each bin, both ends included."""
        return [(low + high - 1) / 2 for low, high in zip(self.bin_edges[:-1], self.bin_edges[1:])]

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing(
            input_size=(1, self.canvas_size, self.canvas_size), mean=(self.mean,), std=(self.std,),
            crop_pct=1.0, dark_background=True,
        )

    def distance_bin(self, distance: float) -> int:
        """Index of the bin holding ``distance``; -1 outside all bins."""
        index = int(np.searchsorted(self.bin_edges, distance, side="right")) - 1
        return index if 0 <= index < self.num_bins else -1


DEFAULT_TASK = SameDifferentTask()


@dataclass(frozen=True)
class Placement:
    """One sample's recipe: item classes, item indices (rows of ``SameDifferentCanvases.items``) and
    top-left corners (row, col)."""

    label: int
    classes: tuple[int, int]
    items: tuple[int, int]
    corners: tuple[tuple[int, int], tuple[int, int]]
    distance: int
    distance_bin: int


def prepare_items(images: np.ndarray | torch.Tensor, item_size: int) -> torch.Tensor:
    """(N, H, W) uint8 or [0, 1] float images -> (N, item_size, item_size) float in [0, 1], light on dark,
    resized with antialiased bilinear interpolation."""
    items = torch.as_tensor(np.asarray(images))
    items = items.float() / 255 if items.dtype == torch.uint8 else items.float()
    if tuple(items.shape[-2:]) != (item_size, item_size):
        items = F.interpolate(items[:, None], size=(item_size, item_size), mode="bilinear", antialias=True)[:, 0]
    return items.clamp(0, 1)


def pair_corners(
    distance: int, rng: np.random.Generator, canvas_size: int, item_size: int
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Top-left corners (row, col) of two items whose centres lie exactly ``distance`` px apart
    (Chebyshev), uniformly over the axis that attains it, its sign, the other axis's offset and the
    pair's position on the canvas."""
    room = canvas_size - item_size  # largest corner coordinate
    major = distance * (1 if rng.random() < 0.5 else -1)
    minor = int(rng.integers(-min(distance, room), min(distance, room) + 1))
    d_row, d_col = (major, minor) if rng.random() < 0.5 else (minor, major)
    row = int(rng.integers(max(0, -d_row), room - max(0, d_row) + 1))
    col = int(rng.integers(max(0, -d_col), room - max(0, d_col) + 1))
    return (row, col), (row + d_row, col + d_col)


def compose_canvas(
    item_a: torch.Tensor, item_b: torch.Tensor, corner_a: tuple[int, int], corner_b: tuple[int, int], canvas_size: int
) -> torch.Tensor:
    """Paste two (h, w) items in [0, 1] on a black (canvas_size, canvas_size) canvas at their top-left
    corners (row, col); where they overlap the brighter pixel wins. Items may hang over the edge."""
    canvas = torch.zeros(canvas_size, canvas_size)
    for item, (row, col) in ((item_a, corner_a), (item_b, corner_b)):
        h, w = item.shape
        r0, c0, r1, c1 = max(row, 0), max(col, 0), min(row + h, canvas_size), min(col + w, canvas_size)
        if r0 < r1 and c0 < c1:
            patch = item[r0 - row : r1 - row, c0 - col : c1 - col]
            canvas[r0:r1, c0:c1] = torch.maximum(canvas[r0:r1, c0:c1], patch)
    return canvas


def centre_distance(corner_a: tuple[int, int], corner_b: tuple[int, int]) -> int:
    """Chebyshev distance between the centres of two equal-sized items given their corners, pixels."""
    return max(abs(corner_a[0] - corner_b[0]), abs(corner_a[1] - corner_b[1]))


class SameDifferentCanvases(Dataset):
    """``length`` canvases of the same-different task: (1, S, S) normalised tensor and label 1 = same.

    Sample ``i`` has label ``i % 2`` and distance bin ``(i // 2) % num_bins``, so any run of
    ``2 * num_bins`` consecutive indices is balanced over labels and bins; everything else (classes,
    item instances, exact distance, placement) comes from a generator seeded with (seed, split, i).

    Args:
        images: (N, H, W) uint8 item pool (Fashion-MNIST training or test images).
        targets: (N,) class of every pool image.
        length: number of canvases.
        split: ``"train"`` or ``"test"`` (part of the seed, so the two never share a placement).
        seed: task seed.
        task: geometry, classes and bins.
    """

    def __init__(
        self, images: np.ndarray, targets: np.ndarray, length: int, split: str, seed: int = 0,
        task: SameDifferentTask = DEFAULT_TASK,
    ) -> None:
        if split not in SPLIT_CODES:
            raise ValueError(f"split must be one of {sorted(SPLIT_CODES)}, got {split!r}")
        self.task, self.length, self.split, self.seed = task, length, split, seed
        targets = np.asarray(targets)
        by_class = [np.flatnonzero(targets == c) for c in task.item_classes]
        if any(len(p) < 2 for p in by_class):
            raise ValueError(f"every item class needs two or more images, got {[len(p) for p in by_class]}")
        self.source_index = np.concatenate(by_class)  # item -> index of its image in the pool given
        self.items = prepare_items(np.asarray(images)[self.source_index], task.item_size)  # (M, s, s)
        bounds = np.cumsum([0, *map(len, by_class)])
        self.pools = [np.arange(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:])]  # item indices per class

    def __len__(self) -> int:
        return self.length

    def placement(self, index: int) -> Placement:
        """The recipe of sample ``index`` (cheap: no pixels are drawn)."""
        if not 0 <= index < self.length:
            raise IndexError(f"sample {index} is outside 0..{self.length - 1}")
        task = self.task
        rng = np.random.default_rng([self.seed, SPLIT_CODES[self.split], index])
        label, bin_index = index % 2, (index // 2) % task.num_bins
        distance = int(rng.integers(task.bin_edges[bin_index], task.bin_edges[bin_index + 1]))
        first = int(rng.integers(len(task.item_classes)))
        second = first if label else (first + 1 + int(rng.integers(len(task.item_classes) - 1))) % len(task.item_classes)
        pool_a, pool_b = self.pools[first], self.pools[second]
        item_a = int(pool_a[rng.integers(len(pool_a))])
        if label:  # a same pair shows two different garments, never one image twice
            item_b = int(pool_b[rng.integers(len(pool_b) - 1)])
            item_b = int(pool_b[-1]) if item_b == item_a else item_b
        else:
            item_b = int(pool_b[rng.integers(len(pool_b))])
        corners = pair_corners(distance, rng, task.canvas_size, task.item_size)
        classes = (task.item_classes[first], task.item_classes[second])
        return Placement(label, classes, (item_a, item_b), corners, distance, bin_index)

    def canvas(self, index: int) -> torch.Tensor:
        """(S, S) canvas of sample ``index`` in [0, 1], before normalisation."""
        p = self.placement(index)
        return compose_canvas(self.items[p.items[0]], self.items[p.items[1]], *p.corners, self.task.canvas_size)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        canvas = (self.canvas(index) - self.task.mean) / self.task.std
        return canvas[None], self.placement(index).label

    def indices_in_bins(self, bins: set[int]) -> list[int]:
        """Indices of the samples whose distance bin is in ``bins``, in order (a tenth of the samples per bin)."""
        return [i for i, b in enumerate(self.sample_groups()[0]) if b in bins]

    def sample_groups(self) -> tuple[list[int], list[str]]:
        """Distance bin of every sample, in index order, and the bins' names (``"distance 20-37 px"``)."""
        bins = [(i // 2) % self.task.num_bins for i in range(self.length)]
        return bins, [f"distance {name} px" for name in self.task.bin_names]
