"""PNG figures of the analysis results for the command line (matplotlib, no pyplot state)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from sbcore.analysis.attribution import ATTRIBUTION_METHODS, Attribution
from sbcore.analysis.erf import ERFResult, radial_profile
from sbcore.analysis.maps import BranchStep, MapsResult
from sbcore.analysis.throughput import ThroughputRow
from sbcore.output_files import replacing

PANEL_INCHES = 2.2


def _grid(rows: int, cols: int) -> tuple[Figure, np.ndarray]:
    figure = Figure(figsize=(PANEL_INCHES * cols, PANEL_INCHES * rows), layout="constrained")
    axes = np.atleast_2d(figure.subplots(rows, cols, squeeze=False))
    for ax in axes.flat:
        ax.set_axis_off()
    return figure, axes


def _show_image(ax, view: np.ndarray) -> None:
    ax.imshow(view, cmap="gray" if view.ndim == 2 else None, vmin=0, vmax=255)


def save(figure: Figure, path: Path) -> Path:
    """Write a figure as PNG (completely or not at all) and return its path."""
    with replacing(path) as temporary:
        figure.savefig(temporary, dpi=110, format="png")
    return path


def maps_figure(view: np.ndarray, result: MapsResult) -> Figure:
    """One row per spatial-bias block: the input, then its N maps at input size (shared colour scale per block)."""
    blocks = list(result.spatial_bias.values())
    num_maps = max((b.upsampled.shape[0] for b in blocks), default=0)
    figure, axes = _grid(max(len(blocks), 1), num_maps + 1)
    top = result.predictions[0]
    figure.suptitle(f"spatial-bias maps; prediction: {top.label} ({top.probability:.0%})")
    for row, block in enumerate(blocks):
        _show_image(axes[row, 0], view)
        axes[row, 0].set_title(block.name, fontsize=8)
        low, high = block.upsampled.min(), block.upsampled.max()
        for col, single in enumerate(block.upsampled, start=1):
            axes[row, col].imshow(single, cmap="viridis", vmin=low, vmax=high)
            axes[row, col].set_title(f"map {col}", fontsize=8)
    return figure


def attention_figure(view: np.ndarray, result: MapsResult, query: tuple[float, float]) -> Figure:
    """Each non-local block's attention for the query position (cross), over the input."""
    figure, axes = _grid(1, len(result.attention))
    height, width = view.shape[:2]
    for ax, (name, attention) in zip(axes[0], result.attention.items()):
        _show_image(ax, view)
        ax.imshow(attention, cmap="inferno", alpha=0.6)
        ax.plot(query[1] * (width - 1), query[0] * (height - 1), marker="+", color="cyan", markersize=12)
        ax.set_title(name, fontsize=8)
    return figure


def steps_figure(steps: Sequence[BranchStep], max_channels: int = 5) -> Figure:
    """One row per branch step, up to ``max_channels`` channels each, titled with the tensor shape."""
    figure, axes = _grid(len(steps), max_channels)
    for row, step in enumerate(steps):
        for col, channel in enumerate(step.maps[:max_channels]):
            axes[row, col].imshow(channel, cmap="viridis")
        axes[row, 0].set_title(f"{step.title} {tuple(step.shape)}", fontsize=8, loc="left")
    return figure


def attribution_figure(view: np.ndarray, attributions: Sequence[Attribution], labels: Sequence[str]) -> Figure:
    """The input, then each method's heatmap over it on the common [0, 1] scale."""
    figure, axes = _grid(1, len(attributions) + 1)
    _show_image(axes[0, 0], view)
    axes[0, 0].set_title("input", fontsize=8)
    for ax, attribution, label in zip(axes[0, 1:], attributions, labels):
        _show_image(ax, view)
        ax.imshow(attribution.heatmap, cmap="inferno", vmin=0, vmax=1, alpha=0.65)
        ax.set_title(f"{ATTRIBUTION_METHODS[attribution.method]}\n{label}", fontsize=8)
    return figure


def erf_figure(result: ERFResult) -> Figure:
    """Log-scaled ERF with the theoretical receptive field drawn as a square, and its radial profile."""
    figure = Figure(figsize=(8, 3.6), layout="constrained")
    map_ax, profile_ax = figure.subplots(1, 2)
    image = map_ax.imshow(result.log_scaled, cmap="RdYlGn_r", vmin=0, vmax=1)
    half = (result.receptive_field - 1) / 2
    row, col = result.centre
    map_ax.add_patch(Rectangle((col - half - 0.5, row - half - 0.5), result.receptive_field, result.receptive_field,
                               fill=False, edgecolor="white", linestyle="--", linewidth=1))
    map_ax.set_title(f"ERF of {result.stage} over {result.num_images} images (log scale)", fontsize=9)
    map_ax.set_axis_off()
    figure.colorbar(image, ax=map_ax, shrink=0.8)
    radii, values = radial_profile(result.contribution, (int(round(row)), int(round(col))))
    profile_ax.semilogy(radii, np.maximum(values, 1e-12))
    profile_ax.axvline(half, color="gray", linestyle="--", label="theoretical RF (half side)")
    profile_ax.set_xlabel("distance from centre (px)")
    profile_ax.set_ylabel("mean contribution (sum of |gradient|)")
    profile_ax.legend(fontsize=8)
    return figure


def throughput_figure(rows: Sequence[ThroughputRow]) -> Figure:
    """img/s per model, one bar group per batch size."""
    figure = Figure(figsize=(7, 3.6), layout="constrained")
    ax = figure.subplots()
    models = list(dict.fromkeys(r.model for r in rows))
    batches = list(dict.fromkeys(r.batch_size for r in rows))
    width = 0.8 / len(models)
    for index, model in enumerate(models):
        speeds = {r.batch_size: r.img_per_s or 0.0 for r in rows if r.model == model}
        ax.bar(np.arange(len(batches)) + index * width, [speeds.get(b, 0.0) for b in batches], width, label=model)
    ax.set_xticks(np.arange(len(batches)) + 0.4 - width / 2, [f"batch {b}" for b in batches])
    ax.set_ylabel("img/s")
    ax.legend(fontsize=8)
    return figure
