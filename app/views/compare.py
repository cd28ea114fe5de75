"""Compare attributions: two to four models on the same image and target, one Captum method, one
colour scale, each model's prediction above its map."""
from __future__ import annotations

import streamlit as st

from app import compute, inputs, plots, state
from sbcore import analysis
from sbcore.errors import SBCoreError
from sbcore.images import model_view

TOP1 = -1  # target option: every model explains its own top-1 class

st.title("Compare attributions")
st.caption(
    "Which pixels drive each model's decision? The same image, the same class and the same attribution method "
    "for every model, on one colour scale."
)

names = state.model_names()
defaults = state.shipped_family()
chosen = st.multiselect(
    "Models (two to four)", names, default=defaults, max_selections=4, format_func=state.model_label, key="compare_models"
)
settings, picture = st.columns([1, 1])
with picture:
    picked = inputs.image_picker("compare")
image = inputs.open_image(picked)
if len(chosen) < 2:
    st.warning("Pick at least two models to compare.")
    st.stop()
if image is None:
    st.stop()

models = {name: state.get_model(name) for name in chosen}
first = models[chosen[0]].metadata
shared_classes = all(m.metadata.class_names == first.class_names for m in models.values())
with settings:
    method = st.selectbox(
        "Method", list(analysis.ATTRIBUTION_METHODS), format_func=analysis.ATTRIBUTION_METHODS.get, key="compare_method"
    )
    targets = [TOP1] + (list(range(len(first.class_names))) if shared_classes else [])
    target = st.selectbox(
        "Target class", targets, format_func=lambda t: "each model's top-1" if t == TOP1 else first.class_names[t],
        key="compare_target", help=None if shared_classes else "The models have different classes: each explains its top-1.",
    )
    stages = [s for s in analysis.stage_names(models[chosen[0]]) if all(s in analysis.stage_names(m) for m in models.values())]
    stage = st.selectbox("Grad-CAM stage", stages, index=len(stages) - 1, key="compare_stage") if method == "grad_cam" else None
    n_steps = st.slider("Integration steps", 8, 128, 32, 8, key="compare_steps") if method == "integrated_gradients" else 32
    smoothgrad = st.checkbox(
        "SmoothGrad (average over noisy copies)", key="compare_smoothgrad", disabled=method == "occlusion"
    ) and method != "occlusion"
    invert = st.checkbox(
        "Invert colours",
        value=first.preprocessing.dark_background and inputs.light_background(image),
        key=f"compare_invert_{picked.digest}", help=inputs.INVERT_HELP,
    )
    opacity = st.slider("Opacity", 0.0, 1.0, 0.65, 0.05, key="compare_opacity")
    cmap = st.selectbox("Colour map", plots.COLOUR_MAPS, key="compare_cmap")

progress = st.progress(0.0, text="Attributing…")
results = {}
for done, (name, model) in enumerate(models.items()):
    progress.progress(done / len(models), text=f"Attributing with {name}…")
    try:
        results[name] = (
            compute.predictions(model, state.model_key(name), picked.data, invert),
            compute.attribution(
                model, state.model_key(name), picked.data, invert, method, None if target == TOP1 else target,
                stage, n_steps, smoothgrad,
            ),
        )
    except SBCoreError as error:
        st.error(f"{name}: {error}")
progress.empty()

st.caption(
    f"{analysis.ATTRIBUTION_METHODS[method]}: |attribution| divided by its own 99th percentile, so every map "
    "shares one 0-1 colour scale; compare where the evidence sits, not its absolute size."
)
for column, (name, (predictions, attribution)) in zip(st.columns(len(results)), results.items()):
    model = models[name]
    view = model_view(image, model.metadata.preprocessing, invert)
    target_name = model.metadata.class_names[attribution.target] if model.metadata.class_names else attribution.target
    with column:
        st.subheader(state.model_label(name))
        st.markdown(f"Predicted: **{predictions[0].label}** ({predictions[0].probability:.1%})")
        st.caption(f"Attributing class: {target_name}")
        figure = plots.image_figure(view, attribution.heatmap, cmap=cmap, opacity=opacity, zmin=0.0, zmax=1.0, height=300)
        plots.show_chart(figure, f"compare_map_{name}", f"{name}_{method}", plots.map_frame(attribution.heatmap))
        plots.download(
            "Overlay PNG", plots.overlay_png(view, attribution.heatmap, cmap, opacity, 0.0, 1.0),
            f"{name}_{method}.png", key=f"compare_png_{name}",
        )
        if attribution.convergence_delta is not None:
            st.caption(f"Integrated-gradients convergence delta: {attribution.convergence_delta:.3g}")
