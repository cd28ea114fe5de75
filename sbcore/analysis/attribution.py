"""Attribution maps through Captum, one adapter for every method so callers switch by name.

Every method runs batched (Occlusion's ``perturbations_per_eval``, Integrated Gradients'
``internal_batch_size``, SmoothGrad's ``nt_samples_batch_size``), and Integrated Gradients picks
its number of steps so that its completeness error stays under a share of the logit gap.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from captum.attr import (
    InputXGradient,
    IntegratedGradients,
    LayerAttribution,
    LayerGradCam,
    NoiseTunnel,
    Occlusion,
    Saliency,
)
from torch import nn

from sbcore.analysis.structure import check_single_image, check_stage, eval_mode, stage_names
from sbcore.errors import SBCoreError

ATTRIBUTION_METHODS: dict[str, str] = {
    "integrated_gradients": "Integrated Gradients",
    "saliency": "Saliency",
    "input_x_gradient": "Input x Gradient",
    "grad_cam": "Grad-CAM",
    "occlusion": "Occlusion",
}
SIGNED_METHODS = ("integrated_gradients", "input_x_gradient", "occlusion")  # the others give magnitudes only
HEATMAP_PERCENTILE = 99.0  # the heatmap's 1.0: robust to a few extreme pixels, identical for every model
BASELINES: dict[str, str] = {
    "black": "Black image",
    "blurred": "Blurred copy of the image",
    "mean": "Dataset mean (grey)",
}
IG_FIRST_STEPS, IG_MAX_STEPS = 32, 256  # Integrated Gradients' first try and default ceiling when choosing steps
IG_MORE_STEPS = 1024  # the ceiling offered when the default one leaves the completeness error too large
MAX_COMPLETENESS_ERROR = 0.05  # of the logit gap F(x) - F(baseline)
SMOOTHGRAD_IG_STEPS = 12  # per noisy copy: SmoothGrad averages over copies, which also evens out the path sum;
# 8 copies x 12 steps keep IG + SmoothGrad under 5 s for the four 28x28 models (benchmarks/analysis_speed.py)


@dataclass
class Attribution:
    """How much each input pixel matters for the target class, by one method."""

    method: str
    target: int
    heatmap: np.ndarray  # (H, W) in [0, 1]: |raw| / its 99th percentile, clipped
    raw: np.ndarray  # (H, W) attribution summed over input channels (Grad-CAM: upsampled from its stage)
    convergence_delta: float | None  # Integrated Gradients' completeness error, None for other methods
    completeness_error: float | None = None  # |delta| / |F(x) - F(baseline)| for the target (IG only)
    n_steps: int | None = None  # Integrated Gradients' path steps actually used
    baseline: str | None = None  # the reference input of IG and Occlusion (a key of BASELINES)
    smoothgrad: bool = False  # averaged over noisy copies (NoiseTunnel)

    @property
    def signed(self) -> bool:
        """Whether the map tells evidence for the class (positive) from evidence against it (negative)."""
        return self.method in SIGNED_METHODS

    @property
    def signed_heatmap(self) -> np.ndarray:
        """(H, W) in [-1, 1]: raw over the 99th percentile of |raw|, clipped, sign kept (zero stays zero)."""
        return signed_heatmap(self.raw)


NOT_CONVERGED_MEANING = (
    "The map's values are not reliable: some pixels carry too much attribution or too little, so read it as a rough "
    "ranking at best."
)


def not_converged(attribution: Attribution, max_error: float = MAX_COMPLETENESS_ERROR) -> bool:
    """Whether an Integrated Gradients map missed the completeness goal (False for other methods)."""
    return attribution.completeness_error is not None and attribution.completeness_error >= max_error


def completeness_warning(attribution: Attribution, max_error: float = MAX_COMPLETENESS_ERROR) -> str | None:
    """What an Integrated Gradients map that missed the completeness goal means (remedies are the caller's: they
    name its own controls); None for a map within the goal and for other methods."""
    if not not_converged(attribution, max_error):
        return None
    return (
        f"Integrated Gradients did not converge: after {attribution.n_steps} steps its attributions miss the change "
        f"of the class score from the baseline to the image by {attribution.completeness_error:.1%} (the goal is "
        f"under {max_error:.0%}). {NOT_CONVERGED_MEANING}"
    )


def normalise_heatmap(raw: np.ndarray) -> np.ndarray:
    """(H, W) -> (H, W) in [0, 1]: absolute value over its 99th percentile, clipped; all zeros stays zeros."""
    magnitude = np.abs(raw)
    scale = float(np.percentile(magnitude, HEATMAP_PERCENTILE)) or float(magnitude.max())
    return np.clip(magnitude / scale, 0.0, 1.0) if scale > 0 else np.zeros_like(magnitude)


def signed_heatmap(raw: np.ndarray) -> np.ndarray:
    """(H, W) -> (H, W) in [-1, 1]: the values over the 99th percentile of their magnitude, clipped, sign kept."""
    return np.sign(raw) * normalise_heatmap(raw)


def occlusion_window(height: int, width: int) -> tuple[int, int]:
    """(window side, stride) in pixels for an input of (H, W): a quarter of the shorter side, about
    half-overlapping (7 and 3 at 28x28: 8 x 8 = 64 occluded copies, one forward pass at batch 64)."""
    window = max(4, round(min(height, width) / 4))
    return window, max(1, window // 2)


def make_baseline(model: nn.Module, x: torch.Tensor, kind: str) -> torch.Tensor:
    """The reference input (1, C, H, W) for IG and Occlusion, in the model's normalised input space.

    ``mean``: zeros, the dataset mean; ``black``: pixel value 0 through the model's mean/std;
    ``blurred``: the image under a Gaussian blur of sigma = 1/8 of its shorter side.
    """
    if kind == "mean":
        return torch.zeros_like(x)
    if kind == "black":
        preprocessing = getattr(getattr(model, "metadata", None), "preprocessing", None)
        if preprocessing is None:
            raise SBCoreError("A black baseline needs the model's preprocessing (mean and std) in its metadata.")
        mean = torch.tensor(preprocessing.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(preprocessing.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        return ((0 - mean) / std).expand_as(x).clone()
    if kind == "blurred":
        sigma = min(x.shape[-2:]) / 8
        radius = int(3 * sigma)
        taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device) / sigma) ** 2)
        taps = taps / taps.sum()
        channels = x.shape[1]
        blurred = F.conv2d(F.pad(x, (radius,) * 4, mode="replicate"), taps.view(1, 1, 1, -1).repeat(channels, 1, 1, 1),
                           groups=channels)
        return F.conv2d(blurred, taps.view(1, 1, -1, 1).repeat(channels, 1, 1, 1), groups=channels).detach()
    raise SBCoreError(f"Unknown baseline {kind!r}; choose one of {', '.join(BASELINES)}.")


def _resolve_target(model: nn.Module, x: torch.Tensor, target: int | None) -> int:
    with torch.no_grad():
        logits = model(x)
    num_classes = logits.shape[1]
    if target is None:
        return int(logits.argmax(dim=1))
    if not 0 <= int(target) < num_classes:
        raise SBCoreError(f"Target class {target} does not exist; this model has classes 0 to {num_classes - 1}.")
    return int(target)


def _captum_method(
    model: nn.Module, x: torch.Tensor, method: str, stage: str | None, baseline: torch.Tensor, internal_batch_size: int
) -> tuple[object, dict]:
    """(Captum attribution object, its ``attribute`` keyword arguments) for a method other than IG."""
    if method == "saliency":
        return Saliency(model), {"abs": True}
    if method == "input_x_gradient":
        return InputXGradient(model), {}
    if method == "grad_cam":
        stage = stage or stage_names(model)[-1]
        check_stage(model, stage)
        # Captum hooks the stage for the whole call: on a private copy, so that forwards of a model shared with
        # other threads (the app's sessions) neither trigger the hook nor overwrite the stage output it keeps.
        private = copy.deepcopy(model)
        return LayerGradCam(private, getattr(private, stage)), {"relu_attributions": True}
    window, stride = occlusion_window(*x.shape[-2:])
    channels = x.shape[1]
    return Occlusion(model), {
        "sliding_window_shapes": (channels, window, window),
        "strides": (channels, stride, stride),
        "baselines": baseline,
        "perturbations_per_eval": internal_batch_size,
    }


def _logit_gap(model: nn.Module, x: torch.Tensor, baseline: torch.Tensor, target: int) -> float:
    """F(x) - F(baseline) for the target logit: what Integrated Gradients' attributions must add up to."""
    with torch.no_grad():
        logits = model(torch.cat([x.detach(), baseline]))
    return float(logits[0, target] - logits[1, target])


