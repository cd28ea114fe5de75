"""Compare attributions: two to four models on the same image and target, one Captum method, one
colour scale, each model's prediction (with its out-of-distribution notice) above its map. Runs on
a click, with progress and Cancel; the last result stays, marked stale when a control changes."""
from __future__ import annotations

import pandas as pd
import streamlit as st
from torch import nn

from app import compute, guard, inputs, jobs, links, look, memory, plots, state, tour, widgets
from sbcore import analysis
from sbcore.errors import SBCoreError
from sbcore.images import model_view

PAGE = "compare"
TOP1 = -1  # target option: every model explains its own top-1 class
MAX_MODELS = 4
BASELINE_EFFECT = {
    "black": "Black: the empty black background of Fashion-MNIST is the reference, so background pixels get exactly "
             "zero and the map shows the garment only.",
    "blurred": "Blurred: the reference keeps the coarse shape, so the map shows what fine detail (edges, texture) adds.",
    "mean": "Dataset mean: a uniform grey reference; every pixel that differs from grey, the black background "
            "included, can take attribution, which draws streaks in empty areas.",
}
COMPLETENESS_NOTE = (
    "Integrated Gradients' attributions should add up to the change of the class score from the baseline to the "
    "image; the error is how far they miss, as a share of that change. Steps are added (from 32 up to 256, or up to "
    "1,024 with More IG steps) until it is under 5%; when the cap comes first, a warning above the maps says so."
)
FAITHFULNESS_NOTE = (
    "Deletion: the map's most relevant pixels are set to black first and the class probability is read as they go; "
    "insertion: they are put back first, starting from black; ROAD imputes removed pixels from their neighbours "
    "instead (MoRF: most relevant first, LeRF: least). The randomisation check re-initialises the layers from the "
    "head down and compares the maps by rank correlation. Each number sits beside the same score for random maps "
    "of this image. Over 200 test images per model: README, 'Which attribution map to trust'."
)
MAPS_READY = "Maps ready; scoring their faithfulness (deletion, insertion, ROAD, randomisation check)..."
PARAMS = [
    links.Param("models", "compare_models", lambda: state.model_names(), many=True, max_count=MAX_MODELS),
    links.Param("source", "compare_source", lambda: ["sample", "upload"]),
    links.Param("sample", "compare_sample", inputs.sample_files),
    links.Param("method", "compare_method", lambda: list(analysis.ATTRIBUTION_METHODS)),
    links.Param("baseline", "compare_baseline", lambda: list(analysis.BASELINES)),
    links.Param("opacity", "compare_opacity", lambda: links.steps(0.0, 1.0, 0.05)),
    links.Param("cmap", "compare_cmap", lambda: plots.COLOUR_MAPS),
    links.Param("values", "compare_values", lambda: list(widgets.VALUES)),
    links.Param("signed_cmap", "compare_signed_cmap", lambda: plots.DIVERGING_MAPS),
    links.Param("target", "compare_target", lambda: target_options()),
]


def target_options() -> list[int]:
    """Each model's top-1, then the class indices when the chosen models share their classes."""
    chosen = st.session_state.get("compare_models") or state.shipped_family()
    classes = {tuple(state.get_model(name).metadata.class_names) for name in chosen}
    return [TOP1] + (list(range(len(next(iter(classes))))) if len(classes) == 1 else [])


def header() -> None:
    st.title("Compare attributions")
    st.caption(
        "Which pixels drive each model's decision? The same image, the same class and the same attribution method "
        "for every model, on one colour scale."
    )
    tour.banner()


def pick_models() -> list[str]:
    st.session_state.setdefault("compare_models", state.shipped_family())
    st.session_state["compare_models"] = [n for n in st.session_state["compare_models"] if n in state.model_names()]
    return st.multiselect("Models (two to four)", state.model_names(), max_selections=MAX_MODELS, format_func=state.model_label,
                          key="compare_models")


