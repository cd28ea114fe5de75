"""Effective receptive field (Luo et al., NeurIPS 2016; RepLKNet's ERF analysis, CVPR 2022).

The ERF of a stage is how strongly each input pixel moves the stage's centre output: the
gradient of the centre position (summed over channels) with respect to the input, in absolute
value, accumulated over many images. The theoretical receptive field bounds where it can be
non-zero for a pure convolutional network; global branches (spatial bias, non-local) reach past it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

from sbcore.analysis.structure import check_stage, eval_mode, forward_to_stage, stage_names
from sbcore.errors import SBCoreError
from sbcore.layers import NonLocal2d, SpatialBias

AREA_THRESHOLDS = (0.2, 0.3, 0.5, 0.99)
_LOCAL_LAYERS = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)


@dataclass
class ERFResult:
    """The effective receptive field of one stage over a set of images."""

    stage: str
    contribution: np.ndarray  # (H, W) sum over images of |d centre / d input|, summed over input channels
    log_scaled: np.ndarray  # (H, W) log1p of the mean contribution, divided by its maximum: [0, 1]
    area_ratios: dict[float, float]  # t -> area fraction of the smallest centred square holding t of log_scaled
    outside_rf_share: float  # share of the contribution outside the theoretical receptive field
    receptive_field: int  # theoretical receptive field side, pixels
    num_images: int
    centre: tuple[float, float] = (0.0, 0.0)  # input pixel (row, col) under the centre output position


@dataclass(frozen=True)
class _Geometry:
    size: int  # receptive field side, pixels
    jump: int  # input pixels between neighbouring output positions
    start: float  # input coordinate of output position 0's receptive field centre


def _local_layers(module: nn.Module) -> Iterator[nn.Module]:
    """Convolutions and pools along a module's main path in registration (= forward) order.

    Shortcut convolutions (``downsample``) run in parallel with the main path and see no further;
    spatial-bias and non-local branches are global and have no finite receptive field.
    """
    if isinstance(module, _LOCAL_LAYERS):
        yield module
        return
    for name, child in module.named_children():
        if name != "downsample" and not isinstance(child, (SpatialBias, NonLocal2d)):
            yield from _local_layers(child)


def _pair_first(value: int | tuple[int, ...]) -> int:
    return value[0] if isinstance(value, tuple) else int(value)


def _geometry(model: nn.Module, stage: str) -> _Geometry:
    check_stage(model, stage)
    size, jump, start = 1, 1, 0.0
    for name, child in model.named_children():
        for layer in _local_layers(child):
            kernel, stride = _pair_first(layer.kernel_size), _pair_first(layer.stride)
            dilation = _pair_first(getattr(layer, "dilation", 1))
            padding = _pair_first(layer.padding)
            size += (kernel - 1) * dilation * jump
            start += ((kernel - 1) / 2 * dilation - padding) * jump
            jump *= stride
        if name == stage:
            return _Geometry(size, jump, start)
    raise AssertionError("unreachable: check_stage accepted the stage")


def theoretical_receptive_field(model: nn.Module, stage: str) -> int:
    """Side in pixels of the input square that one output position of ``stage`` can see through
    its convolutions and pools (global branches ignored)."""
    return _geometry(model, stage).size


def stage_receptive_fields(model: nn.Module) -> dict[str, int]:
    """``{"layer1": 19, ...}``: the theoretical receptive field side (pixels) of every stage's conv path,
    in forward order. Spatial-bias and non-local branches see the whole input on top of it."""
    return {stage: theoretical_receptive_field(model, stage) for stage in stage_names(model)}


def noise_images(count: int, input_size: tuple[int, int, int], seed: int = 0) -> torch.Tensor:
    """(count, C, H, W) standard normal images: the spread of normalised inputs, with no content."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(count, *input_size, generator=generator)