def _integrated_gradients(
    model: nn.Module, x: torch.Tensor, target: int, baseline: torch.Tensor, n_steps: int | None,
    internal_batch_size: int, max_error: float, max_steps: int,
) -> tuple[torch.Tensor, float, float, int]:
    """(attributions, |delta|, |delta| / |gap|, steps) for a fixed ``n_steps``, or with steps chosen.

    Chosen: IG_FIRST_STEPS, then as many more as the error predicts if it shrinks like 1 / steps^2
    (aiming at 80% of ``max_error``, at least 16 more, a multiple of 16), until the error is under
    ``max_error`` or ``max_steps`` is reached.
    """
    gap = abs(_logit_gap(model, x, baseline, target))
    algorithm = IntegratedGradients(model)
    steps = n_steps or IG_FIRST_STEPS
    while True:
        result, deltas = algorithm.attribute(
            x, baselines=baseline, target=target, n_steps=steps, internal_batch_size=internal_batch_size,
            return_convergence_delta=True,
        )
        delta = float(deltas.abs().max())
        error = delta / gap if gap > 1e-6 else 0.0
        if n_steps or error < max_error or steps >= max_steps:
            return result, delta, error, steps
        wanted = steps * math.sqrt(error / (0.8 * max_error))
        steps = min(max_steps, max(steps + 16, 16 * math.ceil(wanted / 16)))


