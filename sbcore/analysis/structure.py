"""Named parts of an sbcore ResNet (stages, spatial-bias and non-local blocks) and partial forwards."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

from sbcore.errors import SBCoreError


def _stages(model: nn.Module) -> list[tuple[str, nn.Sequential]]:
    if not hasattr(model, "stages") or not hasattr(model, "forward_stem"):
        raise SBCoreError(f"{type(model).__name__} is not an sbcore ResNet; the analysis tools need one.")
    return model.stages()


def named_blocks(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """(``"layer2.3"``, block) for every block, in forward order."""
    for stage_name, stage in _stages(model):
        for index, block in enumerate(stage):
            yield f"{stage_name}.{index}", block


def stage_names(model: nn.Module) -> list[str]:
    """``["layer1", "layer2", ...]`` in forward order."""
    return [name for name, _ in _stages(model)]


def spatial_bias_blocks(model: nn.Module) -> list[str]:
    """Names (``"layer2.3"``) of the blocks that carry a spatial-bias branch."""
    return [name for name, block in named_blocks(model) if getattr(block, "spatial_bias", None) is not None]


def non_local_blocks(model: nn.Module) -> list[str]:
    """Names of the blocks followed by a non-local block."""
    return [name for name, block in named_blocks(model) if getattr(block, "non_local", None) is not None]


def check_stage(model: nn.Module, stage: str) -> None:
    """Raise SBCoreError listing the valid stages when ``stage`` is not one of them."""
    names = stage_names(model)
    if stage not in names:
        raise SBCoreError(f"Unknown stage {stage!r}; this model has {', '.join(names)}.")


def forward_to_stage(model: nn.Module, x: torch.Tensor, stage: str) -> torch.Tensor:
    """(B, C, H, W) input -> output of ``stage`` (B, C', h, w), running nothing after it."""
    check_stage(model, stage)
    x = model.forward_stem(x)
    for name, module in _stages(model):
        x = module(x)
        if name == stage:
            return x
    raise AssertionError("unreachable: check_stage accepted the stage")


def forward_to_block(model: nn.Module, x: torch.Tensor, block: str) -> tuple[nn.Module, torch.Tensor]:
    """(the block module, its input features) for a block name such as ``"layer2.3"``."""
    names = [name for name, _ in named_blocks(model)]
    if block not in names:
        raise SBCoreError(f"Unknown block {block!r}; blocks are {names[0]} ... {names[-1]}.")
    x = model.forward_stem(x)
    for name, module in named_blocks(model):
        if name == block:
            return module, x
        x = module(x)
    raise AssertionError("unreachable: the block name was checked")


def check_single_image(x: torch.Tensor) -> None:
    """Raise SBCoreError unless ``x`` is one image batch (1, C, H, W)."""
    if x.ndim != 4 or x.shape[0] != 1:
        raise SBCoreError(f"Expected one image as a (1, C, H, W) tensor, got shape {tuple(x.shape)}.")


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Run in eval mode (BatchNorm uses its running statistics), restoring the previous mode after."""
    was_training = model.training
    if was_training:
        model.eval()
    try:
        yield model
    finally:
        if was_training:
            model.train()
