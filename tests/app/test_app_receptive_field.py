"""Effective receptive field page: default render, computing on samples and noise, bad uploads."""
from __future__ import annotations

TWO_MODELS = ["resnet38.fmnist", "sb_resnet38.fmnist"]


def test_default_render_offers_the_shipped_models_and_waits_for_compute(open_page):
    at = open_page("receptive_field")
    assert not at.exception, at.exception
    assert len(at.multiselect(key="erf_models").value) == 4
    assert at.selectbox(key="erf_stage").value == "layer1"  # where reach beyond the theoretical field can show
    assert "press Compute" in at.info[0].value


def test_compute_on_samples_then_noise_gives_one_row_per_model(open_page):
    at = open_page("receptive_field", erf_models=TWO_MODELS, erf_count=2, erf_stage="layer2")
    at.button(key="erf_run").click().run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert list(table["model"]) == TWO_MODELS
    assert (table["images"] == 2).all() and (table["stage"] == "layer2").all()
    assert ((table["area 99%"] > 0) & (table["area 99%"] <= 1)).all()

    at.radio(key="erf_source").set_value("noise").run()
    assert any("earlier settings" in c.value for c in at.caption)
    at.button(key="erf_run").click().run()
    assert not at.exception, at.exception
    assert not any("earlier settings" in c.value for c in at.caption)


def test_untrained_imagenet_model_is_labelled_untrained(open_page):
    at = open_page("receptive_field", erf_models=["resnet50"], erf_count=1, erf_source="noise", erf_stage="layer1")
    at.button(key="erf_run").click().run()
    assert not at.exception, at.exception
    assert list(at.dataframe[0].value["model"]) == ["resnet50 (untrained)"]


def test_uploads_skip_bad_files_with_an_error(open_page, sample_bytes):
    at = open_page("receptive_field", erf_models=TWO_MODELS, erf_source="uploads", erf_count=2)
    good = sample_bytes("fmnist_0009_sneaker.png")
    at.file_uploader(key="erf_uploads").set_value(
        [("sneaker.png", good, "image/png"), ("broken.png", good[:40], "image/png")]
    ).run()
    assert not at.exception, at.exception
    assert len(at.error) == 1 and "broken.png" in at.error[0].value
    at.button(key="erf_run").click().run()
    assert not at.exception, at.exception
    assert (at.dataframe[0].value["images"] == 1).all()


def test_compute_twice_with_the_same_settings_reuses_the_result(open_page):
    at = open_page("receptive_field", erf_models=["resnet38.fmnist"], erf_count=1, erf_source="noise")
    at.button(key="erf_run").click().run()
    assert not at.exception, at.exception
    first = at.dataframe[0].value
    at.button(key="erf_run").click().run()  # a cache hit: no widget call may be replayed from inside the cache
    assert not at.exception, at.exception
    assert at.dataframe[0].value.equals(first)


def test_a_link_naming_many_models_builds_only_the_four_the_page_can_show(open_page):
    from app import state

    state.loaded_models.clear()  # whatever earlier tests in this process built
    names = ["resnet38", "sb_resnet38", "nl_resnet38", "sbnl_resnet38", "resnet101", "sbnl_resnet101"]
    at = open_page("receptive_field", query={"models": ",".join(names), "stage": "layer1", "source": "noise"})
    assert not at.exception, at.exception
    assert at.multiselect(key="erf_models").value == names[:4]
    built = {name for name, _ in state.loaded_models().keys()}
    assert not built & set(names)  # opening builds nothing: the stages come from the architectures alone


def test_a_link_to_four_large_models_lists_their_stages_without_building_them(open_page):
    from app import state

    state.loaded_models.clear()
    names = ["sbnl_resnet101", "nl_resnet101", "sb_resnet101", "resnet101"]
    at = open_page("receptive_field", query={"models": ",".join(names), "stage": "layer4", "source": "noise"})
    assert not at.exception, at.exception
    assert at.selectbox(key="erf_stage").value == "layer4"
    assert at.selectbox(key="erf_stage").options == ["layer1", "layer2", "layer3", "layer4"]
    assert not {name for name, _ in state.loaded_models().keys()} & set(names)
