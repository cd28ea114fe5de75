"""Is an attribution map faithful to the model? Pixel-flipping curves, ROAD and the randomisation sanity check.

Every score comes with the same score for random maps of the same image, so a number has a scale:

- **Deletion** (MoRF pixel flipping; Samek et al. 2017, Petsiuk et al. 2018): pixels are replaced by a baseline
  (``black`` by default, the empty background of Fashion-MNIST and of the lab canvases), the highest-ranked
  first, and the target's softmax probability is read after each step; the area under that curve is **lower is
  better** (the map found what the score depends on).
- **Insertion**: the reverse, from the baseline image, the highest-ranked pixels put back first; **higher is
  better**.
- **ROAD** (Rong et al. 2022, "remove and debias"): the removed pixels are not set to a constant, whose sharp
  edges leak the ranking to the model, but imputed from their neighbours (a linear fill plus a little noise);
  most-relevant-first (MoRF, **lower is better**) and least-relevant-first (LeRF, **higher is better**).
- **Randomisation sanity check** (Adebayo et al. 2018, cascading): the layers are re-initialised from the output
  back to the stem, one step at a time, and each step's map is compared with the trained model's map by the rank
  (Spearman) correlation of |attribution|; **lower is better**: a map that barely changes when the weights are
  random does not explain what the model learned.

Why written here rather than taken from Quantus (0.6, on PyPI): its pixel flipping gives the same curve (equal to
the last digit on 20 test images, ``benchmarks/faithfulness_vs_quantus.py``) at a similar cost per forward pass,
but Quantus has no insertion curve, brings OpenCV, scikit-image and scikit-learn into the app, and works on
numpy batches of images, where the app scores one image per job; ROAD and the randomisation check here are
batched in torch in the same way. Captum ships only ``infidelity`` and ``sensitivity_max``, neither of these.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sbcore.analysis.attribution import Attribution, attribute, make_baseline
from sbcore.analysis.structure import check_single_image, eval_mode

FAITHFULNESS_METRICS: dict[str, tuple[str, str]] = {
    "deletion_auc": ("Deletion AUC", "lower is better"),
    "insertion_auc": ("Insertion AUC", "higher is better"),
    "road_morf_auc": ("ROAD MoRF AUC", "lower is better"),
    "road_lerf_auc": ("ROAD LeRF AUC", "higher is better"),
    "sanity_correlation": ("Randomised-model rank correlation", "lower is better"),
}
CURVE_STEPS = 24  # pixel-flipping points after the start: 25 images per curve, one batched forward pass
ROAD_FRACTIONS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
ROAD_NOISE = 0.01  # standard deviation of the imputation noise, as a share of the image's value range
RANDOM_MAPS = 2  # random rankings averaged for the random-map baseline
SANITY_IG_STEPS = 32  # Integrated Gradients' steps in the randomisation check (the trained map recomputed alike)
IMPUTE_TOLERANCE = 1e-12  # ROAD's imputation stops when the residual's energy is this share of the right side's
IMPUTE_STEPS_PER_SIDE = 4  # ... or after this many conjugate-gradient steps per pixel of the longer side
_NEIGHBOURS = torch.tensor([[1 / 12, 1 / 6, 1 / 12], [1 / 6, 0.0, 1 / 6], [1 / 12, 1 / 6, 1 / 12]])  # ROAD's weights


@dataclass(frozen=True)
class Curve:
    """The target's probability as a growing share of pixels is removed (or inserted)."""

    fractions: np.ndarray  # (K,) share of the pixels changed, 0 to 1
    scores: np.ndarray  # (K,) softmax probability of the target class

    @property
    def auc(self) -> float:
        """Area under the curve over the fractions (trapezoid rule), in [0, 1]."""
        return float(np.sum((self.scores[1:] + self.scores[:-1]) / 2 * np.diff(self.fractions)))


@dataclass(frozen=True)
class SanityCheck:
    """Cascading model randomisation: the map's rank correlation with the trained model's map after each step."""

    layers: list[str]  # the part re-initialised at each step, output first ("fc", "layer3", ..., "conv1")
    correlations: list[float]  # Spearman correlation of |map| with the trained |map| once that part is random
    random_map: float  # the same correlation for a map of uniform noise (about 0)

    @property
    def final(self) -> float:
        """The correlation once every layer is random."""
        return self.correlations[-1]


