"""Faithfulness metrics: pixel flipping, ROAD's imputation, the randomisation check, and ``sbcore faithfulness``."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from torch import nn

from sbcore import create_model
from sbcore.analysis import attribute
from sbcore.analysis.faithfulness import (
    Curve, impute, pixel_flipping, random_curves, randomisation_cascade, rank_correlation, ranking,
    road, sanity_check, score_attribution,
)
from sbcore.analysis.faithfulness_cli import mean_interval
from sbcore.cli import main
from sbcore.lab.evidence import corners_of, evidence_shares, uniform_shares


class LinearScore(nn.Module):
    """Two logits for a (B, 1, H, W) input: (sum of w * x, 0); the exact attribution of pixel i is w_i * x_i."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score = (x[:, 0] * self.weight).sum(dim=(-2, -1))
        return torch.stack([score, torch.zeros_like(score)], dim=1)


@pytest.fixture()
def linear_case():
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(8, 8, generator=generator) * 0.3
    x = torch.rand(1, 1, 8, 8, generator=generator)
    return LinearScore(weight).eval(), x, (weight * x[0, 0]).numpy()


def test_the_exact_attribution_deletes_faster_and_inserts_faster_than_its_reverse_and_random(linear_case):
    model, x, exact = linear_case
    baseline = torch.zeros_like(x)
    deletion, insertion = pixel_flipping(model, x, ranking(exact), 0, baseline, steps=16)
    reverse_deletion, reverse_insertion = pixel_flipping(model, x, ranking(-exact), 0, baseline, steps=16)
    random = random_curves(model, x, 0, baseline, maps=8)
    assert deletion.auc < random["deletion"].auc < reverse_deletion.auc
    assert insertion.auc > random["insertion"].auc > reverse_insertion.auc
    probability = torch.softmax(model(torch.cat([x, baseline])), dim=1)[:, 0].detach().numpy()
    assert deletion.scores[0] == pytest.approx(probability[0]) and deletion.scores[-1] == pytest.approx(probability[1])
    assert insertion.scores[0] == pytest.approx(probability[1]) and insertion.scores[-1] == pytest.approx(probability[0])


def test_curve_area_is_the_trapezoid_rule():
    assert Curve(np.array([0.0, 0.5, 1.0]), np.array([1.0, 0.5, 0.0])).auc == pytest.approx(0.5)
    assert Curve(np.array([0.0, 0.9]), np.array([1.0, 1.0])).auc == pytest.approx(0.9)


def test_ranking_puts_the_largest_signed_value_first_and_breaks_ties_by_seed():
    raw = np.array([[0.0, 3.0], [-1.0, 0.0]])
    order = ranking(raw)
    assert order[0] == 1 and order[-1] == 2 and set(order[1:3]) == {0, 3}
    orders = {tuple(ranking(np.zeros(16), seed)) for seed in range(5)}
    assert len(orders) > 1  # a flat map is not read in row-major order


def test_imputation_restores_a_smooth_image_inside_a_hole_and_keeps_known_pixels():
    rows, cols = torch.meshgrid(torch.arange(24.0), torch.arange(24.0), indexing="ij")
    ramp = (0.02 * rows + 0.03 * cols)[None, None]  # linear: every pixel is the weighted mean of its neighbours
    removed = torch.zeros(1, 1, 24, 24, dtype=torch.bool)
    removed[..., 6:18, 8:20] = True
    filled = impute(ramp, removed)
    assert (filled - ramp).abs().max() < 1e-4
    assert torch.equal(filled[~removed.expand_as(filled)], ramp[~removed.expand_as(ramp)])
    noisy = impute(ramp, removed, noise_std=0.05)
    assert torch.equal(noisy[~removed.expand_as(noisy)], ramp[~removed.expand_as(ramp)])
    assert 0.03 < float((noisy - filled)[removed.expand_as(noisy)].std()) < 0.07


def test_road_morf_falls_below_lerf_for_the_exact_attribution(linear_case):
    model, x, exact = linear_case
    morf, lerf = road(model, x, ranking(exact), 0)
    assert morf.auc < lerf.auc
    assert morf.scores[0] == pytest.approx(lerf.scores[0])  # nothing removed yet


def test_rank_correlation_uses_average_ranks_for_ties():
    assert rank_correlation(np.array([1.0, 2, 3, 4]), np.array([1.0, 10, 100, 1000])) == pytest.approx(1.0)
    assert rank_correlation(np.array([1.0, 2, 3, 4]), np.array([4.0, 3, 2, 1])) == pytest.approx(-1.0)
    # ranks (1, 2.5, 2.5, 4) against (1, 3, 2, 4): Pearson of the ranks is 4.5 / sqrt(4.5 * 5)
    assert rank_correlation(np.array([1.0, 2, 2, 3]), np.array([1.0, 3, 2, 4])) == pytest.approx(4.5 / np.sqrt(22.5))
    assert rank_correlation(np.ones(5), np.arange(5.0)) == 0.0


