"""Interventions on global context: each mode does what it says, the shared model stays intact, bad requests fail
with one clear message."""
from __future__ import annotations

import copy
import threading

import pytest
import torch

from sbcore.analysis.interventions import (
    InterventionError, ablation_settings, components, derangement, intervened, intervened_logits, record_contributions,
    reference_means, resolve_components, stage_components,
)
from sbcore.layers.spatial_bias import reference_formulation

SB_BLOCKS = ["layer1.0", "layer2.0", "layer3.0", "layer3.1"]
NL_BLOCKS = ["layer2.0.non_local", "layer3.1.non_local"]


@pytest.fixture()
def sbnl(make_model):
    """An SB+NL lab model with random weights: SB in every block, NL after layer2.0 and layer3.1."""
    return make_model("sbnl_lab_resnet14", seed=3)


@pytest.fixture(scope="module")
def batch() -> torch.Tensor:
    return torch.randn(4, 1, 128, 128, generator=torch.Generator().manual_seed(5))


def _logits(model, x):
    with torch.no_grad():
        return model(x)


def test_components_name_every_spatial_bias_branch_and_non_local_block(sbnl):
    found = components(sbnl)
    assert [c.name for c in found if c.kind == "spatial_bias"] == SB_BLOCKS
    assert [c.name for c in found if c.kind == "non_local"] == NL_BLOCKS
    labels = [label for label, _ in ablation_settings(sbnl)]
    assert labels[:6] == ["SB layer1.0", "SB layer2.0", "NL layer2.0", "SB layer3.0", "SB layer3.1", "NL layer3.1"]
    assert labels[6:] == ["stage 2", "stage 3", "all SB", "all NL", "all"]


def test_zero_maps_equal_a_copy_whose_grid_mixing_outputs_zeros(sbnl, batch):
    silenced = copy.deepcopy(sbnl)
    with torch.no_grad():
        for name in ("layer1.0", "layer3.0"):
            mixing = silenced.get_submodule(name).spatial_bias.grid_mixing
            mixing.weight.zero_()
            mixing.bias.zero_()
    silenced.eval()
    expected = _logits(silenced, batch)
    with torch.no_grad():
        got = intervened_logits(sbnl, batch, ["layer1.0", "layer3.0"], "zero")
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(got, _logits(sbnl, batch), atol=1e-3)  # the maps mattered


def test_zeroing_a_non_local_block_makes_it_the_identity(sbnl, batch):
    identity = copy.deepcopy(sbnl)
    with torch.no_grad():
        bn = identity.get_submodule("layer2.0.non_local.out_bn")
        bn.weight.zero_()
        bn.bias.zero_()
    identity.eval()
    with torch.no_grad():
        got = intervened_logits(sbnl, batch, ["layer2.0.non_local"], "zero")
    torch.testing.assert_close(got, _logits(identity, batch), rtol=1e-5, atol=1e-5)


def test_patching_from_the_same_input_changes_nothing(sbnl, batch):
    every = SB_BLOCKS + NL_BLOCKS
    with torch.no_grad():
        got = intervened_logits(sbnl, batch, every, "patch", source=batch)
    torch.testing.assert_close(got, _logits(sbnl, batch), rtol=0, atol=1e-6)


def test_patching_takes_the_contribution_of_the_source_input(sbnl, batch):
    source = torch.randn_like(batch)
    with torch.no_grad(), intervened(sbnl, ["layer3.0"], "patch", source=source):
        used = sbnl.forward_intermediates(batch).spatial_bias_upsampled["layer3.0"]
    own = record_contributions(sbnl, source, resolve_components(sbnl, ["layer3.0"]))["layer3.0"]
    torch.testing.assert_close(used, own)


def test_mean_over_the_input_itself_is_exact_and_mean_over_others_is_not(sbnl, batch):
    every = SB_BLOCKS + NL_BLOCKS
    single = batch[:1]
    own_means = reference_means(sbnl, [single])
    with torch.no_grad():
        torch.testing.assert_close(intervened_logits(sbnl, single, every, "mean", means=own_means),
                                   _logits(sbnl, single), rtol=0, atol=1e-5)
        other_means = reference_means(sbnl, [batch[1:2], batch[2:]])
        assert not torch.allclose(intervened_logits(sbnl, single, every, "mean", means=other_means),
                                  _logits(sbnl, single), atol=1e-3)
    assert other_means["layer1.0"].shape == (3, 32, 32)  # N maps at the 3x3 conv output, batch averaged away
    assert other_means["layer2.0.non_local"].shape == (128, 16, 16)