def settings_panel(models: dict[str, nn.Module], image, picked: inputs.ImageInput) -> dict:
    """Method, target, Grad-CAM stage, baseline, SmoothGrad, inversion and display; returns the settings."""
    first = next(iter(models.values())).metadata
    shared_classes = all(m.metadata.class_names == first.class_names for m in models.values())
    method = st.selectbox("Method", list(analysis.ATTRIBUTION_METHODS), format_func=analysis.ATTRIBUTION_METHODS.get,
                          key="compare_method")
    targets = target_options()
    target = st.selectbox(
        "Target class", targets, format_func=lambda t: "each model's top-1" if t == TOP1 else first.class_names[t],
        key="compare_target", help=None if shared_classes else "The models have different classes: each explains its top-1.",
    )
    stages = [s for s in analysis.stage_names(next(iter(models.values())))
              if all(s in analysis.stage_names(m) for m in models.values())]
    stage = st.selectbox("Grad-CAM stage", stages, index=len(stages) - 1, key="compare_stage") if method == "grad_cam" else None
    baseline = "black"
    if method in ("integrated_gradients", "occlusion"):
        st.session_state.setdefault("compare_baseline", "black")
        baseline = st.radio("Baseline (the reference input)", list(analysis.BASELINES), format_func=analysis.BASELINES.get,
                            horizontal=True, key="compare_baseline")
        st.caption(BASELINE_EFFECT[baseline])
    smoothgrad = st.checkbox(
        "SmoothGrad (average over noisy copies)", key="compare_smoothgrad", disabled=method in ("occlusion", "grad_cam")
    ) and method not in ("occlusion", "grad_cam")
    more_steps = st.checkbox(
        f"More IG steps (up to {analysis.IG_MORE_STEPS:,}; slower)", key="compare_more_steps",
        help="Integrated Gradients adds path steps until its completeness error is under 5%, by default up to "
             f"{analysis.IG_MAX_STEPS}; some targets and baselines need more.",
    ) if method == "integrated_gradients" and not smoothgrad else False
    # defaults through session state only: a widget given both logs a warning whenever its kept value is restored
    invert_key = f"compare_invert_{picked.digest}"
    st.session_state.setdefault(invert_key, first.preprocessing.dark_background and inputs.light_background(image))
    invert = st.checkbox("Invert colours", key=invert_key, help=inputs.INVERT_HELP)
    st.session_state.setdefault("compare_faithfulness", True)
    scored = st.checkbox("Score faithfulness (deletion, insertion, ROAD, randomisation check)",
                         key="compare_faithfulness")
    return {"method": method, "target": None if target == TOP1 else target, "stage": stage, "baseline": baseline,
            "smoothgrad": smoothgrad, "invert": invert,
            "max_steps": analysis.IG_MORE_STEPS if more_steps else analysis.IG_MAX_STEPS, "faithfulness": scored}


