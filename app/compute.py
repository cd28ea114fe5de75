"""The app's heavy work: calls into ``sbcore`` run as jobs of the server's compute scheduler (``jobs``), keyed on
the model key (name and device), a digest of the input and every option, so moving an unrelated slider never
recomputes them and identical requests from different sessions cost one computation. Results are shared between
sessions: read only. (Models are cached in ``state``, sample entries and decoded images in ``inputs``.)

A job runs on a worker thread, so it captures everything it needs (model, data) here and never calls Streamlit.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from functools import lru_cache
from pathlib import Path

import numpy as np
import streamlit as st
import torch
from torch import nn

from app import jobs
from sbcore import analysis
from sbcore.analysis import ood
from sbcore.budget import batch_within_budget, check_memory
from sbcore.cost import CostReport, cost_report
from sbcore.images import load_image, preprocess
from sbcore.lab import evidence, probe
from sbcore.model_card import model_card_markdown

Progress = Callable[[int, int], None]
ATTRIBUTION_BATCH = 64  # path points, perturbations or noisy copies per forward pass (fewer for large inputs)
ERF_BATCH = 8  # images per forward and backward pass of the receptive field (fewer for large inputs)
ERF_PASS_BYTES = 256 * 2**20  # what one receptive-field pass may keep for its backward, down to one image a pass
OOD_CALIBRATION = Path(__file__).resolve().parents[1] / "assets" / "ood_calibration.json"


def model_input(model: nn.Module, data: bytes, invert: bool) -> torch.Tensor:
    """(1, C, H, W) input for ``model`` from image file bytes, on the model's device."""
    x = preprocess(load_image(data), model.metadata.preprocessing, invert)
    return x.to(next(model.parameters()).device)


def maps(model: nn.Module, model_key: str, data: bytes, invert: bool, query: tuple[float, float]) -> analysis.MapsResult:
    """Top-5 predictions, every spatial-bias block's maps and every non-local block's attention for ``query``."""
    return jobs.compute("maps", (model_key, jobs.digest(data), invert, query), lambda report: analysis.spatial_bias_maps(
        model, model_input(model, data, invert), query=query), "Running the model")


def branch_steps(model: nn.Module, model_key: str, data: bytes, invert: bool, block: str) -> list[analysis.BranchStep]:
    """The intermediate tensors of one spatial-bias branch, with shapes and explanations."""
    return jobs.compute("branch steps", (model_key, jobs.digest(data), invert, block), lambda report: (
        analysis.spatial_bias_steps(model, model_input(model, data, invert), block)), "Stepping through the branch")


def predictions(model: nn.Module, model_key: str, data: bytes, invert: bool) -> list[analysis.Prediction]:
    """Top-5 predictions of one image."""
    return jobs.compute("prediction", (model_key, jobs.digest(data), invert), lambda report: analysis.predict(
        model, model_input(model, data, invert), top_k=5), "Predicting")


@lru_cache(maxsize=1)
def _calibrations() -> dict[str, ood.Calibration]:
    return ood.load_calibrations(OOD_CALIBRATION) if OOD_CALIBRATION.is_file() else {}


def familiarity(model: nn.Module, name: str, data: bytes, invert: bool) -> ood.Familiarity | None:
    """How familiar the image looks to the shipped model ``name``; None for models without a calibration.

    Keyed on the name: calibrations exist only for shipped weights, whose names are unique.
    """
    calibration = _calibrations().get(name)
    if calibration is None:
        return None
    return jobs.compute("familiarity", (name, jobs.digest(data), invert), lambda report: ood.assess(
        model, model_input(model, data, invert), calibration), "Checking how familiar the image looks")


