"""Global context page: accuracy-by-distance from the lab cards, live probe with test items or uploads,
distance sweep, settings in the URL."""
from __future__ import annotations

import io
import json
import random

import pytest
from PIL import Image

import sbcore
from app import compute, state
from sbcore.images import load_image
from sbcore.lab import probe, results

LAB = sbcore.list_models("*.samediff", pretrained=True)
pytestmark = pytest.mark.skipif(len(LAB) < 4, reason="the four lab models are not shipped")


def _probe_table(at):
    return next(d.value for d in at.dataframe if "your pair: P(same)" in d.value.columns)


def _p_same(at) -> list[float]:
    return [float(p) for p in _probe_table(at)["your pair: P(same)"]]


def test_page_shows_curves_probe_and_sweep(open_page):
    at = open_page("global_context")
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.title[0].value == "Global context"

    # accuracy by distance: one curve per lab model, read from the real metadata, named by its variant; the
    # other seeds' runs as points
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    traces = {t["name"]: t for t in charts[0]["data"]}
    family = state.shipped_family("samediff")
    assert {"plain", "SB", "NL", "SB+NL"} <= set(traces)
    for name, label in zip(family, ("plain", "SB", "NL", "SB+NL")):
        curve = results.distance_accuracy(sbcore.create_model(name, pretrained=True))
        assert traces[label]["y"] == pytest.approx(curve.accuracy)
        assert any(m.value.find(f"**{label}** (`{name}`") >= 0 for m in at.markdown)
        seeds = [t for t in charts[0]["data"] if t.get("hovertext") in state.seed_runs(name)]
        assert len(seeds) == len(state.seed_runs(name))
        for seed in seeds:
            seed_curve = results.distance_accuracy(sbcore.create_model(seed["hovertext"], pretrained=True))
            assert seed["y"] == pytest.approx(seed_curve.accuracy)
    assert charts[0]["layout"]["legend"]["y"] > 1  # above the chart, not below the fold
    numbers = next(d.value for d in at.dataframe if "accuracy (%)" in d.value.columns)
    assert set(numbers["model"]) == set(LAB) and len(numbers) == 4 * 5

    # live probe: the user's pair, the four pair types and the many-pairs accuracy per model
    table = _probe_table(at)
    assert list(table["model"]) == ["plain", "SB", "NL", "SB+NL"]
    for pair in ("Trouser+Trouser", "Bag+Bag", "Trouser+Bag", "Bag+Trouser"):
        assert all(cell[-1] in "✓✗" and 0 <= float(cell.split()[0]) <= 1 for cell in table[pair])
    before = _p_same(at)
    assert len(before) == 4 and all(0 <= p <= 1 for p in before)
    at.slider(key="gc_item_b_col").set_value(110).run()  # 96 px apart: beyond the plain model's reach
    assert not at.exception, at.exception
    after = _p_same(at)
    assert after != before
    test = compute.same_different_test()
    expected = probe.pair_accuracy(sbcore.create_model(family[0], pretrained=True), test.items, test.pools, (64, 14),
                                   (64, 110), per_type=25)
    assert _probe_table(at)["accuracy, 100 pairs"].iloc[0] == (
        f"{expected.accuracy:.0f}% [{expected.ci95[0]:.0f}, {expected.ci95[1]:.0f}]")

    # sweep: P(same) of the user's pair and accuracy over many pairs against distance, per model
    at.button(key="gc_sweep_run").click().run()
    assert not at.exception, at.exception
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert len(charts) == 3
    sweep = {t["name"]: t for t in charts[1]["data"]}
    assert set(sweep) == {"plain", "SB", "NL", "SB+NL"}
    assert all(len(t["y"]) > 10 and all(0 <= p <= 1 for p in t["y"]) for t in sweep.values())
    accuracy = {t["name"]: t for t in charts[2]["data"]}
    assert set(accuracy) == set(sweep) and all(0 <= a <= 100 for t in accuracy.values() for a in t["y"])
    assert not any("The sweep stops at" in c.value for c in at.caption)  # right from (64, 14): 104 of 108 px

    at.radio(key="gc_direction").set_value("down-right").run()
    at.button(key="gc_sweep_run").click().run()
    assert any("The sweep stops at 54 px" in c.value for c in at.caption)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _item(label: str) -> int:
    """The test-set index in a test-item option's label (``"item 123 (Bag)"``)."""
    return int(label.split()[1])