def run_attributions(models: dict[str, nn.Module], picked: inputs.ImageInput, settings: dict, signature: tuple,
                     opacity: float) -> None:
    """Queue every model's attribution at once (the server runs them side by side when it has the cores), ask for
    the quick predictions while they run, queue each model's faithfulness scores as its map arrives, show the maps,
    then collect the scores, one step per job, keeping what is done if the run is stopped."""
    request = {name: (settings["method"], settings["target"], settings["stage"], settings["baseline"],
                      settings["smoothgrad"], settings["max_steps"]) for name in models}
    tickets = {name: compute.attribution_job(model, state.model_key(name), picked.data, settings["invert"],
                                             *request[name])
               for name, model in models.items()}
    scoring, results = {}, {}
    steps = len(models) * (2 if settings["faithfulness"] else 1)
    preview = st.empty()

    def keep_so_far() -> None:  # what a stopped run leaves on the page
        memory.remember(PAGE, memory.Stored(signature, dict(results), complete=False,
                                            extra={"image": picked, **settings}))

    try:
        with memory.Run(PAGE, steps, "Attributing") as run:
            # quick jobs pass queued attributions; asked for later, they would wait behind the long scoring jobs
            quick = {name: (compute.predictions(model, state.model_key(name), picked.data, settings["invert"]),
                            compute.familiarity(model, name, picked.data, settings["invert"]))
                     for name, model in models.items()}
            for name, model in models.items():
                run.step(f"{name}: attribution ({run.done + 1} of {steps})")
                try:
                    attribution = jobs.wait(tickets[name], f"Attributing with {name}", cancel_on_leave=True)
                except SBCoreError as error:  # over the memory budget even one at a time: the others still run
                    guard.say_error(f"{name}: {error}")
                    run.advance()
                    continue
                if settings["faithfulness"]:
                    scoring[name] = compute.faithfulness_job(model, state.model_key(name), picked.data,
                                                             settings["invert"], attribution, request[name],
                                                             settings["stage"])
                results[name] = (quick[name][0], attribution, quick[name][1], None)
                run.advance()
                keep_so_far()
            if scoring:
                with preview.container():
                    maps_preview(models, picked, settings, results, opacity)
            for name, ticket in scoring.items():
                run.step(f"{name}: faithfulness ({run.done + 1} of {steps})")
                try:
                    results[name] = (*results[name][:3], jobs.wait(ticket, f"Scoring {name}'s map", cancel_on_leave=True))
                except SBCoreError as error:  # the map stays, without its scores
                    guard.say_error(f"{name}: {error}")
                run.advance()
                keep_so_far()
    finally:
        preview.empty()
        for ticket in [*tickets.values(), *scoring.values()]:  # those a stopped run never waited for
            ticket.cancel()
    if results:
        memory.remember(PAGE, memory.Stored(signature, results, seconds=run.seconds, extra={"image": picked, **settings}))


def maps_preview(models: dict[str, nn.Module], picked: inputs.ImageInput, settings: dict, results: dict,
                 opacity: float) -> None:
    """Every model's map as soon as all attributions are in, while their faithfulness is still being scored: a class
    waiting for the shared default sees its maps in seconds, the scores (several times longer) follow."""
    image = inputs.open_image(picked)
    signed, cmap = widgets.chosen_display("compare", allow_signed=settings["method"] in analysis.SIGNED_METHODS)
    st.caption(MAPS_READY)
    for column, (name, result) in zip(st.columns(len(results)), results.items()):
        view = model_view(image, models[name].metadata.preprocessing, settings["invert"])
        shown = result[1].signed_heatmap if signed else result[1].heatmap
        column.image(plots.overlay_png(view, shown, cmap, opacity, -1.0 if signed else 0.0, 1.0),
                     caption=state.model_label(name), width="stretch")


def completeness_warnings(stored: memory.Stored) -> None:
    """One warning naming every model whose Integrated Gradients map missed the completeness goal, with remedies."""
    failed = [(name, result[1]) for name, result in stored.value.items() if analysis.not_converged(result[1])]
    if not failed:
        return
    names = ", ".join(f"{state.model_label(name)} (off by {a.completeness_error:.0%} after {a.n_steps} steps)"
                      for name, a in failed)
    more = "" if stored.extra["max_steps"] > analysis.IG_MAX_STEPS else "tick More IG steps, or "
    st.warning(f"**Integrated Gradients did not converge for {names}.** {analysis.NOT_CONVERGED_MEANING} To fix it, "
               f"{more}choose another baseline (the dataset mean often converges).", icon=":material/warning:")