@dataclass(frozen=True)
class Faithfulness:
    """Faithfulness of one map of one image, with a random-map baseline for every curve."""

    method: str
    target: int
    deletion: Curve
    insertion: Curve
    road_morf: Curve
    road_lerf: Curve
    random: dict[str, Curve]  # the same four curves ("deletion", ...) for random maps, averaged
    sanity: SanityCheck | None  # None when not asked for

    def scores(self) -> dict[str, float]:
        """``{"deletion_auc": ..., "random_deletion_auc": ..., ...}``: every number of FAITHFULNESS_METRICS."""
        values = {}
        for curve in ("deletion", "insertion", "road_morf", "road_lerf"):
            values[f"{curve}_auc"] = getattr(self, curve).auc
            values[f"random_{curve}_auc"] = self.random[curve].auc
        if self.sanity is not None:
            values["sanity_correlation"] = self.sanity.final
            values["random_sanity_correlation"] = self.sanity.random_map
        return values


def ranking(raw: np.ndarray, seed: int = 0) -> np.ndarray:
    """Pixel indices (row-major) from most to least relevant by the signed attribution; ties in random order."""
    jitter = np.random.default_rng(seed).random(raw.size)
    return np.lexsort((jitter, -raw.reshape(-1)))


def _positions(order: np.ndarray) -> torch.Tensor:
    positions = np.empty_like(order)
    positions[order] = np.arange(order.size)
    return torch.from_numpy(positions)


@torch.no_grad()
def _probabilities(model: nn.Module, images: torch.Tensor, target: int, batch_size: int) -> np.ndarray:
    scores = [F.softmax(model(chunk), dim=1)[:, target] for chunk in images.split(batch_size)]
    return torch.cat(scores).float().cpu().numpy()


def pixel_flipping(
    model: nn.Module, x: torch.Tensor, order: np.ndarray, target: int, baseline: torch.Tensor,
    steps: int = CURVE_STEPS, batch_size: int = 64,
) -> tuple[Curve, Curve]:
    """(deletion, insertion) curves for one image (1, C, H, W) and a pixel ranking (most relevant first)."""
    check_single_image(x)
    fractions = np.linspace(0.0, 1.0, steps + 1)
    counts = torch.from_numpy(np.round(fractions * order.size).astype(np.int64))
    changed = (_positions(order)[None, :] < counts[:, None]).view(-1, 1, *x.shape[-2:]).to(x.device)  # (K, 1, H, W)
    deleted = torch.where(changed, baseline, x)
    inserted = torch.where(changed, x, baseline)
    with eval_mode(model):
        scores = _probabilities(model, torch.cat([deleted, inserted]), target, batch_size)
    return Curve(fractions, scores[: steps + 1]), Curve(fractions, scores[steps + 1:])


def impute(x: torch.Tensor, removed: torch.Tensor, noise_std: float = 0.0, seed: int = 0) -> torch.Tensor:
    """Fill the ``removed`` pixels (B, 1, H, W bool) of ``x`` (B, C, H, W) from their neighbours.

    ROAD's noisy linear imputation: each removed pixel is the weighted mean of its neighbours (1/6 edge, 1/12
    corner; at the image's border the weights of the neighbours inside, renormalised), a sparse linear system,
    solved here by conjugate gradients for every image at once from a coarse fill, until every residual is under
    IMPUTE_TOLERANCE (or IMPUTE_STEPS_PER_SIDE times the longer side in steps), plus Gaussian noise of
    ``noise_std`` on the removed pixels only.
    """
    removed = removed.expand_as(x)
    kernel = _NEIGHBOURS.to(x.dtype).to(x.device).view(1, 1, 3, 3).repeat(x.shape[1], 1, 1, 1)
    weights = F.conv2d(torch.ones_like(x[:1]), kernel, padding=1, groups=x.shape[1])  # each pixel's neighbours' total

    def neighbours(values: torch.Tensor) -> torch.Tensor:
        return F.conv2d(values, kernel, padding=1, groups=x.shape[1])

    def system(unknown: torch.Tensor) -> torch.Tensor:  # (weights - W) restricted to the removed pixels
        return torch.where(removed, weights * unknown - neighbours(unknown), 0.0)

    known = torch.where(removed, 0.0, x)
    right = torch.where(removed, neighbours(known), 0.0)
    unknown = torch.where(removed, _coarse_fill(x, removed), 0.0)
    residual = right - system(unknown)
    direction = residual
    energy = residual.square().sum(dim=(1, 2, 3), keepdim=True)
    goal = IMPUTE_TOLERANCE * right.square().sum(dim=(1, 2, 3), keepdim=True)
    for _ in range(IMPUTE_STEPS_PER_SIDE * max(x.shape[-2:])):
        if bool((energy <= goal).all()):
            break
        product = system(direction)
        curvature = (direction * product).sum(dim=(1, 2, 3), keepdim=True)
        step = torch.where(curvature > 0, energy / curvature.clamp_min(1e-30), 0.0)
        unknown = unknown + step * direction
        residual = residual - step * product
        new_energy = residual.square().sum(dim=(1, 2, 3), keepdim=True)
        direction = residual + torch.where(energy > 0, new_energy / energy.clamp_min(1e-30), 0.0) * direction
        energy = new_energy
    filled = torch.where(removed, unknown, x)
    if noise_std > 0:
        generator = torch.Generator(device="cpu").manual_seed(seed)
        noise = torch.randn(filled.shape, generator=generator, dtype=filled.dtype).to(x.device)
        filled = filled + noise * noise_std * removed
    return filled


