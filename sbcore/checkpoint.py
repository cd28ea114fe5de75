"""Checkpoints: weights in safetensors plus a JSON file of metadata beside them.

``NAME.safetensors`` holds the tensors; ``NAME.json`` holds the architecture and its kwargs,
class names, preprocessing, training recipe, measured metrics and the sha256 of the weights
file, so ``load_checkpoint`` rebuilds the model from the files alone. Nothing is unpickled.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from sbcore.errors import CheckpointError, SBCoreError
from sbcore.models.build import build_model
from sbcore.models.metadata import ModelMetadata
from sbcore.output_files import replacing, write_text
from sbcore.schema import FORMAT, load_document

_FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
_PICKLE_MAGIC = (b"\x80", b"PK\x03\x04")  # pickle protocol 2+ and torch.save's zip container


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def checkpoint_paths(path: str | Path) -> tuple[Path, Path]:
    """(weights, metadata) paths for a checkpoint given by either file or by its stem."""
    path = Path(path)
    stem = path.with_suffix("") if path.suffix in (".safetensors", ".json") else path
    return stem.with_suffix(".safetensors"), stem.with_suffix(".json")


def save_checkpoint(model: nn.Module, path: str | Path, metadata: ModelMetadata | None = None) -> Path:
    """Write ``path.safetensors`` and ``path.json``; returns the weights path.

    ``metadata`` defaults to ``model.metadata``; the weights' sha256 is added to the JSON.
    """
    metadata = metadata or model.metadata
    weights_path, meta_path = checkpoint_paths(path)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with replacing(weights_path) as temporary:  # a failed write leaves the old pair (or nothing) as it was
        save_file(state, str(temporary))
        document = {"format": FORMAT, **metadata.to_dict(), "weights_sha256": file_sha256(temporary)}
        write_text(meta_path, json.dumps(document, indent=2) + "\n")  # before the weights replace the old ones
    return weights_path


def read_metadata(path: str | Path) -> tuple[ModelMetadata, dict]:
    """Parse and validate a checkpoint's JSON (see ``sbcore.schema``); returns the metadata and the raw document."""
    _, meta_path = checkpoint_paths(path)
    if not meta_path.is_file():
        raise CheckpointError(f"Metadata file {meta_path} is missing; a checkpoint is a .safetensors plus a .json.")
    document = load_document(meta_path)
    return ModelMetadata.from_dict(document), document


def check_weights_file(path: str | Path) -> None:
    """Refuse a missing, empty or pickle/torch.save weights file, naming which it is."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Weights file {path} does not exist.")
    with open(path, "rb") as handle:
        head = handle.read(9)
    if not head:
        raise CheckpointError(f"{path.name} is empty (0 bytes).")
    # safetensors: an 8-byte little-endian header length, then the JSON header; a length whose low byte is
    # 0x80 must not read as a pickle
    if head.startswith(_PICKLE_MAGIC) and head[8:9] != b"{":
        raise CheckpointError(
            f"{path.name} is a pickle/torch.save file, not safetensors; pickles can run code and are not "
            "opened here, so convert it with sbcore.convert_reference_state_dict or save it as safetensors."
        )


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file; pickles and truncated or corrupt files get a specific error."""
    check_weights_file(path)
    path = Path(path)
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path.name} is truncated or not a safetensors file ({error}).") from None


def check_tensors(state_dict: dict[str, torch.Tensor], source: str) -> None:
    """Refuse weights that are not floating point (batch-norm counters excepted) or hold NaN or inf."""
    for key, tensor in state_dict.items():
        if key.endswith("num_batches_tracked"):
            continue
        if tensor.dtype not in _FLOAT_DTYPES:
            raise CheckpointError(f"{source}: tensor {key} has dtype {tensor.dtype}; weights must be floating point.")
        if not torch.isfinite(tensor).all():
            raise CheckpointError(f"{source}: tensor {key} holds NaN or infinite values.")


def load_weights(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str = "state dict") -> None:
    """Load a state dict strictly, naming missing, unexpected and mis-shaped keys in one message; weights that are
    not floating point or hold NaN or inf are refused as the app refuses them (``check_tensors``)."""
    check_tensors(state_dict, f"The {source}")
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = [
        f"{k}: {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and state_dict[k].shape != v.shape
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatches (e.g. {'; '.join(mismatched[:3])})")
    if problems:
        architecture = getattr(getattr(model, "metadata", None), "architecture", type(model).__name__)
        raise CheckpointError(f"The {source} does not fit {architecture}: " + "; ".join(problems) + ".")
    model.load_state_dict(state_dict)


def load_checkpoint(path: str | Path, expected_sha256: str | None = None, map_location: str = "cpu") -> nn.Module:
    """Rebuild a model from ``path`` (.safetensors or .json, the other file beside it), in eval mode.

    The metadata is validated against ``sbcore.schema`` and the weights are read and checked
    (floating point, finite) before the model is built. Raises CheckpointError naming the
    problem: missing or invalid metadata (the field), unknown architecture, pickle or truncated
    weights, sha256 mismatch, non-finite or non-float tensors, missing/unexpected/mis-shaped keys.
    """
    metadata, document = read_metadata(path)
    weights_path, _ = checkpoint_paths(path)
    if not weights_path.is_file():
        raise CheckpointError(f"Weights file {weights_path} is missing.")
    check_weights_file(weights_path)  # an empty file or a pickle says so, rather than failing the sha256 check
    actual = file_sha256(weights_path)
    for expected in {expected_sha256, document.get("weights_sha256")} - {None}:
        if actual != expected:
            raise CheckpointError(
                f"{weights_path.name} is corrupted or was replaced: sha256 {actual[:12]}... does not match "
                f"the recorded {expected[:12]}...."
            )
    state_dict = read_state_dict(weights_path)
    check_tensors(state_dict, weights_path.name)
    try:
        model = build_model(metadata.architecture, **metadata.model_kwargs)
    except SBCoreError as error:
        raise CheckpointError(f"{weights_path.name}: {error}") from None
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{weights_path.name}: its model_kwargs do not fit {metadata.architecture} ({error}).") from None
    if metadata.class_names and len(metadata.class_names) != model.num_classes:
        raise CheckpointError(
            f"{weights_path.name}: class_names lists {len(metadata.class_names)} classes for a model with {model.num_classes} outputs."
        )
    load_weights(model, state_dict, source=weights_path.name)
    model.metadata = metadata
    return model.to(map_location).eval()
