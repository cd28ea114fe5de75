"""Registered ResNet builders: ImageNet-style ResNet-18/34/50/101 and CIFAR-style bottleneck
ResNet-38/65/164, each bottleneck model also as ``sb_`` (spatial bias), ``nl_`` (non-local) and
``sbnl_`` (both). One ``def`` per registered name, as in timm.

Defaults:
- ImageNet: spatial bias in every bottleneck of stages 1-3, K=5, R=10, N=3 (reference code);
  non-local after blocks layer2.1, layer2.3, layer3.1, layer3.3, layer3.5 (the common 5-block
  setting: alternate blocks of res3/res4), phi and g max-pooled 2x2.
- CIFAR: spatial bias in stages 1-3 with K=5, R=6, N=3 (R=6 reproduces the paper's CIFAR
  parameter counts: ResNet-38 0.43M -> 0.45/0.46/0.48M with 1/2/3 stages); non-local after
  layer2.1, layer2.3, layer3.1, layer3.3 without subsampling (the maps are 14x14 and smaller).

Every builder takes ``num_classes`` and ``in_chans``; variants with spatial bias also take
``spatial_bias={...}`` and variants with non-local blocks ``non_local={...}`` (fields of
SpatialBiasConfig / NonLocalConfig), e.g. ``create_model("sb_resnet38", spatial_bias={"stages": [2]})``.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from sbcore.lab.same_different import DEFAULT_TASK, LABELS
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
IMAGENET_WIDTHS = (64, 128, 256, 512)
CIFAR_WIDTHS = (16, 32, 64)


def _imagenet_class_names() -> tuple[str, ...]:
    from torchvision.models import ResNet50_Weights  # categories ship inside torchvision, no download

    return tuple(ResNet50_Weights.IMAGENET1K_V2.meta["categories"])


IMAGENET_CLASSES = _imagenet_class_names()


def _override(variant: str, option: str, default: Any, override: dict[str, Any] | None) -> Any:
    """A variant's default branch config with the user's field overrides applied."""
    if override is None:
        return default
    if not isinstance(override, dict):
        raise TypeError(f"{variant}: {option} must be a dict of {type(default).__name__} fields, got {override!r}.")
    return replace(default, **{k: tuple(v) if isinstance(v, list) else v for k, v in override.items()})


def _create_resnet(
    variant: str,
    block: type[BasicBlock] | type[Bottleneck],
    layers: tuple[int, ...],
    stem: str,
    sb: SpatialBiasConfig | None = None,
    nl: NonLocalConfig | None = None,
    widths: tuple[int, ...] | None = None,
    **options: Any,
) -> ResNet:
    """Build ``variant``; ``options`` are the user's: num_classes, in_chans, and spatial_bias / non_local
    overrides where the variant has that branch. Anything else is a TypeError that names it.
    ``widths`` defaults to the stem's family (ImageNet 64..512, CIFAR 16/32/64)."""
    accepted = {"num_classes", "in_chans"} | ({"spatial_bias"} if sb else set()) | ({"non_local"} if nl else set())
    unknown = sorted(set(options) - accepted)
    if unknown:
        hint = ""
        if {"spatial_bias", "non_local", "with_sb", "with_nl"} & set(unknown):
            hint = " Spatial bias and non-local blocks come with the sb_, nl_ and sbnl_ variants' names."
        raise TypeError(f"{variant}() got unexpected option(s) {', '.join(unknown)}; it accepts {', '.join(sorted(accepted))}.{hint}")
    imagenet = stem == "imagenet"
    return ResNet(
        block,
        layers,
        widths=widths or (IMAGENET_WIDTHS if imagenet else CIFAR_WIDTHS),
        stem=stem,
        num_classes=options.get("num_classes") or (1000 if imagenet else 10),
        in_chans=options.get("in_chans", 3),
        spatial_bias=_override(variant, "spatial_bias", sb, options.get("spatial_bias")) if sb else None,
        non_local=_override(variant, "non_local", nl, options.get("non_local")) if nl else None,
    )


# ImageNet-style (7x7/2 stem + max-pool, 4 stages), 3x224x224 inputs.


@register_model(IMAGENET, IMAGENET_CLASSES)
def resnet18(**kwargs: Any) -> ResNet:
    """ImageNet-style ResNet-18 (basic blocks)."""
    return _create_resnet("resnet18", BasicBlock, (2, 2, 2, 2), "imagenet", **kwargs)


@register_model(IMAGENET, IMAGENET_CLASSES)
def resnet34(**kwargs: Any) -> ResNet:
    """ImageNet-style ResNet-34 (basic blocks)."""
    return _create_resnet("resnet34", BasicBlock, (3, 4, 6, 3), "imagenet", **kwargs)


