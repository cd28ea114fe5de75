"""Effective receptive field: how far the centre of a stage's output actually looks, per model,
over an image set (samples, uploads or noise). Runs on a click, with progress and Cancel; the last
result stays, marked stale when a control changes."""
from __future__ import annotations

from itertools import cycle

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.colors import qualitative

from app import compute, guard, inputs, jobs, links, memory, plots, state, tour
from sbcore import analysis
from sbcore.errors import SBCoreError
from sbcore.runtime import release_freed_memory

PAGE = "erf"
SOURCES = {"samples": "Bundled samples", "uploads": "My uploads", "noise": "Gaussian noise"}
AREA_LABELS = {0.2: "area 20%", 0.3: "area 30%", 0.5: "area 50%", 0.99: "area 99%"}
MAX_MODELS = 4  # a link naming more builds only these: every chosen model is built to list its stages
DEFAULT_STAGE = "layer1"  # at 28x28 layer3's theoretical field already covers the input: nothing can reach past it
PARAMS = [
    links.Param("models", "erf_models", lambda: state.model_names(untrained=True), many=True, max_count=MAX_MODELS),
    links.Param("stage", "erf_stage", lambda: ["layer1", "layer2", "layer3", "layer4"]),
    links.Param("source", "erf_source", lambda: list(SOURCES)),
    links.Param("count", "erf_count", lambda: list(range(1, 33))),
]


def header() -> None:
    st.title("Effective receptive field")
    st.caption(
        "The gradient of the centre output position of a stage with respect to the input, averaged over images: "
        "which pixels can actually move it. Global context (spatial bias, non-local) should spread it wider."
    )
    tour.banner()


def controls() -> tuple[list[str], str, str, int, bool, list[bytes] | None]:
    """Models, stage, image source and count; returns them with the image set (None for noise)."""
    names = state.model_names(untrained=True)
    st.session_state.setdefault("erf_models", state.shipped_family())
    chosen = st.multiselect("Models (up to four)", names, format_func=state.model_label, key="erf_models",
                            max_selections=MAX_MODELS)
    left, middle, right = st.columns(3)
    stage_options = sorted({s for n in chosen for s in state.stage_names(n)}) or [DEFAULT_STAGE]
    if st.session_state.get("erf_stage") not in stage_options:
        st.session_state["erf_stage"] = DEFAULT_STAGE if DEFAULT_STAGE in stage_options else stage_options[0]
    stage = left.selectbox("Stage", stage_options, key="erf_stage",
                           help="At 28x28, layer3 already sees the whole input; layer1 and layer2 show reach beyond the field.")
    source = middle.radio("Images", list(SOURCES), format_func=SOURCES.get, horizontal=True, key="erf_source")
    st.session_state.setdefault("erf_count", 8)  # a default here too would warn whenever the kept value is restored
    count = right.slider("Number of images", 1, 32, key="erf_count")
    invert = middle.checkbox("Invert images", key="erf_invert", disabled=source == "noise")
    image_set: list[bytes] | None = None
    if source == "samples":
        image_set = [inputs.sample_input(entry).data for entry in inputs.samples()][:count]
    elif source == "uploads":
        uploads = inputs.uploaded_images("erf_uploads")
        valid = [image for image in uploads if inputs.open_image(image) is not None]
        image_set = [image.data for image in valid][:count]
    if image_set is not None and len(image_set) < count:
        st.caption(f"Using the {len(image_set)} images available.")
    return chosen, stage, source, count, invert, image_set


def run_erf(chosen: list[str], stage: str, count: int, invert: bool, image_set: list[bytes] | None, signature: tuple) -> None:
    """One model after another, with progress per image; what is done is kept if the run is stopped.

    Each model is fetched only when its turn comes and what it freed is handed back before the next, so four
    large models are not held at once beside their backward passes (four untrained ResNet-101s take 0.74 GB of
    weights alone)."""
    results: dict[str, analysis.ERFResult] = {}
    with memory.Run(PAGE, len(chosen), "Computing") as run:
        for name in chosen:
            def report(done: int, total: int, name: str = name) -> None:
                run.step(f"{name}, image {done} of {total}", done / max(total, 1))

            try:
                ticket = compute.receptive_field_job(state.get_model(name), state.model_key(name), image_set, count,
                                                     invert, stage)
                results[name] = jobs.wait(ticket, f"Receptive field of {name}", report, cancel_on_leave=True)
            except SBCoreError as error:
                guard.say_error(f"{name}: {error}")
            run.advance()
            release_freed_memory()  # this model's memory goes back before the next is built, perhaps on another thread
            memory.remember(PAGE, memory.Stored(signature, dict(results), complete=False, extra={"stage": stage}))
    memory.remember(PAGE, memory.Stored(signature, results, seconds=run.seconds, extra={"stage": stage}))


