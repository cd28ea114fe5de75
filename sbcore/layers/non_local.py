"""Non-local block, embedded Gaussian form (Wang et al., arXiv 1711.07971)."""
from __future__ import annotations

import torch
from torch import nn


class NonLocal2d(nn.Module):
    """Embedded-Gaussian non-local block with a residual connection.

    y = softmax(theta(x)^T phi(x)) g(x); out = x + BN(W_z y). The output BN's gamma starts at
    zero, so a freshly built block is the identity. With ``subsample`` phi and g are 2x2
    max-pooled, which shrinks the affinity matrix fourfold.

    Args:
        channels: C of the (B, C, H, W) input.
        inner_channels: width of theta, phi and g (default C // 2).
        subsample: 2x2 max-pool phi and g.
    """

    def __init__(self, channels: int, inner_channels: int | None = None, subsample: bool = True) -> None:
        super().__init__()
        inner = inner_channels or max(channels // 2, 1)
        self.subsample = subsample
        self.theta = nn.Conv2d(channels, inner, kernel_size=1)
        self.phi = nn.Conv2d(channels, inner, kernel_size=1)
        self.g = nn.Conv2d(channels, inner, kernel_size=1)
        self.out_proj = nn.Conv2d(inner, channels, kernel_size=1, bias=False)
        self.out_bn = nn.BatchNorm2d(channels)
        self.pool = nn.MaxPool2d(2, ceil_mode=True) if subsample else nn.Identity()
        self.zero_init_last()

    def zero_init_last(self) -> None:
        """Zero the output BN's scale, so the block adds nothing to its input: a new block is the identity."""
        nn.init.zeros_(self.out_bn.weight)

    def key_grid_size(self, height: int, width: int) -> tuple[int, int]:
        """Spatial size of phi/g (the attended positions) for an (H, W) input."""
        if self.subsample:
            return (height + 1) // 2, (width + 1) // 2
        return height, width

    def forward_with_attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, H, W) -> (output (B, C, H, W), attention (B, H*W, H_k*W_k))."""
        batch, _, height, width = x.shape
        query = self.theta(x).flatten(2).transpose(1, 2)  # (B, HW, C')
        key = self.pool(self.phi(x)).flatten(2)  # (B, C', HkWk)
        value = self.pool(self.g(x)).flatten(2).transpose(1, 2)  # (B, HkWk, C')
        attention = torch.softmax(torch.bmm(query, key), dim=-1)
        context = torch.bmm(attention, value).transpose(1, 2).reshape(batch, -1, height, width)
        return x + self.out_bn(self.out_proj(context)), attention

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        return self.forward_with_attention(x)[0]
