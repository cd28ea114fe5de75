"""The spatial-bias branch's full-resolution half in one pass: 1x1 reduction, folded BN, ReLU and pooling (Triton).

The branch reads the block's (B, C, H, W) features once to make K reduced channels, writes them out at full
resolution, and reads them back to pool them to an R x R grid. This kernel does all of it in one read of the
features and writes only the (B, K, R, R) pooled grid: one program per image and grid cell sums ReLU(W x + b) over
the cell's pixels (adaptive average pooling's cells: rows floor(i H / R) to ceil((i + 1) H / R)), taking the
channels in blocks through a small matrix product in fp32.

Inference only (no backward); the torch path stays the reference. With ``TRITON_INTERPRET=1`` (set before this
module is first used) Triton runs the kernel on the CPU, which is how the tests check it without a GPU.
"""
from __future__ import annotations

import importlib.util
import os
from functools import lru_cache
from typing import Callable

import torch

BLOCK_PIXELS = 32  # pixels of one cell per step
BLOCK_CHANNELS = 32  # input channels per step
MIN_DOT = 16  # the reduced channels padded to this for tl.dot


def runs_fused(x: torch.Tensor) -> bool:
    """Whether the kernel can take ``x``: on a GPU, or anywhere under Triton's interpreter (TRITON_INTERPRET=1)."""
    return x.is_cuda or os.environ.get("TRITON_INTERPRET") == "1"


def triton_available() -> bool:
    """Whether Triton is installed (it ships with CUDA builds of torch)."""
    return importlib.util.find_spec("triton") is not None


@lru_cache(maxsize=1)
def _kernel() -> Callable:
    """The Triton kernel, made on first use (so that TRITON_INTERPRET set by then is honoured)."""
    import triton
    import triton.language as tl

    @triton.jit
    def reduce_pool(x_ptr, w_ptr, b_ptr, out_ptr, channels, height, width, grid,
                    stride_b, stride_c, stride_h, stride_w,
                    reduced: tl.constexpr, padded: tl.constexpr, block_c: tl.constexpr, block_p: tl.constexpr):
        image = tl.program_id(0)
        cell = tl.program_id(1)
        row, col = cell // grid, cell % grid
        top, bottom = (row * height) // grid, ((row + 1) * height + grid - 1) // grid
        left, right = (col * width) // grid, ((col + 1) * width + grid - 1) // grid
        cell_width = right - left
        pixels = (bottom - top) * cell_width
        k = tl.arange(0, padded)
        k_mask = k < reduced
        bias = tl.load(b_ptr + k, mask=k_mask, other=0.0).to(tl.float32)
        total = tl.zeros([padded], dtype=tl.float32)
        for start in range(0, pixels, block_p):
            p = start + tl.arange(0, block_p)
            p_mask = p < pixels
            rows, cols = top + p // cell_width, left + p % cell_width
            y = tl.zeros([padded, block_p], dtype=tl.float32)
            for c_start in range(0, channels, block_c):
                c = c_start + tl.arange(0, block_c)
                c_mask = c < channels
                x = tl.load(x_ptr + image * stride_b + c[:, None] * stride_c + rows[None, :] * stride_h
                            + cols[None, :] * stride_w, mask=c_mask[:, None] & p_mask[None, :], other=0.0)
                w = tl.load(w_ptr + k[:, None] * channels + c[None, :], mask=k_mask[:, None] & c_mask[None, :],
                            other=0.0)
                y += tl.dot(w.to(tl.float32), x.to(tl.float32), input_precision="ieee")
            y = tl.maximum(y + bias[:, None], 0.0)
            total += tl.sum(tl.where(p_mask[None, :], y, 0.0), axis=1)
        tl.store(out_ptr + image * reduced * grid * grid + k * grid * grid + cell, total / pixels, mask=k_mask)

    return reduce_pool


def fused_reduce_pool(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, grid: int) -> torch.Tensor:
    """(B, C, H, W) features, the (K, C[, 1, 1]) 1x1 conv weight with BN folded in and its (K,) bias ->
    (B, K, R, R) = adaptive_avg_pool2d(relu(conv1x1(x) + bias), R), in fp32 then ``x``'s dtype; any memory format."""
    batch, channels, height, width = x.shape
    reduced = weight.shape[0]
    weight = weight.reshape(reduced, channels).float().contiguous()
    out = torch.empty(batch, reduced, grid, grid, device=x.device, dtype=torch.float32)
    padded = max(MIN_DOT, 1 << (reduced - 1).bit_length())
    _kernel()[(batch, grid * grid)](
        x, weight, bias.float().contiguous(), out, channels, height, width, grid, *x.stride(),
        reduced=reduced, padded=padded, block_c=BLOCK_CHANNELS, block_p=BLOCK_PIXELS,
    )
    return out.to(x.dtype)