def _coarse_fill(x: torch.Tensor, removed: torch.Tensor) -> torch.Tensor:
    """A starting guess: removed pixels from the average of the known ones in ever coarser neighbourhoods."""
    known = (~removed).to(x.dtype)
    if not bool(removed.any()) or min(x.shape[-2:]) <= 2:
        mean = (x * known).sum(dim=(-2, -1), keepdim=True) / known.sum(dim=(-2, -1), keepdim=True).clamp_min(1)
        return torch.where(removed, mean, x)
    coarse_known = F.avg_pool2d(known, 2, ceil_mode=True)
    coarse = F.avg_pool2d(x * known, 2, ceil_mode=True) / coarse_known.clamp_min(1e-8)
    coarse = _coarse_fill(coarse, coarse_known == 0)
    return torch.where(removed, F.interpolate(coarse, size=x.shape[-2:], mode="bilinear"), x)


def road(
    model: nn.Module, x: torch.Tensor, order: np.ndarray, target: int,
    fractions: tuple[float, ...] = ROAD_FRACTIONS, noise_std: float = ROAD_NOISE, seed: int = 0,
) -> tuple[Curve, Curve]:
    """(MoRF, LeRF) ROAD curves: the target's probability as the most (least) relevant pixels are imputed."""
    check_single_image(x)
    positions = _positions(order).to(x.device)
    counts = torch.tensor([round(f * order.size) for f in fractions], device=x.device)
    most = (positions[None, :] < counts[:, None]).view(-1, 1, *x.shape[-2:])
    least = (positions[None, :] >= order.size - counts[:, None]).view(-1, 1, *x.shape[-2:])
    value_range = float(x.max() - x.min()) or 1.0
    images = impute(x.expand(2 * len(fractions), -1, -1, -1), torch.cat([most, least]), noise_std * value_range, seed)
    with eval_mode(model):
        scores = _probabilities(model, images, target, batch_size=64)
    grid = np.asarray(fractions, dtype=np.float64)
    return Curve(grid, scores[: len(fractions)]), Curve(grid, scores[len(fractions):])


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman correlation of two arrays (ties get their average rank); 0 when either is constant."""
    ranks_a, ranks_b = _average_ranks(a.reshape(-1)), _average_ranks(b.reshape(-1))
    ranks_a, ranks_b = ranks_a - ranks_a.mean(), ranks_b - ranks_b.mean()
    norm = float(np.sqrt((ranks_a ** 2).sum() * (ranks_b ** 2).sum()))
    return float((ranks_a * ranks_b).sum() / norm) if norm > 0 else 0.0


def _average_ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], values.size]
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.repeat((starts + ends - 1) / 2, ends - starts)
    return ranks


def randomisation_cascade(model: nn.Module) -> list[str]:
    """The model's top-level parts that hold convolutions or linear layers, output first (``fc``, ``layer3``, ...)."""
    learnable = [name for name, child in model.named_children()
                 if any(isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)) for m in child.modules())]
    return learnable[::-1]


def reinitialise(module: nn.Module, generator: torch.Generator) -> None:
    """Draw a convolution's or linear layer's weights and bias afresh as torch's default initialisation does, from
    ``generator`` (the process's random state, which other threads use, is left alone)."""
    with torch.no_grad():
        nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
        if module.bias is not None:
            bound = 1 / math.sqrt(module.weight[0].numel())
            nn.init.uniform_(module.bias, -bound, bound, generator=generator)


