"""Explore: one image through one model: top-5 with an out-of-distribution notice, the model's view,
spatial-bias maps, one branch step by step, and non-local attention for a clicked query point."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image
from torch import nn

from app import compute, guard, inputs, links, plots, state, tour, widgets
from sbcore import SpatialBias, analysis
from sbcore.analysis.interventions import components
from sbcore.images import model_view

PARAMS = [
    links.Param("model", "explore_model", state.model_names),
    links.Param("source", "explore_source", lambda: ["sample", "upload"]),
    links.Param("sample", "explore_sample", inputs.sample_files),
    links.Param("block", "explore_block", lambda: analysis.spatial_bias_blocks(state.get_model(st.session_state["explore_model"]))),
    links.Param("ablate", "explore_ablate", lambda: [c.name for c in components(state.get_model(st.session_state["explore_model"]))],
                many=True),
    links.Param("ablate_mode", "explore_ablate_mode", lambda: ["mean", "zero"]),
    links.Param("opacity", "explore_opacity", lambda: links.steps(0.0, 1.0, 0.05)),
    links.Param("cmap", "explore_cmap", lambda: plots.COLOUR_MAPS),
    links.Param("values", "explore_values", lambda: list(widgets.VALUES)),
    links.Param("signed_cmap", "explore_signed_cmap", lambda: plots.DIVERGING_MAPS),
    links.Param("map", "explore_map", lambda: list(range(map_count(state.get_model(st.session_state["explore_model"]))))),
]


def map_count(model: nn.Module) -> int:
    """Maps per spatial-bias block of ``model`` (0 without spatial bias)."""
    return next((m.num_maps for m in model.modules() if isinstance(m, SpatialBias)), 0)


def query_params(height: int, width: int) -> list[links.Param]:
    """The non-local query point in the URL (its sliders' keys depend on the input size)."""
    return [links.Param("query_row", f"explore_query_row_{height}", lambda: list(range(height))),
            links.Param("query_col", f"explore_query_col_{width}", lambda: list(range(width)))]


def header() -> None:
    st.title("Explore")
    st.caption(
        "Pick an image and a model: see what it predicts, the pixels it actually sees, the global maps its "
        "spatial-bias branches add, and where its non-local blocks look."
    )
    tour.banner()


def pick_model_and_image() -> tuple[str, inputs.ImageInput | None]:
    """The model and image pickers, side by side."""
    names = state.model_names()
    picker_model, picker_image = st.columns([1, 2])
    name = picker_model.selectbox("Model", names, format_func=state.model_label, key="explore_model")
    with picker_image:
        picked = inputs.image_picker("explore")
    return name, picked


def query_point(height: int, width: int) -> tuple[str, str, tuple[float, float]]:
    """Session keys of the non-local query sliders and the query as (row, col) fractions."""
    row_key, col_key = f"explore_query_row_{height}", f"explore_query_col_{width}"
    links.pull(query_params(height, width))
    st.session_state.setdefault(row_key, height // 2)
    st.session_state.setdefault(col_key, width // 2)
    return row_key, col_key, ((st.session_state[row_key] + 0.5) / height, (st.session_state[col_key] + 0.5) / width)


def prediction_row(name: str, model: nn.Module, picked: inputs.ImageInput, image: Image.Image,
                   query: tuple[float, float]) -> tuple[np.ndarray, bool, analysis.MapsResult]:
    """The original, the model's view and the top-5 with its familiarity; returns (view, invert, maps)."""
    meta = model.metadata
    channels, height, width = meta.preprocessing.input_size
    original, seen, predicted = st.columns([1, 1, 1.4])
    with seen:
        invert_key = f"explore_invert_{picked.digest}_{name}"  # a default through session state only (see Compare)
        st.session_state.setdefault(invert_key, meta.preprocessing.dark_background and inputs.light_background(image))
        invert = st.checkbox("Invert colours", key=invert_key, help=inputs.INVERT_HELP)
    view = model_view(image, meta.preprocessing, invert)
    result = compute.maps(model, state.model_key(name), picked.data, invert, query)
    with original:
        st.image(plots.display_image(image), caption=f"{picked.name}: {image.width}x{image.height}", width="stretch")
    with seen:
        st.image(plots.enlarge(view), caption=f"As the model sees it: {channels}x{height}x{width}", width="stretch")
        plots.download("Model input PNG", plots.png_bytes(view), f"{picked.name}_model_input.png", key="explore_view_png")
    with predicted:
        widgets.prediction(result.predictions[0], compute.familiarity(model, name, picked.data, invert))
        if picked.label:
            st.caption(f"True label: {picked.label}")
        if not meta.metrics:
            st.caption("This checkpoint records no test accuracy: its predictions may mean little.")
        frame = pd.DataFrame(
            {"rank": range(1, len(result.predictions) + 1), "class": [p.label for p in result.predictions],
             "probability": [p.probability for p in result.predictions]}
        )
        plots.show_chart(plots.predictions_figure(frame), "explore_top5", f"{name}_top5", frame)
    return view, invert, result


def switched_off(name: str, model: nn.Module, picked: inputs.ImageInput, invert: bool,
                 intact: analysis.MapsResult) -> None:
    """Choose SB / NL components to switch off; shows the top-5 and every block's first map, intact beside
    switched off."""
    found = {c.name: c.label for c in components(model)}
    st.header("Switch global context off")
    kept = [c for c in st.session_state.get("explore_ablate", []) if c in found]
    st.session_state["explore_ablate"] = kept
    trained = bool(model.metadata.training.get("dataset"))
    modes = ["mean", "zero"] if trained else ["zero"]
    if st.session_state.get("explore_ablate_mode") not in modes:
        st.session_state["explore_ablate_mode"] = modes[0]
    left, right = st.columns([3, 2])
    chosen = left.multiselect("Switch off", list(found), format_func=found.get, key="explore_ablate",
                              help="SB: a block's spatial-bias maps; NL: a non-local block's added term. The model's "
                                   "weights stay as they are.")
    mode = right.radio("Replace by", modes, key="explore_ablate_mode", horizontal=True,
                       help="mean: the average over 512 training images (what the next layers expect, without what "
                            "depends on this image); zero: zeros." + ("" if trained else
                            " This model records no training set, so only zero is offered."))
    if not chosen:
        st.caption("Pick blocks to see the prediction and the maps without them, beside the intact ones.")
        return
    key = state.model_key(name)
    predictions, ablated_maps = compute.under_intervention(model, key, picked.data, invert, tuple(chosen), mode)
    _, intact_maps = compute.under_intervention(model, key, picked.data, invert, (), mode)
    probabilities = {p.label: p.probability for p in predictions}
    frame = pd.DataFrame({"class": [p.label for p in intact.predictions],
                          "intact": [p.probability for p in intact.predictions],
                          "switched off": [probabilities.get(p.label, 0.0) for p in intact.predictions]})
    top = predictions[0]
    st.markdown(f"With {', '.join(found[c] for c in chosen)} switched off ({mode}): predicted **{top.label}** "
                f"({top.probability:.1%}); intact: **{intact.predictions[0].label}** "
                f"({intact.predictions[0].probability:.1%}).")
    st.dataframe(frame, hide_index=True, column_config={
        column: st.column_config.ProgressColumn(column, min_value=0.0, max_value=1.0, format="%.3f")
        for column in ("intact", "switched off")})
    blocks = list(intact_maps)
    if blocks:
        pairs = [m for block in blocks for m in (intact_maps[block][0], ablated_maps[block][0])]
        titles = [f"{block} {kind}" for block in blocks for kind in ("intact", "switched off")]
        signed, cmap = widgets.chosen_display("explore")
        pairs = pairs if signed else [np.abs(m) for m in pairs]
        plots.show_chart(plots.heatmap_grid(pairs, titles, cmap=cmap, columns=2, height_per_row=200, centred=signed),
                         "explore_ablated_maps", f"{name}_maps_switched_off", plots.map_frame(pairs[1]))
        st.caption("Map 1 of every spatial-bias block as the block used it: the replacement where it is switched "
                   "off, and maps recomputed from the changed features in the blocks after it.")


def spatial_bias_maps(name: str, blocks: list[str], view: np.ndarray, result: analysis.MapsResult) -> tuple[str, tuple[bool, str]]:
    """One block's maps over the input and as computed; returns (block, (signed, colour map))."""
    height, width = view.shape[:2]
    st.header("Spatial-bias maps")
    controls = st.columns(4)
    if st.session_state.get("explore_block") not in blocks:
        st.session_state["explore_block"] = blocks[-1]
    block = controls[0].selectbox("Block", blocks, key="explore_block")
    maps = result.spatial_bias[block]
    map_index = controls[1].selectbox(
        "Map", range(len(maps.raw)), format_func=lambda i: f"map {i + 1} of {len(maps.raw)}", key="explore_map"
    )
    st.session_state.setdefault("explore_opacity", 0.6)
    opacity = controls[2].slider("Opacity", 0.0, 1.0, step=0.05, key="explore_opacity")
    with controls[3]:
        signed, cmap = widgets.value_display("explore")
    stats = maps.stats[map_index]
    shown = maps.upsampled[map_index] if signed else np.abs(maps.upsampled[map_index])
    low, high = plots.centred_range(shown) if signed else (0.0, float(shown.max()) or 1.0)
    overlay, raw = st.columns([1.2, 1])
    with overlay:
        figure = plots.image_figure(
            view, shown, cmap=cmap, opacity=opacity, zmin=low, zmax=high,
            title=f"{block}, map {map_index + 1}, upsampled to {height}x{width}",
        )
        plots.show_chart(figure, "explore_overlay", f"{name}_{block}_map{map_index + 1}")
        st.caption(f"min {stats['min']:.3g} · mean {stats['mean']:.3g} · max {stats['max']:.3g}"
                   + (f" · colour scale centred on zero: {plots.sign_legend(cmap)}" if signed else " · |value|"))
        plots.download(
            "Overlay PNG", plots.overlay_png(view, shown, cmap, opacity, low, high),
            f"{name}_{block}_map{map_index + 1}.png", key="explore_overlay_png",
        )
    with raw:
        grid = maps.raw.shape[-1]
        titles = [f"map {i + 1} ({grid}x{grid})" for i in range(len(maps.raw))]
        raw_maps = list(maps.raw) if signed else [np.abs(m) for m in maps.raw]
        plots.show_chart(
            plots.heatmap_grid(raw_maps, titles, cmap=cmap, columns=len(titles), height_per_row=240, centred=signed),
            "explore_raw", f"{name}_{block}_raw_maps", plots.map_frame(maps.raw[map_index]),
        )
        st.caption(
            "The raw R x R maps the branch computes, on one colour scale. Each is stacked on the block's 3x3-conv "
            "output and mixed with the local features by the block's last 1x1 conv."
        )
    return block, (signed, cmap)


def branch_steps(name: str, model: nn.Module, picked: inputs.ImageInput, invert: bool, block: str,
                 display: tuple[bool, str]) -> None:
    """The branch of ``block`` one step at a time, with shapes and a sentence per step."""
    st.header("Inside one spatial-bias branch")
    steps = compute.branch_steps(model, state.model_key(name), picked.data, invert, block)
    index = st.select_slider(
        "Step", options=range(len(steps)), format_func=lambda i: f"{i + 1}. {steps[i].title}", key="explore_step"
    )
    step = steps[index]
    st.markdown(f"**{step.title}**: shape `{tuple(step.shape)}`")
    st.write(step.explanation)
    shown = step.maps[:8] if display[0] else np.abs(step.maps[:8])
    plots.show_chart(
        plots.heatmap_grid(list(shown), [f"channel {i + 1}" for i in range(len(shown))], cmap=display[1], columns=8,
                           height_per_row=180, centred=display[0]),
        "explore_steps", f"{name}_{block}_step{index + 1}", plots.map_frame(shown[0]),
    )
    if len(step.maps) > len(shown):
        st.caption(f"Showing the first {len(shown)} of {len(step.maps)} channels.")
    plots.download(
        "All steps (JSON)",
        [{"title": s.title, "shape": list(s.shape), "explanation": s.explanation} for s in steps],
        f"{name}_{block}_steps.json", key="explore_steps_json",
    )


def non_local_attention(name: str, nl_blocks: list[str], view: np.ndarray, result: analysis.MapsResult,
                        row_key: str, col_key: str, query: tuple[float, float]) -> None:
    """Where a non-local block's query point looks; a click on the chart moves the query."""
    height, width = view.shape[:2]
    st.header("Non-local attention")
    st.caption(
        "A non-local block compares every position with every other one. Click a point on the image (or use the "
        "sliders) to see which positions that query attends to."
    )
    settings, chart = st.columns([1, 2])
    nl_block = settings.selectbox("Non-local block", nl_blocks, key="explore_nl_block")
    settings.slider("Query row", 0, height - 1, key=row_key)
    settings.slider("Query column", 0, width - 1, key=col_key)
    attention = result.attention[nl_block]

    @guard.guarded
    def move_query() -> None:
        position = plots.clicked_position(st.session_state["explore_attention"], view.shape)
        if position is not None:
            st.session_state[row_key] = min(int(position[0] * height), height - 1)
            st.session_state[col_key] = min(int(position[1] * width), width - 1)

    with chart:
        figure = plots.image_figure(
            view, attention, cmap=st.session_state.get("explore_cmap", "inferno"), opacity=0.65,
            zmin=float(attention.min()), zmax=float(attention.max()), marker=query, click_grid=min(height, 28),
            title=f"{nl_block}: attention of the query (cross)",
        )
        plots.show_chart(
            figure, "explore_attention", f"{name}_{nl_block}_attention", plots.map_frame(attention),
            on_select=move_query, selection_mode="points",
        )


header()
state.default_model("explore_model")
links.pull(PARAMS)
name, picked = pick_model_and_image()
links.push(PARAMS[:2] + (PARAMS[2:3] if st.session_state.get("explore_source") == "sample" else []))
image = inputs.open_image(picked) if picked else None
if image is None:
    links.stop()
model = state.get_model(name)
_, height, width = model.metadata.preprocessing.input_size
row_key, col_key, query = query_point(height, width)
view, invert, result = prediction_row(name, model, picked, image, query)
if components(model):
    switched_off(name, model, picked, invert, result)
    links.push(PARAMS[4:6])
blocks = analysis.spatial_bias_blocks(model)
if blocks:
    block, display = spatial_bias_maps(name, blocks, view, result)
    links.push(PARAMS[3:4] + PARAMS[6:])
    branch_steps(name, model, picked, invert, block, display)
else:
    st.info(f"{name} has no spatial-bias branches. Pick an sb_ or sbnl_ model to see them.")
nl_blocks = analysis.non_local_blocks(model)
if nl_blocks:
    non_local_attention(name, nl_blocks, view, result, row_key, col_key, query)
    links.push(query_params(height, width))