def test_the_sanity_check_cascades_from_the_head_and_leaves_the_model_untouched():
    torch.manual_seed(0)
    model = create_model("resnet38", in_chans=1, num_classes=10).eval()
    assert randomisation_cascade(model) == ["fc", "layer3", "layer2", "layer1", "conv1"]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(1, 1, 28, 28)
    trained = attribute(model, x, "saliency", 0).raw

    def input_only(_: nn.Module) -> np.ndarray:  # a "map" that ignores the weights fails the check
        return x[0, 0].numpy().copy()

    state = torch.get_rng_state()
    failing = sanity_check(model, input_only, x[0, 0].numpy())
    assert torch.equal(torch.get_rng_state(), state)  # its own generator: other threads' random draws untouched
    assert failing.correlations == pytest.approx([1.0] * 5)
    passing = sanity_check(model, lambda m: attribute(m, x, "saliency", 0).raw, trained)
    assert passing.layers == failing.layers and abs(passing.final) < 0.5 and abs(passing.random_map) < 0.2
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_faithfulness_of_a_shipped_model_scores_every_metric_beside_a_random_map():
    model = create_model("sb_resnet38.fmnist", pretrained=True).eval()
    from sbcore.data import FASHION_MNIST_PREPROCESSING, FashionMNIST, build_transforms

    x = FashionMNIST(None, False, build_transforms(FASHION_MNIST_PREPROCESSING, False, "fashion-mnist"))[0][0][None]
    occlusion = attribute(model, x, "occlusion", baseline="black")
    result = score_attribution(model, x, occlusion)
    scores = result.scores()
    assert set(scores) == {f"{prefix}{name}" for prefix in ("", "random_") for name in (
        "deletion_auc", "insertion_auc", "road_morf_auc", "road_lerf_auc", "sanity_correlation")}
    assert all(np.isfinite(v) for v in scores.values())
    assert scores["deletion_auc"] < scores["random_deletion_auc"] and scores["insertion_auc"] > scores["random_insertion_auc"]
    assert result.sanity.layers[0] == "fc" and len(result.sanity.correlations) == 5


def test_evidence_shares_split_the_map_by_item_and_add_up_to_one():
    corners = ((0, 0), (100, 100))
    raw = np.zeros((128, 128))
    raw[5, 5] = -2.0  # the sign does not matter: shares are of |attribution|
    raw[110, 110] = 1.0
    raw[60, 60] = 1.0
    shares = evidence_shares(raw, corners)
    assert (shares.item_a, shares.item_b, shares.background) == pytest.approx((0.5, 0.25, 0.25))
    assert shares.weaker_item == pytest.approx(0.25)
    flat = evidence_shares(np.zeros((128, 128)), corners)
    assert corners_of((10, 10), (110, 110)) == corners  # items of 20 px centred there
    uniform = uniform_shares()
    assert (flat.item_a, flat.item_b, flat.background) == pytest.approx((uniform.item_a, uniform.item_b, uniform.background))


def test_mean_interval_is_symmetric_and_shrinks_with_more_values():
    few, many = mean_interval([0.0, 1.0] * 5), mean_interval([0.0, 1.0] * 50)
    assert few["mean"] == many["mean"] == 0.5 and few["n"] == 10
    assert few["ci95"][0] < many["ci95"][0] < 0.5 < many["ci95"][1] < few["ci95"][1]


def test_faithfulness_command_writes_json_csv_figure(tmp_path, capsys):
    status = main(["faithfulness", "resnet38.fmnist", "--limit", "3", "--methods", "saliency", "grad_cam",
                   "--no-sanity", "--out", str(tmp_path)])
    assert status == 0
    printed = capsys.readouterr().out
    assert "3 fashion-mnist test images" in printed and "Deletion AUC (lower is better)" in printed
    document = json.loads((tmp_path / "faithfulness.json").read_text())
    assert set(document["methods"]) == {"saliency", "grad_cam"} and document["samples"] == 3
    assert document["methods"]["saliency"]["deletion_auc"]["n"] == 3 and "sanity_correlation" not in document["methods"]["saliency"]
    with open(tmp_path / "faithfulness.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6 and {r["method"] for r in rows} == {"saliency", "grad_cam"}
    assert (tmp_path / "faithfulness.png").stat().st_size > 10_000


def test_faithfulness_command_on_far_lab_canvases_reports_evidence_shares(tmp_path):
    assert main(["faithfulness", "sb_lab_resnet14.samediff", "--limit", "2", "--methods", "input_x_gradient",
                 "--distance", "94-108", "--no-sanity", "--out", str(tmp_path)]) == 0
    document = json.loads((tmp_path / "faithfulness.json").read_text())
    scores = document["methods"]["input_x_gradient"]
    shares = [scores[f"share_{s}"]["mean"] for s in ("item_a", "item_b", "background")]
    assert sum(shares) == pytest.approx(1.0) and all(r["distance"] >= 94 for r in document["images"])


@pytest.mark.parametrize("arguments, message", [
    (["resnet38.fmnist", "--distance", "94-108"], "--distance applies to the same-different lab models only"),
    (["resnet38", "--limit", "2"], "records no training dataset"),
])
def test_faithfulness_command_refuses_in_one_line(tmp_path, capsys, arguments, message):
    assert main(["faithfulness", *arguments, "--out", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error and error.count("\n") == 1


def test_a_smoothgrad_map_is_checked_against_smoothgrad_maps_of_the_randomised_model(monkeypatch):
    torch.manual_seed(0)
    model = create_model("resnet38", in_chans=1, num_classes=10).eval()
    x = torch.randn(1, 1, 28, 28)
    smooth = attribute(model, x, "saliency", 0, smoothgrad=True, smoothgrad_samples=2)
    assert smooth.smoothgrad and not attribute(model, x, "saliency", 0).smoothgrad
    seen = []
    import sbcore.analysis.faithfulness as module

    def recording(*args, **kwargs):
        seen.append(kwargs.get("smoothgrad"))
        return attribute(*args, **kwargs)

    monkeypatch.setattr(module, "attribute", recording)
    score_attribution(model, x, smooth, random=random_curves(model, x, 0, torch.zeros_like(x), maps=1))
    assert seen and all(seen)
