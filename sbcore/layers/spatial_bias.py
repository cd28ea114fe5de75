"""Spatial bias: attention-free global context (Go & Ryu, arXiv 2302.12505)."""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Iterator, NamedTuple

import torch
from torch import nn

from sbcore.layers.fused_branch import runs_fused
from sbcore.layers.resampling import upsample_maps
from sbcore.layers.spatial_bias_inference import FoldedBranch, inference_upsampled_maps

_REFERENCE_ONLY: ContextVar[bool] = ContextVar("spatial_bias_reference_only", default=False)


@contextmanager
def reference_formulation() -> Iterator[None]:
    """Inside this block every spatial-bias branch runs its layers as written, never the inference path, and every
    block concatenates its maps (never the padded layout): for counting the architecture's FLOPs rather than those
    of its fastest implementation, and as the reference the fast paths are tested against."""
    token = _REFERENCE_ONLY.set(True)
    try:
        yield
    finally:
        _REFERENCE_ONLY.reset(token)


def in_reference_formulation() -> bool:
    """Whether the caller runs inside ``reference_formulation()``."""
    return _REFERENCE_ONLY.get()


class SpatialBiasSteps(NamedTuple):
    """Every intermediate tensor of one spatial-bias branch, for teaching and analysis."""

    reduced: torch.Tensor  # (B, K, H, W) after the 1x1 conv + BN + ReLU
    pooled: torch.Tensor  # (B, K, R, R) after adaptive average pooling
    mixed: torch.Tensor  # (B, N, R, R) after the 1D convolution over all R*R grid positions
    upsampled: torch.Tensor  # (B, N, H', W') bilinearly resized to the 3x3 conv output


