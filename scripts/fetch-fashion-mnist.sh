#!/usr/bin/env bash
# Fetch Fashion-MNIST (60,000 train / 10,000 test, gzipped IDX) from the Debian archive and
# check its hashes.
#
#   scripts/fetch-fashion-mnist.sh [DEST]   (default DEST: datasets/fashion-mnist in the repo)
#
# Source: Debian package `dataset-fashion-mnist` (0.0~git20200523.55506a9-1, bookworm), which
# ships Zalando's files unchanged under /usr/share/datasets/fashion-mnist/ (MIT licence).
# The package is downloaded with `apt-get download` (no install, no root needed beyond
# apt's cache) and unpacked with `dpkg-deb -x`. Run `apt-get update` first on a fresh machine.
# Needs: apt-get, dpkg-deb, sha256sum. Registry: Debian only.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${1:-$ROOT/datasets/fashion-mnist}"
VERSION="0.0~git20200523.55506a9-1"

declare -A SHA256=(
    [train-images-idx3-ubyte.gz]=b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7
    [train-labels-idx1-ubyte.gz]=0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056
    [t10k-images-idx3-ubyte.gz]=cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa
    [t10k-labels-idx1-ubyte.gz]=8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05
)

W="$(mktemp -d)"
trap 'rm -rf "$W"' EXIT
chmod 755 "$W"   # lets apt's sandbox user write the download

if ! ( cd "$W" && apt-get download -q "dataset-fashion-mnist=$VERSION" >"$W/apt.log" 2>&1 ); then
    # Another release may carry another version of the same files; the hashes decide.
    ( cd "$W" && apt-get download -q dataset-fashion-mnist >>"$W/apt.log" 2>&1 ) || {
        echo "error: apt-get download dataset-fashion-mnist failed (try apt-get update):" >&2
        cat "$W/apt.log" >&2
        exit 1
    }
fi
dpkg-deb -x "$W"/dataset-fashion-mnist_*.deb "$W/root"
SRC="$W/root/usr/share/datasets/fashion-mnist"

mkdir -p "$DEST"
for name in "${!SHA256[@]}"; do
    echo "${SHA256[$name]}  $SRC/$name" | sha256sum -c --quiet -
    cp "$SRC/$name" "$DEST/$name.tmp"
    mv "$DEST/$name.tmp" "$DEST/$name"
done
echo "ok: $DEST (4 gzipped IDX files, hashes checked)"