def attribute(
    model: nn.Module,
    x: torch.Tensor,
    method: str,
    target: int | None = None,
    *,
    stage: str | None = None,
    n_steps: int | None = None,
    baseline: str = "mean",
    internal_batch_size: int = 64,
    smoothgrad: bool = False,
    smoothgrad_samples: int = 8,
    noise_std: float = 0.15,
    max_completeness_error: float = MAX_COMPLETENESS_ERROR,
    max_steps: int = IG_MAX_STEPS,
) -> Attribution:
    """Attribute one image's class score to its pixels with a Captum method.

    Args:
        x: (1, C, H, W) preprocessed image.
        method: a key of ATTRIBUTION_METHODS.
        target: class index; None for the predicted class.
        stage: Grad-CAM's stage (default: the last one).
        n_steps: Integrated Gradients' path steps; None (default) chooses them so that the
            completeness error is under ``max_completeness_error`` of the logit gap (up to ``max_steps``);
            ``completeness_warning`` says when it is not.
        baseline: the reference input of IG and Occlusion, a key of BASELINES (default: ``mean``).
        internal_batch_size: inputs per forward pass: IG's path points, Occlusion's perturbations,
            SmoothGrad's noisy copies (1 runs them one at a time).
        smoothgrad: average over ``smoothgrad_samples`` noisy copies (Captum NoiseTunnel, all copies in
            one batch) with noise of standard deviation ``noise_std`` times the input's value range;
            with IG the steps are fixed (``n_steps`` or SMOOTHGRAD_IG_STEPS per copy) and no completeness
            error is reported.
    """
    if method not in ATTRIBUTION_METHODS:
        raise SBCoreError(f"Unknown attribution method {method!r}; choose one of {', '.join(ATTRIBUTION_METHODS)}.")
    if smoothgrad and method == "occlusion":
        raise SBCoreError("SmoothGrad applies to gradient methods, not to Occlusion.")
    check_single_image(x)
    x = x.detach().clone().requires_grad_(True)
    delta = error = steps = None
    with eval_mode(model):
        target = _resolve_target(model, x, target)
        reference = make_baseline(model, x.detach(), baseline)
        if method == "integrated_gradients" and not smoothgrad:
            result, delta, error, steps = _integrated_gradients(
                model, x, target, reference, n_steps, internal_batch_size, max_completeness_error, max_steps
            )
        else:
            if method == "integrated_gradients":
                steps = n_steps or SMOOTHGRAD_IG_STEPS
                algorithm, kwargs = IntegratedGradients(model), {
                    "baselines": reference, "n_steps": steps, "internal_batch_size": internal_batch_size,
                }
            else:
                algorithm, kwargs = _captum_method(model, x, method, stage, reference, internal_batch_size)
            if smoothgrad:
                stdev = noise_std * float(x.detach().max() - x.detach().min())
                algorithm, kwargs = NoiseTunnel(algorithm), {
                    **kwargs, "nt_type": "smoothgrad", "nt_samples": smoothgrad_samples, "stdevs": stdev,
                    "nt_samples_batch_size": max(1, min(smoothgrad_samples, internal_batch_size)),
                }
            result = algorithm.attribute(x, target=target, **kwargs)
    if method == "grad_cam":
        result = LayerAttribution.interpolate(result, tuple(x.shape[-2:]), interpolate_mode="bilinear")
    raw = result[0].detach().float().sum(dim=0).cpu().numpy()
    uses_baseline = method in ("integrated_gradients", "occlusion")
    return Attribution(method, target, normalise_heatmap(raw), raw, delta, error, steps,
                       baseline if uses_baseline else None, smoothgrad)