def _probe_state(at) -> dict:
    """The probe's items, sources and centres as the widgets hold them."""
    keys = [f"gc_item_{slot}{part}" for slot in "ab" for part in ("", "_source", "_row", "_col")]
    return {key: at.session_state[key] for key in keys}


def _expected_p_same(item_a, item_b, centre_a, centre_b) -> list[float]:
    """Every lab model's P(same) straight from sbcore, for two (s, s) items placed at the centres."""
    canvas = probe.place_pair(item_a, item_b, centre_a, centre_b)[None]
    return [float(probe.same_probability(sbcore.create_model(name, pretrained=True), canvas)[0])
            for name in state.shipped_family("samediff")]


def test_a_prepared_link_opens_its_items_positions_and_direction_and_bad_values_are_ignored(open_page):
    options = [_item(o) for o in open_page("global_context").selectbox(key="gc_item_a").options]
    item_a, item_b = options[1], options[-2]
    at = open_page("global_context", query={
        "item_a": str(item_a), "item_b": str(item_b), "row_a": "30", "col_a": "20", "row_b": "100", "col_b": "110",
        "direction": "down", "source_b": "upload",  # an upload cannot be in a link: the test item stays
    })
    assert not at.exception, at.exception
    assert not at.error and not at.warning
    assert _probe_state(at) == {
        "gc_item_a": item_a, "gc_item_a_source": "sample", "gc_item_a_row": 30, "gc_item_a_col": 20,
        "gc_item_b": item_b, "gc_item_b_source": "sample", "gc_item_b_row": 100, "gc_item_b_col": 110,
    }
    assert at.radio(key="gc_direction").value == "down"
    assert any("centres 90 px apart" in caption for image in at.image for caption in image.captions)
    assert at.query_params["item_a"] == str(item_a) and at.query_params["col_b"] == "110"

    at = open_page("global_context", query={"item_a": "999999", "row_a": "abc", "col_b": "5000", "direction": "up"})
    assert not at.exception, at.exception
    assert not at.error
    assert (at.selectbox(key="gc_item_a").value, at.slider(key="gc_item_a_row").value) == (options[0], 64)
    assert (at.slider(key="gc_item_b_col").value, at.radio(key="gc_direction").value) == (44, "right")


def test_an_uploaded_item_b_is_placed_on_the_canvas_and_every_model_answers_for_it(open_page):
    at = open_page("global_context")
    before = _p_same(at)
    photo = Image.new("L", (60, 80), 240)  # a dark object on a light background, as in a product photo
    photo.paste(20, (22, 8, 38, 72))
    at.file_uploader(key="gc_item_b_upload").set_value(("dark_strip.png", _png(photo), "image/png")).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.radio(key="gc_item_b_source").value == "upload"
    assert any("upload dark_strip.png" in caption for image in at.image for caption in image.captions)
    invert = next(c for c in at.checkbox if c.key.startswith("gc_item_b_invert_"))
    assert invert.value is True  # the lab items are light on black

    after = _p_same(at)
    assert len(after) == len(LAB) and after != before
    items = compute.same_different_test().items
    uploaded = probe.item_from_image(load_image(_png(photo)), invert=True)
    expected = _expected_p_same(items[at.selectbox(key="gc_item_a").value], uploaded, (64, 14), (64, 44))
    assert after == pytest.approx(expected, abs=1e-5)


