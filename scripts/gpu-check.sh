#!/usr/bin/env bash
# GPU check, in two halves (docs/gpu.md):
#
#   scripts/gpu-check.sh --build   # HERE (Rust, no GPU): builds target/gpu-check/{gpu_check, ptx/}
#   scripts/gpu-check.sh [ARGS]    # ON THE GPU MACHINE (no Rust): runs target/gpu-check/gpu_check
#
# The run compares CUDA and CPU spectra on seeded populations of every cell kind (relative error
# <= 1e-4) and times LSTM populations (M = 1, 32, 256, 1024; N = 64, B = 15, T = 100) on both
# backends, printing a table last. It is time-boxed to fit one 10-minute call (the CPU side is
# measured for small M and extrapolated, labelled so, beyond its budget). ARGS go to gpu_check
# (--skip-timing, --cpu-budget-s S, --sizes 1,32,...). Output is also written to $OUT/gpu_check.txt
# when $OUT is set. Exit code: gpu_check's (0 ok, 1 numerical mismatch, 3 no CUDA device).
set -uo pipefail
cd "$(dirname "$0")/.."
BUNDLE="target/gpu-check"

if [[ "${1:-}" == "--build" ]]; then
    set -e
    cargo build --release -p le-engine --features cuda --example gpu_check
    mkdir -p "$BUNDLE"
    strip -o "$BUNDLE/gpu_check" target/release/examples/gpu_check 2>/dev/null \
        || cp target/release/examples/gpu_check "$BUNDLE/gpu_check"
    # Precompiled PTX, so that the GPU machine needs no libnvrtc (the driver JITs the PTX).
    NVRTC_LIB="$(python3 -c 'import os, nvidia.cuda_nvrtc as m; print(os.path.join(list(m.__path__)[0], "lib"))' 2>/dev/null || true)"
    if [[ -z "$NVRTC_LIB" ]]; then
        python3 -m pip install --quiet --disable-pip-version-check nvidia-cuda-nvrtc-cu12
        NVRTC_LIB="$(python3 -c 'import os, nvidia.cuda_nvrtc as m; print(os.path.join(list(m.__path__)[0], "lib"))')"
    fi
    LD_LIBRARY_PATH="$NVRTC_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
        "$BUNDLE/gpu_check" --emit-ptx "$BUNDLE/ptx"
    du -sh "$BUNDLE"
    echo "bundle ready: carry '$BUNDLE' to the GPU machine and run scripts/gpu-check.sh there"
    exit 0
fi

BIN="$BUNDLE/gpu_check"
if [[ ! -x "$BIN" ]]; then
    echo "gpu-check: $BIN is missing: run 'scripts/gpu-check.sh --build' on the build machine" >&2
    exit 2
fi
echo "== machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null || echo "(no nvidia-smi)"
nproc

# Find CUDA libraries the binary loads at run time: the driver (system), libcublas and libnvrtc
# (CUDA toolkit, Python wheels, or none: then the built-in GEMM and the precompiled PTX are used).
add_lib_dir() { [[ -d "$1" ]] && export LD_LIBRARY_PATH="$1${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"; }
have_lib() {
    ldconfig -p 2>/dev/null | grep -q "$1" && return 0
    local IFS=: d
    for d in ${LD_LIBRARY_PATH:-}; do compgen -G "$d/$1*" >/dev/null && return 0; done
    return 1
}
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do add_lib_dir "$d"; done
for pkg in cublas cuda_nvrtc; do
    d="$(python3 -c "import os, nvidia.$pkg as m; print(os.path.join(list(m.__path__)[0], 'lib'))" 2>/dev/null || true)"
    [[ -n "$d" ]] && add_lib_dir "$d"
done
if have_lib libnvrtc.so; then
    echo "libnvrtc: found (kernels compiled at run time)"
else
    echo "libnvrtc: not found, loading precompiled PTX from $BUNDLE/ptx"
    export AELLE_PTX_DIR="$BUNDLE/ptx"
fi
have_lib libcublas.so && echo "libcublas: found" || echo "libcublas: not found (built-in GEMM kernel)"

echo "== gpu_check $*"
if [[ -n "${OUT:-}" ]]; then
    timeout 560 "$BIN" "$@" 2>&1 | tee "$OUT/gpu_check.txt"
    rc=${PIPESTATUS[0]}
else
    timeout 560 "$BIN" "$@"
    rc=$?
fi
echo "gpu-check: exit code $rc"
exit "$rc"
