"""The Global context page's intervention section: switch a lab model's spatial-bias maps or non-local blocks off,
measure accuracy by distance intact and ablated, rank every block, and read the probe under the intervention.
Layout and words only; the numbers come from ``sbcore.analysis`` through ``app.compute``."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app import compute, links, memory, plots, state
from sbcore.analysis.ablation import AblationResult
from sbcore.analysis.interventions import INTERVENTION_MODES, components
from sbcore.lab import results
from sbcore.lab.readout import SUM_OF_ITEMS_BOUND
from sbcore.lab.same_different import DEFAULT_TASK

PAGE, RANK_PAGE = "gc_intervention", "gc_ranking"
PER_BIN = 100  # test canvases per distance bin (50 per label): 500 canvases, about 3 s here (benchmarks/intervention_speed.py)
PATCH_PAIRS = 100
APP_MODES = ("mean", "zero", "resample")
MODEL_KEY, BLOCKS_KEY, MODE_KEY = "gc_iv_model", "gc_iv_blocks", "gc_iv_mode"


def intervention_models(names: list[str]) -> list[str]:
    """The lab models with global context to switch off (SB, NL, SB+NL)."""
    return [name for name in names if components(state.get_model(name))]


def component_labels(name: str) -> dict[str, str]:
    """Component name -> label ("layer1.0" -> "SB layer1.0") of model ``name``."""
    return {c.name: c.label for c in components(state.get_model(name))}


def params(names: list[str]) -> list[links.Param]:
    """URL parameters of the section: model, components (comma-separated), mode."""
    def current_components() -> list[str]:
        chosen = st.session_state.get(MODEL_KEY)
        return list(component_labels(chosen if chosen in names else intervention_models(names)[0]))

    return [links.Param("ablate_model", MODEL_KEY, lambda: intervention_models(names)),
            links.Param("ablate", BLOCKS_KEY, current_components, many=True),
            links.Param("ablate_mode", MODE_KEY, lambda: list(APP_MODES))]


def controls(names: list[str]) -> tuple[str, tuple[str, ...], str]:
    """(model, components, mode) as chosen; a component the model lacks is dropped from the choice."""
    models = intervention_models(names)
    st.session_state.setdefault(MODEL_KEY, models[0])
    left, middle, right = st.columns([2, 3, 2])
    name = left.selectbox("Model", models, key=MODEL_KEY)
    labels = component_labels(name)
    kept = [c for c in st.session_state.get(BLOCKS_KEY, []) if c in labels]
    st.session_state[BLOCKS_KEY] = kept
    chosen = middle.multiselect("Switch off", list(labels), format_func=labels.get, key=BLOCKS_KEY,
                                placeholder="choose blocks",
                                help="SB: a block's spatial-bias maps; NL: a non-local block's added term.")
    st.session_state.setdefault(MODE_KEY, "mean")
    mode = right.radio("Replace by", APP_MODES, key=MODE_KEY, horizontal=True,
                       help="; ".join(f"{m}: {INTERVENTION_MODES[m]}" for m in APP_MODES)
                       + " (mean over 512 training canvases).")
    return name, tuple(chosen), mode


def setting_label(name: str, chosen: tuple[str, ...]) -> str:
    labels = component_labels(name)
    return " + ".join(labels[c] for c in chosen)


def sentence(result: AblationResult, mode: str) -> str:
    """What switching the components off did, near and far, from the numbers."""
    def part(group) -> str:
        low, high = group.change_ci95
        verb = "drops" if high < 0 else "raises" if low > 0 else "leaves"
        change = f"from {group.intact:.1f}% to {group.ablated:.1f}%" if verb != "leaves" else \
            f"at {group.ablated:.1f}% (intact {group.intact:.1f}%)"
        return (f"{verb} accuracy at {group.name.removeprefix('distance ')} {change}, "
                f"{group.change:+.1f} points [{low:+.1f}, {high:+.1f}]")
    near, far = result.groups[0], result.groups[-1]
    return (f"Switching off **{result.label}** ({mode} ablation) {part(far)}; up close it {part(near)}. "
            f"Paired 95% intervals over {far.samples} test canvases per bin.")


def accuracy_chart(result: AblationResult, name: str) -> None:
    figure = go.Figure()
    x = DEFAULT_TASK.bin_centres
    for label, values, intervals, dash in (
        ("intact", [g.intact for g in result.groups], [g.intact_ci95 for g in result.groups], "solid"),
        (f"{result.label} off", [g.ablated for g in result.groups], [g.ablated_ci95 for g in result.groups], "dash"),
    ):
        figure.add_trace(go.Scatter(
            x=x, y=values, mode="lines+markers", name=label, line_dash=dash,
            error_y=dict(type="data", visible=True, array=[hi - v for v, (_, hi) in zip(values, intervals)],
                         arrayminus=[v - lo for v, (lo, _) in zip(values, intervals)]),
        ))
    figure.add_hline(y=50, line_dash="dot", line_color="grey", annotation_text="chance")
    far = results.reach(state.get_model(name))[1]  # where no unit of the conv path sees both items
    figure.add_shape(type="line", x0=far, x1=DEFAULT_TASK.bin_edges[-1], y0=SUM_OF_ITEMS_BOUND, y1=SUM_OF_ITEMS_BOUND,
                     line=dict(color="firebrick", dash="dot"))
    figure.add_annotation(x=far, y=SUM_OF_ITEMS_BOUND, xanchor="right", yanchor="bottom", showarrow=False,
                          text=f"beyond plain reach, a sum of items gets at most {SUM_OF_ITEMS_BOUND:.0f}%")
    figure.update_layout(xaxis_title="distance between item centres (px)", yaxis_title=f"{name} accuracy (%)",
                         yaxis_range=[30, 102], height=340, margin=dict(l=0, r=0, t=10, b=0),
                         legend=dict(orientation="h", y=1.12))
    frame = pd.DataFrame([{"distance bin": g.name.removeprefix("distance "), "intact (%)": g.intact,
                           "ablated (%)": g.ablated, "change (points)": g.change, "change 95% low": g.change_ci95[0],
                           "change 95% high": g.change_ci95[1], "samples": g.samples} for g in result.groups])
    plots.show_chart(figure, "gc_intervention_chart", "global_context_intervention", frame)


def measure(name: str, chosen: tuple[str, ...], mode: str) -> None:
    settings = (name, chosen, mode, state.current_device())
    if st.button("Switch off and measure", type="primary", key="gc_iv_run", disabled=not chosen):
        model = state.get_model(name)
        with memory.Run(PAGE, 1, "Measuring") as run:
            result = compute.ablation(model, state.model_key(name), [(setting_label(name, chosen), chosen)], mode,
                                      PER_BIN, progress=lambda done, total: run.step(
                                          f"canvas {done} of {total}", done / max(total, 1)))
            memory.remember(PAGE, memory.Stored(settings, result[0], seconds=run.seconds))
    stored = memory.recall(PAGE)
    if stored is None:
        return
    memory.show_freshness(stored, settings, "Switch off and measure")
    accuracy_chart(stored.value, stored.settings[0])
    st.markdown(sentence(stored.value, stored.settings[2]))
    st.caption(f"{PER_BIN} test canvases per distance bin (the first {PER_BIN * DEFAULT_TASK.num_bins}, balanced over "
               f"labels), intact and ablated on the same canvases; {stored.seconds:.1f} s. The full test set: "
               f"`sbcore ablate {stored.settings[0]} --blocks {' '.join(stored.settings[1])} --mode "
               f"{stored.settings[2]} --out out/ablate`.")


def ranking(name: str, mode: str) -> None:
    """Every component alone (and all together): far-pair accuracy change and patching score."""
    found = components(state.get_model(name))
    settings = [(c.label, (c.name,)) for c in found] + ([("all", tuple(c.name for c in found))] if len(found) > 1 else [])
    key = (name, mode, state.current_device())
    if st.button("Rank every block", key="gc_rank_run",
                 help=f"Each component switched off alone ({mode}) on {PER_BIN * DEFAULT_TASK.num_bins} canvases, and "
                      f"patched between {PATCH_PAIRS} far counterfactual pairs."):
        model = state.get_model(name)
        with memory.Run(RANK_PAGE, 2, "Ranking") as run:
            report = lambda label: lambda done, total: run.step(f"{label} {done} of {total}", done / max(total, 1))  # noqa: E731
            ablated = compute.ablation(model, state.model_key(name), settings, mode, PER_BIN, report("canvas"))
            run.advance()
            patched = compute.patching(model, state.model_key(name), settings, PATCH_PAIRS, report("step"))
            memory.remember(RANK_PAGE, memory.Stored(key, (ablated, patched), seconds=run.seconds))
    stored = memory.recall(RANK_PAGE)
    if stored is None:
        return
    memory.show_freshness(stored, key, "Rank every block")
    ablated, patched = stored.value
    rows = [{"switched off": a.label, "far accuracy (%)": a.groups[-1].ablated,
             "far change (points)": a.groups[-1].change,
             "far change 95%": f"[{a.groups[-1].change_ci95[0]:+.1f}, {a.groups[-1].change_ci95[1]:+.1f}]",
             "near change (points)": a.groups[0].change, "carries the relation (patching)": p.score,
             "patching 95%": "no effect to carry" if p.ci95 is None else f"[{p.ci95[0]:.2f}, {p.ci95[1]:.2f}]"}
            for a, p in zip(ablated, patched)]
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    st.caption(f"{stored.settings[0]}, {stored.settings[1]} ablation; far: {ablated[0].groups[-1].name}, near: "
               f"{ablated[0].groups[0].name}. Patching: the share of the change in P(same) between a far pair's "
               f"'different' and 'same' canvas (they differ in one item) that moves when only that component is "
               f"taken from the other canvas; 1 = all of it, 0 = none ({PATCH_PAIRS} pairs, bootstrap 95% interval). "
               f"{stored.seconds:.1f} s.")


def probe_under_intervention(canvas) -> tuple[str, float] | None:
    """(column title, P(same)) of the chosen model on ``canvas`` with the chosen components switched off; None when
    nothing is chosen or the mode needs a batch (resample)."""
    name, chosen, mode = (st.session_state.get(k) for k in (MODEL_KEY, BLOCKS_KEY, MODE_KEY))
    if not name or not chosen or mode not in ("mean", "zero"):
        return None
    value = compute.same_probability_under(state.get_model(name), state.model_key(name), canvas, tuple(chosen), mode)
    return f"{name}, {setting_label(name, tuple(chosen))} off ({mode})", value


def section(names: list[str]) -> None:
    st.subheader("Switch global context off")
    st.markdown(
        "Maps and attention show where a model looks; an **intervention** shows what it uses. Pick a model and "
        "some of its spatial-bias branches (SB) or non-local blocks (NL), replace what they add by its average over "
        "training canvases (mean), by zeros, or by another canvas's (resample), and measure accuracy again on the "
        "same test canvases. The weights stay as they are, and other users keep the intact model."
    )
    if not intervention_models(names):
        st.info("No lab model with spatial bias or non-local blocks is shipped here.")
        return
    name, chosen, mode = controls(names)
    measure(name, chosen, mode)
    ranking(name, mode)
