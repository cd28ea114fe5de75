"""Cached calls into ``sbcore.analysis``: results are keyed on the model key, the image bytes and
every option, so moving an unrelated slider never recomputes them.

Arguments with a leading underscore (the model) are not hashed; ``model_key`` stands for them.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import streamlit as st
import torch
from torch import nn

from sbcore import analysis
from sbcore.images import load_image, preprocess

Progress = Callable[[int, int], None]


def model_input(model: nn.Module, data: bytes, invert: bool) -> torch.Tensor:
    """(1, C, H, W) input for ``model`` from image file bytes, on the model's device."""
    x = preprocess(load_image(data), model.metadata.preprocessing, invert)
    return x.to(next(model.parameters()).device)


@st.cache_data(show_spinner="Running the model…", max_entries=64)
def maps(_model: nn.Module, model_key: str, data: bytes, invert: bool, query: tuple[float, float]) -> analysis.MapsResult:
    """Top-5 predictions, every spatial-bias block's maps and every non-local block's attention for ``query``."""
    return analysis.spatial_bias_maps(_model, model_input(_model, data, invert), query=query)


@st.cache_data(show_spinner="Stepping through the branch…", max_entries=64)
def branch_steps(_model: nn.Module, model_key: str, data: bytes, invert: bool, block: str) -> list[analysis.BranchStep]:
    """The intermediate tensors of one spatial-bias branch, with shapes and explanations."""
    return analysis.spatial_bias_steps(_model, model_input(_model, data, invert), block)


@st.cache_data(show_spinner=False, max_entries=64)
def predictions(_model: nn.Module, model_key: str, data: bytes, invert: bool) -> list[analysis.Prediction]:
    """Top-5 predictions of one image."""
    return analysis.predict(_model, model_input(_model, data, invert), top_k=5)


@st.cache_data(show_spinner=False, max_entries=64)
def attribution(
    _model: nn.Module,
    model_key: str,
    data: bytes,
    invert: bool,
    method: str,
    target: int | None,
    stage: str | None,
    n_steps: int,
    smoothgrad: bool,
) -> analysis.Attribution:
    """One Captum attribution of one image for ``target`` (None: the model's top-1)."""
    x = model_input(_model, data, invert)
    return analysis.attribute(_model, x, method, target, stage=stage, n_steps=n_steps, smoothgrad=smoothgrad)


@st.cache_data(show_spinner=False, max_entries=32)
def receptive_field(
    _model: nn.Module,
    model_key: str,
    image_set: Sequence[bytes] | None,
    count: int,
    invert: bool,
    stage: str,
    _progress: Progress | None = None,
) -> analysis.ERFResult:
    """Effective receptive field of ``stage`` over ``count`` images: the given files, or noise when None."""
    if image_set is None:
        images = analysis.noise_images(count, tuple(_model.metadata.preprocessing.input_size))
    else:
        images = torch.cat([preprocess(load_image(data), _model.metadata.preprocessing, invert) for data in image_set[:count]])
    images = images.to(next(_model.parameters()).device)
    return analysis.effective_receptive_field(_model, images, stage, progress=_progress)
