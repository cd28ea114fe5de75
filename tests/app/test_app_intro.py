"""Landing page: first in the navigation, the branch drawn from a model's real shapes, the paper, the tour."""
from __future__ import annotations

from app import tour


def test_the_app_opens_on_the_landing_page_with_a_diagram_of_the_real_shapes(open_page):
    at = open_page("intro")
    assert not at.exception, at.exception
    assert at.title[0].value == "What is spatial bias?"
    assert at.selectbox(key="intro_model").value == "sb_resnet38.fmnist"
    dot = at.get("graphviz_chart")[0].proto.spec
    assert "R*R = 36" in dot and "C = 16 channels" in dot and "N = 3 maps" in dot  # R = 6, layer1 planes 16, K - 2 maps
    assert any("arxiv.org/abs/2302.12505" in m.value for m in at.markdown)
    assert [link.value for link in at.page_link] == [f"{i + 1}. {stop.title}" for i, stop in enumerate(tour.STOPS)]


def test_a_link_with_a_model_draws_that_model(open_page):
    at = open_page("intro", query={"model": "sb_resnet50"})
    assert not at.exception, at.exception
    assert at.selectbox(key="intro_model").value == "sb_resnet50"
    dot = at.get("graphviz_chart")[0].proto.spec
    assert "R*R = 100" in dot and "C = 64 channels" in dot  # the ImageNet setting, R = 10


def test_a_tour_stop_opens_its_page_with_model_and_image_chosen_and_says_what_to_look_at(open_page):
    stop = tour.STOPS[1]
    at = open_page(stop.page, query={**stop.params, "tour": "2"})
    assert not at.exception, at.exception
    assert at.selectbox(key="explore_model").value == stop.params["model"]
    assert at.selectbox(key="explore_sample").value == stop.params["sample"]
    assert any(m.value.startswith(f"**Tour, stop 2 of {len(tour.STOPS)}") for m in at.markdown)
    assert at.page_link[0].value == f"Next: {tour.STOPS[2].title}"


def test_the_guide_covers_the_global_context_lab_and_its_models(open_page):
    at = open_page("intro")
    assert not at.exception, at.exception
    guide = next(m.value for m in at.markdown if m.value.startswith("- **Explore**"))
    assert "- **Global context**:" in guide
    claims = next(m.value for m in at.markdown if "The Throughput and Models pages" in m.value)
    assert "ResNet-14" in claims and "128x128" in claims and "same-different" in claims
