"""Out-of-distribution notice: how familiar an input looks to a classifier, from its logits.

The score is the negative free energy, ``logsumexp(logits)`` (Liu et al. 2020, "Energy-based
Out-of-distribution Detection", arXiv 2010.03496): larger for inputs like the training data. A
``Calibration`` holds, per model, the score's quantiles on an in-distribution test set and a
threshold (the score of the 5th percentile there), so a verdict reads "less familiar than 99% of
the test images" and says "unusual" below the threshold. Calibrations live in a small JSON file
made by ``tools/ood_calibration.py``.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from sbcore.errors import SBCoreError

THRESHOLD_PERCENTILE = 5.0  # 95% of in-distribution test images count as familiar


@dataclass(frozen=True)
class Calibration:
    """A model's familiarity scores on its test set: 101 quantiles (0%, 1%, ... 100%) and the threshold."""

    quantiles: tuple[float, ...]
    threshold: float
    auroc: float  # test set vs the out-of-distribution set named in ``out_set``
    in_set: str
    out_set: str


@dataclass(frozen=True)
class Familiarity:
    """One input's score, the share of test images (0-1) scoring lower, and whether it is unusual."""

    score: float
    percentile: float
    unusual: bool


def familiarity_scores(logits: torch.Tensor) -> torch.Tensor:
    """(B, num_classes) logits -> (B,) negative free energy ``logsumexp``; higher is more familiar."""
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


def calibrate(familiar: np.ndarray, unfamiliar: np.ndarray, in_set: str, out_set: str) -> Calibration:
    """A Calibration from scores on the test set (``familiar``) and on out-of-distribution images."""
    quantiles = np.percentile(familiar, np.arange(101))
    return Calibration(
        tuple(float(q) for q in quantiles), float(np.percentile(familiar, THRESHOLD_PERCENTILE)),
        auroc(familiar, unfamiliar), in_set, out_set,
    )


def assess(logits: torch.Tensor, calibration: Calibration) -> Familiarity:
    """The Familiarity of one input's logits (1, num_classes) against a model's calibration."""
    score = float(familiarity_scores(logits.reshape(1, -1))[0])
    percentile = float(np.interp(score, calibration.quantiles, np.linspace(0.0, 1.0, 101)))
    return Familiarity(score, percentile, score < calibration.threshold)


def save_calibrations(calibrations: dict[str, Calibration], path: str | Path) -> None:
    """Write calibrations by model name as JSON."""
    Path(path).write_text(json.dumps({name: asdict(c) for name, c in calibrations.items()}, indent=1) + "\n")


def load_calibrations(path: str | Path) -> dict[str, Calibration]:
    """Calibrations by model name from ``save_calibrations``'s JSON; SBCoreError when unreadable."""
    try:
        raw = json.loads(Path(path).read_text())
        return {name: Calibration(**{**entry, "quantiles": tuple(entry["quantiles"])}) for name, entry in raw.items()}
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise SBCoreError(f"Cannot read the familiarity calibration {Path(path).name}: {error}") from error
