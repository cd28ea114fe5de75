"""Model registry: names, shipped-weights tags and listing. It only records; building a model is
``sbcore.models.build``, loading weights is ``sbcore.factory``."""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from torch import nn

from sbcore.errors import UnknownModelError
from sbcore.models.metadata import Preprocessing

ModelBuilder = Callable[..., nn.Module]
VARIANT_PREFIXES = ("sbnl_", "sb_", "nl_")  # spatial bias + non-local, spatial bias, non-local


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


def plain_counterpart(architecture: str) -> str:
    """``sbnl_resnet50`` -> ``resnet50``: the plain baseline of a variant (the name itself when plain)."""
    for prefix in VARIANT_PREFIXES:
        if architecture.startswith(prefix):
            return architecture.removeprefix(prefix)
    return architecture

