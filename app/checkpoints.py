"""Models from uploaded files: an sbcore checkpoint (.safetensors + .json) or a reference-code
``.pth`` state dict loaded into a chosen architecture. Errors are CheckpointError with the reason.

A model is returned only after one trial prediction on a blank image has given finite
scores, so a model that cannot serve the pages never joins a picker."""
from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from PIL import Image
from torch import nn

import sbcore
from sbcore.budget import MemoryBudgetError, check_memory
from sbcore.checkpoint import load_weights
from sbcore.convert import read_torch_state_dict
from sbcore.errors import CheckpointError
from sbcore.images import preprocess


def _trial_prediction(model: nn.Module, source: str) -> nn.Module:
    """Check the model's input size against the memory budget, then run it once on a blank image
    through its own preprocessing; refuse it if either fails."""
    size = model.metadata.preprocessing.input_size
    try:
        check_memory(model, size)
    except MemoryBudgetError as error:
        raise CheckpointError(f"{source}: preprocessing.input_size {list(size)} is too large for this server ({error})") from None
    try:
        with torch.no_grad():
            logits = model.eval()(preprocess(Image.new("RGB", (64, 64), (128, 128, 128)), model.metadata.preprocessing))
    except (RuntimeError, ValueError) as error:
        raise CheckpointError(f"{source} loads but cannot make a prediction ({str(error).splitlines()[0][:200]}).") from None
    if not torch.isfinite(logits).all():
        raise CheckpointError(f"{source} loads but predicts NaN or infinite scores on a blank image.")
    return model


def load_uploaded_checkpoint(file_name: str, weights: bytes, metadata: bytes) -> nn.Module:
    """Rebuild a model from the bytes of ``NAME.safetensors`` and its ``NAME.json``."""
    stem = Path(file_name).stem or "checkpoint"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{stem}.safetensors"
        path.write_bytes(weights)
        path.with_suffix(".json").write_bytes(metadata)
        return _trial_prediction(sbcore.load_checkpoint(path), f"{stem}.safetensors")


def load_reference_state_dict(
    file_name: str, data: bytes, architecture: str, num_classes: int, in_chans: int
) -> nn.Module:
    """A ``torch.save`` state dict (authors' reference names or this package's) in ``architecture``."""
    state_dict = sbcore.convert_reference_state_dict(read_torch_state_dict(data, file_name))
    model = sbcore.create_model(architecture, num_classes=num_classes, in_chans=in_chans)
    load_weights(model, state_dict, source=file_name)
    return _trial_prediction(model, file_name)
