"""Checkpoints (safetensors + JSON): round trip, and one specific error for each kind of bad input."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import sbcore
from sbcore.checkpoint import checkpoint_paths, file_sha256, load_checkpoint, save_checkpoint
from sbcore.errors import CheckpointError


@pytest.fixture
def saved(make_model, tmp_path) -> tuple[torch.nn.Module, Path]:
    """A random sb_resnet38 with training notes and metrics, saved as tmp/model.{safetensors,json}."""
    model = make_model("sb_resnet38")
    model.metadata.training = {"epochs": 3, "lr": 0.1}
    model.metadata.metrics = {"test": {"top1": 12.5, "top5": 50.0, "per_class": [12.5] * 10,
                                       "confusion": [[1] * 10] * 10, "samples": 100}}
    model.metadata.class_names = [f"c{i}" for i in range(10)]
    return model, save_checkpoint(model, tmp_path / "model")


def _rewrite_weights(weights: Path, write) -> None:
    """Replace the weights file and record its new sha256, so only the intended fault remains."""
    write(weights)
    meta = weights.with_suffix(".json")
    document = json.loads(meta.read_text())
    document["weights_sha256"] = file_sha256(weights)
    meta.write_text(json.dumps(document))


def test_checkpoint_round_trip_keeps_logits_and_metadata(saved):
    model, weights = saved
    assert weights.suffix == ".safetensors" and weights.with_suffix(".json").is_file()
    loaded = load_checkpoint(weights)
    assert not loaded.training
    x = torch.randn(2, 1, 28, 28)
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    assert loaded.metadata == model.metadata
    assert load_checkpoint(weights.with_suffix(".json")).metadata.training == {"epochs": 3, "lr": 0.1}


def test_checkpoint_records_the_weights_sha256(saved):
    _, weights = saved
    document = json.loads(weights.with_suffix(".json").read_text())
    assert document["weights_sha256"] == file_sha256(weights)
    assert document["architecture"] == "sb_resnet38"
    assert document["model_kwargs"] == {"in_chans": 1, "num_classes": 10}


def test_checkpoint_paths_accept_either_file_or_the_stem(tmp_path):
    expected = (tmp_path / "m.safetensors", tmp_path / "m.json")
    assert checkpoint_paths(tmp_path / "m") == checkpoint_paths(tmp_path / "m.json") == expected


def test_unknown_architecture_in_metadata_is_named(saved):
    _, weights = saved
    meta = weights.with_suffix(".json")
    meta.write_text(meta.read_text().replace('"architecture": "sb_resnet38"', '"architecture": "sb_resnet39"'))
    with pytest.raises(CheckpointError, match="Unknown model 'sb_resnet39'"):
        load_checkpoint(weights)


def test_weights_of_another_architecture_are_reported_as_missing_keys(make_model, tmp_path):
    plain = make_model("resnet38")
    weights = save_checkpoint(plain, tmp_path / "m")
    meta = weights.with_suffix(".json")
    meta.write_text(meta.read_text().replace('"architecture": "resnet38"', '"architecture": "sb_resnet38"'))
    with pytest.raises(CheckpointError, match=r"does not fit sb_resnet38: \d+ missing keys \(e\.g\. layer1\.0\.spatial_bias"):
        load_checkpoint(weights)


def test_asking_for_one_architecture_and_getting_another_is_an_error(saved):
    _, weights = saved
    with pytest.raises(CheckpointError, match="holds a 'sb_resnet38' model, not 'nl_resnet38'"):
        sbcore.create_model("nl_resnet38", pretrained=str(weights))


def test_missing_keys_are_named(saved):
    model, weights = saved
    state = {k: v for k, v in model.state_dict().items() if k != "layer2.1.conv2.weight"}
    _rewrite_weights(weights, lambda path: save_file(state, str(path)))
    with pytest.raises(CheckpointError, match=r"1 missing keys \(e\.g\. layer2\.1\.conv2\.weight\)"):
        load_checkpoint(weights)


def test_unexpected_keys_are_named(saved):
    model, weights = saved
    state = {**model.state_dict(), "layer9.extra": torch.zeros(1)}
    _rewrite_weights(weights, lambda path: save_file(state, str(path)))
    with pytest.raises(CheckpointError, match=r"1 unexpected keys \(e\.g\. layer9\.extra\)"):
        load_checkpoint(weights)


def test_shape_mismatch_is_named_with_both_shapes(saved):
    model, weights = saved
    state = {**model.state_dict(), "fc.weight": torch.zeros(7, 256)}
    _rewrite_weights(weights, lambda path: save_file(state, str(path)))
    with pytest.raises(CheckpointError, match=r"shape mismatches \(e\.g\. fc\.weight: \(7, 256\) vs model \(10, 256\)"):
        load_checkpoint(weights)


def test_model_kwargs_that_do_not_fit_the_architecture_are_reported(saved):
    _, weights = saved
    meta = weights.with_suffix(".json")
    document = json.loads(meta.read_text())
    document["model_kwargs"]["depth_multiplier"] = 2
    meta.write_text(json.dumps(document))
    with pytest.raises(CheckpointError, match=r"model_kwargs\.depth_multiplier is not a known field"):
        load_checkpoint(weights)


@pytest.mark.parametrize("sha_recorded", [True, False], ids=["sha-updated", "sha-stale"])
def test_a_pickle_named_safetensors_is_refused_without_unpickling(saved, monkeypatch, sha_recorded):
    model, weights = saved
    if sha_recorded:
        _rewrite_weights(weights, lambda path: torch.save(model.state_dict(), path))
    else:
        torch.save(model.state_dict(), weights)

    def no_unpickling(*args, **kwargs):
        raise AssertionError("the checkpoint loader must not unpickle")

    monkeypatch.setattr(torch, "load", no_unpickling)
    with pytest.raises(CheckpointError, match="is a pickle/torch.save file, not safetensors"):
        load_checkpoint(weights)


def test_a_truncated_file_is_reported_as_truncated(saved):
    _, weights = saved
    data = weights.read_bytes()
    _rewrite_weights(weights, lambda path: path.write_bytes(data[: len(data) // 2]))
    with pytest.raises(CheckpointError, match="truncated or not a safetensors file"):
        load_checkpoint(weights)


def test_a_changed_file_fails_the_sha256_check(saved):
    _, weights = saved
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupted or was replaced: sha256"):
        load_checkpoint(weights)


def test_a_wrong_expected_sha256_is_reported(saved):
    _, weights = saved
    with pytest.raises(CheckpointError, match="sha256"):
        load_checkpoint(weights, expected_sha256="0" * 64)


def test_missing_metadata_json_is_named(saved):
    _, weights = saved
    weights.with_suffix(".json").unlink()
    with pytest.raises(CheckpointError, match=r"Metadata file .*model\.json is missing"):
        load_checkpoint(weights)


def test_missing_weights_file_is_named(saved):
    _, weights = saved
    weights.unlink()
    with pytest.raises(CheckpointError, match=r"Weights file .*model\.safetensors is missing"):
        load_checkpoint(weights.with_suffix(".json"))


def test_invalid_metadata_json_is_named(saved):
    _, weights = saved
    weights.with_suffix(".json").write_text("{not json")
    with pytest.raises(CheckpointError, match="model.json is not valid JSON metadata"):
        load_checkpoint(weights)


def test_json_that_is_not_sbcore_metadata_is_named(saved):
    _, weights = saved
    weights.with_suffix(".json").write_text('{"hello": 1}')
    with pytest.raises(CheckpointError, match="is not sbcore checkpoint metadata"):
        load_checkpoint(weights)


@pytest.mark.parametrize("sha_recorded", [True, False], ids=["sha-updated", "sha-stale"])
def test_an_empty_weights_file_is_reported_as_empty(saved, sha_recorded):
    _, weights = saved
    if sha_recorded:
        _rewrite_weights(weights, lambda path: path.write_bytes(b""))
    else:
        weights.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"model\.safetensors is empty \(0 bytes\)"):
        load_checkpoint(weights)
