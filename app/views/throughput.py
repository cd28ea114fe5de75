"""Throughput: a live, interleaved benchmark of untrained architectures (speed does not depend on weights),
with ratios and their confidence intervals against the plain and the non-local variant, beside the paper."""
from __future__ import annotations

import os
import time
from dataclasses import asdict
from functools import partial

import pandas as pd
import plotly.express as px
import streamlit as st

from app import guard, jobs, links, memory, plots, state
from sbcore import analysis, create_model, list_models
from sbcore.analysis.budget import estimate_benchmark
from sbcore.analysis.throughput import format_ratio
from sbcore.errors import SBCoreError
from sbcore.paper import PAPER_CLAIMS, claim_comparison

BATCH_SIZES = [1, 2, 4, 8, 16, 32, 64, 128, 256]
PRESETS = {
    "Paper setting: ResNet-50 family at 224x224": (("resnet50", "sb_resnet50", "nl_resnet50", "sbnl_resnet50"), 3, 224),
    "Small input: ResNet-38 family at 32x32 (overhead-dominated)": (
        ("resnet38", "sb_resnet38", "nl_resnet38", "sbnl_resnet38"), 3, 32),
}
SMALL_SIDE = 64  # below this, per-call overheads rather than FLOPs decide the speed
MEMORY_BUDGET_MB = 1024.0  # weights and activations of one click; the server's whole process stays under 1.5 GB
TIME_BUDGET_S = 90.0  # longest a click may measure
BUSY_SHARE = 0.25  # other processes using more than this share of the cores makes the numbers suspect
WIDE_INTERVAL = 0.10  # a ratio interval wider than 10% of the ratio is too uncertain to read
PAGE = "speed"  # app.memory keeps the last measurement under this name
PARAMS = [  # every control in the URL
    links.Param("models", "speed_models", list_models, many=True),
    links.Param("batches", "speed_batches", lambda: BATCH_SIZES, many=True),
    links.Param("channels", "speed_channels", lambda: [3, 1]),
    links.Param("side", "speed_side", lambda: range(16, 513)),
    links.Param("device", "speed_device", state.available_devices),
    links.Param("dtype", "speed_dtype", lambda: ["fp32", "bf16", "fp16"]),
    links.Param("channels_last", "speed_channels_last", lambda: [False, True]),
    links.Param("compile", "speed_compile", lambda: [False, True]),
    links.Param("seconds", "speed_time", lambda: links.steps(1.0, 10.0, 0.5)),
    links.Param("rounds", "speed_rounds", lambda: range(3, 21)),
]


@guard.guarded
def apply_preset() -> None:
    models, channels, side = PRESETS[st.session_state["speed_preset"]]
    st.session_state["speed_models"] = [m for m in models if m in list_models()]
    st.session_state["speed_channels"], st.session_state["speed_side"] = channels, side


def settings_ui() -> dict:
    """The benchmark's settings from the controls, defaulting to the paper's own setting."""
    _, channels, side = next(iter(PRESETS.values()))
    defaults = {"speed_preset": next(iter(PRESETS)), "speed_batches": [1], "speed_device": state.current_device(),
                "speed_dtype": "fp32", "speed_channels_last": False, "speed_compile": False, "speed_time": 3.0,
                "speed_rounds": 6, "speed_channels": channels, "speed_side": side}
    for key, value in defaults.items():
        st.session_state.setdefault(key, value)
    if "speed_models" not in st.session_state:
        apply_preset()
    st.radio("Setting", list(PRESETS), key="speed_preset", on_change=apply_preset, horizontal=True)
    chosen = st.multiselect("Models", list_models(), key="speed_models")
    first, second, third = st.columns(3)
    batch_sizes = first.multiselect("Batch sizes", BATCH_SIZES, key="speed_batches")
    channels = first.selectbox("Input channels", [3, 1], key="speed_channels")
    side = int(first.number_input("Input side (pixels)", 16, 512, step=8, key="speed_side"))
    device = second.selectbox("Device", state.available_devices(), key="speed_device",
                              help="The GPU when there is one: the paper measured on GPUs.")
    dtype = second.selectbox("Precision", ["fp32", "bf16", "fp16"], key="speed_dtype")
    if device == "cpu" and dtype != "fp32":
        second.caption("bf16/fp16 on a CPU without native support is emulated and much slower than fp32.")
    channels_last = third.checkbox("channels_last memory format", key="speed_channels_last")
    compiled = third.checkbox("torch.compile (adds about a minute per model)", key="speed_compile")
    seconds = third.slider("Seconds of timing per model and batch size", 1.0, 10.0, step=0.5, key="speed_time")
    rounds = third.slider("Rounds (the models take turns)", 3, 20, key="speed_rounds")
    if side < SMALL_SIDE:
        st.caption(f"At {side}x{side} the work per image is tiny: per-call overheads dominate, so the ratios say little "
                   "about the architectures (the paper measured at 224x224).")
    return dict(models=tuple(chosen), batch_sizes=tuple(sorted(batch_sizes)), input_size=(channels, side, side),
                device=device, dtype=dtype, channels_last=channels_last, compile=compiled, min_run_time=seconds,
                rounds=rounds)


