"""Every registered model builds and trains (forward and backward) at batch 1 and 4 at two input sizes."""
from __future__ import annotations

import pytest
import torch

import sbcore
from sbcore.errors import UnknownModelError

IMAGENET_STYLE = ("resnet18", "resnet34", "resnet50", "resnet101")


def _sizes(name: str) -> tuple[int, int]:
    return (64, 80) if name.split("_")[-1] in IMAGENET_STYLE else (28, 32)


@pytest.mark.parametrize("name", sbcore.list_models())
def test_every_registered_model_runs_forward_and_backward(name):
    in_chans = 3 if name.split("_")[-1] in IMAGENET_STYLE else 1
    torch.manual_seed(0)
    model = sbcore.create_model(name, num_classes=5, in_chans=in_chans).train()
    for size in _sizes(name):
        for batch in (1, 4):
            model.zero_grad(set_to_none=True)
            logits = model(torch.randn(batch, in_chans, size, size))
            assert logits.shape == (batch, 5)
            logits.logsumexp(dim=1).sum().backward()
            unreached = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
            assert not unreached, f"{name} at {batch}x{size}x{size}: no finite gradient for {unreached[:3]}"
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, in_chans, *(_sizes(name)[0],) * 2)).shape == (1, 5)


@pytest.mark.parametrize("name", sbcore.list_models())
def test_every_registered_model_carries_metadata(name):
    model = sbcore.create_model(name, num_classes=5, in_chans=1)
    meta = model.metadata
    assert meta.architecture == name
    assert meta.preprocessing.input_size[0] == 1 and len(meta.preprocessing.mean) == 1
    assert len(meta.class_names) == 5
    assert meta.model_kwargs == {"num_classes": 5, "in_chans": 1}


def test_variants_place_spatial_bias_and_non_local_blocks_by_default():
    def blocks(model, attribute):
        return sorted(n.rsplit(".", 1)[0] for n, m in model.named_modules() if n.endswith(attribute) and m is not None)

    sb50 = sbcore.create_model("sb_resnet50")
    assert blocks(sb50, ".spatial_bias") == sorted(f"layer{s}.{b}" for s, d in ((1, 3), (2, 4), (3, 6)) for b in range(d))
    assert blocks(sb50, ".non_local") == []
    nl50 = sbcore.create_model("nl_resnet50")
    assert blocks(nl50, ".non_local") == ["layer2.1", "layer2.3", "layer3.1", "layer3.3", "layer3.5"]
    assert blocks(nl50, ".spatial_bias") == []
    sbnl38 = sbcore.create_model("sbnl_resnet38")
    assert len(blocks(sbnl38, ".spatial_bias")) == 12 and len(blocks(sbnl38, ".non_local")) == 4


def test_imagenet_models_keep_torchvision_parameter_names():
    import torchvision

    ours = sbcore.create_model("resnet50").state_dict()
    theirs = torchvision.models.resnet50().state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}


def test_list_models_filters_by_pattern_and_lists_shipped_weights():
    assert sbcore.list_models("sb_*") == sorted(
        [f"sb_resnet{d}" for d in ("38", "65", "164", "50", "101")] + ["sb_lab_resnet14"]
    )
    assert "sb_resnet38.fmnist" in sbcore.list_models(pretrained=True)


def test_unknown_model_names_get_a_clear_error():
    with pytest.raises(UnknownModelError, match="Unknown model 'sb_resnet51'"):
        sbcore.create_model("sb_resnet51")
    with pytest.raises(UnknownModelError, match="pretrained=True"):
        sbcore.create_model("sb_resnet38.fmnist")


def test_bad_placement_is_rejected_with_the_valid_range():
    with pytest.raises(ValueError, match="stage 4 does not exist"):
        sbcore.create_model("sb_resnet38", spatial_bias={"stages": [4]})
    with pytest.raises(ValueError, match="layer2.9"):
        sbcore.create_model("nl_resnet38", non_local={"blocks": ["layer2.9"]})


def test_variant_switches_are_not_builder_options():
    with pytest.raises(TypeError, match="with_sb"):
        sbcore.create_model("resnet38", with_sb=True)
    with pytest.raises(TypeError, match="spatial_bias"):
        sbcore.create_model("resnet38", spatial_bias={"stages": [1]})  # would record resnet38 for an SB network
    with pytest.raises(TypeError, match="non_local"):
        sbcore.create_model("sb_resnet50", non_local={"blocks": ["layer2.1"]})


@pytest.mark.parametrize("name", sbcore.list_models())
def test_every_registered_model_has_its_own_builder_def(name):
    import inspect

    from sbcore.models import registry

    builder = registry.model_entry(name).builder
    assert builder.__name__ == name
    assert f"def {name}(" in inspect.getsource(inspect.getmodule(builder))


def test_another_channel_count_keeps_the_rest_of_the_preprocessing():
    """Only input size, mean and std follow ``in_chans``; e.g. the lab's dark-background default stays."""
    default = sbcore.create_model("lab_resnet14").metadata.preprocessing
    three = sbcore.create_model("lab_resnet14", in_chans=3).metadata.preprocessing
    assert default.dark_background and three.dark_background
    assert three.input_size == (3, *default.input_size[1:]) and len(three.mean) == len(three.std) == 3
    assert (three.interpolation, three.crop_pct) == (default.interpolation, default.crop_pct)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name", ["sb_resnet38", "sbnl_resnet38"])
def test_spatial_bias_blocks_keep_a_channels_last_model_channels_last(name, training):
    """The maps are concatenated in the 3x3 conv output's layout: a mixed-layout concatenation would come out
    contiguous and send bn2 and its backward pass through layout copies."""
    model = sbcore.create_model(name).train(training).to(memory_format=torch.channels_last)
    layouts = []
    for block in model.layer1:
        block.bn2.register_forward_pre_hook(
            lambda _, inputs: layouts.append(inputs[0].is_contiguous(memory_format=torch.channels_last)))
    x = torch.randn(2, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    with torch.set_grad_enabled(training):
        model(x)
        model.forward_intermediates(x)
    assert layouts == [True] * 8
