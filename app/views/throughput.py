"""Throughput: a live benchmark of untrained architectures (speed does not depend on weights), with
params, FLOPs and ratios against the plain baseline and the non-local variant, beside the paper's claims."""
from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from app import plots, state
from sbcore.paper import PAPER_CLAIMS, claim_comparison
from sbcore import analysis, create_model, list_models
from sbcore.errors import SBCoreError

BATCH_SIZES = [1, 2, 4, 8, 16, 32, 64, 128, 256]

st.title("Throughput")
st.caption(
    "How fast is spatial bias next to a non-local block? Models are built with random weights at the input size "
    "you choose, then timed on this machine."
)

architectures = list_models()
defaults = [n for n in ("resnet38", "sb_resnet38", "nl_resnet38", "sbnl_resnet38") if n in architectures]
chosen = st.multiselect("Models", architectures, default=defaults, key="speed_models")
first, second, third = st.columns(3)
batch_sizes = first.multiselect("Batch sizes", BATCH_SIZES, default=[8], key="speed_batches")
channels = first.selectbox("Input channels", [3, 1], key="speed_channels")
side = first.number_input("Input side (pixels)", 16, 512, 32, 8, key="speed_side")
devices = state.available_devices()
device = second.selectbox("Device", devices, index=devices.index(state.current_device()), key="speed_device")
dtype = second.selectbox("Precision", ["fp32", "bf16", "fp16"], key="speed_dtype")
if device == "cpu" and dtype == "fp16":
    second.caption("fp16 on a CPU is often slower than fp32 or unsupported.")
channels_last = third.checkbox("channels_last memory format", key="speed_channels_last")
compiled = third.checkbox("torch.compile (slow first run)", key="speed_compile")
min_run_time = third.slider("Seconds per measurement", 0.2, 5.0, 1.0, 0.2, key="speed_time")

input_size = (channels, int(side), int(side))
if st.button("Run benchmark", type="primary", key="speed_run", disabled=not chosen or not batch_sizes):
    progress = st.progress(0.0, text="Warming up…")
    models = {name: create_model(name, in_chans=channels) for name in chosen}
    try:
        rows = analysis.measure_throughput(
            models, sorted(batch_sizes), input_size, device=device, dtype=dtype, channels_last=channels_last,
            compile=compiled, min_run_time=min_run_time,
            progress=lambda done, total: progress.progress(done / total, text=f"Measured {done} of {total}"),
        )
        st.session_state["speed_rows"] = (input_size, device, dtype, rows)
    except SBCoreError as error:
        st.error(str(error))
    finally:
        progress.empty()

if "speed_rows" not in st.session_state:
    st.info("Choose models and settings, then press Run benchmark.")
    st.stop()

measured_size, measured_device, measured_dtype, rows = st.session_state["speed_rows"]
frame = pd.DataFrame([row.__dict__ for row in rows])
for row in rows:
    if row.error:
        st.warning(f"{row.model} at batch {row.batch_size}: {row.error}")
ok = frame[frame["error"].isna()].assign(batch=lambda f: f["batch_size"].astype(str))
st.caption(f"Measured at {'x'.join(map(str, measured_size))} on {measured_device}, {measured_dtype}.")

speed, latency = st.columns(2)
with speed:
    figure = px.bar(ok, x="model", y="img_per_s", color="batch", barmode="group", labels={"img_per_s": "images / s"})
    figure.update_layout(height=380, margin=dict(l=0, r=0, t=30, b=0), title="Throughput")
    plots.show_chart(figure, "speed_bars", "throughput_img_per_s", ok[["model", "batch_size", "img_per_s"]])
with latency:
    figure = px.bar(
        ok, x="model", y="median_ms", color="batch", barmode="group", error_y=ok["iqr_ms"] / 2,
        labels={"median_ms": "median latency per batch (ms)"},
    )
    figure.update_layout(height=380, margin=dict(l=0, r=0, t=30, b=0), title="Latency (bars: interquartile range)")
    plots.show_chart(figure, "speed_latency", "throughput_latency_ms", ok[["model", "batch_size", "median_ms", "iqr_ms"]])

st.subheader("Results")
st.dataframe(frame, hide_index=True)
plots.download("CSV", frame, "throughput.csv", key="speed_table_csv")

st.subheader("Against the paper")
claims = claim_comparison(rows, measured_size[0])
st.dataframe(pd.DataFrame(claims), hide_index=True)
plots.download("CSV", pd.DataFrame(claims), "throughput_vs_paper.csv", key="speed_claims_csv")
st.caption(
    f"Paper: {PAPER_CLAIMS['source']}. Its throughput was measured on GPUs at ImageNet size; a small CPU and "
    "CIFAR-size inputs can give different ratios."
)
