"""Accuracy under intervention: the paired interval, and ``sbcore ablate`` on a shipped lab model."""
from __future__ import annotations

import csv
import json

import pytest
import torch

from sbcore.analysis.ablation import group_change, paired_change_interval
from sbcore.cli import main


def test_the_paired_interval_holds_the_change_and_mirrors_when_the_roles_swap():
    low, high = paired_change_interval(both=150, only_intact=40, only_ablated=5, neither=5)
    assert low < 100 * (5 - 40) / 200 < high < 0  # a clear drop: the interval excludes 0
    assert paired_change_interval(150, 5, 40, 5) == pytest.approx((-high, -low))
    low, high = paired_change_interval(both=190, only_intact=0, only_ablated=0, neither=10)
    assert low < 0 < high  # no change seen, still an interval of plausible changes
    assert -100 <= low and high <= 100


def test_group_change_counts_the_same_samples_intact_and_ablated():
    intact = torch.tensor([True, True, True, False])
    ablated = torch.tensor([True, False, False, False])
    change = group_change("g", intact, ablated)
    assert (change.samples, change.intact, change.ablated, change.change) == (4, 75.0, 25.0, -50.0)
    assert change.change_ci95[0] < -50 < change.change_ci95[1]


def test_ablate_switches_layer1_off_and_writes_json_csv_figure_and_patching(tmp_path, capsys):
    out = tmp_path / "ablate"
    status = main(["ablate", "sb_lab_resnet14.samediff", "--blocks", "layer1.0", "--mode", "zero", "--limit", "40",
                   "--patch", "--patch-pairs", "10", "--out", str(out)])
    assert status == 0
    printed = capsys.readouterr().out
    assert "zero ablation on 40 same-different test samples" in printed and "SB layer1.0 off" in printed
    document = json.loads((out / "ablation.json").read_text())
    (result,) = document["results"]
    assert result["components"] == ["layer1.0"] and len(result["groups"]) == 5
    assert result["overall"]["intact"] > 90 > 70 > result["overall"]["ablated"]  # zero maps at layer1.0 break it
    assert result["overall"]["change_ci95"][1] < 0
    (score,) = document["patching"]["scores"]
    assert score["pairs"] == 10 and score["label"] == "SB layer1.0" and 0 < score["score"] < 1
    with open(out / "ablation.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6 and rows[-1]["group"] == "all" and float(rows[-1]["ablated"]) == result["overall"]["ablated"]
    assert (out / "ablation.png").stat().st_size > 10_000


def test_ablate_each_block_lists_every_component_then_stages_and_all(tmp_path, capsys):
    assert main(["ablate", "sbnl_lab_resnet14.samediff", "--limit", "10", "--out", str(tmp_path)]) == 0
    labels = [r["label"] for r in json.loads((tmp_path / "ablation.json").read_text())["results"]]
    assert labels == ["SB layer1.0", "SB layer2.0", "NL layer2.0", "SB layer3.0", "SB layer3.1", "NL layer3.1",
                      "stage 2", "stage 3", "all SB", "all NL", "all"]
    assert "means over 512 same-different training images" in capsys.readouterr().out
