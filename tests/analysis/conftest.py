"""Small CIFAR-style models (1 x 28 x 28, 10 classes) at random initialisation, shared per test module."""
from __future__ import annotations

import pytest
import torch

from sbcore import create_model


def _model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name, in_chans=1, num_classes=10).eval()


@pytest.fixture(scope="module")
def plain():
    return _model("resnet38")


@pytest.fixture(scope="module")
def sb():
    return _model("sb_resnet38")


@pytest.fixture(scope="module")
def nl():
    return _model("nl_resnet38")


@pytest.fixture(scope="module")
def sbnl():
    model = _model("sbnl_resnet38")
    # A fresh non-local block is the identity (zero-initialised BN gamma); give it weight so it acts.
    for module in model.modules():
        if hasattr(module, "out_bn"):
            torch.nn.init.ones_(module.out_bn.weight)
    return model


@pytest.fixture()
def image() -> torch.Tensor:
    return torch.randn(1, 1, 28, 28, generator=torch.Generator().manual_seed(1))
