"""Cost accounting: parameter breakdown (total, added by SB/NL, per stage), FLOPs, and ``sbcore info``."""
from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torchvision

import sbcore
from sbcore.cli import main as cli_main
from sbcore.cost import cost_report, count_parameters
from sbcore.models.registry import plain_counterpart

ROOT = Path(__file__).resolve().parents[1]


def _params(name: str, **kwargs) -> int:
    return sum(p.numel() for p in sbcore.create_model(name, **kwargs).parameters())


def test_sbcore_info_prints_params_added_params_and_gflops(capsys):
    assert cli_main(["info", "sb_resnet50"]) == 0
    text = capsys.readouterr().out
    sb, plain = _params("sb_resnet50"), _params("resnet50")
    assert "sb_resnet50 at 3x224x224" in text
    assert re.search(rf"params\s+{sb / 1e6:.3f} M", text)
    assert re.search(rf"added by SB\s+{(sb - plain) / 1e6:.3f} M", text)
    assert f"vs resnet50: {(sb - plain) / 1e6:+.3f} M params" in text
    gflops = float(re.search(r"FLOPs\s+([\d.]+) G", text).group(1))
    assert 8.0 < gflops < 8.8  # ResNet-50 is 4.1 G multiply-adds at 224; SB adds a little
    assert re.search(r"vs resnet50: .* \+0\.\d{3} GFLOPs", text)


def test_sbcore_info_on_an_unknown_model_prints_one_line_and_exits_2(capsys):
    assert cli_main(["info", "sb_resnet51"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sbcore info: error: Unknown model 'sb_resnet51'") and err.count("\n") == 1


def test_resnet50_has_torchvisions_parameter_count():
    assert _params("resnet50") == sum(p.numel() for p in torchvision.models.resnet50().parameters())


def test_spatial_bias_parameters_follow_the_papers_formula_on_resnet50():
    """Per block: 5C (1x1 conv) + 10 (BN) + 100*100*3 + 100 (Conv1d) + 3*4C (conv3) + 2*3 (bn2)."""
    expected = sum(depth * (17 * planes + 30116) for depth, planes in ((3, 64), (4, 128), (6, 256)))
    report = cost_report(sbcore.create_model("sb_resnet50"), (3, 64, 64))
    assert report.params_spatial_bias == expected == _params("sb_resnet50") - _params("resnet50")
    assert round(expected / 1e6, 2) == 0.43


def test_cifar_resnet38_costs_match_the_paper():
    """Paper: ResNet-38 on CIFAR-100 has 0.43M params and 62.2 MFLOPs (multiply-adds), 0.45 / 0.46 /
    0.48M with spatial bias in 1 / 2 / 3 stages."""
    plain = cost_report(sbcore.create_model("resnet38", num_classes=100), (3, 32, 32))
    assert round(plain.params / 1e6, 2) == 0.43
    assert abs(plain.flops / 2 / 62.2e6 - 1) < 0.05  # FlopCounterMode counts a multiply-add as 2 FLOPs
    for stages, millions in (([1], 0.45), ([1, 2], 0.46), ([1, 2, 3], 0.48)):
        model = sbcore.create_model("sb_resnet38", num_classes=100, spatial_bias={"stages": stages})
        report = cost_report(model, (3, 32, 32))
        assert round(report.params / 1e6, 2) == millions
        assert report.flops > plain.flops


@pytest.mark.parametrize("stages", [(2,), (1, 3), (1, 2, 3)])
def test_spatial_bias_adds_parameters_in_every_configured_stage_and_nowhere_else(stages):
    total, sb, nl, per_stage = count_parameters(sbcore.create_model("sb_resnet38", spatial_bias={"stages": list(stages)}))
    plain_total, _, _, plain_stages = count_parameters(sbcore.create_model("resnet38"))
    assert nl == 0 and total - plain_total == sb > 0
    for index, stage in enumerate(("layer1", "layer2", "layer3"), start=1):
        added = per_stage[stage]["total"] - plain_stages[stage]["total"]
        assert added == per_stage[stage]["spatial_bias"]
        assert (added > 0) == (index in stages), stage


def test_non_local_parameters_are_counted_in_their_stages():
    total, sb, nl, per_stage = count_parameters(sbcore.create_model("nl_resnet38"))
    plain_total = _params("resnet38")
    assert sb == 0 and total - plain_total == nl > 0
    assert per_stage["layer1"]["non_local"] == 0
    assert per_stage["layer2"]["non_local"] > 0 and per_stage["layer3"]["non_local"] > 0


def test_sb_plus_nl_adds_both():
    _, sb, nl, _ = count_parameters(sbcore.create_model("sbnl_resnet38"))
    _, sb_only, _, _ = count_parameters(sbcore.create_model("sb_resnet38"))
    _, _, nl_only, _ = count_parameters(sbcore.create_model("nl_resnet38"))
    assert (sb, nl) == (sb_only, nl_only)


def test_plain_counterpart_strips_the_variant_prefix():
    assert plain_counterpart("sbnl_resnet50") == "resnet50"
    assert plain_counterpart("resnet38") == "resnet38"


def test_sbcore_info_piped_into_a_reader_that_already_closed_prints_no_traceback():
    # `true` exits before sbcore has counted FLOPs, so every write meets a closed pipe
    command = f"{shlex.quote(sys.executable)} -m sbcore info resnet38 | true"
    result = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.stderr == ""