def test_a_broken_upload_says_why_and_keeps_the_other_item_the_positions_and_the_sweep(open_page):
    at = open_page("global_context")
    options = at.selectbox(key="gc_item_a").options
    at.selectbox(key="gc_item_a").set_value(_item(options[2]))
    at.slider(key="gc_item_a_row").set_value(40)
    at.slider(key="gc_item_b_col").set_value(100)
    at.run()
    at.button(key="gc_sweep_run").click().run()
    kept, p_same = _probe_state(at), _p_same(at)

    noise = bytes(random.Random(0).randrange(256) for _ in range(4096))
    at.file_uploader(key="gc_item_b_upload").set_value(("noise.png", noise, "image/png")).run()
    assert not at.exception, at.exception
    assert len(at.error) == 1
    assert "noise.png" in at.error[0].value and "not an image" in at.error[0].value
    assert _probe_state(at) == {**kept, "gc_item_b_source": "upload"}
    assert not any("your pair: P(same)" in d.value.columns for d in at.dataframe)  # no canvas that is not the one asked for
    assert any("press Sweep distance" in c.value for c in at.caption)  # the sweep is kept, marked stale
    assert len(at.get("plotly_chart")) == 3  # accuracy by distance and both sweep charts

    at.radio(key="gc_item_b_source").set_value("sample").run()
    assert not at.exception, at.exception
    assert not at.error
    assert _probe_state(at) == kept and _p_same(at) == p_same


def _chart(at, name: str) -> dict:
    return next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if name in c.proto.spec)


@pytest.fixture
def small_measurements(monkeypatch):
    """The page's measurements on 20 canvases per bin and 20 pairs, to keep the suite short."""
    from app import intervention_panel

    monkeypatch.setattr(intervention_panel, "PER_BIN", 20)
    monkeypatch.setattr(intervention_panel, "PATCH_PAIRS", 20)
    return 20


def test_a_deep_link_restores_an_intervention_and_measuring_it_shows_the_ablated_curve(open_page, small_measurements):
    from sbcore.analysis.ablation import evaluate_ablations
    from sbcore.analysis.interventions import resolve_components
    from torch.utils.data import DataLoader, Subset

    PER_BIN = small_measurements

    at = open_page("global_context", query={"ablate_model": "sb_lab_resnet14.samediff", "ablate": "layer1.0",
                                            "ablate_mode": "zero"})
    assert not at.exception, at.exception
    assert at.session_state["gc_iv_model"] == "sb_lab_resnet14.samediff"
    assert at.session_state["gc_iv_blocks"] == ["layer1.0"] and at.session_state["gc_iv_mode"] == "zero"
    probe_models = list(_probe_table(at)["model"])
    assert probe_models[-1] == "sb_lab_resnet14.samediff, SB layer1.0 off (zero)"

    at.button(key="gc_iv_run").click().run()
    assert not at.exception, at.exception
    chart = _chart(at, "SB layer1.0 off")
    curves = {t["name"]: t["y"] for t in chart["data"]}
    model = sbcore.create_model("sb_lab_resnet14.samediff", pretrained=True)
    test = compute.same_different_test()
    bins, names = test.sample_groups()
    subset = Subset(test, range(PER_BIN * 5))
    expected = evaluate_ablations(model, DataLoader(subset, 100), [("x", resolve_components(model, ["layer1.0"]))],
                                  "zero", groups=bins[:len(subset)], group_names=names)[0]
    assert curves["intact"] == pytest.approx([g.intact for g in expected.groups])
    assert curves["SB layer1.0 off"] == pytest.approx([g.ablated for g in expected.groups])
    assert max(curves["SB layer1.0 off"]) < 75 and sum(curves["intact"]) / 5 > 90  # zeroing layer1.0 breaks the model
    assert any("Switching off **SB layer1.0** (zero ablation) drops accuracy at 94-108 px" in m.value for m in at.markdown)
    assert "ablate_mode=zero" in "&".join(f"{k}={v}" for k, v in at.query_params.items())


