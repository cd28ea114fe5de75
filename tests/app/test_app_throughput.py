"""Throughput page: paper-setting defaults, a short interleaved benchmark with intervals and the paper
comparison, results that survive control changes and page visits, and requests refused by budget."""
from __future__ import annotations

import base64
import json
import time
from dataclasses import replace

import numpy as np

from app.memory import Stored
from sbcore.analysis import ThroughputRow

SMALL = dict(speed_models=["sb_resnet38", "nl_resnet38"], speed_batches=[1, 2], speed_time=1.0, speed_channels=1)


def test_defaults_are_the_papers_setting_and_wait_for_the_benchmark(open_page):
    at = open_page("throughput")
    assert not at.exception, at.exception
    assert at.multiselect(key="speed_models").value == ["resnet50", "sb_resnet50", "nl_resnet50", "sbnl_resnet50"]
    assert at.number_input(key="speed_side").value == 224
    assert at.selectbox(key="speed_device").value in ("cuda", "cpu")
    assert "Run benchmark" in at.info[0].value


def test_small_inputs_are_one_click_away_and_labelled_overhead_dominated(open_page):
    at = open_page("throughput")
    at.radio(key="speed_preset").set_value(at.radio(key="speed_preset").options[1]).run()
    assert not at.exception, at.exception
    assert at.multiselect(key="speed_models").value == ["resnet38", "sb_resnet38", "nl_resnet38", "sbnl_resnet38"]
    assert at.number_input(key="speed_side").value == 32
    assert any("overheads dominate" in c.value for c in at.caption)


def test_benchmark_reports_human_columns_intervals_and_the_paper_and_keeps_its_result(open_page):
    at = open_page("throughput", **SMALL)
    at.number_input(key="speed_side").set_value(16)  # set through the widgets, as a user would
    at.slider(key="speed_rounds").set_value(3).run()
    at.button(key="speed_run").click().run()
    assert not at.exception, at.exception
    results, claims = at.dataframe[0].value, at.dataframe[1].value
    assert sorted(zip(results["Model"], results["Batch"])) == [
        ("nl_resnet38", 1), ("nl_resnet38", 2), ("sb_resnet38", 1), ("sb_resnet38", 2)
    ]
    assert (results["Images / s"] > 0).all() and (results["Median latency (ms)"] > 0).all()
    assert results["vs non-local (95% CI)"].str.match(r"\d+\.\d\dx \[\d+\.\d\d-\d+\.\d\d\]").any()
    assert list(claims["claim"]) == ["SB throughput over NL"] * 2 + ["Parameters added by NL over SB"]
    assert claims["paper"].iloc[0] == "1.6x to 3.3x"
    assert any("Measured at 1x16x16" in c.value for c in at.caption)
    assert any("overhead-dominated" in c.value for c in at.caption)

    at.slider(key="speed_rounds").set_value(4).run()  # a control changes: the result stays, marked as older
    assert at.dataframe[0].value.equals(results)
    assert any("earlier settings" in c.value for c in at.caption)

    at.switch_page("views/models.py").run()
    at.switch_page("views/throughput.py").run()
    assert not at.exception, at.exception
    assert at.dataframe[0].value.equals(results)
    assert at.slider(key="speed_rounds").value == 4  # controls come back as the user left them
    assert at.number_input(key="speed_side").value == 16


def test_a_request_beyond_the_budget_is_refused_at_once_with_a_sentence(open_page):
    at = open_page("throughput", speed_batches=[256], speed_side=512)
    start = time.monotonic()
    at.button(key="speed_run").click().run()
    assert not at.exception, at.exception
    assert time.monotonic() - start < 60
    assert any("Even batch 256 would need more than" in e.value for e in at.error)
    assert "Run benchmark" in at.info[0].value  # nothing was measured


def _row(model: str, share: float, ratio_ci: tuple[float, float] | None) -> ThroughputRow:
    return ThroughputRow(model, 1, "cpu", "fp32", False, False, img_per_s=10.0, median_ms=100.0, iqr_ms=900.0,
                         peak_memory_mb=None, params_m=0.5, gflops=0.1, vs_baseline=None,
                         vs_non_local=1.5 if ratio_ci else None, latency_low_ms=20.0, latency_high_ms=920.0,
                         vs_non_local_ci=ratio_ci, rounds=6, others_cpu_share=share)


def _stored(rows: list[ThroughputRow], **changes: object) -> Stored:
    settings = dict(models=tuple(r.model for r in rows), batch_sizes=(1,), input_size=(1, 16, 16), device="cpu",
                    dtype="fp32", channels_last=False, compile=False, min_run_time=1.0, rounds=6)
    return Stored(settings, rows, extra={"measured": {**settings, **changes}, "load_per_core": 0.2, "finished": "12:00:00"})


def test_a_busy_machine_or_a_wide_interval_is_flagged_with_a_measure_again_button(open_page):
    busy = [_row("sb_resnet38", 0.6, (1.0, 2.2)), _row("nl_resnet38", 0.6, None)]
    at = open_page("throughput", _result_speed=_stored(busy))
    assert not at.exception, at.exception
    warning = next(w.value for w in at.warning if "may be skewed" in w.value)
    assert "60% of the cores" in warning and "intervals are wide" in warning
    assert at.button(key="speed_again_run")
    assert "Run benchmark" not in [i.value for i in at.info]


def _plotly_array(value: dict | list) -> np.ndarray:
    """Plotly writes arrays either as lists or as base64 typed buffers."""
    return np.asarray(value) if isinstance(value, list) else np.frombuffer(base64.b64decode(value["bdata"]), value["dtype"])


def test_a_quiet_measurement_has_no_warning_and_its_error_bars_stay_above_zero(open_page):
    quiet = [_row("sb_resnet38", 0.05, (1.45, 1.55)), _row("nl_resnet38", 0.05, None)]
    at = open_page("throughput", _result_speed=_stored(quiet))
    assert not at.exception, at.exception
    assert not [w for w in at.warning if "may be skewed" in w.value]
    error_y = json.loads(at.get("plotly_chart")[1].proto.spec)["data"][0]["error_y"]
    below, above = (_plotly_array(error_y[key]) for key in ("arrayminus", "array"))
    assert list(below) == [80.0, 80.0] and list(above) == [820.0, 820.0]  # from the quartiles: 100 - 80 = 20 ms >= 0
    assert "-" not in at.dataframe[0].value["Latency 25th-75th percentile (ms)"].iloc[0].replace(" to ", "")


def test_measure_again_keeps_its_error_on_screen_when_the_benchmark_fails(open_page):
    stored = _stored([_row("sb_resnet38", 0.6, None)], dtype="fp8")  # measure_throughput refuses fp8
    at = open_page("throughput", _result_speed=stored)
    at.button(key="speed_again_run").click().run()
    assert not at.exception, at.exception
    assert any("The benchmark stopped" in e.value and "fp8" in e.value for e in at.error)


def test_the_caption_names_the_cpu_thread_count_and_explains_several_threads(open_page):
    for threads, explained in ((2, True), (1, False)):
        rows = [replace(_row(model, 0.0, None), cpu_threads=threads) for model in ("sb_resnet38", "nl_resnet38")]
        at = open_page("throughput", _result_speed=_stored(rows))
        assert not at.exception, at.exception
        captions = [c.value for c in at.caption]
        unit = "threads" if threads > 1 else "thread"
        assert any(f"on cpu with {threads} torch {unit}, fp32" in c for c in captions), captions
        assert any("gain less from extra CPU threads" in c for c in captions) == explained
