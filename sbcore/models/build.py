"""Construction: a registered architecture with random weights and its ``metadata``."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from torch import nn

from sbcore.models.metadata import ModelMetadata, Preprocessing
from sbcore.models.registry import model_entry


def _preprocessing_for(preprocessing: Preprocessing, in_chans: int) -> Preprocessing:
    """The architecture's preprocessing, with mean/std averaged over channels when ``in_chans`` differs."""
    if in_chans == preprocessing.input_size[0]:
        return preprocessing
    mean = (sum(preprocessing.mean) / len(preprocessing.mean),) * in_chans
    std = (sum(preprocessing.std) / len(preprocessing.std),) * in_chans
    return replace(preprocessing, input_size=(in_chans, *preprocessing.input_size[1:]), mean=mean, std=std)


def build_model(architecture: str, **kwargs: Any) -> nn.Module:
    """Build a registered architecture with random weights and attach its ``metadata`` (a ModelMetadata).

    ``kwargs`` go to the builder (``num_classes``, ``in_chans``, ``spatial_bias``, ``non_local``); an
    option the builder does not take raises TypeError naming it.
    """
    entry = model_entry(architecture)
    model = entry.builder(**kwargs)
    preprocessing = _preprocessing_for(entry.preprocessing, kwargs.get("in_chans", entry.preprocessing.input_size[0]))
    num_classes = kwargs.get("num_classes", len(entry.class_names) or None)
    class_names = list(entry.class_names)
    if num_classes is not None and len(class_names) != num_classes:
        class_names = [f"class {i}" for i in range(num_classes)]
    model.metadata = ModelMetadata(architecture, dict(kwargs), preprocessing, class_names)
    return model
