"""Models by name: an architecture with random weights, shipped weights, torchvision's ImageNet
weights or a checkpoint file. The one place that ties the registry to checkpoint and hub loading."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from sbcore import checkpoint, hub
from sbcore.errors import CheckpointError, UnknownModelError
from sbcore.models.build import build_model
from sbcore.models.registry import list_models, model_entry, pretrained_entry


def create_model(name: str, pretrained: bool | str = False, **kwargs: Any) -> nn.Module:
    """Build a registered model, optionally with weights.

    Args:
        name: an architecture (``"sb_resnet50"``) or shipped weights (``"sb_resnet38.fmnist"``).
        pretrained: False for random weights; True for the shipped weights named by ``name``;
            ``"torchvision"`` for torchvision's ImageNet weights (needs network or a cached file);
            or a checkpoint path.
        **kwargs: builder options such as ``num_classes``, ``in_chans``, ``spatial_bias``, ``non_local``.
    Returns:
        The model in eval mode when pretrained, with ``model.metadata`` (a ModelMetadata).
    """
    architecture, _, tag = name.partition(".")
    if not architecture:  # "../x", ".fmnist": no architecture before the dot
        raise UnknownModelError(f"Unknown model {name!r}: expected an architecture such as sb_resnet38, optionally "
                                "with .TAG for shipped weights. See sbcore.list_models().")
    if pretrained is True or (tag and pretrained is not False):
        return _load_shipped(name if tag else _only_tag(architecture))
    if tag:
        model_entry(architecture)
        raise UnknownModelError(f"{name!r} names shipped weights: pass pretrained=True to load them.")
    if pretrained == "torchvision":
        return hub.load_torchvision_pretrained(architecture, **kwargs)
    if pretrained:
        model = checkpoint.load_checkpoint(pretrained)
        if model.metadata.architecture != architecture:
            raise CheckpointError(f"{pretrained} holds a {model.metadata.architecture!r} model, not {architecture!r}.")
        return model
    return build_model(architecture, **kwargs)


def _only_tag(architecture: str) -> str:
    """``"sb_resnet38"`` -> ``"sb_resnet38.fmnist"`` when it has exactly one set of shipped weights."""
    tags = list_models(f"{architecture}.*", pretrained=True)
    if len(tags) != 1:
        raise UnknownModelError(
            f"{architecture!r} has {'no' if not tags else 'several'} shipped weights"
            f"{': ' + ', '.join(tags) if tags else ''}; name one as 'architecture.tag'."
        )
    return tags[0]


def _load_shipped(name: str) -> nn.Module:
    entry = pretrained_entry(name)
    model = checkpoint.load_checkpoint(entry.path, expected_sha256=entry.sha256)
    model.metadata.pretrained = name
    return model


def resolve_model(spec: str, **kwargs: Any) -> nn.Module:
    """A model from one string, as the CLI and app accept it: a checkpoint path (.safetensors or
    .json), shipped weights (``"sb_resnet38.fmnist"``) or an architecture (random weights)."""
    if spec.endswith((".safetensors", ".json")) or Path(spec).exists():
        return checkpoint.load_checkpoint(spec)
    if "." in spec:
        return create_model(spec, pretrained=True)
    return create_model(spec, **kwargs)
