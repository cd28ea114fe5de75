"""The lab's interventions: counterfactual pairs, patching scores, the 75% read-out, and their place in the cards."""
from __future__ import annotations

import pytest
import torch

import sbcore
from sbcore.analysis.interventions import resolve_components
from sbcore.data import load_dataset
from sbcore.lab.patching import counterfactual_pair, patching_scores
from sbcore.lab.readout import SUM_OF_ITEMS_BOUND, far_indices, fit_linear_readout
from sbcore.model_card import model_card_markdown


@pytest.fixture(scope="module")
def test_canvases():
    return load_dataset("same-different").test


def test_a_counterfactual_pair_differs_only_in_the_second_item(test_canvases):
    index = far_indices(test_canvases, 1, 94)[0]
    different, same, distance = counterfactual_pair(test_canvases, index)
    placement = test_canvases.placement(index)
    assert distance == placement.distance >= 94
    (row_a, col_a), (row_b, col_b) = placement.corners
    size = test_canvases.task.item_size
    first = (slice(row_a, row_a + size), slice(col_a, col_a + size))
    assert torch.equal(different[first], same[first])  # the first item, untouched
    changed = (different != same).nonzero()
    assert len(changed) and changed[:, 0].min() >= row_b and changed[:, 1].min() >= col_b  # only where b sits


def test_patching_everything_from_the_other_canvas_carries_the_whole_effect_and_nothing_carries_nothing(test_canvases):
    model = sbcore.create_model("sb_lab_resnet14.samediff", pretrained=True)
    different, same = map(torch.stack, zip(*[counterfactual_pair(test_canvases, i)[:2]
                                             for i in far_indices(test_canvases, 12, 94)]))
    every = resolve_components(model, ["layer1.0", "layer2.0", "layer3.0", "layer3.1"])
    full, single = patching_scores(model, different, same, [("all", every), ("layer2.0", every[1:2])])
    assert full.effect > 0.5 and full.score > 0.5  # the SB maps carry most of the relation
    assert 0 <= full.ci95[0] <= full.score <= full.ci95[1]
    assert abs(single.score) < 0.05  # the maps of layer2.0 carry almost none of it


def test_a_linear_read_out_fitted_to_trouser_pairs_reaches_the_bound_on_separable_sums():
    generator = torch.Generator().manual_seed(0)
    trouser, bag = torch.randn(2, 16, generator=generator)
    kinds = torch.randint(0, 2, (400, 2), generator=generator)  # 0 trouser, 1 bag
    features = torch.where(kinds[:, :1] == 0, trouser, bag) + torch.where(kinds[:, 1:] == 0, trouser, bag)
    features = features + 0.01 * torch.randn(features.shape, generator=generator)  # g(a) + g(b), nothing else
    same = (kinds[:, 0] == kinds[:, 1]).long()
    both_trousers = (kinds.sum(1) == 0).long()
    logistic = fit_linear_readout(features, same)(features).argmax(1)
    strategy = fit_linear_readout(features, both_trousers)(features).argmax(1)
    assert abs(float((strategy == same).float().mean()) * 100 - SUM_OF_ITEMS_BOUND) < 6  # 3 of 4 pair types
    assert float((logistic == same).float().mean()) < 0.7  # cross-entropy alone does not find it


def test_the_cards_of_the_lab_models_report_switching_each_block_off_for_every_seed():
    for name in ("sb_lab_resnet14.samediff", "sbnl_lab_resnet14.samediff-s2"):
        model = sbcore.create_model(name, pretrained=True)
        entries = model.metadata.metrics["interventions"]
        assert {e["seed"] for e in entries} == {0, 1, 2}
        card = model_card_markdown(model)
        assert "## Switching global context off" in card and "| switched off | seed 0 | seed 1 | seed 2 |" in card
        first = entries[0]
        assert f"| {first['label']} | all {first['change']:+.1f}" in card
    assert "bounded at 75%" in model_card_markdown(sbcore.create_model("lab_resnet14.samediff", pretrained=True))
