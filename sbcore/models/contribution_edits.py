"""Where a block's global context can be replaced without touching the model: the hook interventions use.

A bottleneck adds global context in two places: its spatial-bias maps (B, N, H', W'), upsampled and concatenated
to the 3x3 conv output, and its non-local block's residual term BN(W_z y) (B, C, H, W), added to the block's output.
Both pass through ``edited`` before they are used. Inside ``editing_contributions({(block, kind): edit})`` the
edit function receives what the block computed and returns what the block uses instead; everywhere else (other
threads, other contexts, code outside the ``with``) the block uses what it computed. The edits live in a
``ContextVar``, not on the modules, so one shared model serves intact and edited forward passes at the same time,
and nothing is left behind when the ``with`` exits, by an error or not.
"""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Iterator, Literal, Mapping

import torch
from torch import nn

ContributionKind = Literal["spatial_bias", "non_local"]
ContributionEdit = Callable[[torch.Tensor], torch.Tensor]  # what the block computed -> what it uses
EditKey = tuple[nn.Module, ContributionKind]

_EDITS: ContextVar[Mapping[EditKey, ContributionEdit] | None] = ContextVar("contribution_edits", default=None)


@contextmanager
def editing_contributions(edits: Mapping[EditKey, ContributionEdit]) -> Iterator[None]:
    """Apply ``edits`` to the blocks' contributions in this context, on top of any edits already active."""
    token = _EDITS.set({**(_EDITS.get() or {}), **edits})
    try:
        yield
    finally:
        _EDITS.reset(token)


def edited(block: nn.Module, kind: ContributionKind, computed: torch.Tensor) -> torch.Tensor:
    """What ``block`` uses as its ``kind`` contribution: ``computed``, or its edit in this context."""
    edits = _EDITS.get()
    edit = edits.get((block, kind)) if edits else None
    return computed if edit is None else edit(computed)
