"""torchvision ImageNet weights: loaded from torch's hub cache and widened, or a clear offline error."""
from __future__ import annotations

import os
import urllib.error
from pathlib import Path

import pytest
import torch
import torch.hub
import torchvision

import sbcore
from sbcore.errors import OfflineError
from sbcore.hub import torchvision_weights


def _cache_file(torch_home: Path, architecture: str) -> Path:
    url = torchvision_weights(architecture).url
    return torch_home / "hub" / "checkpoints" / os.path.basename(url)


def test_torchvision_weights_load_from_the_hub_cache_function_preservingly(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.manual_seed(0)
    source = torchvision.models.resnet50().eval()
    with torch.no_grad():
        for module in source.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0.0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    cached = _cache_file(tmp_path, "sb_resnet50")
    cached.parent.mkdir(parents=True)
    torch.save(source.state_dict(), cached)

    model = sbcore.create_model("sb_resnet50", pretrained="torchvision")
    assert not model.training
    assert model.metadata.pretrained.startswith("torchvision:")
    assert len(model.metadata.class_names) == 1000
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        reference = source(x)
        assert float((model(x) - reference).abs().max() / reference.abs().max()) < 1e-5


def test_without_network_or_cache_torchvision_weights_fail_with_one_clear_sentence(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(OfflineError, match=r"Could not download torchvision's .* weights for sb_resnet50") as error:
        sbcore.create_model("sb_resnet50", pretrained="torchvision")
    assert "TORCH_HOME/hub/checkpoints" in str(error.value)
    assert "\n" not in str(error.value)


def test_torchvision_weights_exist_only_for_imagenet_depths():
    with pytest.raises(sbcore.UnknownModelError, match="no ImageNet weights for 'sb_resnet38'"):
        sbcore.create_model("sb_resnet38", pretrained="torchvision")
