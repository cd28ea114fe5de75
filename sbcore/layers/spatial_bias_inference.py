"""The spatial-bias branch at inference, as few operations as its arithmetic allows.

After its ReLU the branch is linear: average pooling, the grid-mixing Conv1d and bilinear upsampling.
At inference (eval mode, autograd off) it runs as:

1. the 1x1 conv with the BN folded into its weight and bias, then ReLU;
2. pooling as one matrix product with a constant (H*W, R*R) averaging matrix, for maps small enough;
3. grid mixing of every window of reduced channels as one ``addmm`` with a banded (K*R*R, N*R*R) matrix;
4. upsampling as one matrix product with a constant (R*R, H'*W') interpolation matrix, for maps small enough.

Steps 1-2 can also run as one Triton kernel that never writes the full-resolution reduced channels
(``sbcore.layers.fused_branch``; ``sbcore.models.set_fused_branch``), meant for GPUs.

Each step computes the same numbers as the layers it replaces, up to float rounding (relative error
<= 1e-5 in fp32, tested). On a CPU a small block's time goes to per-operation overhead rather than
arithmetic; ``benchmarks/RESULTS.md`` has the measurements behind this choice.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from sbcore.layers.fused_branch import fused_reduce_pool
from sbcore.layers.resampling import (
    dense_pooling_pays, dense_upsampling_pays, pooling_matrix, upsample_maps, upsampling_matrix,
)


def banded_mixing_matrix(weight: torch.Tensor, reduced_channels: int) -> torch.Tensor:
    """(R*R, R*R, kernel) grid-mixing Conv1d weight -> (K*R*R, N*R*R) matrix M of all N windows at once.

    Map n reads reduced channels n .. n + kernel - 1: M[(n + j, q), (n, p)] = weight[p, q, j], zero elsewhere,
    so ``pooled.reshape(B, K*R*R) @ M`` is the Conv1d over every window (without its bias).
    """
    positions, _, kernel = weight.shape
    num_maps = reduced_channels - kernel + 1
    matrix = weight.new_zeros(reduced_channels, positions, num_maps, positions)
    window = weight.permute(2, 1, 0)  # (kernel, q, p)
    for n in range(num_maps):
        matrix[n:n + kernel, :, n, :] = window
    return matrix.view(reduced_channels * positions, num_maps * positions)


@dataclass(frozen=True)
class FoldedBranch:
    """A spatial-bias branch's weights rearranged for inference, and the tensors they were made from."""

    reduce_weight: torch.Tensor  # (K, C, 1, 1): the 1x1 conv scaled by its BN
    reduce_bias: torch.Tensor  # (K,): the BN's shift
    mixing_matrix: torch.Tensor  # (K*R*R, N*R*R), see banded_mixing_matrix
    mixing_bias: torch.Tensor  # (N*R*R,): the Conv1d bias, once per map
    eps: float  # the BN's eps when folded
    sources: tuple[torch.Tensor, ...]  # detached views: they share the parameters' version counters
    versions: tuple[int, ...] | None  # the sources' versions when folded; None for inference tensors

    @classmethod
    def fold(
        cls, conv: nn.Conv2d, bn: nn.BatchNorm2d, grid_mixing: nn.Conv1d, reduced_channels: int
    ) -> FoldedBranch:
        """Fold eval-mode BN into the 1x1 conv and lay out the grid mixing as one banded matrix."""
        sources = tuple(t.detach() for t in (conv.weight, bn.weight, bn.bias, bn.running_mean, bn.running_var,
                                             grid_mixing.weight, grid_mixing.bias))
        try:
            versions = tuple(t._version for t in sources)
        except RuntimeError:  # tensors made under inference_mode carry no version counter
            versions = None
        precision = torch.promote_types(conv.weight.dtype, torch.float32)  # fold half-precision weights in fp32
        with torch.no_grad():
            scale = bn.weight.to(precision) * torch.rsqrt(bn.running_var.to(precision) + bn.eps)
            weight = (conv.weight.to(precision) * scale.view(-1, 1, 1, 1)).to(conv.weight.dtype)
            bias = (bn.bias.to(precision) - bn.running_mean.to(precision) * scale).to(bn.bias.dtype)
            matrix = banded_mixing_matrix(grid_mixing.weight, reduced_channels)
            mixing_bias = grid_mixing.bias.repeat(reduced_channels - grid_mixing.kernel_size[0] + 1)
        return cls(weight, bias, matrix, mixing_bias, bn.eps, sources, versions)

    def is_current(self, bn: nn.BatchNorm2d) -> bool:
        """False once any source was changed in place (an optimizer step, ``load_state_dict``, ``fill_``...)
        or the BN's eps was changed."""
        return (self.versions is not None and bn.eps == self.eps
                and all(t._version == v for t, v in zip(self.sources, self.versions)))


def inference_upsampled_maps(
    folded: FoldedBranch, x: torch.Tensor, grid_size: int, size: tuple[int, int], fused: bool = False
) -> torch.Tensor:
    """(B, C, H, W) block features -> (B, N, *size) upsampled spatial-bias maps, from folded weights; ``fused``:
    reduction and pooling in one Triton kernel (``sbcore.layers.fused_branch``)."""
    positions = grid_size * grid_size
    if fused:
        pooled = fused_reduce_pool(x, folded.reduce_weight, folded.reduce_bias, grid_size)  # (B, K, R, R)
        batch, channels = pooled.shape[:2]
    else:
        reduced = F.conv2d(x, folded.reduce_weight, folded.reduce_bias).relu_()  # (B, K, H, W)
        batch, channels, height, width = reduced.shape
        if dense_pooling_pays(height, width, grid_size):
            flat = reduced.reshape(batch * channels, height * width)
            pooled = flat @ pooling_matrix(height, width, grid_size, flat.dtype, flat.device)
        else:
            pooled = F.adaptive_avg_pool2d(reduced, grid_size)
    mixed = torch.addmm(folded.mixing_bias, pooled.reshape(batch, channels * positions), folded.mixing_matrix)
    num_maps = mixed.shape[1] // positions
    if dense_upsampling_pays(grid_size, *size):
        upsampled = mixed.view(batch * num_maps, positions) @ upsampling_matrix(
            grid_size, *size, mixed.dtype, mixed.device)
        return upsampled.view(batch, num_maps, *size)
    return upsample_maps(mixed.view(batch, num_maps, grid_size, grid_size), size)
