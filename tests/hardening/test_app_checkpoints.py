"""Uploaded models reach the app's pickers only when they load and predict: every other upload is a CheckpointError."""
from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
import torch

import sbcore
from sbcore.errors import CheckpointError

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app import checkpoints  # noqa: E402  (needs the repository root on sys.path)
from bad_inputs import huge_input_checkpoint  # noqa: E402


@pytest.fixture
def model() -> torch.nn.Module:
    return sbcore.create_model("resnet38", num_classes=10, in_chans=1)


def _files(model: torch.nn.Module, folder: Path) -> tuple[bytes, bytes]:
    path = sbcore.save_checkpoint(model, folder / "upload")
    return path.read_bytes(), path.with_suffix(".json").read_bytes()


def test_a_sound_upload_loads_and_predicts(model, tmp_path):
    loaded = checkpoints.load_uploaded_checkpoint("upload.safetensors", *_files(model, tmp_path))
    assert loaded.metadata.architecture == "resnet38"


def test_weights_that_overflow_to_infinite_scores_are_refused(model, tmp_path):
    with torch.no_grad():
        model.fc.weight.fill_(3e38)  # finite, but every logit overflows float32
    with pytest.raises(CheckpointError, match="upload.safetensors loads but predicts NaN or infinite scores"):
        checkpoints.load_uploaded_checkpoint("upload.safetensors", *_files(model, tmp_path))


def test_metadata_asking_for_a_huge_model_is_refused_before_building(model, tmp_path):
    weights, metadata = _files(model, tmp_path)
    document = json.loads(metadata)
    document["model_kwargs"]["spatial_bias"] = {"grid_size": 100}
    with pytest.raises(CheckpointError, match="model_kwargs.spatial_bias.grid_size must be an integer from 1 to 16"):
        checkpoints.load_uploaded_checkpoint("upload.safetensors", weights, json.dumps(document).encode())


def test_an_input_size_over_the_memory_budget_is_refused_before_any_forward_pass(tmp_path):
    json_path = huge_input_checkpoint(tmp_path)
    weights, metadata = json_path.with_suffix(".safetensors").read_bytes(), json_path.read_bytes()
    with pytest.raises(CheckpointError, match=r"preprocessing.input_size \[1, 512, 512\] is too large for this server"):
        checkpoints.load_uploaded_checkpoint("huge_input.safetensors", weights, metadata)


def test_a_reference_state_dict_with_nan_weights_is_refused(model):
    state = model.state_dict()
    state["conv1.weight"] = torch.full_like(state["conv1.weight"], float("nan"))
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with pytest.raises(CheckpointError, match="ref.pth: tensor conv1.weight holds NaN or infinite values"):
        checkpoints.load_reference_state_dict("ref.pth", buffer.getvalue(), "resnet38", 10, 1)
