"""Model definitions and their registry: the ResNet, its registered builders and shipped weights.

Loading weights by name (``create_model``) lives one level up, in ``sbcore.factory``.
"""
from sbcore.models import pretrained, zoo  # noqa: F401  (registers models and weights)
from sbcore.models.build import build_model
from sbcore.models.metadata import ModelMetadata, Preprocessing
from sbcore.models.registry import list_models, plain_counterpart, register_model
from sbcore.models.resnet import (
    CHANNEL_LAYOUTS, Intermediates, NonLocalConfig, ResNet, SpatialBiasConfig, set_channel_layout,
    set_fused_branch,
)

__all__ = [
    "CHANNEL_LAYOUTS",
    "Intermediates",
    "ModelMetadata",
    "NonLocalConfig",
    "Preprocessing",
    "ResNet",
    "SpatialBiasConfig",
    "build_model",
    "list_models",
    "plain_counterpart",
    "register_model",
    "set_channel_layout",
    "set_fused_branch",
]
