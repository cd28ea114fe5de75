"""Model assembly: the ResNet definition, its registered builders and shipped weights."""
from sbcore.models import pretrained, zoo  # noqa: F401  (registers models and weights)
from sbcore.models.metadata import ModelMetadata, Preprocessing
from sbcore.models.registry import create_model, list_models, register_model
from sbcore.models.resnet import Intermediates, NonLocalConfig, ResNet, SpatialBiasConfig

__all__ = [
    "Intermediates",
    "ModelMetadata",
    "NonLocalConfig",
    "Preprocessing",
    "ResNet",
    "SpatialBiasConfig",
    "create_model",
    "list_models",
    "register_model",
]
