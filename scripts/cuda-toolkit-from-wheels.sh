#!/usr/bin/env bash
# A CUDA 13.0 build toolkit assembled from registry packages, for building candle's CUDA
# backend (`--features cuda`) on a machine without a GPU, a driver or NVIDIA's installer.
#
#   bash scripts/cuda-toolkit-from-wheels.sh [PREFIX]     # default PREFIX: target/cuda-toolkit
#   export CUDA_ROOT=PREFIX PATH=PREFIX/bin:$PATH CUDA_COMPUTE_CAP=90
#   cargo build --release -p orchestrator --features cuda
#
# What comes from where (versions pinned; all of CUDA 13.0 update 0):
# - PyPI wheels of NVIDIA's toolkit components: nvcc, cudafe++, ptxas, fatbinary, nvlink
#   (nvidia-cuda-nvcc), cicc and libdevice (nvidia-nvvm), the crt headers (nvidia-cuda-crt),
#   cudart and its headers (nvidia-cuda-runtime), CCCL (nvidia-cuda-cccl: cub, thrust,
#   libcu++), NVRTC, cuBLAS and cuRAND. The wheels unpack to one tree (nvidia/cu13) laid out
#   like a toolkit; this script adds the `targets/x86_64-linux` and `lib64` links that
#   `nvcc.profile` expects and the unversioned `.so` names the linker looks for.
# - Debian 12's non-free `libcuda1` (the 535 driver's libcuda.so), used only as the link-time
#   stub of `-lcuda` (candle links cudarc with `dynamic-linking`): it is placed in
#   `lib/stubs/`, never on the run-time library path. The binary records `libcuda.so.1`; a GPU
#   machine's own driver provides it at run time.
#
# The result builds; running it needs a GPU machine whose driver supports CUDA 13.0 (>= 580):
# PTX from nvcc 13.0 does not load on older drivers.
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX="${1:-target/cuda-toolkit}"
PYTHON="${PYTHON:-python3}"

WHEELS=(
  nvidia-cuda-nvcc==13.0.88
  nvidia-nvvm==13.0.88
  nvidia-cuda-crt==13.0.88
  nvidia-cuda-runtime==13.0.96
  nvidia-cuda-cccl==13.0.85
  nvidia-cuda-nvrtc==13.0.88
  nvidia-cublas==13.0.2.14
  nvidia-curand==10.4.0.35
)
LIBCUDA_DEB_VERSION=535.261.03-1

if [[ -x "$PREFIX/bin/nvcc" && -e "$PREFIX/lib/stubs/libcuda.so" && -e "$PREFIX/.complete" ]]; then
  echo "CUDA toolkit already at $PREFIX ($("$PREFIX/bin/nvcc" --version | tail -1))"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "== downloading ${#WHEELS[@]} NVIDIA wheels from PyPI"
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --dest "$work/wheels" "${WHEELS[@]}"
mkdir -p "$work/tree"
for wheel in "$work"/wheels/*.whl; do
  "$PYTHON" -m zipfile -e "$wheel" "$work/tree"
done
rm -rf "$PREFIX"
mkdir -p "$(dirname "$PREFIX")"
mv "$work/tree/nvidia/cu13" "$PREFIX"
PREFIX="$(cd "$PREFIX" && pwd)"
chmod +x "$PREFIX"/bin/* "$PREFIX"/nvvm/bin/*
mkdir -p "$PREFIX/targets/x86_64-linux"
ln -sfn ../../include "$PREFIX/targets/x86_64-linux/include"
ln -sfn ../../lib "$PREFIX/targets/x86_64-linux/lib"
ln -sfn lib "$PREFIX/lib64"
for so in "$PREFIX"/lib/*.so.*; do
  ln -sfn "$(basename "$so")" "${so%%.so.*}.so"
done

echo "== libcuda.so link stub from Debian non-free (libcuda1 $LIBCUDA_DEB_VERSION)"
mkdir -p "$work/apt/lists/partial" "$work/deb"
echo "deb http://deb.debian.org/debian bookworm non-free" >"$work/apt/sources.list"
apt_opts=(-o "Dir::Etc::sourcelist=$work/apt/sources.list" -o "Dir::Etc::sourceparts=-"
  -o "Dir::State::Lists=$work/apt/lists" -o "APT::Sandbox::User=root")
apt-get "${apt_opts[@]}" update -qq
(cd "$work/deb" && apt-get "${apt_opts[@]}" download -qq "libcuda1=$LIBCUDA_DEB_VERSION")
dpkg-deb -x "$work"/deb/libcuda1_*.deb "$work/deb/x"
mkdir -p "$PREFIX/lib/stubs"
cp "$(find "$work/deb/x" -type f -name 'libcuda.so.*' | head -1)" "$PREFIX/lib/stubs/libcuda.so"

"$PREFIX/bin/nvcc" --version | tail -2
touch "$PREFIX/.complete"
echo "CUDA toolkit at $PREFIX"
