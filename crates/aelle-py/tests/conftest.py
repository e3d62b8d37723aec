"""Shared fixtures: the repository root, the repo's PyTorch reference scripts
(``scripts/reference/``) and the orchestrator binary of the CLI comparisons."""

import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "scripts" / "reference"))

torch = pytest.importorskip("torch")
# The oneDNN RNN kernels have no f32 LSTM backward workspace under jacrev (see
# calc_les_reference.py); the native kernels compute the same cell.
torch.backends.mkldnn.enabled = False
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def orchestrator() -> str:
    """The CLI binary: $AELLE_ORCHESTRATOR, else target/release/orchestrator (built by
    `cargo build --release -p orchestrator`; scripts/ci-python.sh builds it)."""
    exe = os.environ.get("AELLE_ORCHESTRATOR") or str(ROOT / "target" / "release" / "orchestrator")
    if not (os.path.isfile(exe) and os.access(exe, os.X_OK)):
        found = shutil.which("orchestrator")
        if found is None:
            pytest.fail(f"orchestrator binary not found at {exe}: run `cargo build --release -p orchestrator` "
                        f"or set AELLE_ORCHESTRATOR")
        exe = found
    return exe