def test_resample_is_patching_from_a_deranged_batch(sbnl, batch):
    order = derangement(len(batch), seed=4)
    assert (order != torch.arange(len(batch))).all() and sorted(order.tolist()) == list(range(len(batch)))
    with torch.no_grad():
        resampled = intervened_logits(sbnl, batch, ["layer1.0", "layer2.0.non_local"], "resample", seed=4)
        patched = intervened_logits(sbnl, batch, ["layer1.0", "layer2.0.non_local"], "patch", source=batch[order])
    torch.testing.assert_close(resampled, patched)


def test_inference_path_reference_formulation_and_forward_intermediates_all_honour_it(sbnl, batch):
    targets = ["layer1.0", "layer3.1", "layer3.1.non_local"]
    with torch.no_grad():
        fast = intervened_logits(sbnl, batch, targets, "zero")
        with reference_formulation():
            written = intervened_logits(sbnl, batch, targets, "zero")
        with intervened(sbnl, targets, "zero"):
            detailed = sbnl.forward_intermediates(batch)
    torch.testing.assert_close(written, fast, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(detailed.logits, fast, rtol=1e-4, atol=1e-4)
    assert detailed.spatial_bias_upsampled["layer1.0"].abs().max() == 0  # the maps the block used
    assert detailed.spatial_bias_upsampled["layer2.0"].abs().max() > 0


def test_weights_are_never_changed_and_nothing_remains_after_an_error(sbnl, batch):
    before = {k: v.clone() for k, v in sbnl.state_dict().items()}
    intact = _logits(sbnl, batch)
    with pytest.raises(RuntimeError, match="boom"):
        with intervened(sbnl, SB_BLOCKS, "zero"):
            raise RuntimeError("boom")
    torch.testing.assert_close(_logits(sbnl, batch), intact, rtol=0, atol=0)
    for key, value in sbnl.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_a_second_thread_gets_intact_results_while_an_ablation_runs(sbnl, batch):
    intact = _logits(sbnl, batch)
    entered, measured = threading.Event(), threading.Event()
    seen: dict[str, torch.Tensor] = {}

    def intact_user() -> None:
        entered.wait(30)
        seen["intact"] = _logits(sbnl, batch)
        measured.set()

    thread = threading.Thread(target=intact_user)
    thread.start()
    with torch.no_grad(), intervened(sbnl, SB_BLOCKS + NL_BLOCKS, "zero"):
        entered.set()
        assert measured.wait(30)  # the other thread ran its forward pass while this intervention was active
        seen["ablated"] = sbnl(batch)
    thread.join()
    torch.testing.assert_close(seen["intact"], intact, rtol=0, atol=0)
    assert not torch.allclose(seen["ablated"], intact, atol=1e-3)


def test_bad_requests_get_one_clear_message(sbnl, make_model):
    with pytest.raises(InterventionError, match=r"there is no block 'layer9.0'.*layer1.0, layer2.0"):
        resolve_components(sbnl, ["layer9.0"])
    nl = make_model("nl_lab_resnet14")
    with pytest.raises(InterventionError, match="block layer1.0 has neither spatial bias nor a non-local block"):
        resolve_components(nl, ["layer1.0"])
    with pytest.raises(InterventionError, match="layer2.0 has no spatial-bias branch; its non-local block is layer2.0.non_local"):
        resolve_components(nl, ["layer2.0"])
    with pytest.raises(InterventionError, match="layer1.0 has spatial bias but no non-local block"):
        resolve_components(sbnl, ["layer1.0.non_local"])
    with pytest.raises(InterventionError, match="no spatial-bias or non-local blocks: there is no global context"):
        resolve_components(make_model("lab_resnet14"), ["layer1.0"])
    with pytest.raises(InterventionError, match="no global context in stage 1"):
        stage_components(nl, [1])
    with pytest.raises(InterventionError, match="needs its reference mean"):
        with intervened(sbnl, ["layer1.0"], "mean"):
            pass
    with pytest.raises(InterventionError, match="Unknown intervention mode 'half'"):
        with intervened(sbnl, ["layer1.0"], "half"):
            pass
    with pytest.raises(InterventionError, match="batch of 2 or more"):
        intervened_logits(sbnl, torch.zeros(1, 1, 128, 128), ["layer1.0"], "resample")
    means = reference_means(sbnl, [torch.zeros(1, 1, 128, 128)])
    with pytest.raises(InterventionError, match="compute the means at this input size"), torch.no_grad():
        intervened_logits(sbnl, torch.zeros(1, 1, 64, 64), ["layer1.0"], "mean", means=means)