@register_model(IMAGENET, IMAGENET_CLASSES)
def resnet50(**kwargs: Any) -> ResNet:
    """ImageNet-style ResNet-50."""
    return _create_resnet("resnet50", Bottleneck, (3, 4, 6, 3), "imagenet", **kwargs)


@register_model(IMAGENET, IMAGENET_CLASSES)
def sb_resnet50(**kwargs: Any) -> ResNet:
    """ImageNet-style ResNet-50 with spatial bias."""
    return _create_resnet("sb_resnet50", Bottleneck, (3, 4, 6, 3), "imagenet", sb=IMAGENET_SB, **kwargs)


@register_model(IMAGENET, IMAGENET_CLASSES)
def nl_resnet50(**kwargs: Any) -> ResNet:
    """ImageNet-style ResNet-50 with non-local blocks."""
    return _create_resnet("nl_resnet50", Bottleneck, (3, 4, 6, 3), "imagenet", nl=IMAGENET_NL, **kwargs)


@register_model(IMAGENET, IMAGENET_CLASSES)
def sbnl_resnet50(**kwargs: Any) -> ResNet:
    """ImageNet-style ResNet-50 with spatial bias and non-local blocks."""
    return _create_resnet("sbnl_resnet50", Bottleneck, (3, 4, 6, 3), "imagenet", sb=IMAGENET_SB, nl=IMAGENET_NL, **kwargs)


@register_model(IMAGENET, IMAGENET_CLASSES)
def resnet101(**kwargs: Any) -> ResNet:
    """ImageNet-style ResNet-101."""
    return _create_resnet("resnet101", Bottleneck, (3, 4, 23, 3), "imagenet", **kwargs)


@register_model(IMAGENET, IMAGENET_CLASSES)
def sb_resnet101(**kwargs: Any) -> ResNet:
    """ImageNet-style ResNet-101 with spatial bias."""
    return _create_resnet("sb_resnet101", Bottleneck, (3, 4, 23, 3), "imagenet", sb=IMAGENET_SB, **kwargs)


@register_model(IMAGENET, IMAGENET_CLASSES)
def nl_resnet101(**kwargs: Any) -> ResNet:
    """ImageNet-style ResNet-101 with non-local blocks."""
    return _create_resnet("nl_resnet101", Bottleneck, (3, 4, 23, 3), "imagenet", nl=IMAGENET_NL, **kwargs)


@register_model(IMAGENET, IMAGENET_CLASSES)
def sbnl_resnet101(**kwargs: Any) -> ResNet:
    """ImageNet-style ResNet-101 with spatial bias and non-local blocks."""
    return _create_resnet("sbnl_resnet101", Bottleneck, (3, 4, 23, 3), "imagenet", sb=IMAGENET_SB, nl=IMAGENET_NL, **kwargs)


# CIFAR-style bottleneck ResNets (3x3 stem, 3 stages of widths 16/32/64, depth 9n + 2), 32x32 inputs.


@register_model(CIFAR)
def resnet38(**kwargs: Any) -> ResNet:
    """CIFAR-style bottleneck ResNet-38."""
    return _create_resnet("resnet38", Bottleneck, (4, 4, 4), "cifar", **kwargs)


@register_model(CIFAR)
def sb_resnet38(**kwargs: Any) -> ResNet:
    """CIFAR-style bottleneck ResNet-38 with spatial bias."""
    return _create_resnet("sb_resnet38", Bottleneck, (4, 4, 4), "cifar", sb=CIFAR_SB, **kwargs)


@register_model(CIFAR)
def nl_resnet38(**kwargs: Any) -> ResNet:
    """CIFAR-style bottleneck ResNet-38 with non-local blocks."""
    return _create_resnet("nl_resnet38", Bottleneck, (4, 4, 4), "cifar", nl=CIFAR_NL, **kwargs)


@register_model(CIFAR)
def sbnl_resnet38(**kwargs: Any) -> ResNet:
    """CIFAR-style bottleneck ResNet-38 with spatial bias and non-local blocks."""
    return _create_resnet("sbnl_resnet38", Bottleneck, (4, 4, 4), "cifar", sb=CIFAR_SB, nl=CIFAR_NL, **kwargs)


@register_model(CIFAR)
def resnet65(**kwargs: Any) -> ResNet:
    """CIFAR-style bottleneck ResNet-65."""
    return _create_resnet("resnet65", Bottleneck, (7, 7, 7), "cifar", **kwargs)


