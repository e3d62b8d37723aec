#!/usr/bin/env python3
"""Reference numbers for le-engine's random-tanh-network ground-truth test.

For h' = tanh(g W h) with g < 1 the orbit decays to h = 0, where the Jacobian is g W, so the
Lyapunov spectrum is the sorted ln|eig(g W)| (METHOD.md section 7). This script draws W ~ N(0, 1/N)
with numpy, computes the eigenvalues with LAPACK (numpy.linalg.eigvals -> dgeev) and writes W and
the expected spectrum to crates/le-engine/tests/fixtures/tanh_rnn_eigs.json.

Usage: python3 scripts/reference/tanh_rnn_eigs.py   (needs numpy; pip install numpy)
"""
import json
import os
import sys

import numpy as np

N, G, SEED = 16, 0.5, 20261127
rng = np.random.default_rng(SEED)
w = rng.normal(0.0, 1.0 / np.sqrt(N), size=(N, N))
eig = np.linalg.eigvals(G * w)
log_abs = sorted((float(np.log(abs(e))) for e in eig), reverse=True)
out = {
    "provenance": (
        f"scripts/reference/tanh_rnn_eigs.py; numpy {np.__version__} "
        f"(numpy.linalg.eigvals = LAPACK dgeev); python {sys.version.split()[0]}"
    ),
    "n": N,
    "g": G,
    "seed": SEED,
    "w_row_major": [float(v) for v in w.reshape(-1)],
    "log_abs_eig_sorted": log_abs,
}
path = os.path.join(os.path.dirname(__file__), "..", "..", "crates", "le-engine", "tests",
                    "fixtures", "tanh_rnn_eigs.json")
with open(path, "w") as f:
    json.dump(out, f, indent=1)
print("wrote", os.path.normpath(path))
print("ln|eig(gW)| =", [round(v, 6) for v in log_abs])
