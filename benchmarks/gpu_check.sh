#!/usr/bin/env bash
# GPU check for the per-token KL backends (≤ 3 min on one H100): run from the repository root
#   bash benchmarks/gpu_check.sh
# 1. the backend tests on CUDA (Triton compiled, not interpreted: TRITON_INTERPRET unset);
# 2. the benchmark at V = 151936 (Qwen's vocabulary) in bf16, achieved GB/s as a share of peak, and each
#    backend's time over the MC minimum (logsumexp + gather of both logits, compiled if faster): the
#    "x MC-min" column; the Triton kernel's target is <= 1.1x (issue 15). Not yet run on a GPU.
# Needs a CUDA build of torch 2.13.0 (which brings its own triton) in .venv, or PY set to a python.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
PEAK_GBPS=${PEAK_GBPS:-3350}  # H100 SXM HBM3; 2039 for H100 PCIe, 4800 for H200

unset TRITON_INTERPRET
"$PY" -c "import torch, triton; assert torch.cuda.is_available(), 'no CUDA device'; \
print(torch.__version__, triton.__version__, torch.cuda.get_device_name())"

timeout 90 "$PY" -m pytest -q tests/test_backends.py tests/test_backends_fused_linear.py \
  tests/test_backends_nan_gradients.py

timeout 150 "$PY" benchmarks/token_kl.py --device cuda --dtype bfloat16 --N 4096 --V 151936 \
  --backends triton compiled chunked --warmup 2 --reps 10 --peak-gbps "$PEAK_GBPS"
