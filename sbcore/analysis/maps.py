"""Spatial-bias maps of every SB block, non-local attention for a query, and a step-through of one branch."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from sbcore.analysis.predict import Prediction, top_predictions
from sbcore.analysis.structure import check_single_image, eval_mode, forward_to_block, spatial_bias_blocks
from sbcore.errors import SBCoreError
from sbcore.layers import upsample_maps


@dataclass
class BlockMaps:
    """The N spatial-bias maps of one block."""

    name: str
    raw: np.ndarray  # (N, R, R) as the branch computes them
    upsampled: np.ndarray  # (N, H, W) bilinearly resized to the input image
    stats: list[dict[str, float]]  # per map: min, max, mean of the raw map


@dataclass
class MapsResult:
    """Everything one forward pass shows about an image."""

    predictions: list[Prediction]
    spatial_bias: dict[str, BlockMaps]  # block name -> maps
    attention: dict[str, np.ndarray]  # non-local block -> (H, W) at the input size, sums to 1


@dataclass
class BranchStep:
    """One stage of a spatial-bias branch for the step-through."""

    title: str
    shape: tuple[int, ...]  # (channels, h, w)
    maps: np.ndarray  # (channels, h, w) float32
    explanation: str  # one plain-language sentence


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().float().cpu().numpy()


def _block_maps(name: str, raw: torch.Tensor, size: tuple[int, int]) -> BlockMaps:
    """(N, R, R) raw maps -> BlockMaps with maps resized to ``size``."""
    raw = raw.float()
    stats = [{"min": float(m.min()), "max": float(m.max()), "mean": float(m.mean())} for m in raw]
    return BlockMaps(name, _numpy(raw), _numpy(upsample_maps(raw[None], size)[0]), stats)


def _attention_on_input(attention: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """(Hk, Wk) attention of one query -> (H, W) over input pixels, still a distribution (sums to 1)."""
    resized = upsample_maps(attention.float()[None, None], size)[0, 0].clamp_(min=0)
    return _numpy(resized / resized.sum())


@torch.no_grad()
def spatial_bias_maps(
    model: nn.Module, x: torch.Tensor, query: tuple[float, float] = (0.5, 0.5), top_k: int = 5
) -> MapsResult:
    """Predictions, every SB block's maps and every NL block's attention for one image, in one forward pass.

    Args:
        x: (1, C, H, W) preprocessed image.
        query: (row, column) in [0, 1] of the position whose non-local attention is returned.
    """
    check_single_image(x)
    if not all(0.0 <= q <= 1.0 for q in query):
        raise SBCoreError(f"The query position {query} must lie in [0, 1] x [0, 1].")
    with eval_mode(model):
        out = model.forward_intermediates(x, query)
    size = tuple(x.shape[-2:])
    return MapsResult(
        predictions=top_predictions(model, out.logits, top_k),
        spatial_bias={name: _block_maps(name, maps[0], size) for name, maps in out.spatial_bias.items()},
        attention={name: _attention_on_input(att[0], size) for name, att in out.attention.items()},
    )


@torch.no_grad()
def maps_as_used(model: nn.Module, x: torch.Tensor) -> dict[str, np.ndarray]:
    """Every spatial-bias block's maps as the block concatenated them, resized to the input: (N, H, W) per block.

    Unlike ``spatial_bias_maps`` (the branch's raw R x R maps, upsampled), these follow an active intervention
    (``sbcore.analysis.interventions``): a switched-off block shows its replacement.
    """
    check_single_image(x)
    with eval_mode(model):
        used = model.forward_intermediates(x).spatial_bias_upsampled
    size = tuple(x.shape[-2:])
    return {name: _numpy(upsample_maps(maps.float(), size)[0]) for name, maps in used.items()}


def check_spatial_bias_block(model: nn.Module, block: str) -> None:
    """Raise SBCoreError listing the valid blocks unless ``block`` has a spatial-bias branch."""
    if block not in spatial_bias_blocks(model):
        available = ", ".join(spatial_bias_blocks(model)) or "none (this model has no spatial bias)"
        raise SBCoreError(f"Block {block!r} has no spatial-bias branch; blocks with one: {available}.")


@torch.no_grad()
def spatial_bias_steps(model: nn.Module, x: torch.Tensor, block: str) -> list[BranchStep]:
    """The tensors inside one block's spatial-bias branch for one image (1, C, H, W), in order:
    branch input, channel reduction, pooling, 1D convolution over the grid, upsampling."""
    check_single_image(x)
    check_spatial_bias_block(model, block)
    with eval_mode(model):
        module, features = forward_to_block(model, x, block)
        branch_input = module.spatial_bias_input(features)
        output_size = tuple(module.conv2(branch_input).shape[-2:])
        steps = module.spatial_bias.steps(branch_input, output_size)
    c, h, w = branch_input.shape[1:]
    k, r = steps.pooled.shape[1], steps.pooled.shape[-1]
    n = steps.mixed.shape[1]
    described = [
        ("Branch input", branch_input,
         f"The block's features after its first 1x1 convolution: {c} channels of {h}x{w}; the branch starts here."),
        ("Channel reduction", steps.reduced,
         f"A 1x1 convolution squeezes the {c} channels into {k}, which keeps the branch cheap."),
        ("Pooling", steps.pooled,
         f"Average pooling shrinks each of the {k} channels to a {r}x{r} grid; each cell sums up one region."),
        ("1D convolution", steps.mixed,
         f"The {r * r} grid cells act as the channels of a 1D convolution, so each of the {n} output maps mixes "
         "every region of the image with every other: global context without attention."),
        ("Upsampling", steps.upsampled,
         f"The {n} maps are stretched to {output_size[0]}x{output_size[1]} and stacked onto the block's "
         "3x3 convolution output, where the next 1x1 convolution combines them with the local features."),
    ]
    return [BranchStep(title, tuple(t.shape[1:]), _numpy(t[0]), text) for title, t, text in described]
