"""Models from uploaded files: an sbcore checkpoint (.safetensors + .json) or a reference-code
``.pth`` state dict loaded into a chosen architecture. Errors are CheckpointError with the reason."""
from __future__ import annotations

import tempfile
from pathlib import Path

from torch import nn

import sbcore
from sbcore.checkpoint import load_weights
from sbcore.convert import read_torch_state_dict


def load_uploaded_checkpoint(file_name: str, weights: bytes, metadata: bytes) -> nn.Module:
    """Rebuild a model from the bytes of ``NAME.safetensors`` and its ``NAME.json``."""
    stem = Path(file_name).stem or "checkpoint"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{stem}.safetensors"
        path.write_bytes(weights)
        path.with_suffix(".json").write_bytes(metadata)
        return sbcore.load_checkpoint(path)


def load_reference_state_dict(
    file_name: str, data: bytes, architecture: str, num_classes: int, in_chans: int
) -> nn.Module:
    """A ``torch.save`` state dict (authors' reference names or this package's) in ``architecture``."""
    state_dict = sbcore.convert_reference_state_dict(read_torch_state_dict(data))
    model = sbcore.create_model(architecture, num_classes=num_classes, in_chans=in_chans)
    load_weights(model, state_dict, source=file_name)
    return model.eval()
