"""Top-k class predictions with the model's own class names."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from sbcore.analysis.structure import eval_mode


@dataclass
class Prediction:
    """One ranked class: its index, its name from the model's metadata and its softmax probability."""

    index: int
    label: str
    probability: float


def class_label(model: nn.Module, index: int) -> str:
    """The class name stored in ``model.metadata``, or ``"class i"`` when the model has none."""
    names = getattr(getattr(model, "metadata", None), "class_names", None) or []
    return names[index] if index < len(names) else f"class {index}"


def top_predictions(model: nn.Module, logits: torch.Tensor, top_k: int = 5) -> list[Prediction]:
    """Top-k of one image's logits (1, num_classes) or (num_classes,)."""
    probabilities = torch.softmax(logits.detach().float().reshape(-1), dim=0)
    values, indices = probabilities.topk(min(top_k, probabilities.numel()))
    return [Prediction(int(i), class_label(model, int(i)), float(p)) for p, i in zip(values, indices)]


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, top_k: int = 5) -> list[Prediction]:
    """Top-k predictions for one input (1, C, H, W), most probable first."""
    with eval_mode(model):
        return top_predictions(model, model(x), top_k)
