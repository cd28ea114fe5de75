"""Non-local block, embedded Gaussian form (Wang et al., arXiv 1711.07971)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
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

    def _embed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, C, H, W) -> query (B, HW, C'), key (B, HkWk, C'), value (B, HkWk, C')."""
        query = self.theta(x).flatten(2).transpose(1, 2)
        key = self.pool(self.phi(x)).flatten(2).transpose(1, 2)
        value = self.pool(self.g(x)).flatten(2).transpose(1, 2)
        return query, key, value

    def _residual_term(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """BN(W_z y), the term the block adds to x, from the (B, HW, C') context y."""
        batch, _, height, width = x.shape
        return self.out_bn(self.out_proj(context.transpose(1, 2).reshape(batch, -1, height, width)))

    def contribution_with_attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, H, W) -> (residual term BN(W_z y) (B, C, H, W), attention (B, H*W, H_k*W_k)).

        The readable definition: the affinity is materialised, so the app can show it.
        """
        query, key, value = self._embed(x)
        attention = torch.softmax(torch.bmm(query, key.transpose(1, 2)), dim=-1)
        return self._residual_term(x, torch.bmm(attention, value)), attention

    def contribution(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> the residual term BN(W_z y) (B, C, H, W), the same numbers as
        ``contribution_with_attention`` up to rounding.

        Fused attention: ``scaled_dot_product_attention`` with scale 1 (the embedded Gaussian has no
        1/sqrt(C') factor) never materialises the (HW, HkWk) affinity; the singleton head axis lets
        PyTorch pick its flash kernel.
        """
        query, key, value = (t.unsqueeze(1) for t in self._embed(x))  # (B, 1, L, C')
        return self._residual_term(x, F.scaled_dot_product_attention(query, key, value, scale=1.0).squeeze(1))

    def forward_with_attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, H, W) -> (output x + BN(W_z y) (B, C, H, W), attention (B, H*W, H_k*W_k))."""
        term, attention = self.contribution_with_attention(x)
        return x + term, attention

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> x + BN(W_z y) (B, C, H, W), through ``contribution``'s fused attention."""
        return x + self.contribution(x)
