"""Throughput page: paper-setting defaults, a short interleaved benchmark with intervals and the paper
comparison, results that survive control changes and page visits, and requests refused by budget."""
from __future__ import annotations

import time

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
    assert any("controls changed" in i.value for i in at.info)

    at.switch_page("pages/models.py").run()
    at.switch_page("pages/throughput.py").run()
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