def fit_budget(settings: dict) -> dict | None:
    """The settings scaled down to the time and memory budgets (largest batches dropped first), with a message
    saying what changed; None, with an error shown, when even the smallest request does not fit."""
    try:
        batches = list(settings["batch_sizes"])
        while batches:
            estimate = estimate_benchmark(settings["models"], batches, settings["input_size"], device=settings["device"],
                                          rounds=settings["rounds"], min_run_time=settings["min_run_time"],
                                          compile=settings["compile"])
            if estimate.memory_mb <= MEMORY_BUDGET_MB and estimate.seconds <= TIME_BUDGET_S:
                break
            batches.pop()
    except SBCoreError as error:
        st.error(str(error))
        return None
    if not batches:
        st.error(f"Even batch {settings['batch_sizes'][0]} would need more than {TIME_BUDGET_S:.0f} s or "
                 f"{MEMORY_BUDGET_MB:.0f} MB here; choose fewer models, a smaller input or fewer seconds per model.")
        return None
    if len(batches) < len(settings["batch_sizes"]):
        dropped = ", ".join(map(str, settings["batch_sizes"][len(batches):]))
        st.warning(f"Batch sizes {dropped} left out: with them the benchmark would exceed {TIME_BUDGET_S:.0f} s or "
                   f"{MEMORY_BUDGET_MB:.0f} MB on this machine.")
    st.caption(f"Estimated {estimate.seconds:.0f} s and {estimate.memory_mb:.0f} MB.")
    return {**settings, "batch_sizes": tuple(batches)}


def run_benchmark(settings: dict, requested: dict) -> bool:
    """Measure ``settings`` as an exclusive job of the server's scheduler (nothing else runs meanwhile, so
    sessions never time their models against each other's work) and remember the rows as the answer to the
    controls' ``requested`` settings (``settings`` may have fewer batch sizes). False, with an error shown,
    when it could not."""
    load = os.getloadavg()[0] / (os.cpu_count() or 1)
    progress = st.progress(0.0, text="Waiting for the machine…")

    def measure(report: jobs.Report) -> list[analysis.ThroughputRow]:
        builders = {name: partial(create_model, name, in_chans=settings["input_size"][0]) for name in settings["models"]}
        return analysis.measure_throughput(
            builders, settings["batch_sizes"], settings["input_size"], device=settings["device"],
            dtype=settings["dtype"], channels_last=settings["channels_last"], compile=settings["compile"],
            min_run_time=settings["min_run_time"], rounds=settings["rounds"], progress=report)

    try:
        rows = jobs.compute("benchmark", (repr(sorted(settings.items())),), measure, "Benchmark", exclusive=True,
                            cache=False, cancel_on_leave=True, progress=lambda done, total: progress.progress(
                                done / total, text=f"Measured {done} of {total} turns"))
    except (SBCoreError, RuntimeError, ValueError, MemoryError) as error:
        st.error(f"The benchmark stopped: {str(error).splitlines()[0] if str(error) else type(error).__name__}.")
        return False
    finally:
        progress.empty()
    memory.remember(PAGE, memory.Stored(requested, rows, extra={
        "measured": settings, "load_per_core": load, "finished": time.strftime("%H:%M:%S")}))
    return True


def table(rows: list[analysis.ThroughputRow]) -> pd.DataFrame:
    """Rows with human column names and units."""
    return pd.DataFrame([{
        "Model": r.model, "Batch": r.batch_size, "Images / s": r.img_per_s, "Median latency (ms)": r.median_ms,
        "Latency 25th-75th percentile (ms)": (f"{r.latency_low_ms:.1f} to {r.latency_high_ms:.1f}"
                                              if r.latency_low_ms is not None else None),
        "vs plain (95% CI)": format_ratio(r.vs_baseline, r.vs_baseline_ci),
        "vs non-local (95% CI)": format_ratio(r.vs_non_local, r.vs_non_local_ci),
        "Peak memory (MB)": r.peak_memory_mb, "Parameters (M)": r.params_m, "GFLOPs / image": r.gflops,
        "Rounds": r.rounds, "Error": r.error,
    } for r in rows])


def warnings_ui(stored: memory.Stored) -> bool:
    """Warn about a busy machine or wide intervals; True when the numbers should be measured again."""
    rows, extra = stored.value, stored.extra
    reasons = []
    share = max((r.others_cpu_share or 0.0 for r in rows), default=0.0)
    if share > BUSY_SHARE:
        reasons.append(f"other processes used {share:.0%} of the cores while it ran")
    if extra["load_per_core"] > 1.0:
        reasons.append(f"the load average was {extra['load_per_core']:.1f} per core when it started")
    wide = [f"{r.model} at batch {r.batch_size}" for r in rows for value, ci in
            ((r.vs_baseline, r.vs_baseline_ci), (r.vs_non_local, r.vs_non_local_ci))
            if value and ci and value != 1.0 and (ci[1] - ci[0]) > WIDE_INTERVAL * value]
    if wide:
        reasons.append("ratio intervals are wide for " + ", ".join(dict.fromkeys(wide)))
    if reasons:
        st.warning("These numbers may be skewed: " + "; ".join(reasons) + ". Measure again when the machine is quieter.")
    return bool(reasons)


