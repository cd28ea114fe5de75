"""Global context: the same-different lab (issue 9). Two items on a 128 px canvas; are they of the same
class? Beyond the plain network's receptive field no unit sees both items, so global average pooling
cannot answer; spatial bias and non-local blocks can. Accuracy by distance from the shipped cards, a live
probe (every model's P(same) for two placed items, test items or uploads), and a distance sweep on a click.
The items, their sources and positions and the sweep direction live in the URL."""
from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from functools import partial
from itertools import cycle

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.colors import qualitative

from app import compute, inputs, intervention_panel, jobs, links, look, memory, plots, state, tour, widgets
from sbcore import analysis
from sbcore.data import FASHION_MNIST_CLASSES
from sbcore.lab import evidence, probe, results
from sbcore.lab.readout import SUM_OF_ITEMS_BOUND
from sbcore.lab.same_different import DEFAULT_TASK

PAGE = "gc"
LOOK = "gc_look"  # the last attribution of the probe canvas
ITEM_NAMES = {kind: FASHION_MNIST_CLASSES[kind] for kind in DEFAULT_TASK.item_classes}
ITEMS_PER_CLASS = 8
LOW, HIGH = DEFAULT_TASK.item_size // 2, DEFAULT_TASK.canvas_size - DEFAULT_TASK.item_size // 2
DIRECTIONS = {"right": (0, 1), "down": (1, 0), "down-right": (1, 1)}
REACH_LABEL_Y = 108  # above the 100% curves and their intervals
PAIRS_PER_TYPE = 25  # the probe's many-pairs accuracy: 100 pairs
SWEEP_PAIRS_PER_TYPE = 10  # per sweep distance: 40 pairs, enough to tell 50% from 100%
SWEEP_ACCURACY_STEP = 12  # px between the sweep's many-pairs points


def header() -> None:
    st.title("Global context")
    st.markdown(
        "Two Fashion-MNIST items (trousers or bags) sit on a "
        f"{DEFAULT_TASK.canvas_size}x{DEFAULT_TASK.canvas_size} canvas; the network answers **same** or "
        "**different** class. A plain CNN ends in global average pooling and a linear layer: when the items are "
        "further apart than its receptive field, no unit sees both, so the pooled features are just the sum of "
        "one part computed from item a and one from item b, g(a) + g(b). No such sum can say \"same\": "
        "the two same pairs (trouser+trouser, bag+bag) add up to exactly the same total as the two mixed pairs "
        "(trouser+bag, bag+trouser), so a threshold that accepts both same pairs must accept a mixed one too: "
        "such a network gets at most 3 of the 4 pair types right, **75%** (not 50%: saying \"same\" only for "
        "trouser+trouser reaches it). The trained plain networks sit at chance there instead, a finding, not a "
        "consequence of the argument. Spatial bias (grid pooling over the whole map in every block) and non-local attention let units "
        "see both items, so they can answer at any distance."
    )
    tour.banner()


def meaning(curve: results.DistanceAccuracy) -> str:
    """One sentence, from the numbers, on what a model's accuracy-by-distance curve says."""
    at_chance = [low <= 50 <= high for low, high in curve.ci95]
    names = [b.removeprefix("distance ") for b in curve.bins]
    lowest = min(curve.accuracy)
    if all(at_chance):
        return (f"at chance at every distance ({min(curve.accuracy):.1f}-{max(curve.accuracy):.1f}%, every 95% "
                "interval holds 50%), even up close where its receptive field covers both items: this checkpoint "
                "did not solve the task at any distance.")
    if lowest >= 90:
        return f"keeps >= 90% at every distance (lowest {lowest:.1f}%, {names[curve.accuracy.index(lowest)]})."
    first = next((i for i in range(len(at_chance)) if all(at_chance[i:])), None)
    if first is not None:
        return f"above chance up close, at chance from {names[first]} on (its 95% intervals hold 50%)."
    return f"above chance at every distance but falls to {lowest:.1f}% at {names[curve.accuracy.index(lowest)]}."


