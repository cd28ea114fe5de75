"""Spatial Bias Explorer core: spatial-bias, non-local and plain ResNets, checkpoints and analysis.

Typical use::

    import sbcore
    model = sbcore.create_model("sb_resnet38.fmnist", pretrained=True)
    out = model.forward_intermediates(batch)  # logits, SB maps, NL attention
"""
from sbcore.checkpoint import load_checkpoint, save_checkpoint
from sbcore.convert import convert_reference_state_dict, widen_state_dict
from sbcore.errors import CheckpointError, DatasetNotFoundError, OfflineError, SBCoreError, UnknownModelError
from sbcore.factory import create_model, resolve_model
from sbcore.layers import NonLocal2d, SpatialBias
from sbcore.models import (
    Intermediates,
    ModelMetadata,
    NonLocalConfig,
    Preprocessing,
    ResNet,
    SpatialBiasConfig,
    list_models,
)

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "DatasetNotFoundError",
    "Intermediates",
    "ModelMetadata",
    "NonLocal2d",
    "NonLocalConfig",
    "OfflineError",
    "Preprocessing",
    "ResNet",
    "SBCoreError",
    "SpatialBias",
    "SpatialBiasConfig",
    "UnknownModelError",
    "convert_reference_state_dict",
    "create_model",
    "list_models",
    "load_checkpoint",
    "resolve_model",
    "save_checkpoint",
    "widen_state_dict",
]
