"""Attribution maps through Captum, one adapter for every method so callers switch by name."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
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
HEATMAP_PERCENTILE = 99.0  # the heatmap's 1.0: robust to a few extreme pixels, identical for every model


@dataclass
class Attribution:
    """How much each input pixel matters for the target class, by one method."""

    method: str
    target: int
    heatmap: np.ndarray  # (H, W) in [0, 1]: |raw| / its 99th percentile, clipped
    raw: np.ndarray  # (H, W) attribution summed over input channels (Grad-CAM: upsampled from its stage)
    convergence_delta: float | None  # Integrated Gradients' completeness error, None for other methods


def normalise_heatmap(raw: np.ndarray) -> np.ndarray:
    """(H, W) -> (H, W) in [0, 1]: absolute value over its 99th percentile, clipped; all zeros stays zeros."""
    magnitude = np.abs(raw)
    scale = float(np.percentile(magnitude, HEATMAP_PERCENTILE)) or float(magnitude.max())
    return np.clip(magnitude / scale, 0.0, 1.0) if scale > 0 else np.zeros_like(magnitude)


def occlusion_window(height: int, width: int) -> tuple[int, int]:
    """(window side, stride) in pixels for an input of (H, W): about 1/7 of the shorter side, half-overlapping."""
    window = max(4, round(min(height, width) / 7))
    return window, max(1, window // 2)


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
    model: nn.Module, x: torch.Tensor, method: str, stage: str | None, n_steps: int, internal_batch_size: int
) -> tuple[object, dict]:
    """(Captum attribution object, its ``attribute`` keyword arguments) for a method name."""
    if method == "integrated_gradients":
        return IntegratedGradients(model), {
            "n_steps": n_steps, "internal_batch_size": internal_batch_size, "return_convergence_delta": True,
        }
    if method == "saliency":
        return Saliency(model), {"abs": True}
    if method == "input_x_gradient":
        return InputXGradient(model), {}
    if method == "grad_cam":
        stage = stage or stage_names(model)[-1]
        check_stage(model, stage)
        return LayerGradCam(model, getattr(model, stage)), {"relu_attributions": True}
    window, stride = occlusion_window(*x.shape[-2:])
    channels = x.shape[1]
    return Occlusion(model), {
        "sliding_window_shapes": (channels, window, window),
        "strides": (channels, stride, stride),
        "baselines": 0.0,
        "perturbations_per_eval": internal_batch_size,
    }


def attribute(
    model: nn.Module,
    x: torch.Tensor,
    method: str,
    target: int | None = None,
    *,
    stage: str | None = None,
    n_steps: int = 32,
    internal_batch_size: int = 16,
    smoothgrad: bool = False,
    smoothgrad_samples: int = 8,
    noise_std: float = 0.15,
) -> Attribution:
    """Attribute one image's class score to its pixels with a Captum method.

    Args:
        x: (1, C, H, W) preprocessed image; baselines (IG, Occlusion) are zeros, the dataset mean.
        method: a key of ATTRIBUTION_METHODS.
        target: class index; None for the predicted class.
        stage: Grad-CAM's stage (default: the last one).
        n_steps: Integrated Gradients' path steps; ``internal_batch_size`` bounds its memory
            (and sets Occlusion's perturbations per forward pass).
        smoothgrad: average over ``smoothgrad_samples`` noisy copies (Captum NoiseTunnel) with noise
            of standard deviation ``noise_std`` times the input's value range.
    """
    if method not in ATTRIBUTION_METHODS:
        raise SBCoreError(f"Unknown attribution method {method!r}; choose one of {', '.join(ATTRIBUTION_METHODS)}.")
    if smoothgrad and method == "occlusion":
        raise SBCoreError("SmoothGrad applies to gradient methods, not to Occlusion.")
    check_single_image(x)
    x = x.detach().clone().requires_grad_(True)
    with eval_mode(model):
        target = _resolve_target(model, x, target)
        algorithm, kwargs = _captum_method(model, x, method, stage, n_steps, internal_batch_size)
        if smoothgrad:
            stdev = noise_std * float(x.detach().max() - x.detach().min())
            algorithm, kwargs = NoiseTunnel(algorithm), {
                **kwargs, "nt_type": "smoothgrad", "nt_samples": smoothgrad_samples, "stdevs": stdev,
            }
        result = algorithm.attribute(x, target=target, **kwargs)
    delta = None
    if method == "integrated_gradients":
        result, deltas = result
        delta = float(deltas.abs().max())
    if method == "grad_cam":
        result = LayerAttribution.interpolate(result, tuple(x.shape[-2:]), interpolate_mode="bilinear")
    raw = result[0].detach().float().sum(dim=0).cpu().numpy()
    return Attribution(method, target, normalise_heatmap(raw), raw, delta)
