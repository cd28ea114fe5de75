"""Which models the app offers, on which device, loaded once; plus checkpoints the user loaded.

Shipped weights and untrained architectures load through ``st.cache_resource`` (one copy per
server); checkpoints a user uploads live in that user's ``st.session_state`` and join every
model picker for the rest of the session.
"""
from __future__ import annotations

import streamlit as st
import torch
from torch import nn

import sbcore

DEFAULT_MODEL = "sb_resnet38.fmnist"
_USER_MODELS = "user_models"


def available_devices() -> list[str]:
    """``["cuda", "cpu"]`` when a GPU is usable, else ``["cpu"]``; the first is the default."""
    return ["cuda", "cpu"] if torch.cuda.is_available() else ["cpu"]


def current_device() -> str:
    """The device chosen in the sidebar (falls back to the default when the choice is gone)."""
    devices = available_devices()
    chosen = st.session_state.get("device")
    return chosen if chosen in devices else devices[0]


def device_picker() -> None:
    """Sidebar switch between CUDA and CPU, with a visible note when only the CPU is there."""
    devices = available_devices()
    st.sidebar.radio("Device", devices, key="device", horizontal=True, help="Where models run.")
    if devices == ["cpu"]:
        st.sidebar.caption("No CUDA GPU found: everything runs on the CPU.")


def user_models() -> dict[str, nn.Module]:
    """Models loaded from the user's own checkpoints this session, by display name."""
    return st.session_state.setdefault(_USER_MODELS, {})


def add_user_model(model: nn.Module, file_name: str, digest: str) -> str:
    """Make an uploaded model available to every picker; returns its display name.

    The name carries the weights' digest, so cached results of different uploads never mix.
    """
    name = f"{file_name} [{digest[:8]}]"
    model.metadata.pretrained = name
    user_models()[name] = model.eval()
    return name


def model_names(untrained: bool = False) -> list[str]:
    """Shipped weights, then the user's checkpoints, then (with ``untrained``) every architecture."""
    names = sbcore.list_models(pretrained=True) + list(user_models())
    if untrained:
        names += sbcore.list_models()
    return names


def shipped_family() -> list[str]:
    """The shipped models in teaching order: plain, spatial bias, non-local, both (at most four)."""
    order = {"": 0, "sb": 1, "nl": 2, "sbnl": 3}
    names = sbcore.list_models(pretrained=True)
    return sorted(names, key=lambda n: (order.get(n.split("_")[0] if "_" in n else "", 4), n))[:4]


def is_untrained(name: str) -> bool:
    """An architecture name without weights (random initialisation)."""
    return name not in user_models() and name in sbcore.list_models()


def model_label(name: str) -> str:
    """Display name for pickers: untrained architectures say so."""
    return f"{name} (untrained)" if is_untrained(name) else name


@st.cache_resource(show_spinner="Loading model…", max_entries=24)
def _registered_model(name: str, device: str) -> nn.Module:
    return sbcore.resolve_model(name).to(device).eval()


def get_model(name: str) -> nn.Module:
    """The model called ``name`` (shipped, uploaded or untrained) on the current device, in eval mode."""
    device = current_device()
    uploaded = user_models().get(name)
    if uploaded is not None:
        return uploaded.to(device)
    return _registered_model(name, device)


def model_key(name: str) -> str:
    """Cache key for results of a model: its name (unique per weights) and device."""
    return f"{name}@{current_device()}"


def default_model(key: str, untrained: bool = False) -> None:
    """Preselect the default model in the picker ``key`` unless it holds a model still on offer."""
    names = model_names(untrained)
    if st.session_state.get(key) not in names:
        st.session_state[key] = DEFAULT_MODEL if DEFAULT_MODEL in names else names[0]
