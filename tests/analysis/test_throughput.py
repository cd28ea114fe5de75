import pytest
import torch
from torch import nn

from sbcore.analysis import format_throughput_table, measure_throughput
from sbcore.cost import count_parameters
from sbcore.errors import SBCoreError

FAST = {"min_run_time": 0.02, "rounds": 2}


def test_rows_for_two_models_with_ratios_against_the_plain_baseline(plain, sb):
    calls = []
    rows = measure_throughput({"resnet38": plain, "sb_resnet38": sb}, [1, 2], (1, 28, 28),
                              progress=lambda *a: calls.append(a), **FAST)
    assert [(r.model, r.batch_size) for r in rows] == [
        ("resnet38", 1), ("sb_resnet38", 1), ("resnet38", 2), ("sb_resnet38", 2)]
    assert calls[-1] == (8, 8) and len(calls) == 8
    by_key = {(r.model, r.batch_size): r for r in rows}
    for row in rows:
        assert row.error is None and row.device == "cpu" and row.dtype == "fp32"
        assert row.img_per_s == pytest.approx(row.batch_size / row.median_ms * 1e3)
        assert row.iqr_ms >= 0 and row.gflops > 0 and row.vs_non_local is None
        plain_row = by_key[("resnet38", row.batch_size)]
        assert row.vs_baseline == pytest.approx(row.img_per_s / plain_row.img_per_s)
    assert by_key[("resnet38", 1)].vs_baseline == 1.0
    assert by_key[("sb_resnet38", 1)].params_m == count_parameters(sb)[0] / 1e6
    table = format_throughput_table(rows)
    assert "sb_resnet38" in table and "vs plain" in table


def test_ratio_against_the_non_local_variant(sb, nl):
    rows = measure_throughput({"sb_resnet38": sb, "nl_resnet38": nl}, [1], (1, 28, 28), **FAST)
    speeds = {r.model: r.img_per_s for r in rows}
    assert rows[0].vs_non_local == pytest.approx(speeds["sb_resnet38"] / speeds["nl_resnet38"])
    assert rows[0].vs_baseline is None  # resnet38 was not measured


class _FailsAboveBatchOne(nn.Module):
    """Stands in for a model that runs out of CUDA memory at larger batches."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.conv(x).mean((2, 3))


def test_a_failing_row_is_reported_and_the_rest_continue(plain):
    rows = measure_throughput({"resnet38": plain, "fragile": _FailsAboveBatchOne()}, [1, 2], (1, 28, 28), **FAST)
    errors = {(r.model, r.batch_size): r.error for r in rows}
    assert errors == {("resnet38", 1): None, ("fragile", 1): None, ("resnet38", 2): None,
                      ("fragile", 2): "out of memory"}
    failed = rows[3]
    assert failed.img_per_s is None and failed.median_ms is None and failed.vs_baseline is None
    assert "error: out of memory" in format_throughput_table(rows)


def test_low_precision_rows_run_under_autocast(plain):
    rows = measure_throughput({"resnet38": plain}, [1], (1, 28, 28), dtype="bf16", channels_last=True, **FAST)
    assert rows[0].error is None and rows[0].dtype == "bf16" and rows[0].channels_last


def test_the_callers_model_is_left_untouched(plain):
    plain.train()
    try:
        measure_throughput({"resnet38": plain}, [1], (1, 28, 28), channels_last=True, **FAST)
        assert plain.training
        assert plain.conv1.weight.is_contiguous()
    finally:
        plain.eval()


@pytest.mark.parametrize(
    "kwargs, message",
    [({"dtype": "int8"}, "fp32, bf16, fp16"), ({"batch_sizes": [0]}, "positive"), ({"device": "tpu"}, "device")],
)
def test_bad_arguments_are_refused(plain, kwargs, message):
    arguments = {"batch_sizes": [1], **kwargs}
    with pytest.raises(SBCoreError, match=message):
        measure_throughput({"resnet38": plain}, input_size=(1, 28, 28), **arguments, **FAST)

