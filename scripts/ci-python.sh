#!/usr/bin/env bash
# CI for the Python package (crates/aelle-py): a fresh venv with numpy, pytest, safetensors and
# the CPU part of torch; `pip install ./crates/aelle-py` (the README's command: maturin builds the
# extension into the workspace's target/); pytest against PyTorch, the CLI and the reference
# scripts. Run from .ci/run after `cargo test --workspace --release`, whose target/release
# (orchestrator binary, compiled dependencies) it reuses.
#
# torch: PyPI has only the CUDA build of torch for Linux x86_64 (2.3 GB with its nvidia-* and
# triton wheels). It is installed without dependencies, plus the nvidia-* wheels whose shared
# libraries `import torch` links (libtorch_cuda.so's NEEDED entries; none is used on a CPU), and
# torch's pure-Python dependencies; triton (torch.compile), cusolver (loaded lazily), cuda-bindings
# and cccl are left out. Versions are the ones torch==2.15.0 declares.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${AELLE_PY_VENV:-target/python-venv}"
TORCH_WHEELS=(
    torch==2.15.0
    nvidia-cuda-runtime==13.2.86 nvidia-cublas==13.4.1.3 nvidia-cudnn-cu13==9.26.0.51
    nvidia-cufft==12.2.0.57 nvidia-cufile==1.17.1.22 nvidia-cusparse==12.7.10.12
    nvidia-cusparselt-cu13==0.8.1 nvidia-nccl-cu13==2.30.7 nvidia-nvshmem-cu13==3.7.2
    nvidia-cuda-nvrtc==13.2.86 nvidia-nvjitlink==13.5.37 nvidia-cuda-cupti==13.2.86
)
t0=$SECONDS
stamp() { echo "   ($(( SECONDS - t0 )) s)"; }

echo "== python: feature unification of crates/aelle-py with the workspace"
# `pip install` builds aelle-py alone; its dependencies must have the features they have in
# the workspace build, or candle, aelle and le-engine are compiled a second time (see the
# comment in crates/aelle-py/Cargo.toml). Warn with the features to add there.
features() {
    cargo tree "$@" -e features --target x86_64-unknown-linux-gnu --prefix none --no-dedupe 2>/dev/null \
        | grep -o '^[A-Za-z0-9_-]* feature "[^"]*"' | sort -u
}
# features the workspace gives to crates in aelle-py's graph that aelle-py alone does not
missing=$(awk 'NR == FNR { own[$0] = 1; crate[$1] = 1; next } ($1 in crate) && !($0 in own)' \
    <(features -p aelle-py) <(features --workspace))
if [[ -n "$missing" ]]; then
    echo "WARNING: pip install will recompile shared dependencies; add to crates/aelle-py/Cargo.toml:"
    echo "$missing"
else
    echo "   same features as the workspace build"
fi

echo "== python: venv $VENV"
rm -rf "$VENV"
python3 -m venv "$VENV"
PY="$(cd "$VENV" && pwd)/bin/python"
"$PY" -m pip install --quiet --upgrade pip
"$PY" -m pip install --quiet numpy pytest safetensors filelock typing-extensions sympy networkx jinja2 fsspec
stamp
echo "== python: torch (CPU use of the PyPI wheel, no triton)"
"$PY" -m pip install --quiet --no-deps "${TORCH_WHEELS[@]}"
"$PY" -c "import torch; print('torch', torch.__version__, 'imports')"
stamp
echo "== python: pip install ./crates/aelle-py"
"$PY" -m pip install ./crates/aelle-py
stamp
echo "== python: pytest"
TARGET="${CARGO_TARGET_DIR:-target}"
if [[ ! -x "$TARGET/release/orchestrator" ]]; then
    cargo build --release -p orchestrator
fi
export AELLE_ORCHESTRATOR="$(cd "$TARGET/release" && pwd)/orchestrator"
# run from outside the source tree, so the installed package is the one imported
(cd crates/aelle-py/tests && "$PY" -m pytest -q -p no:cacheprovider .)
stamp
