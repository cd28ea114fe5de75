"""Out-of-distribution notice: how familiar an input looks to a classifier, from what it sees.

The score is the Mahalanobis distance of the input's pooled last-stage features to the nearest
class mean, with a covariance shared by the classes (Lee et al. 2018, "A Simple Unified Framework
for Detecting Out-of-Distribution Samples and Adversarial Attacks", arXiv 1807.03888), fitted on
training images: ``-min_k (f - mu_k)^T P (f - mu_k)``, larger for inputs like the training data.
The energy score (``logsumexp`` of the logits, arXiv 2010.03496) and the maximum softmax
probability are kept as the usual baselines to compare against.

A ``Calibration`` holds, per model, that density, the score's quantiles on a test set and a
threshold (its 5th percentile there), so a verdict reads "less familiar than 99% of the test
images" and says "unusual" below the threshold. Calibrations live in a JSON file (numbers) beside a
safetensors file (means and precision), made by ``tools/ood_calibration.py``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from sbcore.analysis.structure import eval_mode
from sbcore.errors import SBCoreError

THRESHOLD_PERCENTILE = 5.0  # 95% of in-distribution test images count as familiar


@dataclass(frozen=True)
class FeatureDensity:
    """Class means (K, D) and the shared precision matrix (D, D) of pooled features."""

    means: torch.Tensor
    precision: torch.Tensor

    def scores(self, features: torch.Tensor) -> torch.Tensor:
        """(B, D) features -> (B,) minus the squared Mahalanobis distance to the nearest class mean."""
        offsets = features[:, None, :] - self.means[None]  # (B, K, D)
        distances = torch.einsum("bkd,de,bke->bk", offsets, self.precision, offsets)
        return -distances.min(dim=1).values


@dataclass(frozen=True)
class Calibration:
    """A model's density, its scores' 101 quantiles (0%, 1%, ... 100%) on a test set, and the threshold."""

    density: FeatureDensity
    quantiles: tuple[float, ...]
    threshold: float
    auroc: float  # test set vs the out-of-distribution set named in ``out_set``
    in_set: str
    out_set: str


@dataclass(frozen=True)
class Familiarity:
    """One input's score, the share of test images (0-1) scoring lower, and whether it is unusual (below the
    threshold, as 5% of the test images are) or unlike every test image (scoring below all of them)."""

    score: float
    percentile: float
    unusual: bool

    @property
    def unlike_every_test_image(self) -> bool:
        """Less familiar than every test image: the prediction most likely says nothing."""
        return self.unusual and self.percentile <= 0.0


@torch.no_grad()
def pooled_features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) inputs -> (B, D) last-stage features averaged over positions (the head's input)."""
    with eval_mode(model):
        return model.forward_features(x).float().mean(dim=(2, 3))


def fit_density(features: torch.Tensor, labels: torch.Tensor, num_classes: int, ridge: float = 1e-3) -> FeatureDensity:
    """Class means and shared precision of (N, D) features with labels (N,); ``ridge`` keeps it invertible.

    Fitted in float64 (the inverse of a nearly singular covariance loses digits in float32) and stored in
    float32; SBCoreError when a class has no features, since its mean would be undefined.
    """
    counts = torch.bincount(labels, minlength=num_classes)
    if bool((counts == 0).any()):
        missing = [k for k in range(num_classes) if counts[k] == 0]
        raise SBCoreError(f"Cannot fit the feature density: no features of class {missing} among {len(labels)}.")
    features = features.double()
    means = torch.stack([features[labels == k].mean(dim=0) for k in range(num_classes)])
    centred = features - means[labels]
    covariance = centred.T @ centred / len(features) + ridge * torch.eye(features.shape[1], dtype=torch.float64)
    return FeatureDensity(means.float(), torch.linalg.inv(covariance).float())


def energy_scores(logits: torch.Tensor) -> torch.Tensor:
    """(B, num_classes) logits -> (B,) negative free energy ``logsumexp``; a baseline score."""
    return torch.logsumexp(logits.detach().float(), dim=1)


def max_softmax(logits: torch.Tensor) -> torch.Tensor:
    """(B, num_classes) logits -> (B,) largest class probability, the classic baseline score."""
    return torch.softmax(logits.detach().float(), dim=1).max(dim=1).values


def auroc(familiar: np.ndarray, unfamiliar: np.ndarray) -> float:
    """Probability that a random familiar input outscores a random unfamiliar one (ties count half)."""
    ordered = np.sort(unfamiliar)
    below = np.searchsorted(ordered, familiar, side="left")
    tied = np.searchsorted(ordered, familiar, side="right") - below
    return float(np.mean((below + 0.5 * tied) / len(ordered)))


def calibrate(density: FeatureDensity, familiar: np.ndarray, unfamiliar: np.ndarray, in_set: str, out_set: str) -> Calibration:
    """A Calibration from the density's scores on the test set (``familiar``) and on out-of-distribution images."""
    quantiles = np.percentile(familiar, np.arange(101))
    return Calibration(
        density, tuple(float(q) for q in quantiles), float(np.percentile(familiar, THRESHOLD_PERCENTILE)),
        auroc(familiar, unfamiliar), in_set, out_set,
    )


def assess(model: nn.Module, x: torch.Tensor, calibration: Calibration) -> Familiarity:
    """The Familiarity of one input (1, C, H, W) to ``model``, against the model's calibration."""
    score = float(calibration.density.scores(pooled_features(model, x).cpu())[0])
    percentile = float(np.interp(score, calibration.quantiles, np.linspace(0.0, 1.0, 101)))
    return Familiarity(score, percentile, score < calibration.threshold)


def save_calibrations(calibrations: dict[str, Calibration], path: str | Path) -> None:
    """Write calibrations by model name: numbers to ``path`` (JSON), tensors beside it (.safetensors)."""
    path = Path(path)
    numbers = {name: {"quantiles": list(c.quantiles), "threshold": c.threshold, "auroc": c.auroc,
                      "in_set": c.in_set, "out_set": c.out_set} for name, c in calibrations.items()}
    tensors = {f"{name}/{part}": getattr(c.density, part).contiguous()
               for name, c in calibrations.items() for part in ("means", "precision")}
    path.write_text(json.dumps(numbers, indent=1) + "\n")
    save_file(tensors, path.with_suffix(".safetensors"))


def load_calibrations(path: str | Path) -> dict[str, Calibration]:
    """Calibrations by model name from ``save_calibrations``'s two files; SBCoreError when unreadable."""
    path = Path(path)
    try:
        numbers = json.loads(path.read_text())
        tensors = load_file(path.with_suffix(".safetensors"))
        return {
            name: Calibration(
                FeatureDensity(tensors[f"{name}/means"], tensors[f"{name}/precision"]), tuple(entry["quantiles"]),
                entry["threshold"], entry["auroc"], entry["in_set"], entry["out_set"],
            )
            for name, entry in numbers.items()
        }
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise SBCoreError(f"Cannot read the familiarity calibration {path.name}: {error}") from error
