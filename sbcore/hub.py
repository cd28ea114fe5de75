"""torchvision's ImageNet weights, converted into this package's models.

Needs the network the first time (or the file already in torch's hub cache); offline it fails
with one clear sentence.
"""
from __future__ import annotations

import urllib.error
from typing import Any

from torch import nn
from torch.hub import load_state_dict_from_url
from torchvision import models as tv_models

from sbcore.convert import widen_state_dict
from sbcore.errors import OfflineError, UnknownModelError
from sbcore.models.build import build_model
from sbcore.models.registry import plain_counterpart

_TORCHVISION_WEIGHTS = {
    "resnet18": tv_models.ResNet18_Weights.IMAGENET1K_V1,
    "resnet34": tv_models.ResNet34_Weights.IMAGENET1K_V1,
    "resnet50": tv_models.ResNet50_Weights.IMAGENET1K_V2,
    "resnet101": tv_models.ResNet101_Weights.IMAGENET1K_V2,
}


def torchvision_weights(architecture: str) -> tv_models.WeightsEnum:
    """The torchvision weights enum for a plain, sb_, nl_ or sbnl_ ImageNet ResNet."""
    plain = plain_counterpart(architecture)
    if plain not in _TORCHVISION_WEIGHTS:
        raise UnknownModelError(f"torchvision has no ImageNet weights for {architecture!r}.")
    return _TORCHVISION_WEIGHTS[plain]


def load_torchvision_pretrained(architecture: str, **kwargs: Any) -> nn.Module:
    """Build ``architecture`` with torchvision's ImageNet weights, widened function-preservingly.

    Raises OfflineError when the weights are neither cached nor downloadable.
    """
    weights = torchvision_weights(architecture)
    try:
        # check_hash=False: a hash in the file name is checked only on download by torchvision itself
        state_dict = load_state_dict_from_url(weights.url, progress=False, check_hash=False, weights_only=True)
    except (urllib.error.URLError, OSError) as error:
        raise OfflineError(
            f"Could not download torchvision's {weights} weights for {architecture} ({error}); "
            "without network, put the file in torch's hub cache (TORCH_HOME/hub/checkpoints) first."
        ) from None
    model = build_model(architecture, **kwargs)
    model.load_state_dict(widen_state_dict(state_dict, model))
    model.metadata.pretrained = f"torchvision:{weights}"
    return model.eval()