def attribution_job(model: nn.Module, model_key: str, data: bytes, invert: bool, method: str, target: int | None,
                    stage: str | None, baseline: str, smoothgrad: bool,
                    max_steps: int = analysis.IG_MAX_STEPS) -> jobs.Ticket:
    """Queue one Captum attribution of one image for ``target`` (None: the model's top-1); IG picks its steps, up
    to ``max_steps``, run ATTRIBUTION_BATCH at a time or fewer, as the memory budget allows (MemoryBudgetError
    when not even one fits). ``jobs.wait`` on the ticket gives the ``analysis.Attribution``."""
    def run(report: jobs.Report) -> analysis.Attribution:
        batch = batch_within_budget(model, tuple(model.metadata.preprocessing.input_size), ATTRIBUTION_BATCH)
        x = model_input(model, data, invert)
        return analysis.attribute(model, x, method, target, stage=stage, baseline=baseline, smoothgrad=smoothgrad,
                                  max_steps=max_steps, internal_batch_size=batch)

    settings = (model_key, jobs.digest(data), invert, method, target, stage, baseline, smoothgrad, max_steps)
    return jobs.submit("attribution", settings, run, long=True)


def faithfulness_job(model: nn.Module, model_key: str, data: bytes, invert: bool, attribution: analysis.Attribution,
                     request: tuple, stage: str | None) -> jobs.Ticket:
    """Queue the faithfulness scores (``analysis.score_attribution``: deletion, insertion, ROAD, the randomisation check)
    of an attribution made with the settings ``request`` (the attribution job's, which determine it)."""
    def run(report: jobs.Report) -> analysis.Faithfulness:
        check_memory(model, tuple(model.metadata.preprocessing.input_size), ATTRIBUTION_BATCH)  # its batched passes
        return analysis.score_attribution(model, model_input(model, data, invert), attribution, stage=stage)

    return jobs.submit("faithfulness", (model_key, jobs.digest(data), invert, *request), run, long=True)


def receptive_field_job(model: nn.Module, model_key: str, image_set: Sequence[bytes] | None, count: int, invert: bool,
                        stage: str) -> jobs.Ticket:
    """Queue the effective receptive field of ``stage`` over ``count`` images (the given files, or noise when
    None); ``jobs.wait`` on the ticket gives the ``analysis.ERFResult``."""
    digests = None if image_set is None else tuple(jobs.digest(data) for data in image_set[:count])

    def run(report: jobs.Report) -> analysis.ERFResult:
        batch = batch_within_budget(model, tuple(model.metadata.preprocessing.input_size), ERF_BATCH, backward=True,
                                    preferred=ERF_PASS_BYTES)
        images = _erf_images(model, image_set, count, invert).to(next(model.parameters()).device)
        return analysis.effective_receptive_field(model, images, stage, progress=report, batch_size=batch)

    return jobs.submit("receptive field", (model_key, digests, count, invert, stage), run, long=True)


def _erf_images(model: nn.Module, image_set: Sequence[bytes] | None, count: int, invert: bool) -> torch.Tensor:
    """(count, C, H, W) model inputs: the first ``count`` files, or noise when None."""
    if image_set is None:
        return analysis.noise_images(count, tuple(model.metadata.preprocessing.input_size))
    return torch.cat([preprocess(load_image(data), model.metadata.preprocessing, invert) for data in image_set[:count]])


def cost(model: nn.Module, model_key: str) -> CostReport:
    """Parameters (total, added by SB and NL, per stage) and FLOPs per image of a model."""
    return jobs.compute("cost", (model_key,), lambda report: cost_report(model), "Counting parameters and FLOPs")


@st.cache_data(show_spinner=False, max_entries=32)
def card(_model: nn.Module, model_key: str) -> str:
    """The model card (Markdown) built from the model's metadata."""
    return model_card_markdown(_model)


def branch_shapes(model: nn.Module, model_key: str) -> list[analysis.BranchStep]:
    """The steps of the model's first spatial-bias branch on a blank input, for the landing page's diagram."""
    def run(report: jobs.Report) -> list[analysis.BranchStep]:
        blank = torch.zeros(1, *model.metadata.preprocessing.input_size, device=next(model.parameters()).device)
        return analysis.spatial_bias_steps(model, blank, analysis.spatial_bias_blocks(model)[0])

    return jobs.compute("branch shapes", (model_key,), run, "Tracing the branch")


