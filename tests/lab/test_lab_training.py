"""A tiny end-to-end run of a lab model: the trainer records accuracy per distance bin and ``sbcore eval``
reproduces it, or names the bin that differs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from sbcore.checkpoint import load_checkpoint
from sbcore.cli import main as cli_main

TINY = ["--model", "sb_lab_resnet14", "--dataset", "same-different", "--limit-train", "32", "--limit-test", "20",
        "--val-size", "10", "--batch-size", "16", "--epochs", "1", "--optimizer", "adamw", "--lr", "0.004"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("lab_run")
    assert cli_main(["train", *TINY, "--output", str(output)]) == 0
    return output / "sb_lab_resnet14.safetensors"


def test_the_lab_checkpoint_records_accuracy_per_distance_bin(run):
    meta = load_checkpoint(run).metadata
    assert meta.class_names == ["different", "same"] and meta.preprocessing.input_size == (1, 128, 128)
    assert meta.training["optimizer"] == "AdamW" and meta.training["dataset"] == "same-different"
    groups = meta.metrics["test"]["groups"]
    assert [g["name"] for g in groups][0] == "distance 20-37 px" and len(groups) == 5
    assert [g["samples"] for g in groups] == [4] * 5  # the first 20 test canvases: 2 labels x 5 bins, twice
    assert sum(g["correct"] for g in groups) == round(meta.metrics["test"]["top1"] * 20 / 100)
    for g in groups:
        assert g["ci95"][0] <= g["accuracy"] <= g["ci95"][1]


def test_sbcore_eval_reproduces_the_per_bin_accuracy(run, capsys):
    assert cli_main(["eval", str(run)]) == 0
    out = capsys.readouterr().out
    assert "distance 94-108 px" in out and "accuracy per group" in out


def test_sbcore_eval_names_the_distance_bin_that_does_not_reproduce(run, tmp_path, capsys):
    for suffix in (".safetensors", ".json"):
        (tmp_path / f"m{suffix}").write_bytes(run.with_suffix(suffix).read_bytes())
    document = json.loads((tmp_path / "m.json").read_text())
    group = document["metrics"]["test"]["groups"][4]
    group["accuracy"] = 100.0 - group["accuracy"] if group["accuracy"] != 50.0 else 75.0
    (tmp_path / "m.json").write_text(json.dumps(document))
    assert cli_main(["eval", str(tmp_path / "m.json")]) == 2
    assert "distance 94-108 px" in capsys.readouterr().err