def show_results(stored: memory.Stored, opacity: float) -> None:
    """One column per model: name, prediction and familiarity, the map over the model's view, downloads."""
    picked, invert, method = stored.extra["image"], stored.extra["invert"], stored.extra["method"]
    image = inputs.open_image(picked)
    with st.columns([2, 3])[0]:  # how the shown result's values are drawn (its method decides whether it has a sign)
        signed, cmap = widgets.value_display("compare", allow_signed=method in analysis.SIGNED_METHODS)
    low = -1.0 if signed else 0.0
    positive, negative = plots.DIVERGING_COLOURS.get(cmap, ("", ""))
    st.caption(
        f"{analysis.ATTRIBUTION_METHODS[method]} on {picked.name}: "
        + (f"attribution divided by the 99th percentile of its magnitude, on one colour scale centred on zero: "
           f"{positive} is evidence for the class, {negative} evidence against it"
           if signed else "|attribution| divided by its own 99th percentile, on one 0-1 colour scale")
        + "; compare where the evidence sits, not its absolute size."
        + (f" Took {stored.seconds:.1f} s." if stored.complete else "")
    )
    completeness_warnings(stored)
    for column, (name, (predictions, attribution, familiarity, faithful)) in zip(st.columns(len(stored.value)), stored.value.items()):
        model = state.get_model(name)
        view = model_view(image, model.metadata.preprocessing, invert)
        classes = model.metadata.class_names
        with column:
            st.markdown(f"#### {look.breakable(state.model_label(name))}")
            widgets.prediction(predictions[0], familiarity)
            st.caption(f"Attributing class: {classes[attribution.target] if classes else attribution.target}")
            shown = attribution.signed_heatmap if signed else attribution.heatmap
            figure = plots.image_figure(view, shown, cmap=cmap, opacity=opacity, zmin=low, zmax=1.0, height=300)
            plots.show_chart(figure, f"compare_map_{name}", f"{name}_{method}", plots.map_frame(shown))
            plots.download("Overlay PNG", plots.overlay_png(view, shown, cmap, opacity, low, 1.0),
                           f"{name}_{method}.png", key=f"compare_png_{name}")
            if attribution.completeness_error is not None:
                st.caption(f"Completeness error: {attribution.completeness_error:.1%} of the logit gap "
                           f"({attribution.n_steps} steps).", help=COMPLETENESS_NOTE)
            if faithful is not None:
                st.caption(analysis.verdict(faithful))
                plots.show_chart(plots.faithfulness_figure(faithful), f"compare_faithfulness_{name}",
                                 f"{name}_{method}_faithfulness", plots.faithfulness_frame(faithful))
    if any(result[1].completeness_error is not None for result in stored.value.values()):
        st.caption(COMPLETENESS_NOTE)
    scored = {name: result[3] for name, result in stored.value.items() if result[3] is not None}
    if scored:
        faithfulness_table(scored)


def faithfulness_table(scored: dict[str, analysis.Faithfulness]) -> None:
    """Every score of every model beside the random map's, with which direction is better."""
    rows = [{"model": state.model_label(name), "metric": label, "this map": values[key],
             "random map": values["random_" + key], "better": direction}
            for name, result in scored.items() for values in [result.scores()]
            for key, (label, direction) in analysis.FAITHFULNESS_METRICS.items() if key in values]
    with st.expander("Faithfulness scores", expanded=True):
        st.caption(FAITHFULNESS_NOTE)
        frame = pd.DataFrame(rows)
        st.dataframe(frame, hide_index=True, column_config={
            "this map": st.column_config.NumberColumn(format="%.3f"),
            "random map": st.column_config.NumberColumn(format="%.3f")})
        plots.download("CSV", frame, "faithfulness.csv", key="compare_faithfulness_csv")


header()
links.pull(PARAMS)
chosen = pick_models()
settings_column, picture = st.columns([1, 1])
with picture:
    picked = inputs.image_picker("compare")
image = inputs.open_image(picked) if picked else None
if len(chosen) < 2:
    st.warning("Pick at least two models to compare.")
if len(chosen) < 2 or image is None:
    links.stop()
models = {name: state.get_model(name) for name in chosen}
with settings_column:
    settings = settings_panel(models, image, picked)
    st.session_state.setdefault("compare_opacity", 0.65)
    opacity = st.slider("Opacity", 0.0, 1.0, step=0.05, key="compare_opacity")
links.push(PARAMS if settings["method"] in ("integrated_gradients", "occlusion") else PARAMS[:4] + PARAMS[5:])
signature = (tuple(chosen), picked.digest, state.current_device(), *settings.values())
if st.button("Run", type="primary", key="compare_run", icon=":material/play_arrow:"):
    run_attributions(models, picked, settings, signature, opacity)
stored = memory.recall(PAGE)
if stored is None:
    st.info("Choose models, an image and a method, then press Run.")
    links.stop()
memory.show_freshness(stored, signature, "Run")
show_results(stored, opacity)
