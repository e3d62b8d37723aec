#!/usr/bin/env bash
# CUDA checks that need no GPU (the lead calls this from .ci/run). Fails loudly.
#   1. le-engine compiles and lints with `--features cuda` (cudarc loads CUDA at run time, so no
#      toolkit is needed to build);
#   2. NVRTC (from the PyPI wheel nvidia-cuda-nvrtc-cu12) compiles every kernel without
#      warnings, and the registry matches the sources and the PTX (tests/cuda_nvrtc.rs);
#   3. the CUDA backend is a typed error without a driver (tests/cuda_backend.rs), the host-side
#      plan of the GPU run matches the CPU loop (lib unit tests under backend::);
#   (4. the kernels' numerical checks on the CPU emulator run with `cargo test --workspace`.)
# Runtime: a few minutes on 2 cores (most of it compiling; the emulator takes about a minute).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
export CI="${CI:-1}"   # the NVRTC test fails instead of skipping when libnvrtc is missing

echo "== cargo check -p le-engine --features cuda"
cargo check -p le-engine --features cuda --all-targets
echo "== cargo clippy -p le-engine --features cuda"
cargo clippy -p le-engine --features cuda --all-targets -- -D warnings

echo "== libnvrtc from the nvidia-cuda-nvrtc-cu12 wheel"
# Pinned: NVRTC 12.8 and later warn that compute_70 is deprecated, and the test requires an
# empty compiler log for every architecture it compiles for (compute_70 and compute_90).
python3 -m pip install --quiet --disable-pip-version-check "nvidia-cuda-nvrtc-cu12==12.6.85"
NVRTC_LIB="$(python3 -c 'import os, nvidia.cuda_nvrtc as m; print(os.path.join(list(m.__path__)[0], "lib"))')"
if ! ls "$NVRTC_LIB"/libnvrtc.so.* >/dev/null 2>&1; then
    echo "ci-cuda-check: no libnvrtc.so.* in $NVRTC_LIB" >&2
    exit 1
fi
export LD_LIBRARY_PATH="$NVRTC_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "libnvrtc: $NVRTC_LIB"

echo "== NVRTC compiles every kernel; registry consistent; typed errors without a GPU"
cargo test -p le-engine --features cuda --release --test cuda_nvrtc --test cuda_backend
cargo test -p le-engine --features cuda --release --lib backend::

# The kernels' CPU-emulator tests (kernels/tests/emulated.rs) run with the workspace tests.

echo "ci-cuda-check: OK"