def _centred_square_shares(values: np.ndarray, centre: tuple[int, int]) -> list[tuple[float, float]]:
    """[(area ratio, share of the total)] for centred squares of side 1, 3, 5, ... until the whole map."""
    height, width = values.shape
    table = np.zeros((height + 1, width + 1))
    table[1:, 1:] = values.cumsum(0).cumsum(1)
    total = table[-1, -1]
    row, col = centre
    shares = []
    for half in range(max(height, width)):
        top, bottom = max(row - half, 0), min(row + half + 1, height)
        left, right = max(col - half, 0), min(col + half + 1, width)
        box = table[bottom, right] - table[top, right] - table[bottom, left] + table[top, left]
        shares.append(((bottom - top) * (right - left) / (height * width), box / total if total > 0 else 0.0))
    return shares


def _area_ratios(values: np.ndarray, centre: tuple[int, int]) -> dict[float, float]:
    """RepLKNet's high-contribution area ratio: for each t, the smallest centred square holding share t."""
    shares = _centred_square_shares(values, centre)
    return {t: next((area for area, share in shares if share >= t), 1.0) for t in AREA_THRESHOLDS}


def _outside_share(contribution: np.ndarray, centre: tuple[float, float], size: int) -> float:
    rows, cols = np.indices(contribution.shape)
    inside = (np.abs(rows - centre[0]) <= (size - 1) / 2) & (np.abs(cols - centre[1]) <= (size - 1) / 2)
    total = contribution.sum()
    return float(contribution[~inside].sum() / total) if total > 0 else 0.0


def effective_receptive_field(
    model: nn.Module,
    images: torch.Tensor,
    stage: str,
    progress: Callable[[int, int], None] | None = None,
    batch_size: int = 8,
) -> ERFResult:
    """The ERF of ``stage`` over ``images`` (B, C, H, W), in eval mode, ``batch_size`` images per pass.

    Area ratios follow RepLKNet: they are computed on ``log_scaled`` with squares centred on the
    input pixel under the centre output position. ``progress(done, total)`` is called per batch.
    """
    if images.ndim != 4 or images.shape[0] == 0:
        raise SBCoreError(f"Expected a non-empty (B, C, H, W) batch of images, got shape {tuple(images.shape)}.")
    check_stage(model, stage)
    device = next(model.parameters()).device
    contribution = torch.zeros(images.shape[-2:], dtype=torch.float64)
    output_size = (1, 1)
    with eval_mode(model):
        for done, chunk in zip(range(0, len(images), batch_size), images.split(batch_size)):
            x = chunk.to(device).detach().requires_grad_(True)
            out = forward_to_stage(model, x, stage)
            output_size = out.shape[-2:]
            centre_value = out[:, :, output_size[0] // 2, output_size[1] // 2].sum()
            (grad,) = torch.autograd.grad(centre_value, x)
            contribution += grad.abs().sum(dim=(0, 1)).double().cpu()
            if progress:
                progress(done + len(chunk), len(images))
    geometry = _geometry(model, stage)
    centre = tuple(geometry.start + (n // 2) * geometry.jump for n in output_size)
    contribution_np = contribution.numpy()
    log_scaled = np.log1p(contribution_np / len(images))
    log_scaled = log_scaled / log_scaled.max() if log_scaled.max() > 0 else log_scaled
    pixel = tuple(int(round(c)) for c in centre)
    return ERFResult(
        stage=stage,
        contribution=contribution_np,
        log_scaled=log_scaled,
        area_ratios=_area_ratios(log_scaled, pixel),
        outside_rf_share=_outside_share(contribution_np, centre, geometry.size),
        receptive_field=geometry.size,
        num_images=len(images),
        centre=centre,
    )


def radial_profile(
    contribution: np.ndarray, centre: tuple[float, float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(radii in pixels 0, 1, 2, ..., mean contribution at that rounded distance from ``centre``).

    ``centre`` defaults to (H // 2, W // 2), the centre pixel of sbcore ResNets' ERF.
    """
    height, width = contribution.shape
    row, col = centre if centre is not None else (height // 2, width // 2)
    rows, cols = np.indices(contribution.shape)
    distance = np.rint(np.hypot(rows - row, cols - col)).astype(int).ravel()
    sums = np.bincount(distance, weights=contribution.ravel())
    counts = np.bincount(distance)
    radii = np.nonzero(counts)[0]
    return radii.astype(float), sums[radii] / counts[radii]
