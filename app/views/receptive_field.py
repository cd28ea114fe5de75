"""Effective receptive field: how far the centre of a stage's output actually looks, per model,
over an image set (samples, uploads or noise)."""
from __future__ import annotations

from itertools import cycle

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
import streamlit as st

from app import compute, inputs, plots, state
from sbcore import analysis
from sbcore.errors import SBCoreError

SOURCES = {"samples": "Bundled samples", "uploads": "My uploads", "noise": "Gaussian noise"}
AREA_LABELS = {0.2: "area 20%", 0.3: "area 30%", 0.5: "area 50%", 0.99: "area 99%"}

st.title("Effective receptive field")
st.caption(
    "The gradient of the centre output position of a stage with respect to the input, averaged over images: "
    "which pixels can actually move it. Global context (spatial bias, non-local) should spread it wider."
)

names = state.model_names(untrained=True)
defaults = state.shipped_family()
chosen = st.multiselect("Models", names, default=defaults, format_func=state.model_label, key="erf_models")
left, middle, right = st.columns(3)
stage_options = sorted({s for n in chosen for s in analysis.stage_names(state.get_model(n))}) or ["layer3"]
stage = left.selectbox("Stage", stage_options, index=len(stage_options) - 1, key="erf_stage")
source = middle.radio("Images", list(SOURCES), format_func=SOURCES.get, horizontal=True, key="erf_source")
count = right.slider("Number of images", 1, 32, 8, key="erf_count")
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

run = st.button("Compute", type="primary", key="erf_run", disabled=not chosen or image_set == [])
signature = (tuple(chosen), stage, source, count, invert, state.current_device(), tuple(map(hash, image_set or [])))
if run:
    progress = st.progress(0.0, text="Computing…")
    results: dict[str, analysis.ERFResult] = {}
    for position, name in enumerate(chosen):
        model = state.get_model(name)

        def report(done: int, total: int, position: int = position, name: str = name) -> None:
            progress.progress((position + done / max(total, 1)) / len(chosen), text=f"{name}: image {done} of {total}")

        try:
            results[name] = compute.receptive_field(model, state.model_key(name), image_set, count, invert, stage, report)
        except SBCoreError as error:
            st.error(f"{name}: {error}")
    progress.empty()
    st.session_state["erf_results"] = (signature, results)

stored_signature, results = st.session_state.get("erf_results", (None, {}))
if not results:
    st.info("Choose models, a stage and images, then press Compute.")
    st.stop()
if stored_signature != signature:
    st.caption("These results are for earlier settings; press Compute to update them.")

labels = [state.model_label(name) for name in results]
st.subheader("Log-scaled ERF")
plots.show_chart(
    plots.heatmap_grid([r.log_scaled for r in results.values()], labels, cmap="inferno", shared_scale=True, columns=4),
    "erf_maps", f"erf_{stage}",
    pd.concat([plots.map_frame(r.contribution).assign(model=name) for name, r in results.items()]),
)

profiles, notes = st.columns([2, 1])
with profiles:
    st.subheader("Radial profile")
    figure, rows = go.Figure(), []
    for colour, label, result in zip(cycle(qualitative.D3), labels, results.values()):
        radii, values = analysis.radial_profile(result.contribution, result.centre)
        values = values / values.max() if values.max() > 0 else values  # one shape per model, peak at 1
        figure.add_trace(go.Scatter(x=radii, y=values, mode="lines", name=label, line_color=colour))
        rows.append(pd.DataFrame({"model": label, "radius_px": radii, "contribution": values}))
    figure.update_layout(
        xaxis_title="distance from the centre (pixels)", yaxis_title="mean contribution (peak = 1)", height=360,
        margin=dict(l=0, r=0, t=10, b=0), legend=dict(orientation="h", y=-0.25),
    )
    plots.show_chart(figure, "erf_profile", f"erf_{stage}_radial_profile", pd.concat(rows))
with notes:
    st.subheader("Reading it")
    st.markdown(
        "- **Heat maps**: log of the mean |gradient| per input pixel, each model scaled to its own peak.\n"
        "- **Radial profile**: mean contribution by distance from the centre; a flatter tail reaches further.\n"
        "- **Theoretical RF**: what the stage's convolutions alone can see; spatial-bias and non-local "
        "branches can reach past it."
    )
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
    "contribution; larger means the stage draws on a wider region."
)
