"""Test-set metrics: top-1, top-5, per-class accuracy and the confusion matrix."""
from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import nn
from tqdm import tqdm


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    num_classes: int,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> dict[str, Any]:
    """Evaluate in fp32 so the numbers are reproducible bit for bit on the same hardware.

    Returns ``{"top1", "top5"}`` in percent, ``"per_class"`` accuracy in percent,
    ``"confusion"`` (rows: true class, columns: predicted) and ``"samples"``.
    """
    model.eval()
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)
    top5_hits = 0
    for images, labels in tqdm(batches, desc="eval", disable=not progress, leave=False):
        logits = model(images.to(device)).float().cpu()
        k = min(5, num_classes)
        top5_hits += (logits.topk(k, dim=1).indices == labels[:, None]).any(dim=1).sum().item()
        index = labels * num_classes + logits.argmax(dim=1)
        confusion += torch.bincount(index, minlength=num_classes**2).reshape(num_classes, num_classes)
    samples = int(confusion.sum())
    per_class = (confusion.diag().double() / confusion.sum(dim=1).clamp(min=1).double() * 100).tolist()
    return {
        "top1": round(float(confusion.diag().sum()) / max(samples, 1) * 100, 4),
        "top5": round(top5_hits / max(samples, 1) * 100, 4),
        "per_class": [round(v, 4) for v in per_class],
        "confusion": confusion.tolist(),
        "samples": samples,
    }