@st.cache_resource(show_spinner="Generating the same-different test canvases…")
def same_different_test():
    """The same-different test split (canvases generated on the fly from Fashion-MNIST test items)."""
    from sbcore.data import load_dataset

    return load_dataset("same-different").test


def same_probability(model: nn.Module, model_key: str, canvas: np.ndarray) -> float:
    """P(same) of one lab model for one (S, S) canvas in [0, 1] (``sbcore.lab.probe.place_pair``)."""
    return jobs.compute("probe", (model_key, jobs.digest(canvas.tobytes()), canvas.shape), lambda report: float(
        probe.same_probability(model, torch.as_tensor(canvas)[None])[0]), "Asking the model")


def sweep_job(model: nn.Module, model_key: str, item_a: np.ndarray, item_b: np.ndarray, centre_a: tuple[int, int],
              direction: tuple[int, int], distances: tuple[int, ...], per_type: int) -> jobs.Ticket:
    """Queue one lab model's distance sweep: ``jobs.wait`` gives (distances (px), P(same) of the (s, s) item
    ``item_b`` moving away from ``item_a`` along ``direction``) and ``probe.sweep_accuracy`` at ``distances``."""
    test = same_different_test()

    def run(report: jobs.Report) -> tuple[tuple[list[int], list[float]], list[tuple[int, probe.PairAccuracy]]]:
        kept, probabilities = probe.distance_sweep(model, item_a, item_b, centre_a, direction)
        accuracy = probe.sweep_accuracy(model, test.items, test.pools, centre_a, direction, distances, per_type)
        return (list(kept), [float(p) for p in probabilities]), accuracy

    key = (model_key, jobs.digest(item_a.tobytes()), jobs.digest(item_b.tobytes()), item_a.shape, centre_a, direction,
           distances, per_type)
    return jobs.submit("sweep", key, run, long=True)


def canvas_attribution_job(model: nn.Module, model_key: str, canvas: np.ndarray, centres: tuple[tuple[int, int], ...],
                           method: str) -> jobs.Ticket:
    """Queue one lab model's attribution of its answer on a probe canvas (S, S) in [0, 1] (black baseline) and
    the map's evidence shares on the two items placed at ``centres``; ``jobs.wait`` gives (Attribution, P(same),
    EvidenceShares)."""
    def run(report: jobs.Report) -> tuple[analysis.Attribution, float, evidence.EvidenceShares]:
        x = probe.canvas_batch(model, torch.as_tensor(canvas)[None]).to(next(model.parameters()).device)
        attribution = analysis.attribute(model, x, method, baseline="black")
        same = float(probe.same_probability(model, torch.as_tensor(canvas)[None])[0])
        return attribution, same, evidence.evidence_shares(attribution.raw, evidence.corners_of(*centres))

    return jobs.submit("canvas attribution", (model_key, jobs.digest(canvas.tobytes()), centres, method), run, long=True)


def pair_accuracy(model: nn.Module, model_key: str, centre_a: tuple[int, int], centre_b: tuple[int, int],
                  per_type: int) -> probe.PairAccuracy:
    """Accuracy over ``per_type`` x 4 test-item pairs (all four pair types) placed at the two centres."""
    test = same_different_test()
    return jobs.compute("pair accuracy", (model_key, centre_a, centre_b, per_type), lambda report: probe.pair_accuracy(
        model, test.items, test.pools, centre_a, centre_b, per_type), "Testing many pairs", long=True)


def intervention_means(model: nn.Module, model_key: str) -> dict[str, torch.Tensor]:
    """Mean contribution of every SB / NL component over the model's first 512 training images: what mean
    ablation puts in their place."""
    from sbcore.analysis.ablation import model_test_data, training_reference_means

    return jobs.compute("reference means", (model_key,), lambda report: training_reference_means(
        model, model_test_data(model)[1]), "Averaging every block's global context over 512 training images", long=True)