class SpatialBias(nn.Module):
    """Spatial-bias branch of a bottleneck block.

    Squeezes a (B, C, H, W) feature map to K channels, pools it to an R x R grid, mixes all
    R*R grid positions with a Conv1d (grid positions are the Conv1d's channels, the K reduced
    channels its length; kernel 3, no padding), and returns N = K - kernel + 1 global maps of
    shape (B, N, R, R). The block upsamples them and concatenates them to its 3x3 conv output.

    Args:
        in_channels: C, channels of the block's first 1x1 conv output.
        reduced_channels: K (paper: 5).
        grid_size: R (paper: 10 for ImageNet; smaller for CIFAR-size inputs).
        kernel_size: kernel of the grid-mixing Conv1d along the K channels (paper: 3).
    """

    def __init__(
        self, in_channels: int, reduced_channels: int = 5, grid_size: int = 10, kernel_size: int = 3
    ) -> None:
        super().__init__()
        if reduced_channels < kernel_size:
            raise ValueError(
                f"reduced_channels ({reduced_channels}) must be >= kernel_size ({kernel_size}) "
                "to produce at least one map"
            )
        self.reduced_channels = reduced_channels
        self.grid_size = grid_size
        self.num_maps = reduced_channels - kernel_size + 1
        self.channel_reduction = nn.Sequential(
            nn.Conv2d(in_channels, reduced_channels, kernel_size=1, bias=False),
            nn.BatchNorm2d(reduced_channels),
            nn.ReLU(inplace=True),
        )
        self.pool = nn.AdaptiveAvgPool2d(grid_size)
        positions = grid_size * grid_size
        self.grid_mixing = nn.Conv1d(positions, positions, kernel_size=kernel_size, padding=0)
        self._folded: FoldedBranch | None = None  # inference weights, refolded whenever a source changes
        self.fused_kernel = False  # at GPU inference, reduction + pooling as one Triton kernel (set_fused_branch)

    def mix(self, pooled: torch.Tensor) -> torch.Tensor:
        """(B, K, R, R) pooled features -> (B, N, R, R) spatial-bias maps: the paper's Conv1d, as written.

        The readable definition, kept as the reference the tests hold ``mix_as_matmul`` to; ``forward``
        and ``steps`` compute the same numbers with ``mix_as_matmul`` (relative error <= 1e-5).
        """
        batch = pooled.shape[0]
        # Grid positions become Conv1d channels so every output position sees every input one.
        # reshape (not squeeze) keeps the batch dimension when B == 1.
        positions_first = pooled.reshape(batch, self.reduced_channels, -1).transpose(1, 2)
        mixed = self.grid_mixing(positions_first)  # (B, R*R, N)
        return mixed.transpose(1, 2).reshape(batch, self.num_maps, self.grid_size, self.grid_size)

    def mix_as_matmul(self, pooled: torch.Tensor) -> torch.Tensor:
        """``mix`` as one matrix product: map n reads the window of reduced channels n .. n + kernel - 1.

        maps[b, n, p] = bias[p] + sum_{q, j} W[p, q, j] * pooled[b, n + j, q]. A Conv1d with R*R channels
        over a length-K signal runs as a convolution with per-call overhead far above its few FLOPs on
        CPU (about half the branch's time); a windowed view and ``addmm`` cost a fraction.
        """
        batch = pooled.shape[0]
        weight = self.grid_mixing.weight  # (R*R, R*R, kernel)
        windows = pooled.reshape(batch, self.reduced_channels, -1).unfold(1, weight.shape[-1], 1)  # (B, N, R*R, kernel)
        mixed = torch.addmm(self.grid_mixing.bias, windows.reshape(batch * self.num_maps, -1), weight.flatten(1).t())
        return mixed.view(batch, self.num_maps, self.grid_size, self.grid_size)

    def reduce(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, K, H, W): ``channel_reduction``'s 1x1 conv, BN and ReLU, each module called.

        On a CPU the conv's output goes to the BN in NCHW even when ``x`` is channels_last. PyTorch's CPU batch
        norm over a channels_last tensor is slower (training a block's branch, forward and backward, took 16.8 ms
        instead of 12.1 at batch 128, 28x28) and, on one thread, sums its batch statistics less accurately:
        the branch's input gradient came out 1e-1 off float64 (relative to its largest entry) instead of 3e-6
        (``benchmarks/RESULTS.md``). K channels make the copy small.
        """
        conv, bn, relu = self.channel_reduction
        reduced = conv(x)
        return relu(bn(reduced.contiguous() if reduced.device.type == "cpu" else reduced))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, N, R, R) raw spatial-bias maps."""
        return self.mix_as_matmul(self.pool(self.reduce(x)))

    def upsampled_maps(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """(B, C, H, W) -> (B, N, *size): ``upsample_maps(self(x), size)``, the maps the block concatenates.

        At inference (eval mode, BN included; autograd off; not compiling or tracing; outside
        ``reference_formulation()``) the same numbers come from ``spatial_bias_inference``: BN folded into the
        1x1 conv, the grid mixing as one matrix product, and pooling and upsampling as matrix products where
        that is faster. That path calls no submodule, so hooks on the branch's layers do not fire. The folded
        weights are kept until a parameter, BN statistic or eps changes, or ``train()``, ``eval()``, ``to()``
        or ``load_state_dict`` is called; after editing weights through ``.data`` or assigning new
        Parameters, call ``eval()`` again. Weights made under ``inference_mode`` are refolded on every call.
        The cache is replaced whole, so threads sharing a model at worst fold twice.
        """
        conv, bn, _ = self.channel_reduction
        if (self.training or bn.training or torch.is_grad_enabled() or torch.compiler.is_compiling()
                or torch.jit.is_tracing() or in_reference_formulation()):
            return upsample_maps(self(x), size)
        folded = self._folded
        if folded is None or not folded.is_current(bn):
            folded = FoldedBranch.fold(conv, bn, self.grid_mixing, self.reduced_channels)
            self._folded = folded if folded.versions is not None else None
        return inference_upsampled_maps(folded, x, self.grid_size, size, fused=self.fused_kernel and runs_fused(x))

    def train(self, mode: bool = True) -> SpatialBias:
        self._folded = None
        return super().train(mode)

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True) -> SpatialBias:
        # .to(), .cuda(), .half() may swap the parameters' storage
        self._folded = None
        return super()._apply(fn, recurse)

    def _load_from_state_dict(self, *args: object, **kwargs: object) -> None:
        # load_state_dict(..., assign=True) swaps the parameters
        self._folded = None
        super()._load_from_state_dict(*args, **kwargs)

    def __getstate__(self) -> dict:
        # a copy (deepcopy, pickle) gets tensors with version counters of their own: it folds afresh
        return {**super().__getstate__(), "_folded": None}

    def steps(self, x: torch.Tensor, output_size: tuple[int, int]) -> SpatialBiasSteps:
        """Run the branch step by step and keep every intermediate tensor (the kernels of ``forward``; the
        block's inference path computes the same upsampled maps to within 1e-5)."""
        reduced = self.reduce(x)
        pooled = self.pool(reduced)
        mixed = self.mix_as_matmul(pooled)
        return SpatialBiasSteps(reduced, pooled, mixed, upsample_maps(mixed, output_size))
