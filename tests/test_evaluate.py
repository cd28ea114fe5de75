"""Metrics (top-1, top-5, per class, confusion) and ``sbcore eval`` on the bundled labelled samples."""
from __future__ import annotations

import json
import re
import subprocess

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

import sbcore
from sbcore.data import LabelledSamples, SampleGroups, load_dataset
from sbcore.evaluate import evaluate, metric_differences, wilson_interval
from sbcore.models.metadata import Preprocessing


class FixedLogits(nn.Module):
    """Returns the logits stored for each input index (inputs are (B, 1) indices)."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("table", logits)

    def forward(self, index: torch.Tensor) -> torch.Tensor:
        return self.table[index[:, 0].long()]


def test_metrics_count_top1_top5_per_class_and_confusion():
    # 6 classes; sample i has true label labels[i]; its logits rank classes by `order`.
    ranking = [[0, 1, 2, 3, 4, 5], [2, 1, 0, 3, 4, 5], [5, 4, 3, 2, 1, 0], [1, 0, 2, 3, 4, 5]]
    labels = torch.tensor([0, 1, 0, 1])
    logits = torch.zeros(4, 6)
    for row, order in enumerate(ranking):
        for rank, cls in enumerate(order):
            logits[row, cls] = 10.0 - rank
    batches = [(torch.tensor([[0], [1]]), labels[:2]), (torch.tensor([[2], [3]]), labels[2:])]
    metrics = evaluate(FixedLogits(logits), batches, num_classes=6)
    # top-1 predictions: 0, 2, 5, 1 -> right for samples 0 and 3
    assert metrics["top1"] == 50.0
    # top-5 misses only sample 2 (class 0 ranked last)
    assert metrics["top5"] == 75.0
    assert metrics["per_class"][:2] == [50.0, 50.0] and metrics["per_class"][2:] == [0.0] * 4
    assert metrics["confusion"][0][0] == 1 and metrics["confusion"][0][5] == 1
    assert metrics["confusion"][1][2] == 1 and metrics["confusion"][1][1] == 1
    assert metrics["samples"] == 4


def test_metric_differences_name_what_changed():
    measured = {"samples": 4, "top1": 50.0, "top5": 75.0, "per_class": [50.0, 25.0], "confusion": [[1]]}
    recorded = {**measured, "top1": 51.0, "per_class": [50.0, 30.0]}
    assert metric_differences(measured, recorded, ["a", "b"]) == ["top1 50.0 (recorded 51.0)", "b 25.00% (recorded 30.00%)"]
    assert metric_differences(measured, dict(measured), ["a", "b"]) == []


def test_samples_evaluate_like_the_same_images_of_the_test_split(samples_dir):
    """The PNG samples go through the model's preprocessing and give the metrics of their test-set originals."""
    model = sbcore.create_model("sb_resnet38.fmnist", pretrained=True)
    meta = model.metadata
    samples = LabelledSamples(samples_dir, meta.class_names, meta.preprocessing)
    listing = [e for e in json.loads((samples_dir / "samples.json").read_text()) if e["label"] is not None]
    indices = [int(re.search(r"#(\d+)", e["source"]).group(1)) for e in listing]
    originals = Subset(load_dataset("fashion-mnist").test, indices)
    for i in range(len(samples)):
        image, label = samples[i]
        original, original_label = originals[i]
        assert label == original_label
        torch.testing.assert_close(image, original, rtol=0, atol=0)
    assert evaluate(model, DataLoader(samples, batch_size=16), 10) == evaluate(model, DataLoader(originals, batch_size=16), 10)


def test_sbcore_eval_runs_on_the_bundled_samples(samples_dir):
    result = subprocess.run(
        ["sbcore", "eval", "sb_resnet38.fmnist", "--samples", str(samples_dir)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert f"sb_resnet38.fmnist on 30 labelled samples in {samples_dir}" in result.stdout
    top1 = float(re.search(r"top-1\s+([\d.]+)%", result.stdout).group(1))
    assert 0 <= top1 <= 100 and "Ankle boot" in result.stdout
    assert "Not compared" in result.stdout


def test_samples_with_labels_the_model_does_not_know_are_refused(samples_dir, tmp_path):
    with pytest.raises(sbcore.SBCoreError, match="not among the model's classes"):
        LabelledSamples(samples_dir, ["cat", "dog"], Preprocessing())
    with pytest.raises(sbcore.DatasetNotFoundError, match="has no samples.json"):
        LabelledSamples(tmp_path, ["cat"], Preprocessing())
    (tmp_path / "samples.json").write_text('[{"file": "gone.png", "label": "cat"}]')
    with pytest.raises(sbcore.DatasetNotFoundError, match=r"not in .*: \['gone.png'\]"):
        LabelledSamples(tmp_path, ["cat"], Preprocessing())


def test_accuracy_per_group_counts_each_group_with_a_wilson_interval():
    class Fixed(nn.Module):
        def forward(self, x):
            return torch.nn.functional.one_hot(x[:, 0, 0, 0].long(), 2).float()

    predictions = torch.tensor([0, 1, 1, 1, 0, 0]).float()[:, None, None, None]
    labels = torch.tensor([0, 1, 0, 0, 0, 1])
    groups = SampleGroups([0, 0, 1, 1, 2, 2], ["near", "mid", "far"])
    metrics = evaluate(Fixed(), [(predictions, labels)], 2, groups=groups)
    assert [(g["name"], g["correct"], g["samples"]) for g in metrics["groups"]] == [("near", 2, 2), ("mid", 0, 2), ("far", 1, 2)]
    assert metrics["groups"][2]["accuracy"] == 50.0
    assert wilson_interval(50, 100) == (40.3832, 59.6168)  # textbook value for 50/100
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 100.0
