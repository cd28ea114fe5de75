"""State-dict conversion: torchvision ResNets into sb_/nl_/sbnl_ variants (function-preserving)
and the authors' reference code into this package's names."""
from __future__ import annotations

import io
import re
import warnings
import zipfile
from pathlib import Path
from typing import BinaryIO

import torch
from torch import nn

from sbcore.checkpoint import check_tensors
from sbcore.errors import CheckpointError

_REFERENCE_RENAMES = (
    (re.compile(r"\.SB\.feature_reduction\.([01])\."), r".spatial_bias.channel_reduction.\1."),
    (re.compile(r"\.SB\.sb_conv\."), r".spatial_bias.grid_mixing."),
)
_NEW_MODULES = (".spatial_bias.", ".non_local.")


def widen_state_dict(source: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Fit a plain ResNet's state dict to a spatial-bias / non-local variant without changing its function.

    Tensors that exist in both are copied. Where spatial bias widened ``bn2`` and ``conv3`` by N
    channels, the plain values fill the first channels and the extra conv3 inputs are zero, so the
    maps cannot change the output. Spatial-bias and non-local modules keep their fresh
    initialisation (a fresh non-local block is the identity).
    """
    target = model.state_dict()
    widened: dict[str, torch.Tensor] = {}
    for key, init in target.items():
        if any(marker in key for marker in _NEW_MODULES) and key not in source:
            widened[key] = init.clone()
            continue
        if key not in source:
            raise CheckpointError(f"The plain state dict has no {key!r}; is it a ResNet of the same depth?")
        value = source[key]
        if value.shape == init.shape:
            widened[key] = value.clone()
        elif key.endswith("conv3.weight") and value.shape[0] == init.shape[0] and value.shape[1] < init.shape[1]:
            padded = torch.zeros_like(init)
            padded[:, : value.shape[1]] = value
            widened[key] = padded
        elif ".bn2." in key and value.ndim == 1 and value.shape[0] < init.shape[0]:
            padded = init.clone()
            padded[: value.shape[0]] = value
            widened[key] = padded
        else:
            raise CheckpointError(
                f"{key}: shape {tuple(value.shape)} cannot be widened to {tuple(init.shape)} "
                "(different depth, width or number of classes?)"
            )
    unused = sorted(set(source) - set(target) - {k for k in source if k.endswith("num_batches_tracked")})
    if unused:
        raise CheckpointError(f"The plain state dict has {len(unused)} keys this model lacks (e.g. {unused[:3]}).")
    return widened


def convert_reference_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename the reference code's keys (``SB.feature_reduction.*``, ``SB.sb_conv.*``, a
    DataParallel ``module.`` prefix) to this package's; shapes are already the same."""
    converted = {}
    for key, value in state_dict.items():
        key = key.removeprefix("module.")
        for pattern, replacement in _REFERENCE_RENAMES:
            key = pattern.sub(replacement, key)
        converted[key] = value
    return converted


def _load_failure(error: Exception, torch_zip: bool) -> str:
    """One sentence for a failed ``torch.load``, never torch's advice to retry with weights_only=False."""
    text = str(error).strip()
    if "Unsupported global" in text:
        return ("Not a readable PyTorch state dict: it holds pickled Python objects besides tensors, which could "
                "run code, so it is not opened; save only the state dict or convert it to safetensors.")
    if text.startswith("Weights only load failed"):
        if torch_zip:
            return ("Not a readable PyTorch state dict: the torch.save file's pickle holds something other than "
                    "tensors and plain containers, which is never unpickled; save only the state dict.")
        return "Not a readable PyTorch state dict (the file is not a torch.save file)."
    reason = text.split(". ")[0].splitlines()[0][:200] if text else "the file is empty or ends early"
    return f"Not a readable PyTorch state dict ({type(error).__name__}: {reason})."


def read_torch_state_dict(source: str | Path | bytes | BinaryIO, name: str | None = None) -> dict[str, torch.Tensor]:
    """Read a ``torch.save`` state dict with ``weights_only=True`` (no arbitrary code), unwrapping
    the usual ``{"state_dict": ...}`` / ``{"model": ...}`` containers; weights that are not floating point or hold
    NaN or inf are refused (``check_tensors``), naming ``name`` (default: the file's name, or "The state dict")."""
    name = name or (Path(source).name if isinstance(source, (str, Path)) else "The state dict")
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    try:
        torch_zip = zipfile.is_zipfile(source)  # torch.save's format since 1.6
        if hasattr(source, "seek"):
            source.seek(0)
    except OSError:
        torch_zip = False
    try:
        with warnings.catch_warnings():  # torch warns about the globals it refuses; the message says it
            warnings.simplefilter("ignore")
            loaded = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for bad files; all mean the same to a user
        raise CheckpointError(_load_failure(error, torch_zip)) from None
    for wrapper in ("state_dict", "model", "model_state_dict"):
        if isinstance(loaded, dict) and isinstance(loaded.get(wrapper), dict):
            loaded = loaded[wrapper]
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise CheckpointError("The file does not hold a state dict (a mapping of names to tensors).")
    check_tensors(loaded, name)
    return loaded
