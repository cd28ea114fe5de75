"""What a session keeps: settings in the URL, results marked stale instead of deleted, results and
controls kept when the user leaves a page and comes back, and the page guard."""
from __future__ import annotations

import pytest

from app import compute

TWO = ["resnet38.fmnist", "sb_resnet38.fmnist"]


def _predictions(at) -> list[str]:
    return [m.value for m in at.markdown if m.value.startswith("Predicted:")]


def _away_and_back(at, page: str):
    at.switch_page("views/models.py").run()
    assert not at.exception, at.exception
    return at.switch_page(f"views/{page}.py").run()


def test_a_prepared_link_opens_the_same_model_and_image_and_the_url_follows_the_controls(open_page):
    at = open_page("explore", query={"model": "nl_resnet38.fmnist", "source": "sample", "sample": "fmnist_0018_bag.png"})
    assert not at.exception, at.exception
    assert at.selectbox(key="explore_model").value == "nl_resnet38.fmnist"
    assert any("fmnist_0018_bag.png: 28x28" in caption for image in at.image for caption in image.captions)
    at.selectbox(key="explore_model").set_value("sb_resnet38.fmnist").run()
    assert at.query_params["model"] == "sb_resnet38.fmnist"  # the link to share now names the new model
    assert at.query_params["sample"] == "fmnist_0018_bag.png"


def test_a_link_is_applied_though_another_page_wrote_the_same_parameter_name(open_page):
    at = open_page("intro", intro_model="sbnl_resnet38.fmnist")  # the intro writes model=sbnl_resnet38.fmnist
    assert at.query_params["model"] == "sbnl_resnet38.fmnist"
    at.switch_page("views/explore.py")
    at.query_params = {"model": "sbnl_resnet38.fmnist"}  # a tour link naming the same model for explore
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="explore_model").value == "sbnl_resnet38.fmnist"


def test_a_link_naming_nothing_known_keeps_the_defaults(open_page):
    at = open_page("explore", query={"model": "no_such_model", "sample": "../../etc/passwd"})
    assert not at.exception, at.exception
    assert at.selectbox(key="explore_model").value == "sb_resnet38.fmnist"
    assert at.selectbox(key="explore_sample").value == "fmnist_0000_ankle_boot.png"


def test_compare_result_is_marked_stale_not_deleted_and_survives_leaving_the_page(open_page):
    at = open_page("compare", compare_models=TWO, compare_method="saliency")
    at.button(key="compare_run").click().run()
    assert len(_predictions(at)) == 2 and not any("earlier settings" in c.value for c in at.caption)
    at.selectbox(key="compare_method").set_value("grad_cam").run()
    assert any("earlier settings" in c.value for c in at.caption) and len(_predictions(at)) == 2
    at = _away_and_back(at, "compare")
    assert at.selectbox(key="compare_method").value == "grad_cam"  # the control as it was left
    assert len(_predictions(at)) == 2 and any("earlier settings" in c.value for c in at.caption)


def test_receptive_field_result_survives_leaving_the_page(open_page):
    at = open_page("receptive_field", erf_models=TWO, erf_count=1, erf_source="noise")
    at.button(key="erf_run").click().run()
    assert not at.exception, at.exception
    at = _away_and_back(at, "receptive_field")
    assert list(at.dataframe[0].value["model"]) == TWO
    assert at.selectbox(key="erf_stage").value == "layer1" and at.radio(key="erf_source").value == "noise"
    assert not any("earlier settings" in c.value for c in at.caption)


def test_throughput_result_survives_leaving_the_page(open_page):
    at = open_page("throughput", speed_models=["sb_resnet38"], speed_batches=[1], speed_time=1.0, speed_rounds=3,
                   speed_side=16, speed_channels=1)
    at.button(key="speed_run").click().run()
    assert not at.exception, at.exception
    at = _away_and_back(at, "throughput")
    assert list(at.dataframe[0].value["Model"]) == ["sb_resnet38"]
    assert at.multiselect(key="speed_models").value == ["sb_resnet38"]


def test_explore_and_models_keep_their_controls_when_left(open_page):
    at = open_page("explore")
    at.selectbox(key="explore_block").set_value("layer1.0")
    at.slider(key="explore_opacity").set_value(0.3).run()
    at = _away_and_back(at, "explore")
    assert at.selectbox(key="explore_block").value == "layer1.0" and at.slider(key="explore_opacity").value == 0.3
    at.switch_page("views/models.py").run()
    at.selectbox(key="models_model").set_value("nl_resnet38.fmnist").run()
    at = _away_and_back(at, "models")
    assert at.selectbox(key="models_model").value == "nl_resnet38.fmnist"
    assert any(m.value.startswith("**nl_resnet38.fmnist** is a") for m in at.markdown)  # the summary comes first


def test_an_unexpected_error_is_one_sentence_without_paths_and_the_session_goes_on(open_page, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("internal failure in /srv/secret/app/compute.py")

    at = open_page("explore")
    with monkeypatch.context() as patch:
        patch.setattr(compute, "maps", broken)
        at.slider(key="explore_opacity").set_value(0.4).run()
        assert not at.exception, at.exception
        assert len(at.error) == 1 and at.error[0].value.startswith("Something went wrong on this page")
        assert "/srv" not in at.error[0].value and "Traceback" not in at.error[0].value
    at.run()
    assert not at.error and _predictions(at)


@pytest.mark.parametrize("present", [True, False])
def test_presentation_mode_is_a_switch_kept_in_the_url(open_page, present):
    at = open_page("explore", query={"present": "True"} if present else {})
    assert at.toggle(key="present").value is present
    at.toggle(key="present").set_value(not present).run()
    assert (at.query_params.get("present") == "True") is (not present)


def test_a_run_stopped_half_way_shows_what_it_finished_with_a_warning(open_page):
    at = open_page("compare", compare_models=TWO, compare_method="saliency")
    at.button(key="compare_run").click().run()
    stored = at.session_state["_result_compare"]
    first = next(iter(stored.value))
    # What run_attributions leaves behind when Cancel (or a moved control) stops it after one model.
    stored.value, stored.complete = {first: stored.value[first]}, False
    at.run()
    assert not at.exception, at.exception
    assert "stopped before it finished" in at.warning[0].value
    assert len(_predictions(at)) == 1
    at.button(key="compare_run").click().run()
    assert len(_predictions(at)) == 2 and not at.warning
