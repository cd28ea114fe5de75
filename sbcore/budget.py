"""Memory budget: the largest tensor a forward pass would create, found before running it.

A non-local block without subsampling holds an (H*W) x (H*W) affinity per image, so its memory
grows with the fourth power of the input side: a CIFAR-style nl_resnet38 needs 600 MB at 224 px
and 16 GB at 512 px. ``largest_tensor_bytes`` runs the model once on the meta device (shapes
only, no memory, no arithmetic) and records the size of every tensor it creates, so a command
can refuse a setting with one sentence instead of exhausting the machine.
"""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from sbcore.errors import SBCoreError

MAX_TENSOR_BYTES = 128 * 2**20  # the largest single tensor one command may create (peak use is a few times this)
MAX_BACKWARD_BYTES = 512 * 2**20  # every tensor of one forward pass together: what a backward pass may keep alive


class MemoryBudgetError(SBCoreError):
    """A setting would need more memory than the budget allows; the message says how much."""


class _TensorSizes(TorchDispatchMode):
    """Records the byte size of the largest tensor any operation returns, and of all of them together."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes = 0
        self.total = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for tensor in tree_leaves(out):
            if isinstance(tensor, torch.Tensor):
                size = tensor.numel() * tensor.element_size()
                self.bytes, self.total = max(self.bytes, size), self.total + size
        return out


def _meta_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose parameters and buffers are meta tensors: no data is copied, and the original,
    which other threads may be running, is never touched."""
    memo: dict[int, torch.Tensor] = {}
    for parameter in model.parameters():
        memo[id(parameter)] = nn.Parameter(torch.empty_like(parameter, device="meta"), parameter.requires_grad)
    for buffer in model.buffers():
        memo[id(buffer)] = torch.empty_like(buffer, device="meta")
    return copy.deepcopy(model, memo)


@torch.no_grad()
def largest_tensor_bytes(model: nn.Module, input_size: tuple[int, int, int]) -> int:
    """Bytes of the largest tensor one eval-mode forward pass on a (1, C, H, W) input creates.

    Runs a meta copy of the model, so it costs neither memory nor arithmetic (about a second for a
    ResNet-101) and is safe while other threads use the model.
    """
    return _forward_sizes(model, input_size).bytes


@torch.no_grad()
def _forward_sizes(model: nn.Module, input_size: tuple[int, int, int]) -> _TensorSizes:
    meta_model = _meta_copy(model).eval()
    with _TensorSizes() as mode:
        meta_model(torch.empty(1, *input_size, device="meta"))
    return mode


def check_memory(
    model: nn.Module, input_size: tuple[int, int, int], batch_size: int = 1, limit: int = MAX_TENSOR_BYTES
) -> None:
    """Raise MemoryBudgetError when a forward pass on (batch_size, C, H, W) would create a tensor over ``limit`` bytes."""
    needed = largest_tensor_bytes(model, input_size) * batch_size  # every tensor of a forward pass scales with the batch
    if needed > limit:
        metadata = getattr(model, "metadata", None)
        name = metadata.pretrained or metadata.architecture if metadata else type(model).__name__
        c, h, w = input_size
        raise MemoryBudgetError(
            f"{name} at {c}x{h}x{w} with batch {batch_size} would hold a {needed / 2**20:,.0f} MB tensor, over the "
            f"{limit / 2**20:.0f} MB budget; use a smaller input size or batch."
        )


def batch_within_budget(model: nn.Module, input_size: tuple[int, int, int], wanted: int,
                        limit: int = MAX_TENSOR_BYTES, backward: bool = False, preferred: int | None = None) -> int:
    """The largest batch up to ``wanted`` whose forward pass stays within ``limit`` bytes per tensor (``backward``:
    within MAX_BACKWARD_BYTES for every tensor of the pass together, what autograd may keep); raises
    MemoryBudgetError when not even one image fits. With ``preferred`` (bytes), the batch also stays within
    that, down to one image: a server holding other work runs large models an image at a time."""
    sizes = _forward_sizes(model, input_size)
    per_image, limit = (sizes.total, MAX_BACKWARD_BYTES) if backward else (sizes.bytes, limit)
    batch = min(wanted, limit // max(1, per_image))
    if batch < 1:
        metadata = getattr(model, "metadata", None)
        name = metadata.pretrained or metadata.architecture if metadata else type(model).__name__
        kind = "all the tensors of a forward and backward pass" if backward else "its largest tensor"
        raise MemoryBudgetError(f"{name} at {'x'.join(map(str, input_size))} needs {per_image / 2**20:,.0f} MB for "
                                f"{kind} on one image, over the {limit / 2**20:.0f} MB budget.")
    return batch if preferred is None else max(1, min(batch, preferred // max(1, per_image)))
