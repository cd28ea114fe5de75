#!/usr/bin/env bash
# One lent-GPU session in one call, under 12 minutes: the CUDA tests (parity of the padded layout and the fused
# branch included), where spatial bias's cost goes with the padded layout and the fused branch beside the
# concatenation (spatial_bias_costs.py), then the GPU throughput benchmark (fp16/bf16, default channel layout).
# Logs go to $OUT (the device tool's folder) or ./gpu-out. Python packages the GPU machine lacks
# (streamlit, plotly, captum and their needs) travel as wheels in .whl/ when present.
#
#     bash benchmarks/gpu_session.sh
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-out}
mkdir -p "$out"
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv | tee "$out/gpu.txt"
python3 -c "import torch, streamlit, captum, plotly; print('torch', torch.__version__, 'cuda', torch.version.cuda,
'streamlit', streamlit.__version__)" 2>&1 | tee -a "$out/gpu.txt"
timeout "${TEST_SECONDS:-200}" python3 -m pytest tests/test_gpu.py -v -p no:cacheprovider --durations=5 2>&1 \
    | tee "$out/tests.log"
timeout "${COSTS_SECONDS:-200}" python3 benchmarks/spatial_bias_costs.py --device cuda 2>&1 | tee "$out/costs.log"
timeout "${BENCH_SECONDS:-260}" python3 benchmarks/throughput.py --device cuda 2>&1 | tee "$out/throughput.log"
