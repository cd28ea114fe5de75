"""On a CUDA GPU: the app's device switch, the benchmark at fp16/bf16, out-of-memory handling, torch.compile and
the fast path's parity. Skipped where no GPU is present."""
from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import sbcore
from sbcore.analysis import measure_throughput
from sbcore.layers import reference_formulation

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

ROOT = Path(__file__).resolve().parents[1]
FAMILY = ["resnet38", "sb_resnet38", "nl_resnet38", "sbnl_resnet38"]


def _model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return sbcore.create_model(name, in_chans=1).eval()


def test_app_device_switch_runs_the_explore_page_and_defaults_the_benchmark_to_the_gpu():
    from streamlit.testing.v1 import AppTest

    sys.path.insert(0, str(ROOT))
    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=300).run()
    assert at.sidebar.radio(key="device").value == "cuda"  # the GPU is the default when there is one
    assert not at.exception, at.exception
    at.sidebar.radio(key="device").set_value("cpu").run()
    assert not at.exception, at.exception
    at.sidebar.radio(key="device").set_value("cuda").run()
    at.switch_page("views/throughput.py").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="speed_device").value == "cuda"


@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
def test_benchmark_runs_the_family_on_the_gpu_at_low_precision(dtype):
    rows = measure_throughput({name: _model(name) for name in FAMILY}, [8, 64], (1, 28, 28), device="cuda",
                              dtype=dtype, channels_last=True, min_run_time=0.5, rounds=4)
    assert all(r.error is None and r.device.startswith("cuda") and r.dtype == dtype for r in rows)
    assert all(r.peak_memory_mb is not None and r.peak_memory_mb > 0 for r in rows)
    sb = next(r for r in rows if r.model == "sb_resnet38" and r.batch_size == 64)
    assert sb.vs_non_local_ci[0] <= sb.vs_non_local <= sb.vs_non_local_ci[1]


def test_out_of_memory_is_a_row_error_and_the_gpu_is_usable_afterwards():
    free, _ = torch.cuda.mem_get_info()
    side = 512
    batch = int(free / (64 * side * side * 4) * 2) + 1  # stage 1 alone needs about twice the free memory
    rows = measure_throughput({"resnet38": _model("resnet38")}, [1, batch], (1, side, side), device="cuda",
                              min_run_time=0.1, rounds=2)
    assert rows[0].error is None
    assert rows[1].error == "out of memory" and rows[1].img_per_s is None
    assert measure_throughput({"resnet38": _model("resnet38")}, [4], (1, 28, 28), device="cuda",
                              min_run_time=0.1, rounds=2)[0].error is None


def test_compiled_models_are_measured_and_keep_their_ratios():
    rows = measure_throughput({name: _model(name) for name in FAMILY[:2]}, [16], (1, 28, 28), device="cuda",
                              compile=True, min_run_time=0.5, rounds=3)
    assert all(r.error is None and r.compiled for r in rows)
    assert rows[1].vs_baseline is not None and rows[1].vs_baseline_ci is not None


@pytest.mark.parametrize("name", ["sb_resnet38", "sbnl_resnet38", "sb_resnet50"])
def test_fast_forward_matches_the_readable_definition_on_the_gpu(name, monkeypatch):
    """Under no_grad in eval mode, spatial bias takes its inference path (folded BN, matrix products); inside
    ``reference_formulation()`` it runs its layers as written."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    model = _model(name).cuda()
    x = torch.randn(4, 1, 56, 56, device="cuda")
    with torch.no_grad():
        fast = model(x)
        with reference_formulation():
            expected = model(x)
    assert (fast - expected).abs().max() / expected.abs().max() <= 1e-5


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_fast_forward_under_autocast_stays_within_low_precision_rounding_of_the_fp32_definition(dtype):
    model = _model("sb_resnet50").cuda().to(memory_format=torch.channels_last)
    x = torch.randn(2, 1, 224, 224, device="cuda").contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        with reference_formulation():
            expected = model(x)
        with torch.autocast("cuda", dtype=dtype):
            fast = model(x)
    assert fast.dtype == dtype and torch.isfinite(fast).all()
    assert (fast.float() - expected).norm() / expected.norm() <= 2e-2


def test_benchmark_script_runs_its_gpu_settings():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "throughput.py"), "--device", "cuda", "--quick"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count(", cuda\n") == 6 and "SB/NL" in done.stdout and "target" not in done.stdout


def test_the_padded_layout_and_the_fused_branch_match_the_concatenation_on_the_gpu(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    from sbcore.models import set_channel_layout, set_fused_branch

    model = _model("sb_resnet50").cuda()
    x = torch.randn(4, 1, 96, 96, device="cuda")
    with torch.no_grad():
        expected = set_channel_layout(model, "concat")(x)
        padded = set_channel_layout(model, "padded")(x)
        fused = set_fused_branch(model)(x)
    for actual in (padded, fused):
        assert (actual - expected).abs().max() / expected.abs().max() <= 1e-5
    set_fused_branch(model, False)
    concat, padded = set_channel_layout(model, "concat").train(), set_channel_layout(copy.deepcopy(model), "padded")
    grads = []
    for candidate in (concat, padded):
        candidate(x).square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in candidate.parameters()]))
    assert (grads[1] - grads[0]).abs().max() / grads[0].abs().max() <= 1e-5
