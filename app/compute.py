"""The app's cached results: calls into ``sbcore`` keyed on the model key, the image bytes and every
option, so moving an unrelated slider never recomputes them. (Models are cached in ``state``, sample
entries and decoded images in ``inputs``.)

Arguments with a leading underscore (the model) are not hashed; ``model_key`` stands for them.
Receptive fields, computed with a progress bar, are kept in a store of their own (``_receptive_fields``).
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from contextlib import nullcontext
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st
import torch
from torch import nn

from sbcore import analysis
from sbcore.analysis import ood
from sbcore.cost import CostReport, cost_report
from sbcore.images import load_image, preprocess
from sbcore.model_card import model_card_markdown

Progress = Callable[[int, int], None]
OOD_CALIBRATION = Path(__file__).resolve().parents[1] / "assets" / "ood_calibration.json"


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


@lru_cache(maxsize=1)
def _calibrations() -> dict[str, ood.Calibration]:
    return ood.load_calibrations(OOD_CALIBRATION) if OOD_CALIBRATION.is_file() else {}


@st.cache_data(show_spinner=False, max_entries=64)
def familiarity(_model: nn.Module, name: str, data: bytes, invert: bool) -> ood.Familiarity | None:
    """How familiar the image looks to the shipped model ``name``; None for models without a calibration.

    Keyed on the name: calibrations exist only for shipped weights, whose names are unique.
    """
    calibration = _calibrations().get(name)
    if calibration is None:
        return None
    return ood.assess(_model, model_input(_model, data, invert), calibration)


@st.cache_data(show_spinner=False, max_entries=64)
def attribution(
    _model: nn.Module,
    model_key: str,
    data: bytes,
    invert: bool,
    method: str,
    target: int | None,
    stage: str | None,
    baseline: str,
    smoothgrad: bool,
) -> analysis.Attribution:
    """One Captum attribution of one image for ``target`` (None: the model's top-1); IG picks its steps."""
    x = model_input(_model, data, invert)
    return analysis.attribute(_model, x, method, target, stage=stage, baseline=baseline, smoothgrad=smoothgrad)


class _Recent:
    """The last ``size`` values by key, shared by every session (threads of one process), so a lock guards it."""

    def __init__(self, size: int) -> None:
        self._values: OrderedDict[Hashable, Any] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any | None:
        """The value stored under ``key`` (now the most recent), or None."""
        with self._lock:
            if key not in self._values:
                return None
            self._values.move_to_end(key)
            return self._values[key]

    def put(self, key: Hashable, value: Any) -> None:
        """Store ``value`` under ``key``, dropping the least recent value past ``size``."""
        with self._lock:
            self._values[key] = value
            self._values.move_to_end(key)
            if len(self._values) > self._size:
                self._values.popitem(last=False)


@st.cache_resource
def _receptive_fields() -> _Recent:
    """ERF results by settings. Not ``st.cache_data``: a hit there replays the progress bar's calls, which fails."""
    return _Recent(32)


def receptive_field(
    model: nn.Module,
    model_key: str,
    image_set: Sequence[bytes] | None,
    count: int,
    invert: bool,
    stage: str,
    progress: Progress | None = None,
) -> analysis.ERFResult:
    """Effective receptive field of ``stage`` over ``count`` images: the given files, or noise when None.

    Computed once per settings; the result is shared between sessions, so it is read only.
    """
    digests = None if image_set is None else tuple(hashlib.sha256(data).hexdigest() for data in image_set[:count])
    key = (model_key, digests, count, invert, stage)
    result = _receptive_fields().get(key)
    if result is None:
        images = _erf_images(model, image_set, count, invert).to(next(model.parameters()).device)
        result = analysis.effective_receptive_field(model, images, stage, progress=progress)
        _receptive_fields().put(key, result)
    return result


def _erf_images(model: nn.Module, image_set: Sequence[bytes] | None, count: int, invert: bool) -> torch.Tensor:
    """(count, C, H, W) model inputs: the first ``count`` files, or noise when None."""
    if image_set is None:
        return analysis.noise_images(count, tuple(model.metadata.preprocessing.input_size))
    return torch.cat([preprocess(load_image(data), model.metadata.preprocessing, invert) for data in image_set[:count]])


@st.cache_data(show_spinner="Counting parameters and FLOPs…", max_entries=32)
def cost(_model: nn.Module, model_key: str) -> CostReport:
    """Parameters (total, added by SB and NL, per stage) and FLOPs per image of a model."""
    return cost_report(_model)


@st.cache_data(show_spinner=False, max_entries=32)
def card(_model: nn.Module, model_key: str) -> str:
    """The model card (Markdown) built from the model's metadata."""
    return model_card_markdown(_model)


@st.cache_data(show_spinner=False, max_entries=16)
def branch_shapes(_model: nn.Module, model_key: str) -> list[analysis.BranchStep]:
    """The steps of the model's first spatial-bias branch on a blank input, for the landing page's diagram."""
    block = analysis.spatial_bias_blocks(_model)[0]
    blank = torch.zeros(1, *_model.metadata.preprocessing.input_size, device=next(_model.parameters()).device)
    return analysis.spatial_bias_steps(_model, blank, block)


@st.cache_resource(show_spinner="Generating the same-different test canvases…")
def same_different_test():
    """The same-different test split (canvases generated on the fly from Fashion-MNIST test items)."""
    from sbcore.data import load_dataset

    return load_dataset("same-different").test


@st.cache_data(show_spinner=False, max_entries=256)
def same_probability(_model: nn.Module, model_key: str, canvas: np.ndarray) -> float:
    """P(same) of one lab model for one (S, S) canvas in [0, 1] (``sbcore.lab.probe.place_pair``)."""
    from sbcore.lab import probe

    return float(probe.same_probability(_model, torch.as_tensor(canvas)[None])[0])


@st.cache_data(show_spinner=False, max_entries=64)
def distance_sweep(_model: nn.Module, model_key: str, item_a: np.ndarray, item_b: np.ndarray,
                   centre_a: tuple[int, int], direction: tuple[int, int]) -> tuple[list[int], list[float]]:
    """Distances (px) and P(same) as the (s, s) item ``item_b`` moves away from ``item_a`` along ``direction``."""
    from sbcore.lab import probe

    distances, probabilities = probe.distance_sweep(_model, item_a, item_b, centre_a, direction)
    return list(distances), [float(p) for p in probabilities]


@st.cache_resource(show_spinner="Averaging every block's global context over 512 training images…", max_entries=8)
def intervention_means(_model: nn.Module, model_key: str) -> dict[str, torch.Tensor]:
    """Mean contribution of every SB / NL component over the model's first 512 training images: what mean
    ablation puts in their place. Shared by every session; read only."""
    from sbcore.analysis.ablation import model_test_data, training_reference_means

    return training_reference_means(_model, model_test_data(_model)[1])


@st.cache_resource
def _ablations() -> _Recent:
    """Ablation results by settings (like ``_receptive_fields``: computed with a progress bar)."""
    return _Recent(32)


def ablation(model: nn.Module, model_key: str, settings: Sequence[tuple[str, tuple[str, ...]]], mode: str,
             per_bin: int, progress: Progress | None = None):
    """Accuracy by distance intact and under each (label, component names) setting, on the first ``per_bin`` x 5
    lab test canvases (stratified over bins and labels). Computed once per settings and shared between sessions."""
    from torch.utils.data import DataLoader, Subset

    from sbcore.analysis.ablation import evaluate_ablations
    from sbcore.analysis.interventions import resolve_components

    key = (model_key, tuple(settings), mode, per_bin)
    result = _ablations().get(key)
    if result is None:
        test = same_different_test()
        subset = Subset(test, range(per_bin * test.task.num_bins))
        bins, names = test.sample_groups()
        resolved = [(label, resolve_components(model, names_)) for label, names_ in settings]
        means = intervention_means(model, model_key) if mode == "mean" else None
        result = evaluate_ablations(model, DataLoader(subset, 100), resolved, mode, groups=bins[:len(subset)],
                                    group_names=names, means=means, progress=progress, total=len(subset))
        _ablations().put(key, result)
    return result


def patching(model: nn.Module, model_key: str, settings: Sequence[tuple[str, tuple[str, ...]]], pairs: int,
             progress: Progress | None = None):
    """Patching scores of each setting over ``pairs`` far (94-108 px) counterfactual test pairs; shared, read only."""
    from sbcore.analysis.interventions import resolve_components
    from sbcore.lab.patching import counterfactual_pairs, patching_scores
    from sbcore.lab.readout import far_indices

    key = ("patching", model_key, tuple(settings), pairs)
    result = _ablations().get(key)
    if result is None:
        test = same_different_test()
        different, same = counterfactual_pairs(test, far_indices(test, pairs, test.task.bin_edges[-2]))
        resolved = [(label, resolve_components(model, names_)) for label, names_ in settings]
        result = patching_scores(model, different, same, resolved, progress=progress)
        _ablations().put(key, result)
    return result


@st.cache_data(show_spinner=False, max_entries=256)
def same_probability_under(_model: nn.Module, model_key: str, canvas: np.ndarray, targets: tuple[str, ...],
                           mode: str) -> float:
    """P(same) of one lab model for one canvas with ``targets`` switched off by ``mode`` (mean or zero)."""
    from sbcore.analysis.interventions import intervened
    from sbcore.lab import probe

    means = intervention_means(_model, model_key) if mode == "mean" else None
    with intervened(_model, targets, mode, means=means):
        return float(probe.same_probability(_model, torch.as_tensor(canvas)[None])[0])


@st.cache_data(show_spinner="Running the model with global context switched off…", max_entries=64)
def under_intervention(_model: nn.Module, model_key: str, data: bytes, invert: bool, targets: tuple[str, ...],
                       mode: str) -> tuple[list[analysis.Prediction], dict[str, np.ndarray]]:
    """(top-5, every SB block's maps as the block used them) with ``targets`` switched off by ``mode`` (mean or
    zero); with no targets, the intact model's."""
    from sbcore.analysis.interventions import intervened
    from sbcore.analysis.maps import maps_as_used

    x = model_input(_model, data, invert)
    means = intervention_means(_model, model_key) if mode == "mean" and targets else None
    with intervened(_model, targets, mode, means=means) if targets else nullcontext():
        return analysis.predict(_model, x, top_k=5), maps_as_used(_model, x)