def accuracy_by_distance(names: list[str]) -> None:
    st.subheader("Accuracy by distance (test set)")
    figure, rows, sentences = go.Figure(), [], []
    x = DEFAULT_TASK.bin_centres
    far = None
    for colour, name in zip(cycle(qualitative.D3), names):
        model = state.get_model(name)
        curve = results.distance_accuracy(model)
        far = results.reach(model)[1]
        label = state.variant_label(name)
        lower = [a - low for a, (low, _) in zip(curve.accuracy, curve.ci95)]
        upper = [high - a for a, (_, high) in zip(curve.accuracy, curve.ci95)]
        figure.add_trace(go.Scatter(
            x=x, y=curve.accuracy, mode="lines+markers", name=label, line_color=colour, legendgroup=label,
            error_y=dict(type="data", array=upper, arrayminus=lower, visible=True),
        ))
        for seed_name in state.seed_runs(name):
            figure.add_trace(go.Scatter(
                x=x, y=results.distance_accuracy(state.get_model(seed_name)).accuracy, mode="markers",
                name=f"{label}, other seeds", legendgroup=label, showlegend=seed_name.endswith("-s1"),
                marker=dict(color=colour, symbol="circle-open", size=9), hovertext=seed_name,
            ))
        rows += [{"model": name, "distance bin": b.removeprefix("distance "), "bin centre (px)": c,
                  "accuracy (%)": a, "95% low": low, "95% high": high, "samples": n}
                 for b, c, a, (low, high), n in zip(curve.bins, x, curve.accuracy, curve.ci95, curve.samples)]
        sentences.append(f"- **{label}** (`{name}`, {curve.overall:.1f}% overall): {meaning(curve)}")
    figure.add_hline(y=50, line_dash="dash", line_color="grey", annotation_text="chance")
    if far is not None:
        figure.add_shape(type="line", x0=far, x1=DEFAULT_TASK.bin_edges[-1], y0=SUM_OF_ITEMS_BOUND,
                         y1=SUM_OF_ITEMS_BOUND, line=dict(color="firebrick", dash="dash"))
        figure.add_annotation(x=far, y=SUM_OF_ITEMS_BOUND, xanchor="right", yanchor="bottom", showarrow=False,
                              text=f"beyond reach, a sum of items<br>gets at most {SUM_OF_ITEMS_BOUND:.0f}%")
        reach_line(figure, far, REACH_LABEL_Y)
    figure.update_layout(
        xaxis_title="distance between item centres (px, Chebyshev)", yaxis_title="accuracy (%)",
        yaxis_range=[30, REACH_LABEL_Y + 4], height=400, margin=dict(l=0, r=0, t=30, b=0),
        legend=dict(orientation="h", y=1.02, yanchor="bottom"),
    )
    frame = pd.DataFrame(rows)
    plots.show_chart(figure, "gc_accuracy", "global_context_accuracy_by_distance", frame)
    st.markdown("\n".join(sentences))
    if far is not None:
        st.caption(f"From {far} px on (dotted line), no unit of the plain model's convolutional path sees both items. "
                   "Bars: Wilson 95% intervals per bin of the shipped (seed 0) run; open circles: the other seeds' runs.")
    with st.expander("Numbers"):
        st.dataframe(frame, hide_index=True)


def item_options() -> dict[int, int]:
    """The first few test items of each class (from the test placements): item index -> class."""
    test = compute.same_different_test()
    found: dict[int, list[int]] = {c: [] for c in ITEM_NAMES}
    for i in range(len(test)):
        placement = test.placement(i)
        for item, kind in zip(placement.items, placement.classes):
            if kind in found and item not in found[kind] and len(found[kind]) < ITEMS_PER_CLASS:
                found[kind].append(item)
        if all(len(v) == ITEMS_PER_CLASS for v in found.values()):
            break
    return {item: kind for kind in ITEM_NAMES for item in found[kind]}


def centres() -> range:
    """Every value of a centre slider (px): the item stays on the canvas."""
    return range(LOW, HIGH + 1)


def item_params(slot: str) -> list[links.Param]:
    """The URL parameters of item ``slot`` ("a" or "b"): test item, source, centre row and column."""
    key = f"gc_item_{slot}"
    return [
        links.Param(f"item_{slot}", key, lambda: list(item_options())),
        links.Param(f"source_{slot}", f"{key}_source", lambda: ["sample"]),  # an upload cannot travel in a link
        links.Param(f"row_{slot}", f"{key}_row", centres),
        links.Param(f"col_{slot}", f"{key}_col", centres),
    ]


PARAMS = item_params("a") + item_params("b") + [links.Param("direction", "gc_direction", lambda: list(DIRECTIONS))]


