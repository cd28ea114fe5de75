"""The one-click tour: each stop opens a page with a model, an image and settings preselected (through
the URL parameters of ``app.links``) and says what to look at there."""
from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

_VIEWS = "views"


@dataclass(frozen=True)
class Stop:
    """One tour stop: the page file in views/, its URL parameters and what to look at."""

    page: str
    title: str
    params: dict[str, str]
    look_for: str


STOPS = [
    Stop("explore", "One image through a spatial-bias model",
         {"model": "sb_resnet38.fmnist", "sample": "fmnist_0009_sneaker.png", "source": "sample"},
         "The prediction, then the maps the branches add: coarse 6x6 maps, computed from the whole image, "
         "stacked on the block's local features."),
    Stop("explore", "Where a non-local block looks",
         {"model": "sbnl_resnet38.fmnist", "sample": "fmnist_0018_bag.png", "source": "sample"},
         "Click two far-apart points on the attention chart: the non-local block compares every position "
         "with every other one."),
    Stop("compare", "Which pixels drive each model",
         {"models": "resnet38.fmnist,sb_resnet38.fmnist,nl_resnet38.fmnist,sbnl_resnet38.fmnist",
          "sample": "fmnist_0000_ankle_boot.png", "source": "sample", "method": "occlusion"},
         "Press Run: the four models explain the same class on one colour scale, red for the class, blue against "
         "it; under each map, how faithful it is: does deleting its top pixels first drop the score faster than a "
         "random map's?"),
    Stop("receptive_field", "How far each model reaches",
         {"models": "resnet38.fmnist,sb_resnet38.fmnist", "stage": "layer1", "source": "samples"},
         "Press Compute: at layer1 the plain network cannot see past its 11-pixel receptive field; spatial "
         "bias puts part of its gradient outside it."),
    Stop("global_context", "Two items far apart",
         {"ablate_model": "sb_lab_resnet14.samediff", "ablate": "layer3.0", "ablate_mode": "mean", "col_b": "110"},
         "Accuracy by distance first: beyond the dotted line (the plain network's reach) plain sits at chance, spatial "
         "bias does not. Then the live probe, its items 96 px apart: the plain model gets some pair types right by "
         "luck, but over 100 test pairs it is at 50%. Press Switch off and measure: replacing one block's "
         "spatial-bias maps by their average costs the SB model much of its accuracy. Look inside opens this "
         "canvas on Explore."),
    Stop("models", "What each model costs and scores", {"model": "sb_resnet38.fmnist"},
         "The summary on top; accuracy, recipe and card in the tabs."),
]


def page_path(page: str) -> str:
    """The page file as ``st.page_link`` wants it (relative to app/main.py)."""
    return f"{_VIEWS}/{page}.py"


def stop_link(index: int, label: str | None = None) -> None:
    """A link that opens tour stop ``index`` (0-based) in one click."""
    stop = STOPS[index]
    st.page_link(page_path(stop.page), label=label or f"{index + 1}. {stop.title}",
                 query_params={**stop.params, "tour": str(index + 1)}, icon=":material/arrow_forward:")


def banner() -> None:
    """On a page opened from the tour (``?tour=N``): what to look at, and a link to the next stop."""
    number = st.query_params.get("tour")
    if number is None:
        return
    if not (number.isascii() and number.isdigit()) or not 1 <= int(number) <= len(STOPS):
        del st.query_params["tour"]  # said once, then gone from the URL
        st.toast(f"Left out of the link: tour={number[:20]} (not a tour stop 1-{len(STOPS)})", icon=":material/link_off:")
        return
    index = int(number) - 1
    with st.container(border=True):
        st.markdown(f"**Tour, stop {index + 1} of {len(STOPS)}: {STOPS[index].title}.** {STOPS[index].look_for}")
        if index + 1 < len(STOPS):
            stop_link(index + 1, f"Next: {STOPS[index + 1].title}")
        else:
            st.page_link(page_path("intro"), label="End of the tour: back to the start", icon=":material/school:")
