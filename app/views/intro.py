"""What is spatial bias? The landing page: a plain-language explanation, the branch drawn from the
chosen model's real shapes, the paper's claims, how to read each page, and a one-click tour."""
from __future__ import annotations

import streamlit as st
from torch import nn

from app import compute, links, look, state, tour
from sbcore import analysis
from sbcore.lab.same_different import DEFAULT_TASK
from sbcore.paper import ARXIV_URL, PAPER_CLAIMS

PARAMS = [links.Param("model", "intro_model", lambda: sb_models())]
PAGE_GUIDE = {
    "Explore": "one image through one model. Read the prediction first (and the notice beside it: is the image like "
               "the training data?), then the maps each spatial-bias branch adds, and, for non-local models, where a "
               "clicked point looks.",
    "Global context": "the lab: are two items on one large canvas the same class? Accuracy is plotted by the items' "
                      "distance; past the dotted line no unit of a plain network sees both, so it can be right on at "
                      "most 3 of the 4 pair types (75%): a model above that line there uses global context. Place two items yourself and read every model's "
                      "P(same).",
    "Compare attributions": "the same image and class for two to four models. Coloured pixels are the evidence "
                            "each model used (red for the class, blue against it); the colour scale is shared, so "
                            "compare where, not how much. Under each map, its faithfulness beside a random map's: "
                            "a map that does no better than random, or that barely changes when the model's "
                            "weights are randomised, is not evidence.",
    "Effective receptive field": "how far a stage's centre output can see. The dotted line marks what its "
                                 "convolutions alone reach; a tail past it is global context.",
    "Throughput": "how fast the architectures run on this machine, beside the paper's speed and parameter claims.",
    "Models": "what each model is, costs and scores, in a sentence first, with its full card below.",
}


def sb_models() -> list[str]:
    """Models on offer that have a spatial-bias branch to draw (shipped first)."""
    return [name for name in state.model_names(untrained=True) if name.startswith(("sb_", "sbnl_"))]


def explanation() -> None:
    st.title("What is spatial bias?")
    st.markdown(
        "A convolution sees only a small window, so an ordinary ResNet learns how far-apart parts of an image "
        "relate only late, if at all. **Non-local blocks** fix that with attention: every position compares itself "
        "with every other one, which is costly. **Spatial bias** (Go & Ryu, 2023) gets global context without "
        "attention: a tiny branch in each block squeezes the features into a few channels and a coarse grid, mixes "
        "all grid cells with one 1D convolution, and stacks the resulting few *spatial-bias maps* onto the block's "
        "features, so the next convolution sees local detail and a summary of the whole image together."
    )


def branch_diagram(model: nn.Module, name: str) -> None:
    """The branch of the model's first spatial-bias block, with its real tensor shapes."""
    steps = compute.branch_shapes(model, state.model_key(name))
    (c, h, w), (k, _, _), (_, r, _), (n, _, _), (_, h2, w2) = (step.shape for step in steps)
    block = analysis.spatial_bias_blocks(model)[0]
    st.subheader(f"The branch, with {name}'s shapes (block {block})")
    # Three rows of three boxes with short lines, the branch snaking back in the second row: drawn at its own
    # size, never scaled down to the column (one long row of boxes had ~5 px text at 1280 px).
    size = 20 if look.presenting() else 14
    box = f'shape=box style="rounded,filled" fillcolor="{{}}" fontname="Helvetica" fontsize={size}'
    dot = f"""digraph {{
        rankdir=TB; nodesep=0.3; ranksep=0.3; node [{box.format('#eef3fb')}];
        input [label="block features\\nC = {c} channels\\n{h} x {w}"];
        reduce [label="1x1 conv, BN,\\nReLU to\\nK = {k} channels"];
        pool [label="average pool\\nto R x R\\n= {r} x {r}"];
        mix [label="Conv1d over\\nR*R = {r * r} grid\\npositions, kernel\\n3 along K", {box.format('#fde9c8')}];
        maps [label="N = {n} maps\\n{r} x {r}, upsampled\\nto {h2} x {w2}"];
        local [label="the block's path:\\n3x3 conv output\\n{c} x {h2} x {w2}"];
        concat [label="concat\\n{c} + {n} channels", {box.format('#e3f4e1')}];
        out [label="BN, ReLU,\\n1x1 conv -> {4 * c},\\n+ residual"];
        {{rank=same; input; reduce; pool}} {{rank=same; local; maps; mix}} {{rank=same; concat; out}}
        input -> reduce -> pool -> mix; maps -> mix [dir=back]; maps -> concat;
        input -> local; local -> concat -> out; local -> maps [style=invis];
    }}"""
    st.graphviz_chart(dot)
    st.caption(
        f"Each of the {r * r} grid positions is a channel of the 1D convolution, so every output map mixes every "
        f"region of the image: that is the global (non-local) part, with {r * r * r * r * 3 + r * r:,} weights "
        f"instead of an attention matrix over all {h * w} positions."
    )


def claims() -> None:
    st.subheader("What the paper claims")
    low, high = PAPER_CLAIMS["throughput_sb_over_nl"]
    side = DEFAULT_TASK.canvas_size
    st.markdown(
        f"From [{PAPER_CLAIMS['source']}]({ARXIV_URL}):\n"
        f"- About {PAPER_CLAIMS['added_params_nl_over_sb']:.0f}x fewer added parameters than non-local blocks.\n"
        f"- {low}x to {high}x more images per second than the non-local network.\n"
        "- ImageNet-1K top-1 of ResNet-50 +0.79; CIFAR-100 top-1 about +1.5 (ResNet-38 error 23.98 -> 22.44).\n"
        "- Spatial bias and non-local blocks together beat either alone.\n\n"
        "The Throughput and Models pages measure the cost claims on this machine. The models here are small: "
        "ResNet-38s trained on Fashion-MNIST (28x28, `*.fmnist`), where every stage-3 network already sees the "
        f"whole image, and, for the Global context lab, ResNet-14s trained on {side}x{side} same-different "
        "canvases (`*.samediff`), where two items can sit further apart than a plain network reaches."
    )


def page_guide() -> None:
    st.subheader("How to read each page")
    st.markdown("\n".join(f"- **{page}**: {text}" for page, text in PAGE_GUIDE.items()))


def tour_links() -> None:
    st.subheader("Take the tour")
    st.caption("Each stop opens a page with a model and an image already chosen, and says what to look at.")
    for index in range(len(tour.STOPS)):
        tour.stop_link(index)


explanation()
names = sb_models()
state.default_model("intro_model", untrained=True)
if st.session_state["intro_model"] not in names:
    st.session_state["intro_model"] = names[0]
links.pull(PARAMS)
name = st.selectbox("Draw the branch of", names, format_func=state.model_label, key="intro_model")
links.push(PARAMS)
branch_diagram(state.get_model(name), name)
claims()
page_guide()
tour_links()