def test_ranking_every_block_shows_ablation_and_patching_per_component(open_page, small_measurements):
    at = open_page("global_context", gc_iv_model="sbnl_lab_resnet14.samediff", gc_iv_mode="mean")
    at.button(key="gc_rank_run").click().run()
    assert not at.exception, at.exception
    table = next(d.value for d in at.dataframe if "carries the relation (patching)" in d.value.columns)
    assert list(table["switched off"]) == ["SB layer1.0", "SB layer2.0", "NL layer2.0", "SB layer3.0", "SB layer3.1",
                                           "NL layer3.1", "all"]
    assert table["far change (points)"].min() < -5  # some component matters far away
    assert table["carries the relation (patching)"].between(-1, 2).all()


def test_the_tour_stops_here_with_the_probe_far_apart_an_intervention_ready_and_links_inside(open_page):
    from app import tour

    index = next(i for i, stop in enumerate(tour.STOPS) if stop.page == "global_context")
    at = open_page("global_context", query={**tour.STOPS[index].params, "tour": str(index + 1)})
    assert not at.exception, at.exception
    assert any(m.value.startswith(f"**Tour, stop {index + 1} of {len(tour.STOPS)}: Two items far apart")
               for m in at.markdown)
    assert at.session_state["gc_iv_blocks"] == ["layer3.0"]
    assert any("centres 96 px apart" in caption for image in at.image for caption in image.captions)
    accuracy = dict(zip(_probe_table(at)["model"], _probe_table(at)["accuracy, 100 pairs"]))
    low, high = (float(v) for v in accuracy["plain"].split("[")[1].rstrip("]").split(","))
    assert low <= 50 <= high  # beyond its reach the plain model is at chance over many pairs
    assert float(accuracy["SB"].split("%")[0]) > 90
    links = {link.proto.label: link.proto for link in at.get("page_link")}
    explore = next(link for label, link in links.items() if label.startswith("Explore:"))
    assert explore.page == "explore"
    assert explore.query_string == "model=sb_lab_resnet14.samediff&source=sample&sample=samediff_far_bags.png"
    erf = next(link for label, link in links.items() if label.startswith("Effective receptive field:"))
    assert erf.page == "receptive_field" and "models=lab_resnet14.samediff%2Csb_lab_resnet14.samediff" in erf.query_string
    at = open_page("global_context", query={"tour": "²"})
    assert not at.exception, at.exception
    assert not any(m.value.startswith("**Tour, stop") for m in at.markdown)


def test_a_sweep_is_not_marked_stale_after_another_page_when_nothing_changed(open_page):
    at = open_page("global_context")
    at.button(key="gc_sweep_run").click().run()
    assert not any("earlier settings" in c.value for c in at.caption)
    at.switch_page("views/explore.py").run()
    at.switch_page("views/global_context.py").run()
    assert not at.exception, at.exception
    assert len(at.get("plotly_chart")) == 3  # the sweep is still shown
    assert not any("earlier settings" in c.value for c in at.caption)
    at.slider(key="gc_item_a_col").set_value(20).run()  # a real change marks it
    assert any("earlier settings" in c.value for c in at.caption)


def test_attributing_the_probe_canvas_shows_every_models_map_and_its_evidence_on_each_item(open_page):
    at = open_page("global_context", query={"row_a": "64", "col_a": "14", "row_b": "64", "col_b": "110"})
    assert at.selectbox(key="gc_look_method").value == "input_x_gradient"
    at.button(key="gc_look_run").click().run()
    assert not at.exception, at.exception
    shares = [c.value for c in at.caption if c.value.startswith("item a ")]
    assert len(shares) == 4
    for line in shares:
        values = [float(part.split()[-1].rstrip("%")) for part in line.split(" · ")]
        assert sum(values) == pytest.approx(100, abs=2)  # rounded shares of one whole
    answers = [m.value for m in at.markdown if "(P(same)" in m.value]
    assert [a.split("**")[1] for a in answers] == ["plain", "SB", "NL", "SB+NL"]
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    maps = [t for chart in charts for t in chart["data"] if t["type"] == "heatmap"]
    assert len(maps) == 4 and all(t["zmin"] == -1.0 and t["zmax"] == 1.0 for t in maps)  # signed, centred
    at.slider(key="gc_item_b_col").set_value(100).run()
    assert any("earlier settings" in c.value for c in at.caption)  # the maps stay, marked stale
