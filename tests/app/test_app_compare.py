"""Compare attributions page: default render, switching method/target/models, bad upload."""
from __future__ import annotations

import base64
import json

import numpy as np

import sbcore


def _predictions(at) -> list[str]:
    return [m.value for m in at.markdown if m.value.startswith("Predicted:")]


def test_nothing_runs_before_a_click_then_the_four_shipped_models_are_compared_with_integrated_gradients(open_page):
    at = open_page("compare")
    assert not at.exception, at.exception
    assert at.multiselect(key="compare_models").value == [
        "resnet38.fmnist", "sb_resnet38.fmnist", "nl_resnet38.fmnist", "sbnl_resnet38.fmnist"
    ]
    assert at.selectbox(key="compare_method").value == "integrated_gradients"
    assert not _predictions(at) and "press Run" in at.info[0].value
    at.button(key="compare_run").click().run()
    assert not at.exception, at.exception
    assert len(_predictions(at)) == 4
    errors = [float(c.value.split("Completeness error: ")[1].split("%")[0]) for c in at.caption
              if c.value.startswith("Completeness error")]
    assert len(errors) == 4 and all(error < 5 for error in errors)


def test_a_link_with_five_models_selects_the_first_four_known_ones(open_page):
    five = ["nl_resnet38.fmnist", "resnet38.fmnist", "sbnl_resnet38.fmnist", "sb_resnet38.fmnist", "lab_resnet14.samediff"]
    assert set(five) <= set(sbcore.list_models(pretrained=True))
    at = open_page("compare", query={"models": ",".join(["no_such_model", *five])})
    assert not at.exception, at.exception
    assert at.multiselect(key="compare_models").value == five[:4]


def test_a_link_naming_one_model_three_times_selects_it_once_and_asks_for_a_second(open_page):
    at = open_page("compare", query={"models": "sb_resnet38.fmnist,sb_resnet38.fmnist,sb_resnet38.fmnist"})
    assert not at.exception, at.exception
    assert at.multiselect(key="compare_models").value == ["sb_resnet38.fmnist"]
    assert [w.value for w in at.warning] == ["Pick at least two models to compare."]


def test_one_target_class_and_another_method_for_two_models(open_page):
    at = open_page(
        "compare", compare_models=["resnet38.fmnist", "sb_resnet38.fmnist"], compare_method="saliency"
    )
    assert not at.exception, at.exception
    classes = sbcore.create_model("resnet38.fmnist", pretrained=True).metadata.class_names
    at.selectbox(key="compare_target").set_value(classes.index("Bag")).run()
    at.button(key="compare_run").click().run()
    assert not at.exception, at.exception
    assert len(_predictions(at)) == 2
    assert [c.value for c in at.caption if c.value.startswith("Attributing class")] == ["Attributing class: Bag"] * 2
    at.selectbox(key="compare_method").set_value("grad_cam").run()
    assert not at.exception, at.exception
    assert any("earlier settings" in c.value for c in at.caption) and len(_predictions(at)) == 2
    assert at.selectbox(key="compare_stage").value == "layer3"


def test_fewer_than_two_models_asks_for_more(open_page):
    at = open_page("compare", compare_models=["sb_resnet38.fmnist"])
    assert not at.exception, at.exception
    assert "at least two" in at.warning[0].value
    assert not _predictions(at)


def test_bad_upload_shows_the_error_instead_of_maps(open_page):
    at = open_page("compare", compare_models=["resnet38.fmnist", "sb_resnet38.fmnist"], compare_method="saliency")
    at.file_uploader(key="compare_upload").set_value(("empty.webp", b"", "image/webp")).run()
    assert not at.exception, at.exception
    assert at.radio(key="compare_source").value == "upload"
    assert len(at.error) == 1 and "empty" in at.error[0].value
    assert not _predictions(at)


def test_the_default_run_scores_every_map_beside_a_random_map(open_page):
    at = open_page("compare", compare_models=["resnet38.fmnist", "sb_resnet38.fmnist"])
    at.button(key="compare_run").click().run()
    assert not at.exception, at.exception
    verdicts = [c.value for c in at.caption if c.value.startswith("Deletion AUC")]
    assert len(verdicts) == 2 and all("than a random map's" in v and "randomisation check" in v for v in verdicts)
    (table,) = [d.value for d in at.dataframe]
    assert len(table) == 2 * 5 and set(table["better"]) == {"lower is better", "higher is better"}
    deletion = table[table["metric"] == "Deletion AUC"]
    assert (deletion["this map"] < deletion["random map"]).all()  # IG finds what the prediction rests on


def test_integrated_gradients_that_cannot_converge_warns_and_names_the_remedies(open_page):
    classes = sbcore.create_model("nl_resnet38.fmnist", pretrained=True).metadata.class_names
    at = open_page("compare", compare_models=["nl_resnet38.fmnist", "sbnl_resnet38.fmnist"],
                   compare_sample="fmnist_0000_ankle_boot.png", compare_target=classes.index("Sneaker"),
                   compare_baseline="black", compare_faithfulness=False)
    at.button(key="compare_run").click().run()
    assert not at.exception, at.exception
    (warning,) = [w.value for w in at.warning]
    assert warning.startswith("**Integrated Gradients did not converge for nl_resnet38.fmnist (off by 48% after 256 steps)")
    assert "tick More IG steps, or choose another baseline" in warning and "not reliable" in warning
    at.radio(key="compare_baseline").set_value("mean").run()
    at.button(key="compare_run").click().run()
    assert not at.exception, at.exception
    assert not at.warning  # the dataset-mean baseline converges for both


