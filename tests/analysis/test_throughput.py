import pytest
import torch
from torch import nn

from sbcore.analysis import format_throughput_table, measure_throughput
from sbcore.analysis.throughput import ratio_interval, time_interleaved
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
        # the median of per-round ratios: near, not equal to, the quotient of the two medians
        assert row.vs_baseline == pytest.approx(row.img_per_s / plain_row.img_per_s, rel=0.25)
    assert by_key[("resnet38", 1)].vs_baseline == 1.0
    assert by_key[("sb_resnet38", 1)].params_m == count_parameters(sb)[0] / 1e6
    table = format_throughput_table(rows)
    assert "sb_resnet38" in table and "vs plain" in table


def test_ratio_against_the_non_local_variant(sb, nl):
    rows = measure_throughput({"sb_resnet38": sb, "nl_resnet38": nl}, [1], (1, 28, 28), **FAST)
    speeds = {r.model: r.img_per_s for r in rows}
    assert rows[0].vs_non_local == pytest.approx(speeds["sb_resnet38"] / speeds["nl_resnet38"], rel=0.25)
    low, high = rows[0].vs_non_local_ci
    assert low <= rows[0].vs_non_local <= high
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



def test_latency_quartiles_bracket_the_median_and_error_bars_never_go_below_zero(plain):
    row = measure_throughput({"resnet38": plain}, [1], (1, 28, 28), **FAST)[0]
    assert 0 < row.latency_low_ms <= row.latency_high_ms and row.median_ms > 0
    below, above = row.spread_ms
    assert below >= 0 and above >= 0 and row.median_ms - below >= 0
    assert row.iqr_ms == pytest.approx(row.latency_high_ms - row.latency_low_ms)
    assert row.rounds == FAST["rounds"]


def test_ratios_carry_a_bootstrap_interval_around_them(plain, sb):
    rows = measure_throughput({"resnet38": plain, "sb_resnet38": sb}, [1], (1, 28, 28), min_run_time=0.05, rounds=4)
    sb_row = rows[1]
    low, high = sb_row.vs_baseline_ci
    assert low <= sb_row.vs_baseline <= high
    assert rows[0].vs_baseline_ci == (1.0, 1.0)
    assert "[" in format_throughput_table(rows)


def test_ratio_interval_pairs_rounds_and_brackets_the_median_per_round_ratio():
    mine = [0.010, 0.011, 0.012, 0.010, 0.030]  # one slow round, shared by both models
    theirs = [0.020, 0.022, 0.024, 0.020, 0.060]
    ratio, (low, high) = ratio_interval(mine, theirs)
    assert ratio == pytest.approx(2.0)
    assert (low, high) == pytest.approx((2.0, 2.0))  # every round agrees, whatever its speed
    assert ratio_interval([0.01], [0.02]) is None


def test_ratio_interval_compares_the_models_within_each_round():
    """The machine got faster over the run (5 s down to 1 s per call); the second model took as long as the
    first in three rounds and twice as long in two. The per-round ratios say 1; the medians of the two
    columns would compare different rounds (3 s against 4 s)."""
    ratio, _ = ratio_interval([5.0, 4.0, 3.0, 2.0, 1.0], [5.0, 4.0, 3.0, 4.0, 2.0])
    assert ratio == pytest.approx(1.0)


def test_ratio_interval_of_b_over_a_is_the_reciprocal_of_a_over_b():
    mine, theirs = [1.0, 2.0, 1.5, 1.2], [2.0, 2.2, 3.5, 1.0]  # an even number of rounds: two middle ratios
    forward, (low, high) = ratio_interval(mine, theirs)
    backward, (back_low, back_high) = ratio_interval(theirs, mine)
    assert forward * backward == pytest.approx(1.0)
    assert (low * back_high, high * back_low) == pytest.approx((1.0, 1.0))


def test_ratio_interval_widens_when_rounds_disagree():
    steady = ratio_interval([1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [2.0, 2.0, 2.0, 2.0, 2.0, 2.0])
    noisy = ratio_interval([1.0, 0.5, 2.0, 1.0, 0.7, 1.5], [2.0, 2.0, 2.0, 2.0, 2.0, 2.0])
    assert steady[1] == (2.0, 2.0)
    assert noisy[1][1] - noisy[1][0] > 0.5


def test_models_take_turns_and_each_round_starts_one_later():
    calls = []
    runs = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    timing = time_interleaved(runs, rounds=3, seconds_per_turn=0.0)
    firsts = [calls[0]] + [b for a, b in zip(calls, calls[1:]) if a != b]
    assert firsts == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert all(len(timing.per_round[name]) == 3 for name in "abc")
    assert timing.others_cpu_share is None or 0.0 <= timing.others_cpu_share <= 1.0


def test_a_builder_is_measured_without_a_copy(plain):
    built = []

    def build() -> nn.Module:
        built.append(plain)
        return plain

    plain.train()
    try:
        rows = measure_throughput({"resnet38": build}, [1], (1, 28, 28), **FAST)
        assert built == [plain] and not plain.training  # the builder's model itself was prepared
        assert rows[0].error is None and rows[0].params_m == count_parameters(plain)[0] / 1e6
    finally:
        plain.eval()


def test_cpu_time_measures_one_thread_and_refuses_several(plain):
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        row = measure_throughput({"resnet38": plain}, [1], (1, 28, 28), cpu_time=True, **FAST)[0]
        assert row.error is None and row.img_per_s > 0
        torch.set_num_threads(2)
        with pytest.raises(SBCoreError, match="one torch thread"):
            measure_throughput({"resnet38": plain}, [1], (1, 28, 28), cpu_time=True, **FAST)
    finally:
        torch.set_num_threads(threads)


def test_cpu_rows_record_the_torch_thread_count_they_ran_with(plain):
    threads = torch.get_num_threads()
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            row = measure_throughput({"resnet38": plain}, [1], (1, 28, 28), **FAST)[0]
            assert row.error is None and row.cpu_threads == count
            assert f"CPU rows ran on {count} torch thread(s)" in format_throughput_table([row])
    finally:
        torch.set_num_threads(threads)
