"""One ResNet definition for ImageNet- and CIFAR-style networks, with optional spatial bias
and non-local blocks per stage.

Plain parts keep torchvision's layout and parameter names (``conv1``, ``layer1.0.conv2``,
``fc``...), so torchvision state dicts load into them. Spatial bias lives in
``layerS.B.spatial_bias`` and widens ``bn2``/``conv3`` by N channels; a non-local block lives in
``layerS.B.non_local`` and runs after that block's residual sum.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Callable, Sequence

import torch
from torch import nn

from sbcore.errors import SBCoreError
from sbcore.layers import NonLocal2d, SpatialBias, upsample_maps
from sbcore.layers.fused_branch import triton_available
from sbcore.layers.padded_layout import PaddedLayout
from sbcore.layers.spatial_bias import in_reference_formulation
from sbcore.models.contribution_edits import edited

CHANNEL_LAYOUTS = {
    "auto": "padded on a GPU, concatenated on a CPU",
    "concat": "the maps concatenated to the 3x3 conv output (the paper's formulation)",
    "padded": "the 3x3 conv widened to a multiple of 8 channels, the maps written into its spare channels",
}


@dataclass(frozen=True)
class SpatialBiasConfig:
    """Where spatial bias goes and its shape: K reduced channels, R x R grid, N = K - kernel + 1 maps."""

    stages: tuple[int, ...] = (1, 2, 3)
    reduced_channels: int = 5
    grid_size: int = 10
    kernel_size: int = 3

    def layer(self) -> Callable[[int], SpatialBias]:
        """The branch as a layer type: ``layer()(in_channels)`` builds one SpatialBias of this shape."""
        return partial(
            SpatialBias, reduced_channels=self.reduced_channels, grid_size=self.grid_size, kernel_size=self.kernel_size
        )


@dataclass(frozen=True)
class NonLocalConfig:
    """Which blocks (``"layer2.1"``) are followed by a non-local block, and whether phi/g are subsampled."""

    blocks: tuple[str, ...] = ("layer2.1", "layer2.3", "layer3.1", "layer3.3", "layer3.5")
    subsample: bool = True

    def layer(self) -> Callable[[int], NonLocal2d]:
        """The block as a layer type: ``layer()(channels)`` builds one NonLocal2d."""
        return partial(NonLocal2d, subsample=self.subsample)


@dataclass
class BlockOutput:
    """A block's output plus what analysis needs from inside it (no module state involved)."""

    features: torch.Tensor
    spatial_bias: torch.Tensor | None = None  # (B, N, R, R) raw maps, as the branch computed them
    spatial_bias_upsampled: torch.Tensor | None = None  # (B, N, H', W') at the 3x3 conv output, as the block used them
    attention: torch.Tensor | None = None  # (B, H*W, Hk*Wk) non-local affinity
    attention_grids: tuple[tuple[int, int], tuple[int, int]] | None = None  # query and key grid sizes


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual connection (ResNet-18/34)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward_detailed(self, x: torch.Tensor) -> BlockOutput:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return BlockOutput(self.relu(out + identity))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_detailed(x).features


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> 1x1 bottleneck, optionally with a spatial-bias branch and a trailing non-local block.

    With spatial bias, the branch reads the first 1x1 conv's output; its N maps are upsampled to
    the 3x3 conv's output size and concatenated to it, so ``bn2`` and ``conv3`` see planes + N
    channels and the last 1x1 conv mixes global maps with local features. The upsampled maps and the
    non-local block's residual term pass through ``contribution_edits.edited``, where interventions
    (``sbcore.analysis.interventions``) replace them without changing the module.

    Args:
        sb_layer: builds the spatial-bias branch from ``planes`` (e.g. ``partial(SpatialBias, grid_size=6)``);
            None for none. The branch must expose ``num_maps``.
        nl_layer: builds the non-local block from the block's output channels; None for none.
    """

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        sb_layer: Callable[[int], SpatialBias] | None = None,
        nl_layer: Callable[[int], NonLocal2d] | None = None,
    ) -> None:
        super().__init__()
        self.spatial_bias = sb_layer(planes) if sb_layer is not None else None
        extra = self.spatial_bias.num_maps if self.spatial_bias is not None else 0
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes + extra)
        self.conv3 = nn.Conv2d(planes + extra, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.non_local = nl_layer(planes * self.expansion) if nl_layer is not None else None
        self.channel_layout = "auto"  # a key of CHANNEL_LAYOUTS; set for a whole model with set_channel_layout
        self._padded = PaddedLayout(planes, extra) if extra else None

    def uses_padded_layout(self, x: torch.Tensor) -> bool:
        """Whether ``forward`` runs the padded layout (``sbcore.layers.padded_layout``) for input ``x``."""
        if self._padded is None or self.channel_layout == "concat" or in_reference_formulation():
            return False
        return self.channel_layout == "padded" or x.device.type == "cuda"

    def spatial_bias_input(self, x: torch.Tensor) -> torch.Tensor:
        """(B, inplanes, H, W) block input -> (B, planes, H, W): the first 1x1 conv + BN + ReLU, which the
        3x3 conv and the spatial-bias branch both read."""
        return self.relu(self.bn1(self.conv1(x)))

    def _residual(self, out: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        """bn2 -> ReLU -> conv3 -> bn3 on the 3x3 conv output (with the maps concatenated, if any), plus the shortcut.

        Concatenation is also the fastest form measured (benchmarks/RESULTS.md): splitting bn2/conv3 into an
        aligned planes part plus an N-channel part costs an extra pass over the 4*planes-wide output, more
        than the copy the concatenation makes.
        """
        return self.relu(self.bn3(self.conv3(self.relu(self.bn2(out)))) + identity)

    def forward_detailed(self, x: torch.Tensor) -> BlockOutput:
        """The block's output plus its spatial-bias maps and non-local affinity, for analysis."""
        identity = x if self.downsample is None else self.downsample(x)
        reduced = self.spatial_bias_input(x)
        out = self.conv2(reduced)
        result = BlockOutput(out)
        if self.spatial_bias is not None:
            maps = self.spatial_bias(reduced)
            upsampled = _like(edited(self, "spatial_bias", upsample_maps(maps, out.shape[-2:])), out)
            result.spatial_bias, result.spatial_bias_upsampled = maps, upsampled
            out = torch.cat([out, upsampled], dim=1)
        out = self._residual(out, identity)
        if self.non_local is not None:
            height, width = out.shape[-2:]
            term, result.attention = self.non_local.contribution_with_attention(out)
            out = out + edited(self, "non_local", term)
            result.attention_grids = ((height, width), self.non_local.key_grid_size(height, width))
        result.features = out
        return result

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, inplanes, H, W) -> (B, 4 * planes, H', W'); what ``forward_detailed`` computes, keeping nothing,
        letting the non-local block use fused attention and spatial bias its inference path."""
        identity = x if self.downsample is None else self.downsample(x)
        reduced = self.spatial_bias_input(x)
        if self.uses_padded_layout(x):
            out = self._padded_residual(reduced, identity)
        else:
            out = self.conv2(reduced)
            if self.spatial_bias is not None:
                maps = _like(edited(self, "spatial_bias", self.spatial_bias.upsampled_maps(reduced, out.shape[-2:])), out)
                out = torch.cat([out, maps], dim=1)
            out = self._residual(out, identity)
        return out if self.non_local is None else out + edited(self, "non_local", self.non_local.contribution(out))

    def _padded_residual(self, reduced: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        """``_residual`` of the concatenation, computed in the padded layout: no copy, aligned channels."""
        layout = self._padded
        weights = layout.weights(self.conv2, self.bn2, self.conv3)
        out = layout.conv2_output(self.conv2, weights, reduced)
        maps = _like(edited(self, "spatial_bias", self.spatial_bias.upsampled_maps(reduced, out.shape[-2:])), out)
        out = layout.batch_norm(self.bn2, weights, layout.write_maps(out, maps))
        return self.relu(self.bn3(layout.conv3_output(self.conv3, weights, self.relu(out))) + identity)


def _like(maps: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``maps`` in ``out``'s dtype and memory format: concatenating a channels_last tensor with a contiguous one
    gives a contiguous result, which would send bn2, conv3 and their backward passes through layout copies."""
    channels_last = out.is_contiguous(memory_format=torch.channels_last) and not out.is_contiguous()
    return maps.to(dtype=out.dtype, memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def set_channel_layout(model: nn.Module, layout: str) -> nn.Module:
    """Run every spatial-bias block of ``model`` in ``layout``, a key of CHANNEL_LAYOUTS (the same function and
    weights in each); returns the model."""
    if layout not in CHANNEL_LAYOUTS:
        raise ValueError(f"Unknown channel layout {layout!r}; choose one of {', '.join(CHANNEL_LAYOUTS)}.")
    for module in model.modules():
        if isinstance(module, Bottleneck):
            module.channel_layout = layout
    return model


def set_fused_branch(model: nn.Module, enabled: bool = True) -> nn.Module:
    """At inference, run every spatial-bias branch's reduction, BN, ReLU and pooling as one Triton kernel
    (``sbcore.layers.fused_branch``; the same numbers within fp32 rounding); returns the model."""
    if enabled and not triton_available():
        raise SBCoreError("The fused spatial-bias branch needs Triton, which this torch installation lacks.")
    for module in model.modules():
        if isinstance(module, SpatialBias):
            module.fused_kernel = enabled
    return model


@dataclass
class Intermediates:
    """Logits plus per-block internals of one forward pass, keyed by block name (``"layer2.3"``)."""

    logits: torch.Tensor  # (B, num_classes)
    stages: dict[str, torch.Tensor] = field(default_factory=dict)  # "layer1" -> (B, C, H, W)
    spatial_bias: dict[str, torch.Tensor] = field(default_factory=dict)  # (B, N, R, R)
    spatial_bias_upsampled: dict[str, torch.Tensor] = field(default_factory=dict)  # (B, N, H', W')
    attention: dict[str, torch.Tensor] = field(default_factory=dict)  # (B, Hk, Wk) for the query


class ResNet(nn.Module):
    """ResNet with an ImageNet stem (7x7/2 conv + max-pool, 4 stages) or a CIFAR stem (3x3 conv, 3 stages).

    Args:
        block: BasicBlock or Bottleneck.
        layers: blocks per stage.
        widths: ``planes`` per stage.
        stem: ``"imagenet"`` or ``"cifar"``.
        num_classes: classifier outputs.
        in_chans: input channels (1 for grayscale).
        spatial_bias: spatial-bias placement and shape, or None.
        non_local: non-local placement, or None.
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: Sequence[int],
        widths: Sequence[int] = (64, 128, 256, 512),
        stem: str = "imagenet",
        num_classes: int = 1000,
        in_chans: int = 3,
        spatial_bias: SpatialBiasConfig | None = None,
        non_local: NonLocalConfig | None = None,
    ) -> None:
        super().__init__()
        if stem not in ("imagenet", "cifar"):
            raise ValueError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")
        if len(widths) != len(layers):
            raise ValueError(f"widths ({len(widths)}) and layers ({len(layers)}) must have one entry per stage")
        if (spatial_bias or non_local) and block is not Bottleneck:
            raise ValueError("spatial bias and non-local blocks are defined for Bottleneck ResNets only")
        self._check_placement(layers, spatial_bias, non_local)
        self.num_classes = num_classes
        self.stage_names = [f"layer{i + 1}" for i in range(len(layers))]
        self.inplanes = widths[0]
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_chans, self.inplanes, 7, stride=2, padding=3, bias=False)
            self.maxpool: nn.Module = nn.MaxPool2d(3, stride=2, padding=1)
        else:
            self.conv1 = nn.Conv2d(in_chans, self.inplanes, 3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        for index, (planes, depth) in enumerate(zip(widths, layers)):
            stage = self._make_stage(block, planes, depth, index + 1, spatial_bias, non_local)
            setattr(self, self.stage_names[index], stage)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.num_features = widths[-1] * block.expansion
        self.fc = nn.Linear(self.num_features, num_classes)
        self._init_weights()

    @staticmethod
    def _check_placement(
        layers: Sequence[int], spatial_bias: SpatialBiasConfig | None, non_local: NonLocalConfig | None
    ) -> None:
        for stage in spatial_bias.stages if spatial_bias else ():
            if not 1 <= stage <= len(layers):
                raise ValueError(f"spatial-bias stage {stage} does not exist (stages 1..{len(layers)})")
        valid = {f"layer{s + 1}.{b}" for s, depth in enumerate(layers) for b in range(depth)}
        for name in non_local.blocks if non_local else ():
            if name not in valid:
                raise ValueError(f"non-local block {name!r} does not exist in a ResNet with stages {list(layers)}")

    def _make_stage(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        planes: int,
        depth: int,
        stage_index: int,
        spatial_bias: SpatialBiasConfig | None,
        non_local: NonLocalConfig | None,
    ) -> nn.Sequential:
        stride = 1 if stage_index == 1 else 2
        blocks = []
        for b in range(depth):
            downsample = None
            if b == 0 and (stride != 1 or self.inplanes != planes * block.expansion):
                downsample = nn.Sequential(
                    nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride=stride, bias=False),
                    nn.BatchNorm2d(planes * block.expansion),
                )
            kwargs = {}
            if spatial_bias is not None and stage_index in spatial_bias.stages:
                kwargs["sb_layer"] = spatial_bias.layer()
            if non_local is not None and f"layer{stage_index}.{b}" in non_local.blocks:
                kwargs["nl_layer"] = non_local.layer()
            blocks.append(block(self.inplanes, planes, stride if b == 0 else 1, downsample, **kwargs))
            self.inplanes = planes * block.expansion
        return nn.Sequential(*blocks)

    def _init_weights(self) -> None:
        """He initialisation for every 2D conv. BatchNorm keeps its construction-time values (scale 1, shift 0,
        or what a branch chose for itself, such as a non-local block's zero-initialised output BN)."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def stages(self) -> list[tuple[str, nn.Sequential]]:
        """``[("layer1", stage), ...]`` in forward order."""
        return [(name, getattr(self, name)) for name in self.stage_names]

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) -> stem features."""
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) -> last-stage features (B, num_features, h, w)."""
        x = self.forward_stem(x)
        for _, stage in self.stages():
            x = stage(x)
        return x

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Last-stage features -> logits (B, num_classes)."""
        return self.fc(torch.flatten(self.avgpool(x), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) -> logits (B, num_classes)."""
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(
        self, x: torch.Tensor, query: tuple[float, float] = (0.5, 0.5)
    ) -> Intermediates:
        """Logits plus every stage output, every spatial-bias block's maps and every non-local
        block's attention for one query position.

        Thread-safe: no hooks and no module state; every tensor comes back through return values.

        Args:
            x: (B, in_chans, H, W) input batch.
            query: (row, column) of the non-local query in [0, 1] image coordinates.
        Returns:
            Intermediates, with ``attention[name]`` of shape (B, Hk, Wk): how much the query
            position attends to each key position of that block.
        """
        stages: dict[str, torch.Tensor] = {}
        maps: dict[str, torch.Tensor] = {}
        upsampled: dict[str, torch.Tensor] = {}
        attention: dict[str, torch.Tensor] = {}
        x = self.forward_stem(x)
        for stage_name, stage in self.stages():
            for index, block in enumerate(stage):
                name = f"{stage_name}.{index}"
                out = block.forward_detailed(x)
                x = out.features
                if out.spatial_bias is not None:
                    maps[name], upsampled[name] = out.spatial_bias, out.spatial_bias_upsampled
                if out.attention is not None:
                    attention[name] = _query_attention(out.attention, out.attention_grids, query)
            stages[stage_name] = x
        return Intermediates(self.forward_head(x), stages, maps, upsampled, attention)


def _query_attention(
    attention: torch.Tensor, grids: tuple[tuple[int, int], tuple[int, int]], query: tuple[float, float]
) -> torch.Tensor:
    """Pick one query row of a (B, H*W, Hk*Wk) affinity and shape it as (B, Hk, Wk)."""
    (height, width), (key_height, key_width) = grids
    row = min(int(query[0] * height), height - 1)
    col = min(int(query[1] * width), width - 1)
    return attention[:, row * width + col].reshape(-1, key_height, key_width)