def charts_ui(frame: pd.DataFrame, rows: list[analysis.ThroughputRow]) -> None:
    ok = [r for r in rows if r.error is None]
    if not ok:
        return
    data = pd.DataFrame([{
        "model": r.model, "batch": str(r.batch_size), "img_per_s": r.img_per_s, "median_ms": r.median_ms,
        "below_ms": r.spread_ms[0], "above_ms": r.spread_ms[1]} for r in ok])
    speed, latency = st.columns(2)
    with speed:
        figure = px.bar(data, x="model", y="img_per_s", color="batch", barmode="group",
                        labels={"img_per_s": "images / s", "model": "model"})
        figure.update_layout(height=380, margin=dict(l=0, r=0, t=30, b=0), title="Throughput (images / s)")
        plots.show_chart(figure, "speed_bars", "throughput_img_per_s", frame[["Model", "Batch", "Images / s"]])
    with latency:
        # quartile bars: asymmetric and measured from the median, so they never reach below zero
        figure = px.bar(data, x="model", y="median_ms", color="batch", barmode="group", error_y="above_ms",
                        error_y_minus="below_ms", labels={"median_ms": "median latency per batch (ms)"})
        figure.update_layout(height=380, margin=dict(l=0, r=0, t=30, b=0),
                             title="Latency per batch (bars: 25th to 75th percentile)")
        plots.show_chart(figure, "speed_latency", "throughput_latency_ms",
                         frame[["Model", "Batch", "Median latency (ms)", "Latency 25th-75th percentile (ms)"]])


def results_ui(stored: memory.Stored, current: dict) -> None:
    settings, rows = stored.extra["measured"], stored.value
    c, h, w = settings["input_size"]
    threads = next((r.cpu_threads for r in rows if r.cpu_threads is not None), None)
    where = settings["device"] + (f" with {threads} torch thread{'s' if threads > 1 else ''}" if threads else "")
    st.caption(f"Measured at {c}x{h}x{w} on {where}, {settings['dtype']}, {settings['rounds']} "
               f"interleaved rounds, finished {stored.extra['finished']}.")
    if threads and threads > 1:
        st.caption("Spatial bias adds a dozen small operations per block, which gain less from extra CPU threads than "
                   "the large convolutions do: with several threads its ratio to plain comes out lower than with one.")
    memory.show_freshness(stored, current, "Run benchmark")
    if h < SMALL_SIDE:
        st.caption("Small input: overhead-dominated, so the ratios reflect per-call costs more than the architectures.")
    for row in rows:
        if row.error:
            st.warning(f"{row.model} at batch {row.batch_size}: {row.error}")
    skewed = warnings_ui(stored)
    if skewed and st.button("Measure again", key="speed_again_run"):
        if run_benchmark(settings, stored.settings):
            st.rerun()  # draw the new result; after a failure, keep the error on screen
    frame = table(rows)
    charts_ui(frame, rows)
    st.subheader("Results")
    st.dataframe(frame, hide_index=True)
    plots.download("CSV", pd.DataFrame([asdict(r) for r in rows]), "throughput.csv", key="speed_table_csv")
    st.subheader("Against the paper")
    claims = pd.DataFrame(claim_comparison(rows, c))
    if claims.empty:
        st.caption("Measure an sb_ model together with its nl_ variant to compare with the paper's claims.")
    elif skewed:
        st.caption(":material/block: Not compared: this measurement may be skewed (see the warning above), so it says "
                   "nothing for or against the paper. Measure again on a quiet machine.")
        with st.expander("The skewed ratios anyway"):
            st.dataframe(claims, hide_index=True)
    else:
        st.dataframe(claims, hide_index=True)
        plots.download("CSV", claims, "throughput_vs_paper.csv", key="speed_claims_csv")
    st.caption(f"Paper: {PAPER_CLAIMS['source']}. Its throughput was measured on GPUs at ImageNet size; a small CPU "
               "and small inputs can give different ratios.")


st.title("Throughput")
st.caption(
    "How fast is spatial bias next to a non-local block? Models are built with random weights at the input size you "
    "choose, then take turns on this machine, round after round, so a busy moment slows them all alike."
)
links.pull(PARAMS)
current = settings_ui()  # app.memory keeps these controls across page visits
links.push(PARAMS)
if st.button("Run benchmark", type="primary", key="speed_run", disabled=not current["models"] or not current["batch_sizes"]):
    fitted = fit_budget(current)
    if fitted is not None:
        run_benchmark(fitted, current)
stored = memory.recall(PAGE)
if stored is None:
    st.info("Choose models and settings, then press Run benchmark.")
    links.stop()
results_ui(stored, current)
