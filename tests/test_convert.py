"""State-dict conversion: torchvision ResNets into sb_/nl_/sbnl_ variants without changing their
function, and the authors' reference-code names into ours."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import torchvision

import sbcore
from sbcore.convert import read_torch_state_dict
from sbcore.errors import CheckpointError


@pytest.fixture(scope="module")
def torchvision_resnet50() -> torch.nn.Module:
    """torchvision's ResNet-50 with random weights and random BN statistics, in eval mode."""
    torch.manual_seed(0)
    model = torchvision.models.resnet50()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0.0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.normal_(1.0, 0.1)
                module.bias.normal_(0.0, 0.1)
    return model.eval()


def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("variant", ["resnet50", "sb_resnet50", "nl_resnet50", "sbnl_resnet50"])
def test_widened_torchvision_weights_give_the_same_logits(torchvision_resnet50, variant):
    model = sbcore.create_model(variant).eval()
    model.load_state_dict(sbcore.widen_state_dict(torchvision_resnet50.state_dict(), model))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        reference, converted = torchvision_resnet50(x), model(x)
    assert _relative_error(converted, reference) < 1e-5


def test_widening_pads_conv3_with_zero_input_channels(torchvision_resnet50):
    model = sbcore.create_model("sb_resnet50")
    widened = sbcore.widen_state_dict(torchvision_resnet50.state_dict(), model)
    conv3 = widened["layer2.0.conv3.weight"]  # (512, 128 + 3, 1, 1)
    assert conv3.shape == (512, 131, 1, 1)
    torch.testing.assert_close(conv3[:, :128], torchvision_resnet50.state_dict()["layer2.0.conv3.weight"])
    assert torch.count_nonzero(conv3[:, 128:]) == 0
    assert widened["layer4.0.conv3.weight"].shape == (2048, 512, 1, 1)  # stage 4 has no spatial bias


def test_widening_after_spatial_bias_training_would_change_the_output(torchvision_resnet50):
    """The equality above comes from the zero channels, not from the maps being ignored."""
    model = sbcore.create_model("sb_resnet50").eval()
    model.load_state_dict(sbcore.widen_state_dict(torchvision_resnet50.state_dict(), model))
    with torch.no_grad():
        model.layer1[0].conv3.weight[:, 64:].fill_(0.5)
        x = torch.randn(1, 3, 64, 64)
        assert _relative_error(model(x), torchvision_resnet50(x)) > 1e-3


def test_widening_weights_of_another_depth_or_class_count_is_refused(torchvision_resnet50):
    sb50 = sbcore.create_model("sb_resnet50")
    with pytest.raises(CheckpointError, match=r"layer1\.0\.conv1\.weight: shape \(64, 64, 3, 3\) cannot be widened"):
        sbcore.widen_state_dict(torchvision.models.resnet18().state_dict(), sb50)
    incomplete = {k: v for k, v in torchvision_resnet50.state_dict().items() if k != "layer3.4.conv1.weight"}
    with pytest.raises(CheckpointError, match="has no 'layer3.4.conv1.weight'"):
        sbcore.widen_state_dict(incomplete, sb50)
    deeper = {**torchvision_resnet50.state_dict(), "layer3.6.conv1.weight": torch.zeros(256, 1024, 1, 1)}
    with pytest.raises(CheckpointError, match=r"1 keys this model lacks \(e\.g\. \['layer3\.6\.conv1\.weight'\]\)"):
        sbcore.widen_state_dict(deeper, sb50)
    with pytest.raises(CheckpointError, match=r"fc\.weight: shape \(1000, 2048\) cannot be widened to \(10, 2048\)"):
        sbcore.widen_state_dict(torchvision_resnet50.state_dict(), sbcore.create_model("sb_resnet50", num_classes=10))


def _reference_state_dict(ours: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Our state dict under the reference code's names (SB.feature_reduction.{0,1}, SB.sb_conv)."""
    renamed = {}
    for key, value in ours.items():
        key = re.sub(r"\.spatial_bias\.channel_reduction\.([01])\.", r".SB.feature_reduction.\1.", key)
        key = key.replace(".spatial_bias.grid_mixing.", ".SB.sb_conv.")
        renamed[prefix + key] = value.clone()
    return renamed


@pytest.mark.parametrize(
    ("architecture", "prefix", "size"),
    [("sb_resnet38", "", 32), ("sb_resnet38", "module.", 32), ("sb_resnet50", "module.", 64)],
)
def test_reference_code_state_dict_converts_to_identical_logits(make_model, architecture, prefix, size, tmp_path):
    source = make_model(architecture, in_chans=3, num_classes=10)
    reference = _reference_state_dict(source.state_dict(), prefix)
    planes = 16 if architecture == "sb_resnet38" else 64
    grid = 6 if architecture == "sb_resnet38" else 10
    assert reference[f"{prefix}layer1.0.SB.feature_reduction.0.weight"].shape == (5, planes, 1, 1)
    for part in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
        assert f"{prefix}layer1.0.SB.feature_reduction.1.{part}" in reference
    assert reference[f"{prefix}layer1.0.SB.sb_conv.weight"].shape == (grid * grid, grid * grid, 3)
    assert reference[f"{prefix}layer1.0.SB.sb_conv.bias"].shape == (grid * grid,)
    assert reference[f"{prefix}layer1.0.conv3.weight"].shape == (4 * planes, planes + 3, 1, 1)
    assert not any("spatial_bias" in k for k in reference)

    path = tmp_path / "reference.pth"  # as the reference training script saves it
    torch.save({"state_dict": reference}, path)
    target = sbcore.create_model(architecture, num_classes=10, in_chans=3).eval()
    target.load_state_dict(sbcore.convert_reference_state_dict(read_torch_state_dict(path)))
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(target(x), source(x), rtol=0, atol=0)


def test_reading_a_malicious_pickle_runs_no_code(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    path = tmp_path / "evil.pth"
    torch.save({"state_dict": Payload()}, path)
    with pytest.raises(CheckpointError, match="Not a readable PyTorch state dict"):
        read_torch_state_dict(path)
    assert not marker.exists()


def test_a_file_without_a_state_dict_is_refused(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([1, 2, 3], path)
    with pytest.raises(CheckpointError, match="does not hold a state dict"):
        read_torch_state_dict(path)
