"""Registered ResNet builders: ImageNet-style ResNet-18/34/50/101 and CIFAR-style bottleneck
ResNet-38/65/164, each bottleneck model also as ``sb_`` (spatial bias), ``nl_`` (non-local) and
``sbnl_`` (both).

Defaults:
- ImageNet: spatial bias in every bottleneck of stages 1-3, K=5, R=10, N=3 (reference code);
  non-local after blocks layer2.1, layer2.3, layer3.1, layer3.3, layer3.5 (the common 5-block
  setting: alternate blocks of res3/res4), phi and g max-pooled 2x2.
- CIFAR: spatial bias in stages 1-3 with K=5, R=6, N=3 (R=6 reproduces the paper's CIFAR
  parameter counts: ResNet-38 0.43M -> 0.45/0.46/0.48M with 1/2/3 stages); non-local after
  layer2.1, layer2.3, layer3.1, layer3.3 without subsampling (the maps are 14x14 and smaller).
Override with ``spatial_bias={...}`` / ``non_local={...}`` (fields of SpatialBiasConfig /
NonLocalConfig), e.g. ``create_model("sb_resnet38", spatial_bias={"stages": [2]})``.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from sbcore.models.metadata import Preprocessing
from sbcore.models.registry import register_model
from sbcore.models.resnet import BasicBlock, Bottleneck, NonLocalConfig, ResNet, SpatialBiasConfig

IMAGENET = Preprocessing()
CIFAR = Preprocessing(
    input_size=(3, 32, 32), mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616), crop_pct=1.0
)
IMAGENET_SB = SpatialBiasConfig(stages=(1, 2, 3), grid_size=10)
IMAGENET_NL = NonLocalConfig(blocks=("layer2.1", "layer2.3", "layer3.1", "layer3.3", "layer3.5"), subsample=True)
CIFAR_SB = SpatialBiasConfig(stages=(1, 2, 3), grid_size=6)
CIFAR_NL = NonLocalConfig(blocks=("layer2.1", "layer2.3", "layer3.1", "layer3.3"), subsample=False)
CIFAR_WIDTHS = (16, 32, 64)


def _imagenet_class_names() -> tuple[str, ...]:
    from torchvision.models import ResNet50_Weights  # categories ship inside torchvision, no download

    return tuple(ResNet50_Weights.IMAGENET1K_V2.meta["categories"])


def _configure(default: Any, override: dict[str, Any] | bool | None, enabled: bool) -> Any:
    """Resolve a variant's default config with a user override (dict of fields, or False to disable)."""
    if override is False or (override is None and not enabled):
        return None
    config = default
    if isinstance(override, dict):
        config = replace(default, **{k: tuple(v) if isinstance(v, list) else v for k, v in override.items()})
    return config


def _resnet(
    block: type[BasicBlock] | type[Bottleneck],
    layers: tuple[int, ...],
    *,
    stem: str,
    with_sb: bool = False,
    with_nl: bool = False,
    spatial_bias: dict[str, Any] | bool | None = None,
    non_local: dict[str, Any] | bool | None = None,
    num_classes: int | None = None,
    in_chans: int = 3,
) -> ResNet:
    imagenet = stem == "imagenet"
    return ResNet(
        block,
        layers,
        widths=(64, 128, 256, 512) if imagenet else CIFAR_WIDTHS,
        stem=stem,
        num_classes=num_classes or (1000 if imagenet else 10),
        in_chans=in_chans,
        spatial_bias=_configure(IMAGENET_SB if imagenet else CIFAR_SB, spatial_bias, with_sb),
        non_local=_configure(IMAGENET_NL if imagenet else CIFAR_NL, non_local, with_nl),
    )


def _register_family(
    base: str, block: type[BasicBlock] | type[Bottleneck], layers: tuple[int, ...], stem: str
) -> None:
    """Register ``base`` and, for bottleneck models, its sb_/nl_/sbnl_ variants."""
    preprocessing, class_names = (IMAGENET, _imagenet_class_names()) if stem == "imagenet" else (CIFAR, ())
    variants = {"": (False, False)}
    if block is Bottleneck:
        variants.update({"sb_": (True, False), "nl_": (False, True), "sbnl_": (True, True)})
    for prefix, (with_sb, with_nl) in variants.items():

        def builder(with_sb: bool = with_sb, with_nl: bool = with_nl, **kwargs: Any) -> ResNet:
            return _resnet(block, layers, stem=stem, with_sb=with_sb, with_nl=with_nl, **kwargs)

        builder.__name__ = f"{prefix}{base}"
        builder.__doc__ = (
            f"{stem.capitalize()}-style {base}"
            f"{' with spatial bias' if with_sb else ''}{' and' if with_sb and with_nl else ''}"
            f"{' with non-local blocks' if with_nl else ''}."
        )
        register_model(preprocessing, class_names)(builder)


_register_family("resnet18", BasicBlock, (2, 2, 2, 2), "imagenet")
_register_family("resnet34", BasicBlock, (3, 4, 6, 3), "imagenet")
_register_family("resnet50", Bottleneck, (3, 4, 6, 3), "imagenet")
_register_family("resnet101", Bottleneck, (3, 4, 23, 3), "imagenet")
for _depth in (38, 65, 164):  # bottleneck CIFAR ResNets have depth 9n + 2
    _register_family(f"resnet{_depth}", Bottleneck, ((_depth - 2) // 9,) * 3, "cifar")
