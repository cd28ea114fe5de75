"""Resizing between a block's feature map and the spatial-bias grid: the layers' definitions, and the
same resizings as constant matrices for the inference path."""
from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F


def upsample_maps(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinearly resize (B, N, R, R) maps to (B, N, *size), align_corners=False."""
    return F.interpolate(maps, size=size, mode="bilinear", align_corners=False)


# A dense matrix multiplies every position by every grid cell, mostly by zero, but runs as one BLAS call.
# Measured on a 2-core AVX2 CPU (one thread, batch 1 and 8), it beats adaptive pooling up to about 40,000
# H*W*R*R elements (32x32 on a 6x6 grid) and bilinear upsampling up to about 100,000 (28x28 on 10x10).
MAX_DENSE_POOLING = 40_000
MAX_DENSE_UPSAMPLING = 100_000


def dense_pooling_pays(height: int, width: int, grid_size: int) -> bool:
    """Whether pooling an H x W map to R x R is faster as a matrix product than as adaptive pooling."""
    return height * width * grid_size * grid_size <= MAX_DENSE_POOLING


def dense_upsampling_pays(grid_size: int, height: int, width: int) -> bool:
    """Whether upsampling R x R maps to H x W is faster as a matrix product than as bilinear interpolation."""
    return height * width * grid_size * grid_size <= MAX_DENSE_UPSAMPLING


@lru_cache(maxsize=64)
def _pooling_1d(size: int, grid_size: int) -> torch.Tensor:
    """(size, R) float64: column j averages the positions of adaptive-pooling window j."""
    identity = torch.eye(size, dtype=torch.float64).view(size, 1, 1, size)  # one position per row
    return F.adaptive_avg_pool2d(identity, (1, grid_size)).view(size, grid_size)


@lru_cache(maxsize=64)
def _upsampling_1d(grid_size: int, size: int) -> torch.Tensor:
    """(R, size) float64: row j holds grid cell j's linear-interpolation weight at every output position."""
    identity = torch.eye(grid_size, dtype=torch.float64).view(grid_size, 1, 1, grid_size)
    return upsample_maps(identity, (1, size)).view(grid_size, size)  # bilinear along one axis is linear


@lru_cache(maxsize=64)
def pooling_matrix(
    height: int, width: int, grid_size: int, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """(H*W, R*R) matrix P with ``x.reshape(-1, H*W) @ P == adaptive_avg_pool2d(x, R).reshape(-1, R*R)``.

    Adaptive average pooling is separable, so P is the Kronecker product of the row and column poolings.
    """
    return torch.kron(_pooling_1d(height, grid_size), _pooling_1d(width, grid_size)).to(device, dtype)


@lru_cache(maxsize=64)
def upsampling_matrix(
    grid_size: int, height: int, width: int, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """(R*R, H*W) matrix U with ``maps.reshape(-1, R*R) @ U == upsample_maps(maps, (H, W)).reshape(-1, H*W)``."""
    return torch.kron(_upsampling_1d(grid_size, height), _upsampling_1d(grid_size, width)).to(device, dtype)
