"""Shared fixtures: small models with random (not freshly initialised) weights, and repository paths."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import pytest
import torch
from torch import nn

import sbcore
from sbcore.runtime import OPT_OUT

# The app and the CLI run inside pytest's process here: glibc's malloc keeps its defaults throughout, so no test's
# memory or timing depends on which app or CLI test ran before it (tests/test_runtime.py checks the setting).
os.environ[OPT_OUT] = "1"

REPO_ROOT = Path(__file__).resolve().parents[1]


def _randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every parameter and BN statistic random values, so no test leans on a zero or identity init."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            values = torch.randn(tensor.shape, generator=generator)
            if tensor.ndim > 1:  # conv / linear weights, He-scaled so activations keep their size
                values = values * (2.0 / tensor[0].numel()) ** 0.5
            elif name.endswith("running_var"):
                values = values.abs() + 0.5
            elif name.endswith(".weight"):  # BN scale
                values = 1.0 + 0.1 * values
            else:  # biases and running means
                values = 0.1 * values
            tensor.copy_(values)
    return model


@pytest.fixture
def randomize() -> Callable[..., nn.Module]:
    """``randomize(model, seed=0)``: random parameters and BN statistics, in place."""
    return _randomize


@pytest.fixture
def make_model() -> Callable[..., nn.Module]:
    """``make_model(name, seed=0, **kwargs)``: a registered model with random weights, in eval mode.

    CIFAR-style models default to 1 input channel and 10 classes, as for Fashion-MNIST.
    """

    def make(name: str, seed: int = 0, **kwargs) -> nn.Module:
        if name.split("_")[-1] in ("resnet38", "resnet65", "resnet164"):
            kwargs.setdefault("in_chans", 1)
            kwargs.setdefault("num_classes", 10)
        torch.manual_seed(seed)
        return _randomize(sbcore.create_model(name, **kwargs), seed).eval()

    return make


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """The bundled sample images (assets/samples, listed in samples.json)."""
    return REPO_ROOT / "assets" / "samples"