@register_model(CIFAR)
def sb_resnet65(**kwargs: Any) -> ResNet:
    """CIFAR-style bottleneck ResNet-65 with spatial bias."""
    return _create_resnet("sb_resnet65", Bottleneck, (7, 7, 7), "cifar", sb=CIFAR_SB, **kwargs)


@register_model(CIFAR)
def nl_resnet65(**kwargs: Any) -> ResNet:
    """CIFAR-style bottleneck ResNet-65 with non-local blocks."""
    return _create_resnet("nl_resnet65", Bottleneck, (7, 7, 7), "cifar", nl=CIFAR_NL, **kwargs)


@register_model(CIFAR)
def sbnl_resnet65(**kwargs: Any) -> ResNet:
    """CIFAR-style bottleneck ResNet-65 with spatial bias and non-local blocks."""
    return _create_resnet("sbnl_resnet65", Bottleneck, (7, 7, 7), "cifar", sb=CIFAR_SB, nl=CIFAR_NL, **kwargs)


@register_model(CIFAR)
def resnet164(**kwargs: Any) -> ResNet:
    """CIFAR-style bottleneck ResNet-164."""
    return _create_resnet("resnet164", Bottleneck, (18, 18, 18), "cifar", **kwargs)


@register_model(CIFAR)
def sb_resnet164(**kwargs: Any) -> ResNet:
    """CIFAR-style bottleneck ResNet-164 with spatial bias."""
    return _create_resnet("sb_resnet164", Bottleneck, (18, 18, 18), "cifar", sb=CIFAR_SB, **kwargs)


@register_model(CIFAR)
def nl_resnet164(**kwargs: Any) -> ResNet:
    """CIFAR-style bottleneck ResNet-164 with non-local blocks."""
    return _create_resnet("nl_resnet164", Bottleneck, (18, 18, 18), "cifar", nl=CIFAR_NL, **kwargs)


@register_model(CIFAR)
def sbnl_resnet164(**kwargs: Any) -> ResNet:
    """CIFAR-style bottleneck ResNet-164 with spatial bias and non-local blocks."""
    return _create_resnet("sbnl_resnet164", Bottleneck, (18, 18, 18), "cifar", sb=CIFAR_SB, nl=CIFAR_NL, **kwargs)


# Global-context lab (issue 9): 1x128x128 same-different canvases (sbcore.lab.same_different). A
# stride-4 stem (7x7/2 conv + 3x3/2 max-pool) with CIFAR widths and bottlenecks (1, 1, 2): the
# stages' theoretical receptive fields are 19, 27 and 75 px, so a plain network never sees both
# items of the far pairs (centres 94 px or more apart). Spatial bias in every block, 6x6 grid;
# non-local blocks after layer2.0 (16x16 positions) and layer3.1 (8x8), not subsampled.
LAB = DEFAULT_TASK.preprocessing
LAB_CLASSES = LABELS
LAB_LAYERS = (1, 1, 2)
LAB_SB = SpatialBiasConfig(stages=(1, 2, 3), grid_size=6)
LAB_NL = NonLocalConfig(blocks=("layer2.0", "layer3.1"), subsample=False)


def _create_lab_resnet(variant: str, **kwargs: Any) -> ResNet:
    options = {"num_classes": len(LAB_CLASSES), "in_chans": 1, **kwargs}
    return _create_resnet(variant, Bottleneck, LAB_LAYERS, "imagenet", widths=CIFAR_WIDTHS, **options)


@register_model(LAB, LAB_CLASSES)
def lab_resnet14(**kwargs: Any) -> ResNet:
    """Global-context lab ResNet-14: stride-4 stem, CIFAR widths, bottlenecks (1, 1, 2), 1x128x128 input."""
    return _create_lab_resnet("lab_resnet14", **kwargs)


@register_model(LAB, LAB_CLASSES)
def sb_lab_resnet14(**kwargs: Any) -> ResNet:
    """Global-context lab ResNet-14 with spatial bias in every block."""
    return _create_lab_resnet("sb_lab_resnet14", sb=LAB_SB, **kwargs)


@register_model(LAB, LAB_CLASSES)
def nl_lab_resnet14(**kwargs: Any) -> ResNet:
    """Global-context lab ResNet-14 with non-local blocks after layer2.0 and layer3.1."""
    return _create_lab_resnet("nl_lab_resnet14", nl=LAB_NL, **kwargs)


@register_model(LAB, LAB_CLASSES)
def sbnl_lab_resnet14(**kwargs: Any) -> ResNet:
    """Global-context lab ResNet-14 with spatial bias and non-local blocks."""
    return _create_lab_resnet("sbnl_lab_resnet14", sb=LAB_SB, nl=LAB_NL, **kwargs)
