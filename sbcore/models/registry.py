"""Model registry: ``@register_model`` builders, ``list_models`` and ``create_model``."""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from torch import nn

from sbcore.errors import UnknownModelError
from sbcore.models.metadata import ModelMetadata, Preprocessing

ModelBuilder = Callable[..., nn.Module]


@dataclass(frozen=True)
class ModelEntry:
    """A registered architecture: its builder and the preprocessing its inputs expect."""

    builder: ModelBuilder
    preprocessing: Preprocessing
    class_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class PretrainedEntry:
    """Weights shipped with the project: a checkpoint file under assets/ and its sha256."""

    architecture: str
    path: Path
    sha256: str


_MODELS: dict[str, ModelEntry] = {}
_PRETRAINED: dict[str, PretrainedEntry] = {}


def register_model(
    preprocessing: Preprocessing, class_names: tuple[str, ...] = ()
) -> Callable[[ModelBuilder], ModelBuilder]:
    """Decorator: register a builder under its function name with its input preprocessing."""

    def decorate(builder: ModelBuilder) -> ModelBuilder:
        _MODELS[builder.__name__] = ModelEntry(builder, preprocessing, class_names)
        return builder

    return decorate


def register_pretrained(tag_name: str, path: Path, sha256: str) -> None:
    """Register shipped weights as ``"architecture.tag"``."""
    architecture = tag_name.split(".", 1)[0]
    _PRETRAINED[tag_name] = PretrainedEntry(architecture, path, sha256)


def list_models(pattern: str = "*", pretrained: bool = False) -> list[str]:
    """Registered names matching a shell pattern; with ``pretrained``, the ``arch.tag`` names of shipped weights."""
    names = _PRETRAINED if pretrained else _MODELS
    return sorted(name for name in names if fnmatch.fnmatch(name, pattern))


def model_entry(architecture: str) -> ModelEntry:
    """The registry entry of an architecture; a clear error lists close names when unknown."""
    try:
        return _MODELS[architecture]
    except KeyError:
        close = [n for n in _MODELS if architecture.split("_")[-1] in n][:6]
        hint = f" Did you mean one of {close}?" if close else ""
        raise UnknownModelError(f"Unknown model {architecture!r}.{hint} See sbcore.list_models().") from None


def pretrained_entry(name: str) -> PretrainedEntry:
    """The shipped-weights entry for ``"architecture.tag"``."""
    try:
        return _PRETRAINED[name]
    except KeyError:
        available = ", ".join(sorted(_PRETRAINED)) or "none"
        raise UnknownModelError(f"No shipped weights named {name!r}. Available: {available}.") from None


def build_model(architecture: str, **kwargs) -> nn.Module:
    """Build an architecture with random weights and attach its ``metadata``."""
    entry = model_entry(architecture)
    model = entry.builder(**kwargs)
    in_chans = kwargs.get("in_chans", entry.preprocessing.input_size[0])
    preprocessing = entry.preprocessing
    if in_chans != preprocessing.input_size[0]:
        mean = (sum(preprocessing.mean) / len(preprocessing.mean),) * in_chans
        std = (sum(preprocessing.std) / len(preprocessing.std),) * in_chans
        preprocessing = Preprocessing(
            (in_chans, *preprocessing.input_size[1:]), mean, std, preprocessing.interpolation, preprocessing.crop_pct
        )
    num_classes = kwargs.get("num_classes", len(entry.class_names) or None)
    class_names = list(entry.class_names)
    if num_classes is not None and len(class_names) != num_classes:
        class_names = [f"class {i}" for i in range(num_classes)]
    model.metadata = ModelMetadata(architecture, dict(kwargs), preprocessing, class_names)
    return model


def create_model(name: str, pretrained: bool | str = False, **kwargs) -> nn.Module:
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
    from sbcore import checkpoint, hub  # deferred: both build models through this module

    architecture, _, tag = name.partition(".")
    if pretrained is True or (tag and pretrained is not False):
        if not tag:
            tags = list_models(f"{architecture}.*", pretrained=True)
            if len(tags) != 1:
                raise UnknownModelError(
                    f"{name!r} has {'no' if not tags else 'several'} shipped weights"
                    f"{': ' + ', '.join(tags) if tags else ''}; name one as 'architecture.tag'."
                )
            name = tags[0]
        entry = pretrained_entry(name)
        model = checkpoint.load_checkpoint(entry.path, expected_sha256=entry.sha256)
        model.metadata.pretrained = name
        return model
    if tag:
        model_entry(architecture)
        raise UnknownModelError(f"{name!r} names shipped weights: pass pretrained=True to load them.")
    if pretrained == "torchvision":
        return hub.load_torchvision_pretrained(architecture, **kwargs)
    if pretrained:
        model = checkpoint.load_checkpoint(pretrained)
        if model.metadata.architecture != architecture:
            raise checkpoint.CheckpointError(
                f"{pretrained} holds a {model.metadata.architecture!r} model, not {architecture!r}."
            )
        return model
    return build_model(architecture, **kwargs)


def resolve_model(spec: str, **kwargs) -> nn.Module:
    """A model from one string, as the CLI and app accept it: a checkpoint path (.safetensors or
    .json), shipped weights (``"sb_resnet38.fmnist"``) or an architecture (random weights)."""
    from sbcore import checkpoint

    if spec.endswith((".safetensors", ".json")) or Path(spec).exists():
        return checkpoint.load_checkpoint(spec)
    if "." in spec:
        return create_model(spec, pretrained=True)
    return create_model(spec, **kwargs)
