"""Throughput page: default render, a short live benchmark with the paper comparison."""
from __future__ import annotations


def test_default_render_waits_for_the_benchmark(open_page):
    at = open_page("throughput")
    assert not at.exception, at.exception
    assert at.multiselect(key="speed_models").value == ["resnet38", "sb_resnet38", "nl_resnet38", "sbnl_resnet38"]
    assert at.selectbox(key="speed_device").value in ("cuda", "cpu")
    assert "Run benchmark" in at.info[0].value


def test_benchmark_reports_rows_and_measured_ratios_beside_the_paper(open_page):
    at = open_page(
        "throughput", speed_models=["sb_resnet38", "nl_resnet38"], speed_batches=[1, 2], speed_time=0.2,
        speed_side=16, speed_channels=1,
    )
    at.button(key="speed_run").click().run()
    assert not at.exception, at.exception
    results, claims = at.dataframe[0].value, at.dataframe[1].value
    assert sorted(zip(results["model"], results["batch_size"])) == [
        ("nl_resnet38", 1), ("nl_resnet38", 2), ("sb_resnet38", 1), ("sb_resnet38", 2)
    ]
    assert (results["img_per_s"] > 0).all()
    assert list(claims["claim"]) == ["SB throughput over NL"] * 2 + ["Parameters added by NL over SB"]
    sb_row = results[(results["model"] == "sb_resnet38") & (results["batch_size"] == 1)].iloc[0]
    assert claims["measured"].iloc[0] == f"{sb_row['vs_non_local']:.2f}x"
    assert claims["paper"].iloc[0] == "1.6x to 3.3x"
    assert any("Measured at 1x16x16" in c.value for c in at.caption)
