"""Which models the app offers, on which device, loaded once; plus checkpoints the user loaded.

Shipped weights and untrained architectures load through ``st.cache_resource`` (one copy per
server); checkpoints a user uploads live in that user's ``st.session_state`` and join every
model picker for the rest of the session.
"""
from __future__ import annotations

import itertools
import os

import streamlit as st
import torch
from torch import nn

import sbcore
from app import jobs
from sbcore import analysis
from sbcore.models.registry import plain_counterpart
from sbcore.scheduler import ByteBudgetCache

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


VARIANTS = {"": "plain", "sb_": "SB", "nl_": "NL", "sbnl_": "SB+NL"}  # architecture prefix -> short name, in teaching order


def _variant(name: str) -> str:
    architecture = name.split(".")[0]
    return architecture.removesuffix(plain_counterpart(architecture))


def shipped_family(tag: str = "fmnist") -> list[str]:
    """The shipped models trained on one dataset (``*.fmnist``, ``*.samediff``) in teaching order: plain,
    spatial bias, non-local, both (at most four)."""
    order = list(VARIANTS)
    names = sbcore.list_models(f"*.{tag}", pretrained=True)
    return sorted(names, key=lambda n: (order.index(_variant(n)) if _variant(n) in order else 4, n))[:4]


def variant_label(name: str) -> str:
    """plain, SB, NL or SB+NL for a model of the four variants; the name itself otherwise."""
    return VARIANTS.get(_variant(name), name)


def seed_runs(name: str) -> list[str]:
    """The shipped other-seed runs of ``name`` (``NAME-s1``, ``NAME-s2``, ...), in seed order."""
    return sorted(sbcore.list_models(f"{name}-s*", pretrained=True))


def is_untrained(name: str) -> bool:
    """An architecture name without weights (random initialisation)."""
    return name not in user_models() and name in sbcore.list_models()


def model_label(name: str) -> str:
    """Display name for pickers: untrained architectures say so."""
    return f"{name} (untrained)" if is_untrained(name) else name


def model_bytes(model: nn.Module) -> int:
    """Bytes of a model's parameters and buffers."""
    return sum(t.numel() * t.element_size() for t in itertools.chain(model.parameters(), model.buffers()))


@st.cache_resource
def loaded_models() -> ByteBudgetCache:
    """Shipped and untrained models shared by every session, least recently used first out past
    ``SBE_MODEL_CACHE_MB`` (default 512) of weights; a model over a quarter of that (an untrained ResNet-101) is
    built when asked for and not kept, so a few large models never crowd out the rest."""
    return ByteBudgetCache(int(os.environ.get("SBE_MODEL_CACHE_MB", "512")) * 2**20, size_of=model_bytes, largest=0.25)


def _registered_model(name: str, device: str) -> nn.Module:
    found, model = loaded_models().get((name, device))
    if not found:  # built as a job: sessions asking at once share one build
        model = jobs.compute("model", (name, device), lambda report: sbcore.resolve_model(name).to(device).eval(),
                             f"Loading {name}", cache=False)
        loaded_models().put((name, device), model)
    return model


def get_model(name: str) -> nn.Module:
    """The model called ``name`` (shipped, uploaded or untrained) on the current device, in eval mode."""
    device = current_device()
    uploaded = user_models().get(name)
    if uploaded is not None:
        return uploaded.to(device)
    return _registered_model(name, device)


@st.cache_data(show_spinner=False)
def _architecture_stages(name: str) -> list[str]:
    with torch.device("meta"):  # the structure only: no weights are allocated
        return analysis.stage_names(sbcore.create_model(name))


def stage_names(name: str) -> list[str]:
    """Stages (``layer1``, ...) of the model called ``name``; an untrained architecture is not built for it."""
    return _architecture_stages(name) if is_untrained(name) else analysis.stage_names(get_model(name))


def model_key(name: str) -> str:
    """Cache key for results of a model: its name (unique per weights) and device."""
    return f"{name}@{current_device()}"


def default_model(key: str, untrained: bool = False) -> None:
    """Preselect the default model in the picker ``key`` unless it holds a model still on offer."""
    names = model_names(untrained)
    if st.session_state.get(key) not in names:
        st.session_state[key] = DEFAULT_MODEL if DEFAULT_MODEL in names else names[0]