def heat_maps(results: dict[str, analysis.ERFResult], labels: list[str], stage: str) -> None:
    st.subheader("Log-scaled ERF")
    plots.show_chart(
        plots.heatmap_grid([r.log_scaled for r in results.values()], labels, cmap="inferno", columns=4),
        "erf_maps", f"erf_{stage}",
        pd.concat([plots.map_frame(r.contribution).assign(model=name) for name, r in results.items()]),
    )


def radial_profiles(results: dict[str, analysis.ERFResult], labels: list[str], stage: str) -> None:
    profiles, notes = st.columns([2, 1])
    with profiles:
        st.subheader("Radial profile")
        st.session_state.setdefault("erf_log_profile", True)
        log_scale = st.toggle("Log scale", key="erf_log_profile",
                              help="A log axis shows the small contributions far from the centre, where global context acts.")
        figure, rows = go.Figure(), []
        for colour, label, result in zip(cycle(qualitative.D3), labels, results.values()):
            radii, values = analysis.radial_profile(result.contribution, result.centre)
            values = values / values.max() if values.max() > 0 else values  # one shape per model, peak at 1
            figure.add_trace(go.Scatter(x=radii, y=values, mode="lines", name=label, line_color=colour))
            rows.append(pd.DataFrame({"model": label, "radius_px": radii, "contribution": values}))
        rf = next(iter(results.values())).receptive_field
        figure.add_vline(x=rf / 2, line_dash="dot", annotation_text="half the theoretical RF")
        figure.update_yaxes(type="log" if log_scale else "linear")
        figure.update_layout(
            xaxis_title="distance from the centre (pixels)", yaxis_title="mean contribution (peak = 1)", height=360,
            margin=dict(l=0, r=0, t=10, b=0), legend=dict(orientation="h", y=-0.25),
        )
        plots.show_chart(figure, "erf_profile", f"erf_{stage}_radial_profile", pd.concat(rows))
    with notes:
        st.subheader("Reading it")
        st.markdown(
            "- **Heat maps**: log of the mean |gradient| per input pixel, each model scaled to its own peak.\n"
            "- **Radial profile**: mean contribution by distance from the centre; a flatter tail reaches further. "
            "Past the dotted line the stage's convolutions alone cannot see.\n"
            "- **Theoretical RF**: what the stage's convolutions alone can see; spatial-bias and non-local "
            "branches can reach past it."
        )


def area_table(results: dict[str, analysis.ERFResult], labels: list[str], stage: str) -> None:
    st.subheader("Area ratios")
    frame = pd.DataFrame(
        [
            {"model": label, "stage": result.stage, "images": result.num_images,
             "theoretical RF (px)": result.receptive_field,
             **{AREA_LABELS.get(k, f"area {k:.0%}"): v for k, v in result.area_ratios.items()},
             "share outside RF": result.outside_rf_share}
            for label, result in zip(labels, results.values())
        ]
    )
    st.dataframe(frame, hide_index=True)
    plots.download("CSV", frame, f"erf_{stage}_area_ratios.csv", key="erf_table_csv")
    st.caption(
        "Area p: the fraction of the input covered by the smallest centred square that holds p of the (log-scaled) "
        "contribution; larger means the stage draws on a wider region. Share outside RF: the part of the gradient "
        "that falls outside the theoretical receptive field, reachable only through global context."
    )


header()
links.pull(PARAMS)
chosen, stage, source, count, invert, image_set = controls()
links.push(PARAMS)
signature = (tuple(chosen), stage, source, count, invert, state.current_device(), tuple(map(hash, image_set or [])))
if st.button("Compute", type="primary", key="erf_run", disabled=not chosen or image_set == []):
    run_erf(chosen, stage, count, invert, image_set, signature)
stored = memory.recall(PAGE)
if stored is None or not stored.value:
    st.info("Choose models, a stage and images, then press Compute.")
    links.stop()
memory.show_freshness(stored, signature, "Compute")
labels = [state.model_label(name) for name in stored.value]
heat_maps(stored.value, labels, stored.extra["stage"])
radial_profiles(stored.value, labels, stored.extra["stage"])
area_table(stored.value, labels, stored.extra["stage"])
