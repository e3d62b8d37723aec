#!/usr/bin/env bash
# The engine against the PyTorch reference on this machine, side by side in one invocation:
# `orchestrator bench --rnn --against-torch PYTHON` at the native SIMD level and, on a CPU with
# AVX-512, again with the level capped to AVX2 + FMA (LE_ENGINE_SIMD=avx2), so both paths are
# measured on the same machine in one invocation. In the capped run the bench
# caps PyTorch and numpy to AVX2 too (MKL_ENABLE_INSTRUCTIONS, ATEN_CPU_CAPABILITY,
# ONEDNN_MAX_CPU_ISA, OPENBLAS_CORETYPE) and reports "of best SGEMM" against their AVX2 SGEMM,
# so that run stands for an AVX2-only machine (the gemm crate's SGEMM, which cannot be capped,
# is shown beside it).
#
# Usage: scripts/bench-vs-torch.sh PYTHON [OUT_DIR] [extra bench args...]
#   PYTHON needs torch, numpy and safetensors (e.g. python3 -m venv V && V/bin/pip install
#   torch numpy safetensors). Markdown reports go to OUT_DIR (default target/bench-vs-torch).
set -euo pipefail
python=${1:?usage: scripts/bench-vs-torch.sh PYTHON [OUT_DIR] [extra bench args...]}
out=${2:-target/bench-vs-torch}
shift $(( $# >= 2 ? 2 : 1 ))
"$python" -c 'import torch, numpy, safetensors' \
  || { echo "bench-vs-torch: $python lacks torch, numpy or safetensors" >&2; exit 2; }
mkdir -p "$out"
cargo build --release -p orchestrator
bin=target/release/orchestrator
grep -m1 'model name' /proc/cpuinfo || true
levels=(native)
if grep -qw avx512f /proc/cpuinfo && grep -qw avx2 /proc/cpuinfo; then levels+=(avx2); fi
for level in "${levels[@]}"; do
  echo "== SIMD level: $level"
  if [ "$level" = native ]; then
    "$bin" bench --rnn --sizes 128 --against-torch "$python" --out "$out/$level.md" "$@"
  else
    LE_ENGINE_SIMD=$level "$bin" bench --rnn --sizes 128 --against-torch "$python" \
      --out "$out/$level.md" "$@"
  fi
done
