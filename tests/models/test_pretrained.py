"""Shipped weights load offline from assets/, match their registered sha256, and fail clearly when damaged."""
from __future__ import annotations

import shutil

import pytest
import torch

import sbcore
from sbcore.checkpoint import file_sha256
from sbcore.errors import CheckpointError
from sbcore.models import registry


INPUT_AND_CLASSES = {"fmnist": ((1, 28, 28), 10), "samediff": ((1, 128, 128), 2)}  # by tag


@pytest.mark.parametrize("name", sbcore.list_models(pretrained=True))
def test_shipped_weights_load_offline_with_their_metadata(name):
    entry = registry.pretrained_entry(name)
    assert file_sha256(entry.path) == entry.sha256
    model = sbcore.create_model(name, pretrained=True)
    meta = model.metadata
    assert not model.training and meta.pretrained == name and meta.architecture == entry.architecture
    input_size, classes = INPUT_AND_CLASSES[name.split(".")[1].split("-")[0]]  # samediff-s1: a seed of samediff
    assert meta.preprocessing.input_size == input_size and len(meta.class_names) == classes
    with torch.no_grad():
        assert model(torch.zeros(2, *input_size)).shape == (2, classes)


def test_the_only_shipped_weights_of_an_architecture_load_by_its_name():
    model = sbcore.create_model("sb_resnet38", pretrained=True)
    assert model.metadata.pretrained == "sb_resnet38.fmnist"


@pytest.fixture
def private_registry(monkeypatch):
    monkeypatch.setattr(registry, "_PRETRAINED", dict(registry._PRETRAINED))


def test_a_corrupted_shipped_file_fails_its_sha256_check(private_registry, tmp_path):
    entry = registry.pretrained_entry("sb_resnet38.fmnist")
    for suffix in (".safetensors", ".json"):
        shutil.copy(entry.path.with_suffix(suffix), tmp_path / f"copy{suffix}")
    data = bytearray((tmp_path / "copy.safetensors").read_bytes())
    data[len(data) // 2] ^= 0x01
    (tmp_path / "copy.safetensors").write_bytes(bytes(data))
    registry.register_pretrained("sb_resnet38.broken", tmp_path / "copy.safetensors", entry.sha256)
    with pytest.raises(CheckpointError, match="corrupted or was replaced"):
        sbcore.create_model("sb_resnet38.broken", pretrained=True)


def test_a_missing_shipped_file_is_named(private_registry, tmp_path):
    registry.register_pretrained("sb_resnet38.gone", tmp_path / "gone.safetensors", "0" * 64)
    with pytest.raises(CheckpointError, match=r"gone\.json is missing"):
        sbcore.create_model("sb_resnet38.gone", pretrained=True)


def test_unknown_shipped_weights_list_the_available_ones():
    with pytest.raises(sbcore.UnknownModelError, match="Available: .*sb_resnet38.fmnist"):
        sbcore.create_model("sb_resnet38.imagenet", pretrained=True)