def ablation(model: nn.Module, model_key: str, settings: Sequence[tuple[str, tuple[str, ...]]], mode: str,
             per_bin: int, progress: Progress | None = None):
    """Accuracy by distance intact and under each (label, component names) setting, on the first ``per_bin`` x 5
    lab test canvases (stratified over bins and labels)."""
    from torch.utils.data import DataLoader, Subset

    from sbcore.analysis.ablation import evaluate_ablations
    from sbcore.analysis.interventions import resolve_components

    test = same_different_test()
    means = intervention_means(model, model_key) if mode == "mean" else None

    def run(report: jobs.Report):
        subset = Subset(test, range(per_bin * test.task.num_bins))
        bins, names = test.sample_groups()
        resolved = [(label, resolve_components(model, names_)) for label, names_ in settings]
        return evaluate_ablations(model, DataLoader(subset, 100), resolved, mode, groups=bins[:len(subset)],
                                  group_names=names, means=means, progress=report, total=len(subset))

    return jobs.compute("ablation", (model_key, tuple(settings), mode, per_bin), run, "Measuring",
                        progress=progress, cancel_on_leave=True, long=True)


def patching(model: nn.Module, model_key: str, settings: Sequence[tuple[str, tuple[str, ...]]], pairs: int,
             progress: Progress | None = None):
    """Patching scores of each setting over ``pairs`` far (94-108 px) counterfactual test pairs."""
    from sbcore.analysis.interventions import resolve_components
    from sbcore.lab.patching import counterfactual_pairs, patching_scores
    from sbcore.lab.readout import far_indices

    test = same_different_test()

    def run(report: jobs.Report):
        different, same = counterfactual_pairs(test, far_indices(test, pairs, test.task.bin_edges[-2]))
        resolved = [(label, resolve_components(model, names_)) for label, names_ in settings]
        return patching_scores(model, different, same, resolved, progress=report)

    return jobs.compute("patching", (model_key, tuple(settings), pairs), run, "Patching", progress=progress,
                        cancel_on_leave=True, long=True)


def same_probability_under(model: nn.Module, model_key: str, canvas: np.ndarray, targets: tuple[str, ...],
                           mode: str) -> float:
    """P(same) of one lab model for one canvas with ``targets`` switched off by ``mode`` (mean or zero)."""
    from sbcore.analysis.interventions import intervened

    means = intervention_means(model, model_key) if mode == "mean" else None

    def run(report: jobs.Report) -> float:
        with intervened(model, targets, mode, means=means):
            return float(probe.same_probability(model, torch.as_tensor(canvas)[None])[0])

    return jobs.compute("probe under intervention", (model_key, jobs.digest(canvas.tobytes()), canvas.shape, targets,
                                                     mode), run, "Asking the model with global context off")


def under_intervention(model: nn.Module, model_key: str, data: bytes, invert: bool, targets: tuple[str, ...],
                       mode: str) -> tuple[list[analysis.Prediction], dict[str, np.ndarray]]:
    """(top-5, every SB block's maps as the block used them) with ``targets`` switched off by ``mode`` (mean or
    zero); with no targets, the intact model's."""
    from sbcore.analysis.interventions import intervened
    from sbcore.analysis.maps import maps_as_used

    means = intervention_means(model, model_key) if mode == "mean" and targets else None

    def run(report: jobs.Report) -> tuple[list[analysis.Prediction], dict[str, np.ndarray]]:
        x = model_input(model, data, invert)
        with intervened(model, targets, mode, means=means) if targets else nullcontext():
            return analysis.predict(model, x, top_k=5), maps_as_used(model, x)

    return jobs.compute("under intervention", (model_key, jobs.digest(data), invert, targets, mode), run,
                        "Running the model with global context switched off")
