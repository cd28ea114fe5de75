"""Spatial bias without a concatenation: the block's 3x3 conv output widened to an aligned channel count.

A spatial-bias block concatenates N upsampled maps to the C channels of its 3x3 conv output, then runs bn2 and
conv3 over C + N channels (67, 131, 259, 515 in SB-ResNet-50: no multiple of 8, which tensor-core kernels want),
and the concatenation copies the whole 3x3 output. The padded layout computes the same function without either:

- conv2 runs with W = C + P output filters (P >= N, W a multiple of ALIGNMENT), the extra P filters zero, so its
  extra outputs are zero;
- the N maps are written into the first N spare channels in place;
- bn2 runs over W channels, the padded ones with weight 0, bias 0 (they stay 0), and conv3 reads W channels, its
  weights for the padded inputs 0.

The padded weights are views made at run time from the block's own parameters (kept between inference calls
until a parameter or BN statistic changes), so the state dict, checkpoints and the reference-code conversion stay
as they are, and gradients reach the real parameters only. Training updates bn2's running statistics as
``nn.BatchNorm2d`` does.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

ALIGNMENT = 8  # channels: what tensor-core convolutions and matrix products want


def padded_width(channels: int, maps: int, multiple: int = ALIGNMENT) -> int:
    """The smallest multiple of ``multiple`` that holds ``channels + maps`` channels."""
    return -(-(channels + maps) // multiple) * multiple


@dataclass(frozen=True)
class PaddedWeights:
    """conv2's weight with zero filters appended, bn2's affine parameters and statistics padded, conv3's weight
    with zero input columns appended: everything the padded layout runs with."""

    conv2: torch.Tensor  # (W, C, 3, 3)
    bn2_weight: torch.Tensor  # (W,) zeros beyond C + N
    bn2_bias: torch.Tensor  # (W,)
    running_mean: torch.Tensor  # (W,) a copy: the module's buffer stays (C + N,)
    running_var: torch.Tensor  # (W,) ones beyond C + N
    conv3: torch.Tensor  # (4C, W, 1, 1)

    @classmethod
    def pad(cls, conv2: nn.Conv2d, bn2: nn.BatchNorm2d, conv3: nn.Conv2d, width: int) -> PaddedWeights:
        """Padded versions of the block's weights (differentiable: gradients flow to the originals)."""
        filters = width - conv2.out_channels
        extra = width - bn2.num_features
        return cls(
            F.pad(conv2.weight, (0, 0, 0, 0, 0, 0, 0, filters)), F.pad(bn2.weight, (0, extra)),
            F.pad(bn2.bias, (0, extra)), F.pad(bn2.running_mean, (0, extra)),
            F.pad(bn2.running_var, (0, extra), value=1.0), F.pad(conv3.weight, (0, 0, 0, 0, 0, extra)),
        )


def _sources(conv2: nn.Conv2d, bn2: nn.BatchNorm2d, conv3: nn.Conv2d) -> tuple[torch.Tensor, ...]:
    return conv2.weight, bn2.weight, bn2.bias, bn2.running_mean, bn2.running_var, conv3.weight


class PaddedLayout:
    """The padded layout of one block: its width and, for inference, its padded weights while they are current."""

    def __init__(self, channels: int, maps: int) -> None:
        self.channels, self.maps = channels, maps
        self.width = padded_width(channels, maps)
        self._cached: tuple[tuple, PaddedWeights] | None = None

    def weights(self, conv2: nn.Conv2d, bn2: nn.BatchNorm2d, conv3: nn.Conv2d) -> PaddedWeights:
        """Padded weights: made afresh under autograd or in training, else kept while every source is unchanged."""
        if torch.is_grad_enabled() or bn2.training:
            return PaddedWeights.pad(conv2, bn2, conv3, self.width)
        sources = _sources(conv2, bn2, conv3)
        try:
            key = tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in sources) + (bn2.eps,)
        except RuntimeError:  # inference tensors carry no version counter: pad every call
            return PaddedWeights.pad(conv2, bn2, conv3, self.width)
        cached = self._cached
        if cached is None or cached[0] != key:
            cached = (key, PaddedWeights.pad(conv2, bn2, conv3, self.width))
            self._cached = cached
        return cached[1]

    def conv2_output(self, conv2: nn.Conv2d, weights: PaddedWeights, reduced: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, W, H', W'): the 3x3 conv with its zero filters; the last W - C channels are 0."""
        return F.conv2d(reduced, weights.conv2, None, conv2.stride, conv2.padding, conv2.dilation, conv2.groups)

    def write_maps(self, out: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
        """Put the (B, N, H', W') maps into channels C .. C + N - 1 of the conv2 output, in place."""
        out[:, self.channels:self.channels + self.maps] = maps
        return out

    def batch_norm(self, bn2: nn.BatchNorm2d, weights: PaddedWeights, x: torch.Tensor) -> torch.Tensor:
        """bn2 over the W channels; in training its running statistics are updated as ``nn.BatchNorm2d`` would."""
        if not bn2.training:
            return F.batch_norm(x, weights.running_mean, weights.running_var, weights.bn2_weight, weights.bn2_bias,
                                False, 0.0, bn2.eps)
        bn2.num_batches_tracked.add_(1)
        momentum = 1.0 / float(bn2.num_batches_tracked) if bn2.momentum is None else bn2.momentum
        out = F.batch_norm(x, weights.running_mean, weights.running_var, weights.bn2_weight, weights.bn2_bias,
                           True, momentum, bn2.eps)
        with torch.no_grad():
            bn2.running_mean.copy_(weights.running_mean[:bn2.num_features])
            bn2.running_var.copy_(weights.running_var[:bn2.num_features])
        return out

    def conv3_output(self, conv3: nn.Conv2d, weights: PaddedWeights, x: torch.Tensor) -> torch.Tensor:
        """(B, W, H', W') -> (B, 4C, H', W'): conv3 reading the padded channels with zero weights."""
        return F.conv2d(x, weights.conv3, conv3.bias, conv3.stride, conv3.padding, conv3.dilation, conv3.groups)

    def __getstate__(self) -> dict:
        # a copy (deepcopy, pickle) pads afresh from its own parameters
        return {**self.__dict__, "_cached": None}