def sanity_check(model: nn.Module, explain: Callable[[nn.Module], np.ndarray], trained_map: np.ndarray,
                 seed: int = 0) -> SanityCheck:
    """Re-initialise ``randomisation_cascade(model)`` one part at a time (on a copy; BatchNorm statistics kept) and
    compare each map ``explain(copy)`` with ``trained_map`` by the rank correlation of absolute values."""
    randomised = copy.deepcopy(model)
    layers, correlations = randomisation_cascade(model), []
    generator = torch.Generator().manual_seed(seed)
    for name in layers:
        for module in getattr(randomised, name).modules():
            if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Linear)):
                reinitialise(module, generator)
        correlations.append(rank_correlation(np.abs(trained_map), np.abs(explain(randomised))))
    noise = np.random.default_rng(seed).random(trained_map.shape)
    return SanityCheck(layers, correlations, rank_correlation(np.abs(trained_map), noise))


def random_curves(model: nn.Module, x: torch.Tensor, target: int, baseline: torch.Tensor,
                  maps: int = RANDOM_MAPS, seed: int = 0) -> dict[str, Curve]:
    """The four curves of ``score_attribution`` for uniformly random rankings, averaged over ``maps`` of them."""
    runs: dict[str, list[Curve]] = {"deletion": [], "insertion": [], "road_morf": [], "road_lerf": []}
    pixels = x.shape[-2] * x.shape[-1]
    for index in range(maps):
        order = np.random.default_rng([seed, index]).permutation(pixels)
        for name, curve in zip(runs, (*pixel_flipping(model, x, order, target, baseline),
                                      *road(model, x, order, target, seed=seed + index))):
            runs[name].append(curve)
    return {name: Curve(curves[0].fractions, np.mean([c.scores for c in curves], axis=0)) for name, curves in runs.items()}


def score_attribution(
    model: nn.Module, x: torch.Tensor, attribution: Attribution, *, baseline: str = "black", sanity: bool = True,
    stage: str | None = None, random: dict[str, Curve] | None = None, seed: int = 0,
) -> Faithfulness:
    """Score one attribution map of one image (1, C, H, W): deletion, insertion, ROAD and, with ``sanity``, the
    cascading randomisation check (the map recomputed with the same method and baseline; Integrated Gradients at
    up to SANITY_IG_STEPS steps, for the trained model as for the randomised ones).

    ``baseline`` (a key of BASELINES) is what deletion removes pixels to and insertion starts from. ``random``:
    the random-map curves when already computed for this model and image (they do not depend on the method).
    """
    x = x.detach()
    reference = make_baseline(model, x, baseline)
    order = ranking(attribution.raw, seed)
    deletion, insertion = pixel_flipping(model, x, order, attribution.target, reference)
    road_morf, road_lerf = road(model, x, order, attribution.target, seed=seed)
    random = random or random_curves(model, x, attribution.target, reference, seed=seed)
    check = None
    if sanity:
        steps = min(attribution.n_steps, SANITY_IG_STEPS) if attribution.n_steps else None

        def explain(explained: nn.Module) -> np.ndarray:
            return attribute(explained, x, attribution.method, attribution.target, stage=stage, n_steps=steps,
                             baseline=attribution.baseline or "mean", smoothgrad=attribution.smoothgrad).raw

        check = sanity_check(model, explain, attribution.raw if steps == attribution.n_steps else explain(model), seed)
    return Faithfulness(attribution.method, attribution.target, deletion, insertion, road_morf, road_lerf, random, check)


SANITY_FAIL = 0.5  # a rank correlation beyond +-this with a fully randomised model's map fails the check


def verdict(result: Faithfulness) -> str:
    """One sentence for a reader: deletion and insertion against the random map, and the sanity check's outcome."""
    scores = result.scores()
    deletion = "better" if scores["deletion_auc"] < scores["random_deletion_auc"] else "no better"
    insertion = "better" if scores["insertion_auc"] > scores["random_insertion_auc"] else "no better"
    text = (f"Deletion AUC {scores['deletion_auc']:.2f}, {deletion} than a random map's {scores['random_deletion_auc']:.2f} "
            f"(lower is better); insertion AUC {scores['insertion_auc']:.2f}, {insertion} than "
            f"{scores['random_insertion_auc']:.2f} (higher is better).")
    if result.sanity is None:
        return text
    if abs(result.sanity.final) > SANITY_FAIL:
        return text + (f" Fails the randomisation check: with every layer random the map still correlates "
                       f"{result.sanity.final:.2f} with this one, so it shows the image more than the model.")
    return text + f" Passes the randomisation check (correlation {result.sanity.final:.2f} once every layer is random)."
