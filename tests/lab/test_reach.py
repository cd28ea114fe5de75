"""The receptive-field argument of the lab, checked on real networks: beyond the reach of its conv path a
plain network's logits add up item by item (so it cannot tell same from different); spatial bias does not."""
from __future__ import annotations

import torch

from sbcore import create_model
from sbcore.analysis.erf import stage_receptive_fields
from sbcore.cli import main as cli_main
from sbcore.data import load_dataset
from sbcore.lab.probe import canvas_batch, place_pair
from sbcore.lab.results import reach
from sbcore.lab.same_different import DEFAULT_TASK, compose_canvas


def _additivity_gap(model, distance: int) -> float:
    """| f(A and B) + f(empty) - f(A alone) - f(B alone) | over the logits, for two noise items."""
    generator = torch.Generator().manual_seed(0)
    a, b = torch.rand(2, DEFAULT_TASK.item_size, DEFAULT_TASK.item_size, generator=generator)
    blank = torch.zeros_like(a)
    centre_a, centre_b = (40, 12), (40 + distance // 3, 12 + distance)
    canvases = torch.stack([place_pair(a, b, centre_a, centre_b), place_pair(blank, blank, centre_a, centre_b),
                            place_pair(a, blank, centre_a, centre_b), place_pair(blank, b, centre_a, centre_b)])
    with torch.no_grad():
        both, empty, only_a, only_b = model.eval()(canvas_batch(model, canvases)).double()
    return float((both + empty - only_a - only_b).abs().max())


def test_lab_stages_have_the_documented_receptive_fields():
    model = create_model("lab_resnet14")
    assert stage_receptive_fields(model) == {"layer1": 19, "layer2": 27, "layer3": 75}
    assert reach(model) == (75, 94)  # 75 + 20 - 1: the far distance bin starts there
    assert DEFAULT_TASK.bin_edges[-2] == reach(model)[1]


def test_beyond_its_reach_a_plain_network_adds_the_items_up(randomize):
    plain = randomize(create_model("lab_resnet14"))
    _, far = reach(plain)
    assert _additivity_gap(plain, far) < 1e-4
    assert _additivity_gap(plain, far - 30) > 1e-2  # within reach, the items interact


def test_spatial_bias_and_non_local_blocks_relate_items_beyond_that_reach(randomize):
    _, far = reach(create_model("lab_resnet14"))
    for name in ("sb_lab_resnet14", "nl_lab_resnet14"):  # randomize: non-local blocks no longer the identity
        assert _additivity_gap(randomize(create_model(name)), far) > 1e-2, name


def test_sbcore_info_prints_the_receptive_field_per_stage(capsys):
    assert cli_main(["info", "sb_lab_resnet14"]) == 0
    out = capsys.readouterr().out
    assert "theoretical receptive field (conv path): layer1 19 px, layer2 27 px, layer3 75 px" in out
    assert "spatial bias see the whole input" in out


def test_the_shipped_plain_model_adds_far_test_items_up_and_the_shipped_sb_model_does_not():
    test = load_dataset("same-different").test
    far = [test.placement(i) for i in range(8, 60, 10)]  # indices 8, 18, ... lie in the last bin (>= 94 px)
    assert all(p.distance >= 94 for p in far)
    for name, additive in (("lab_resnet14.samediff", True), ("sb_lab_resnet14.samediff", False)):
        model = create_model(name, pretrained=True)
        for p in far:
            a, b = test.items[p.items[0]], test.items[p.items[1]]
            blank = torch.zeros_like(a)
            pairs = ((a, b), (blank, blank), (a, blank), (blank, b))
            canvases = torch.stack([compose_canvas(x, y, *p.corners, DEFAULT_TASK.canvas_size) for x, y in pairs])
            with torch.no_grad():
                both, empty, only_a, only_b = model(canvas_batch(model, canvases)).double()
            gap = float((both + empty - only_a - only_b).abs().max())
            assert (gap < 1e-4) if additive else (gap > 0.1), (name, p.distance, gap)