@dataclass(frozen=True)
class ProbeItem:
    """One probe item: a caption, an id that tells items apart in result settings, and its (s, s) pixels in [0, 1]."""

    caption: str
    ident: str
    pixels: np.ndarray = field(compare=False)


def enlarge(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement of a [0, 1] grey image."""
    return np.kron(np.asarray(image, dtype=np.float32), np.ones((factor, factor), dtype=np.float32)).clip(0, 1)


def item_label(classes: dict[int, int], index: int) -> str:
    return f"item {index} ({ITEM_NAMES.get(classes.get(index), '?')})"


def fmnist_item(index: int, caption: str) -> ProbeItem:
    return ProbeItem(caption, f"test {index}", compute.same_different_test().items[index].numpy())


def uploaded_item(key: str, upload: inputs.ImageInput | None) -> ProbeItem | None:
    """An upload as a probe item, with its invert switch; None, with a message saying why, when unusable."""
    if upload is None:
        st.info("Upload an image, or switch back to a Fashion-MNIST item.")
        return None
    image = inputs.open_image(upload)
    if image is None:
        return None
    invert_key = f"{key}_invert_{upload.digest}"
    st.session_state.setdefault(invert_key, inputs.light_background(image))
    invert = st.checkbox("Invert colours", key=invert_key, help=inputs.INVERT_HELP)
    pixels = probe.item_from_image(image, invert).numpy()
    return ProbeItem(f"upload {upload.name}", f"upload {upload.digest} invert={invert}", pixels)


def item_picker(slot: str, classes: dict[int, int], default: int) -> ProbeItem | None:
    """Item ``slot``: an explicit choice between a Fashion-MNIST test item and an upload, shown as the
    model gets it; None while the choice is an upload that cannot be used."""
    key = f"gc_item_{slot}"
    source = inputs.source_choice(key, f"Item {slot}", "Fashion-MNIST item")
    st.session_state.setdefault(key, default)
    label = partial(item_label, classes)
    index = st.selectbox("Test item", list(classes), format_func=label, key=key, on_change=inputs.choose_sample,
                         args=(key,))
    upload = inputs.upload_box(key)
    item = fmnist_item(index, label(index)) if source == "sample" else uploaded_item(key, upload)
    if item is not None:
        st.image(enlarge(item.pixels, 4), caption=item.caption, width=look.scaled(96))
    return item


def item_centre(slot: str, default: tuple[int, int]) -> tuple[int, int]:
    """The (row, col) sliders of item ``slot``'s centre, pixels."""
    centre = []
    for axis, name, value in (("row", "centre row", default[0]), ("col", "centre column", default[1])):
        key = f"gc_item_{slot}_{axis}"
        st.session_state.setdefault(key, value)
        centre.append(st.slider(f"Item {slot}: {name}", LOW, HIGH, key=key))
    return centre[0], centre[1]


def probe_controls() -> tuple[ProbeItem | None, ProbeItem | None, tuple[int, int], tuple[int, int]]:
    classes = item_options()
    options = list(classes)
    left, right = st.columns(2)
    with left:
        item_a, centre_a = item_picker("a", classes, options[0]), item_centre("a", (64, 14))
    with right:
        item_b, centre_b = item_picker("b", classes, options[-1]), item_centre("b", (64, 44))
    return item_a, item_b, centre_a, centre_b


def live_probe(names: list[str]) -> None:
    st.subheader("Live probe")
    st.caption("Pick two test items or upload your own and place them; every lab model's P(same) updates. The "
               "items may overlap. An upload is seen as a Fashion-MNIST image (28x28 grayscale, light on dark) "
               "and pasted like a test item; the models only know trousers and bags.")
    item_a, item_b, centre_a, centre_b = probe_controls()
    if item_a is None or item_b is None:
        st.info("The probe needs two usable items: upload another image or switch back to a Fashion-MNIST item.")
        show_sweep(names, None)
        return
    distance = max(abs(centre_a[0] - centre_b[0]), abs(centre_a[1] - centre_b[1]))
    canvas = probe.place_pair(item_a.pixels, item_b.pixels, centre_a, centre_b).numpy()
    picture, table = st.columns([2, 3] if look.presenting() else [1, 3])  # the canvas as large as the projector needs
    picture.image(enlarge(canvas, 2), caption=f"canvas, centres {distance} px apart (Chebyshev)", width=look.scaled(256))
    frame = pd.DataFrame([probe_row(name, canvas, centre_a, centre_b) for name in names])
    ablated = intervention_panel.probe_under_intervention(canvas)
    if ablated is not None:
        frame = pd.concat([frame, pd.DataFrame([{"model": ablated[0], "your pair: P(same)": ablated[1]}])],
                          ignore_index=True)
    with table:
        st.dataframe(frame, hide_index=True, column_config={
            "your pair: P(same)": st.column_config.ProgressColumn("your pair: P(same)", min_value=0.0, max_value=1.0,
                                                                  format="%.3f")})
        st.caption(
            "Your pair, then the four pair types at the same two positions (P(same); ✓ right, ✗ wrong: same is "
            f"trouser+trouser or bag+bag, above 0.5 the model answers \"same\"), then the accuracy over "
            f"{4 * PAIRS_PER_TYPE} test pairs ({PAIRS_PER_TYPE} of each type) at these positions, with its 95% "
            "interval: one pair can be right by luck, a hundred cannot."
        )
    sweep(names, item_a, item_b, centre_a)
    where_models_look(names, canvas, (centre_a, centre_b), (item_a.ident, item_b.ident))


LOOK_METHODS = ["input_x_gradient", "integrated_gradients", "occlusion", "saliency", "grad_cam"]
EVIDENCE_NOTE = (
    "Shares of |attribution| on item a's square, item b's square and the rest of the canvas; a uniform map puts "
    "{item:.1%} on each item. Integrated Gradients starts from a black canvas, which is the background itself, so "
    "it gives the background exactly zero by construction: its shares say how the evidence splits between the "
    "items, not whether the background matters (Occlusion, which blacks out windows, gives zero only to background "
    "far from both items). Over 200 far test canvases with intervals, and how faithful each method is on them: "
    "README, 'Which attribution map to trust'."
)


def where_models_look(names: list[str], canvas: np.ndarray, centres: tuple[tuple[int, int], tuple[int, int]],
                      items: tuple[str, str]) -> None:
    """On a click: every lab model's attribution of its answer on the probe canvas, with its evidence shares."""
    st.subheader("Where each model looks")
    st.caption("Does a model use both items, or only one? An attribution map of each model's answer on your canvas, "
               "and the share of it on each item.")
    method = st.selectbox("Method", LOOK_METHODS, format_func=analysis.ATTRIBUTION_METHODS.get, key="gc_look_method")
    settings = (items, centres, method, state.current_device(), tuple(names))
    if st.button("Attribute", type="primary", key="gc_look_run", icon=":material/play_arrow:"):
        tickets = {name: compute.canvas_attribution_job(state.get_model(name), state.model_key(name), canvas, centres,
                                                        method) for name in names}
        try:
            done = {name: jobs.wait(ticket, f"Attributing with {state.variant_label(name)}", cancel_on_leave=True)
                    for name, ticket in tickets.items()}
        finally:
            for ticket in tickets.values():  # those a stopped run never waited for
                ticket.cancel()
        memory.remember(LOOK, memory.Stored(settings, done, extra={"canvas": canvas, "method": method}))
    stored = memory.recall(LOOK)
    if stored is None:
        return
    memory.show_freshness(stored, settings, "Attribute")
    with st.columns([2, 3])[0]:  # how the shown maps' values are drawn (their method decides whether they have a sign)
        signed, cmap = widgets.value_display("gc_look", allow_signed=stored.extra["method"] in analysis.SIGNED_METHODS)
    for column, (name, (attribution, same, shares)) in zip(st.columns(len(stored.value)), stored.value.items()):
        shown = attribution.signed_heatmap if signed else attribution.heatmap
        with column:
            st.markdown(f"**{state.variant_label(name)}**: {'same' if same > 0.5 else 'different'} (P(same) {same:.2f})")
            plots.show_chart(plots.image_figure(stored.extra["canvas"], shown, cmap=cmap, opacity=0.7,
                                                zmin=-1.0 if signed else 0.0, zmax=1.0, height=220),
                             f"gc_look_{name}", f"{name}_probe_{stored.extra['method']}", plots.map_frame(shown))
            st.caption(f"item a {shares.item_a:.0%} · item b {shares.item_b:.0%} · background {shares.background:.0%}")
    st.caption(EVIDENCE_NOTE.format(item=evidence.uniform_shares().item_a))


def four_pairs(centre_a: tuple[int, int], centre_b: tuple[int, int]) -> dict[str, np.ndarray]:
    """The four pair types (two different test items of each class) placed at the two centres: name -> canvas."""
    test = compute.same_different_test()
    first, second = ([int(i) for i in pool[:2]] for pool in test.pools)
    items = {(0, 0): (first[0], first[1]), (1, 1): (second[0], second[1]), (0, 1): (first[0], second[0]),
             (1, 0): (second[0], first[0])}
    return {probe.pair_name(kind): probe.place_pair(test.items[a], test.items[b], centre_a, centre_b).numpy()
            for kind, (a, b) in ((kind, items[kind]) for kind in probe.pair_types())}


def probe_row(name: str, canvas: np.ndarray, centre_a: tuple[int, int], centre_b: tuple[int, int]) -> dict:
    """One model's probe: P(same) of the user's pair and of the four pair types, and the many-pairs accuracy."""
    model, key = state.get_model(name), state.model_key(name)
    row = {"model": state.variant_label(name), "your pair: P(same)": compute.same_probability(model, key, canvas)}
    for pair, pair_canvas in four_pairs(centre_a, centre_b).items():
        same = len(set(pair.split("+"))) == 1
        value = compute.same_probability(model, key, pair_canvas)
        row[pair] = f"{value:.2f} {'✓' if (value > 0.5) == same else '✗'}"
    accuracy = compute.pair_accuracy(model, key, centre_a, centre_b, PAIRS_PER_TYPE)
    low, high = accuracy.ci95
    row[f"accuracy, {accuracy.total} pairs"] = f"{accuracy.accuracy:.0f}% [{low:.0f}, {high:.0f}]"
    return row


def sweep(names: list[str], item_a: ProbeItem, item_b: ProbeItem, centre_a: tuple[int, int]) -> None:
    direction = st.radio("Sweep direction (item b moves away from item a)", list(DIRECTIONS), horizontal=True,
                         key="gc_direction")
    # plain values only: a class defined in this page is a new class at every rerun, so its instances never compare equal
    settings = (item_a.ident, item_b.ident, centre_a, direction, state.current_device(), tuple(names))
    limit = probe.sweep_limit(centre_a, DIRECTIONS[direction])
    if st.button("Sweep distance", type="primary", key="gc_sweep_run"):
        distances = tuple(range(DEFAULT_TASK.item_size, limit + 1, SWEEP_ACCURACY_STEP))
        tickets = {name: compute.sweep_job(state.get_model(name), state.model_key(name), item_a.pixels, item_b.pixels,
                                           centre_a, DIRECTIONS[direction], distances, SWEEP_PAIRS_PER_TYPE)
                   for name in names}  # all queued at once: the server runs them side by side
        done = {name: jobs.wait(ticket, f"Sweeping {state.variant_label(name)}", cancel_on_leave=True)
                for name, ticket in tickets.items()}
        curves = {name: value[0] for name, value in done.items()}
        accuracy = {name: value[1] for name, value in done.items()}
        memory.remember(PAGE, memory.Stored(settings, curves, extra={"accuracy": accuracy, "limit": limit}))
    show_sweep(names, settings)


def show_sweep(names: list[str], settings: Hashable) -> None:
    """The last sweep's P(same) curves and many-pairs accuracy, marked stale when made with other ``settings``."""
    stored = memory.recall(PAGE)
    if stored is None:
        return
    memory.show_freshness(stored, settings, "Sweep distance")
    far = results.reach(state.get_model(names[0]))[1]
    largest = DEFAULT_TASK.canvas_size - DEFAULT_TASK.item_size
    if stored.extra["limit"] < largest - SWEEP_ACCURACY_STEP:  # a few px short of the corner is not worth a note
        st.caption(f":material/info: The sweep stops at {stored.extra['limit']} px: further along this direction item b "
                   f"would leave the canvas. Move item a towards the opposite edge to sweep up to {largest} px.")
    curves, accuracy = st.columns(2)
    figure, rows = go.Figure(), []
    for colour, (name, (distances, probabilities)) in zip(cycle(qualitative.D3), stored.value.items()):
        figure.add_trace(go.Scatter(x=distances, y=probabilities, mode="lines", name=state.variant_label(name),
                                    line_color=colour))
        rows += [{"model": name, "distance (px)": d, "P(same)": p} for d, p in zip(distances, probabilities)]
    reach_line(figure, far, 1.08)
    figure.add_hline(y=0.5, line_dash="dash", line_color="grey")
    figure.update_layout(xaxis_title="distance between item centres (px)", yaxis_title="P(same), your pair",
                         yaxis_range=[0, 1.15], height=340, margin=dict(l=0, r=0, t=30, b=0),
                         legend=dict(orientation="h", y=1.02, yanchor="bottom"))
    with curves:
        plots.show_chart(figure, "gc_sweep_chart", "global_context_sweep", pd.DataFrame(rows))
    figure, rows = go.Figure(), []
    for colour, (name, points) in zip(cycle(qualitative.D3), stored.extra["accuracy"].items()):
        x = [d for d, _ in points]
        y = [a.accuracy for _, a in points]
        figure.add_trace(go.Scatter(
            x=x, y=y, mode="lines+markers", name=state.variant_label(name), line_color=colour,
            error_y=dict(type="data", visible=True, array=[a.ci95[1] - a.accuracy for _, a in points],
                         arrayminus=[a.accuracy - a.ci95[0] for _, a in points])))
        rows += [{"model": name, "distance (px)": d, "accuracy (%)": a.accuracy, "95% low": a.ci95[0],
                  "95% high": a.ci95[1], "pairs": a.total} for d, a in points]
    reach_line(figure, far, REACH_LABEL_Y)
    figure.add_hline(y=50, line_dash="dash", line_color="grey")
    figure.update_layout(xaxis_title="distance between item centres (px)",
                         yaxis_title=f"accuracy over {4 * SWEEP_PAIRS_PER_TYPE} test pairs (%)",
                         yaxis_range=[0, REACH_LABEL_Y + 6], height=340, margin=dict(l=0, r=0, t=30, b=0),
                         legend=dict(orientation="h", y=1.02, yanchor="bottom"))
    with accuracy:
        plots.show_chart(figure, "gc_sweep_accuracy", "global_context_sweep_accuracy", pd.DataFrame(rows))
    st.caption("Left: P(same) for your pair as item b moves away. Right: accuracy over "
               f"{4 * SWEEP_PAIRS_PER_TYPE} test pairs (all four pair types, the same pairs at every distance) along "
               "the same path, with Wilson 95% intervals: where the plain model drops to 50%, it no longer tells "
               "same from different, whatever one pair shows.")


def reach_line(figure: go.Figure, far: int, label_y: float) -> None:
    """The plain model's reach as a dotted vertical line, labelled above the curves at ``label_y``."""
    figure.add_vline(x=far, line_dash="dot")
    figure.add_annotation(x=far, y=label_y, text=f"plain reach: {far} px", showarrow=False, xanchor="left",
                          bgcolor="rgba(255,255,255,0.8)")


FAR_CANVAS = "samediff_far_bags.png"  # a bundled sample: two bags 96 px apart


def links_out() -> None:
    st.subheader("Look inside")
    st.markdown(
        "The lab models (`*.samediff`) can be chosen on the other pages like any model: on **Explore** to see the "
        "spatial-bias maps and non-local attention of a canvas (this link opens two bags 96 px apart, beyond the "
        "plain model's reach), and on **Effective receptive field**, where at this scale the share outside the "
        "receptive field at stages 1-2 is no longer zero."
    )
    left, right = st.columns(2)
    left.page_link(tour.page_path("explore"), label="Explore: SB lab model on a far canvas", icon=":material/image_search:",
                   query_params={"model": "sb_lab_resnet14.samediff", "source": "sample", "sample": FAR_CANVAS})
    right.page_link(tour.page_path("receptive_field"), label="Effective receptive field: plain and SB lab models",
                    icon=":material/blur_on:", query_params={
                        "models": "lab_resnet14.samediff,sb_lab_resnet14.samediff", "stage": "layer1", "source": "noise"})


header()
lab_models = state.shipped_family("samediff")
if not lab_models:
    st.info("No lab models (`*.samediff`) are shipped in this installation.")
    links.stop()
page_params = PARAMS + intervention_panel.params(lab_models)
links.pull(page_params)
accuracy_by_distance(lab_models)
intervention_panel.section(lab_models)
live_probe(lab_models)
links.push(page_params)
links_out()
