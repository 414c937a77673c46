#!/usr/bin/env bash
# GPU check (≤ 8 min on one GPU): the per-token KL backends and the pipeline; run from the repository root
#   bash benchmarks/gpu_check.sh
# 1. the backend tests on CUDA (Triton compiled, not interpreted: TRITON_INTERPRET unset);
# 2. the benchmark at V = 151936 (Qwen's vocabulary) in bf16, achieved GB/s as a share of peak, and each
#    backend's time over the MC minimum (logsumexp + gather of both logits, compiled if faster): the
#    "x MC-min" column; the Triton kernel's target is <= 1.1x (issue 15). Not yet run on a GPU.
# 3. token_stats at V = 50257 (GPT-2's vocabulary) in fp32: ms, GB/s, share of peak;
# 4. the pipeline on the GPU (benchmarks/gpu_pipeline.py): `snakemake --config profile=paper scale=smoke
#    device=cuda` from the stand-in hub cache offline (HF_HOME_REAL=<a filled hub cache> uses the real
#    models instead), a train run killed (SIGKILL) after two updates and resumed, and the seconds per
#    RLOO update at the paper's sizes with a GPT-2-small-sized policy → the projected wall time of the
#    full paper sweep;
# 5. one table of everything this run measured (the rows it appended to benchmarks/results.csv).
# Budget ≤ 8 minutes on one GPU. Written without a GPU at hand: ready, untested on CUDA.
# Needs a CUDA build of torch 2.13.0 (which brings its own triton) in .venv, or PY set to a python.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
START=$(date -u +%Y-%m-%dT%H:%M:%S)
STATUS=0
if [ -z "${PEAK_GBPS:-}" ] && command -v nvidia-smi >/dev/null 2>&1; then
  case "$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)" in  # HBM peak of common parts
    *H200*) PEAK_GBPS=4800 ;; *"H100 PCIe"*) PEAK_GBPS=2039 ;; *H100*) PEAK_GBPS=3350 ;;
    *A100*80GB*) PEAK_GBPS=2039 ;; *A100*) PEAK_GBPS=1555 ;;
  esac
fi
PEAK_GBPS=${PEAK_GBPS:-3350}  # H100 SXM HBM3; 2039 for H100 PCIe, 4800 for H200

unset TRITON_INTERPRET
"$PY" -c "import torch, triton; assert torch.cuda.is_available(), 'no CUDA device'; \
print(torch.__version__, triton.__version__, torch.cuda.get_device_name())"

timeout 90 "$PY" -m pytest -q tests/test_backends.py tests/test_backends_fused_linear.py \
  tests/test_backends_nan_gradients.py

timeout 150 "$PY" benchmarks/token_kl.py --device cuda --dtype bfloat16 --N 4096 --V 151936 \
  --backends triton compiled chunked --warmup 2 --reps 10 --peak-gbps "$PEAK_GBPS"

timeout 150 "$PY" benchmarks/token_kl.py --device cuda --dtype float32 --N 4096 --V 50257 \
  --backends triton compiled chunked --warmup 2 --reps 10 --peak-gbps "$PEAK_GBPS" || STATUS=1

# ≤ ~4 min: smoke DAG (~14 short jobs), the interrupted run, 4 timed updates of a 124 M policy
HUB_ARGS=()
if [ -n "${HF_HOME_REAL:-}" ]; then HUB_ARGS=(--hf-home "$HF_HOME_REAL"); fi
timeout 330 "$PY" benchmarks/gpu_pipeline.py --device cuda "${HUB_ARGS[@]}" --timeout 150 || STATUS=1

echo
echo "=== gpu_check: every row appended to benchmarks/results.csv since $START ==="
"$PY" benchmarks/gpu_pipeline.py --table-since "$START"
exit $STATUS
