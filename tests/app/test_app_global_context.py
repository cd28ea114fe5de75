"""Global context page: accuracy-by-distance from the lab cards, live probe, distance sweep."""
from __future__ import annotations

import json

import pytest

import sbcore
from sbcore.lab import results

LAB = sbcore.list_models("*.samediff", pretrained=True)
pytestmark = pytest.mark.skipif(len(LAB) < 4, reason="the four lab models are not shipped")


def _p_same(at) -> list[float]:
    frame = next(d.value for d in at.dataframe if "P(same)" in d.value.columns)
    return [float(p) for p in frame["P(same)"]]


def test_page_shows_curves_probe_and_sweep(open_page):
    at = open_page("global_context")
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.title[0].value == "Global context"

    # accuracy by distance: one curve per lab model, read from the real metadata
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    traces = {t["name"]: t for t in charts[0]["data"]}
    assert set(traces) == set(LAB)
    for name in LAB:
        curve = results.distance_accuracy(sbcore.create_model(name, pretrained=True))
        assert traces[name]["y"] == pytest.approx(curve.accuracy)
        assert any(m.value.find(f"**{name}**") >= 0 for m in at.markdown)
    numbers = next(d.value for d in at.dataframe if "accuracy (%)" in d.value.columns)
    assert set(numbers["model"]) == set(LAB) and len(numbers) == 4 * 5

    # live probe: moving item b changes P(same)
    before = _p_same(at)
    assert len(before) == 4 and all(0 <= p <= 1 for p in before)
    at.slider(key="gc_item_b_col").set_value(110).run()
    assert not at.exception, at.exception
    after = _p_same(at)
    assert after != before

    # sweep: one P(same) curve per model against distance
    at.button(key="gc_sweep_run").click().run()
    assert not at.exception, at.exception
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert len(charts) == 2
    sweep = {t["name"]: t for t in charts[1]["data"]}
    assert set(sweep) == set(LAB)
    assert all(len(t["y"]) > 10 and all(0 <= p <= 1 for p in t["y"]) for t in sweep.values())