def _values(encoded) -> np.ndarray:
    """A plotly array: a plain list, or its binary form {"dtype", "bdata", "shape"}."""
    if isinstance(encoded, dict):
        flat = np.frombuffer(base64.b64decode(encoded["bdata"]), dtype=encoded["dtype"])
        return flat.reshape([int(n) for n in str(encoded.get("shape", len(flat))).split(",")])
    return np.array(encoded, dtype=float)


def _map_traces(at) -> list[dict]:
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    return [trace for chart in charts for trace in chart["data"] if trace["type"] == "heatmap"]


def test_signed_methods_keep_their_sign_on_a_scale_centred_on_zero_and_can_switch_to_magnitude(open_page):
    at = open_page("compare", compare_models=["resnet38.fmnist", "sb_resnet38.fmnist"],
                   compare_method="input_x_gradient", compare_faithfulness=False)
    at.button(key="compare_run").click().run()
    traces = _map_traces(at)
    assert len(traces) == 2 and all((t["zmin"], t["zmax"]) == (-1.0, 1.0) for t in traces)
    values = _values(traces[0]["z"])
    assert values.min() < 0 < values.max()  # evidence against the class is kept, not folded into |x|
    assert at.selectbox(key="compare_signed_cmap").value == "RdBu_r"
    assert any("centred on zero: red is evidence for the class" in c.value for c in at.caption)
    at.radio(key="compare_values").set_value("magnitude").run()
    traces = _map_traces(at)
    assert all((t["zmin"], t["zmax"]) == (0.0, 1.0) for t in traces) and _values(traces[0]["z"]).min() >= 0
    assert at.selectbox(key="compare_cmap").value == "inferno"


def test_a_magnitude_only_method_offers_no_signed_view(open_page):
    at = open_page("compare", compare_models=["resnet38.fmnist", "sb_resnet38.fmnist"], compare_method="saliency",
                   compare_faithfulness=False)
    at.button(key="compare_run").click().run()
    assert not [r for r in at.radio if r.key == "compare_values"]
    assert any("magnitudes only" in c.value for c in at.caption)
    assert all(t["zmin"] == 0.0 for t in _map_traces(at))
    at.selectbox(key="compare_method").set_value("input_x_gradient").run()  # not run yet: the shown maps stay magnitudes
    assert any("earlier settings" in c.value for c in at.caption) and all(t["zmin"] == 0.0 for t in _map_traces(at))


def test_link_values_that_name_no_choice_are_left_out_with_a_notice(open_page):
    five = ["nl_resnet38.fmnist", "resnet38.fmnist", "sbnl_resnet38.fmnist", "sb_resnet38.fmnist", "lab_resnet14.samediff"]
    at = open_page("compare", query={"models": ",".join(["no_such_model", *five]), "method": "magic", "opacity": "2"})
    assert not at.exception, at.exception
    (toast,) = [t.value for t in at.toast]
    assert toast.startswith("Left out of the link: ")
    assert "models: no_such_model (not among the choices)" in toast and "lab_resnet14.samediff (at most 4)" in toast
    assert "method=magic (not one of the choices)" in toast and "opacity=2 (not one of the choices)" in toast
    assert at.selectbox(key="compare_method").value == "integrated_gradients"
    at.run()
    assert not at.toast  # said once, not on every rerun


def test_a_link_carries_the_target_class(open_page):
    at = open_page("compare", query={"target": "9"})
    assert at.selectbox(key="compare_target").value == 9
    assert at.query_params["target"] == ["9"] or at.query_params["target"] == "9"
    at = open_page("compare", query={"target": "99"})
    assert at.selectbox(key="compare_target").value == -1 and "target=99 (not one of the choices)" in at.toast[0].value


def test_a_model_over_the_memory_budget_says_so_and_the_others_are_still_compared(open_page, monkeypatch):
    from sbcore.budget import batch_within_budget

    def budget(model, input_size, wanted):  # as if the plain model's input were too large even one at a time
        limit = 1 if model.metadata.pretrained == "resnet38.fmnist" else 2**40
        return batch_within_budget(model, input_size, wanted, limit=limit)

    at = open_page("compare", compare_models=["resnet38.fmnist", "sb_resnet38.fmnist"], compare_method="occlusion",
                   compare_target=4, compare_faithfulness=False)  # settings no other test computed (no cached result)
    monkeypatch.setattr("app.compute.batch_within_budget", budget)
    at.button(key="compare_run").click().run()
    assert not at.exception, at.exception
    (error,) = [e.value for e in at.error]
    assert error.startswith("resnet38.fmnist: ") and "over the 0 MB budget" in error
    assert len(_predictions(at)) == 1  # the SB model's map is shown
