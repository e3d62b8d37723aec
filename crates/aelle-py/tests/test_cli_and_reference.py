"""The Python results equal the CLI's (`orchestrator spectrum --weights ... --json`) on the same
files, and the reference mode equals the published algorithm as re-implemented in
``scripts/reference/calc_les_reference.py`` (``calc_les_reference``: jacrev Jacobians of the
module, ``J^T Q``, unnormalised warm-up over ``min(warmup, T)`` inputs closed by one QR, replay
of all ``T`` inputs with a QR at ``t mod T_ons == 0``, log2), computed here afresh in float64."""

import json
import subprocess

import numpy as np
import pytest
import torch
from calc_les_reference import INPUT, REFERENCE_CASES, calc_les_reference, make_module
from safetensors.torch import save_file

import aelle


def cli(orchestrator, *args):
    out = subprocess.run([orchestrator, "spectrum", *map(str, args), "--json"], capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def write_net(tmp_path, name, module, arch):
    path = tmp_path / f"{name}.safetensors"
    save_file({f"rnn.{k}": v.contiguous() for k, v in module.state_dict().items()}, str(path),
              metadata={"arch": arch})
    return path


@pytest.mark.parametrize(
    "arch,layers,options,flags",
    [
        ("lstm", 2, {}, ["--precision", "f64"]),
        ("gru", 1, {"k": 3, "warmup": 5, "ons": 2}, ["--precision", "f64", "--k", 3, "--warmup", 5, "--ons", 2]),
        ("rnn", 2, {"precision": "float32"}, ["--precision", "f32"]),
        ("lstm", 1, {"lstm_state": "h_only", "log_base": 2}, ["--precision", "f64", "--lstm-state", "h-only",
                                                            "--log-base", "2"]),
        ("lstm", 2, {"reference_mode": True, "warmup": 8, "ons": 3},
         ["--precision", "f64", "--reference-mode", "--warmup", 8, "--ons", 3]),
        ("gru", 2, {"reference_mode": True, "precision": "float32"}, ["--reference-mode"]),
    ],
)
def test_python_equals_cli(orchestrator, tmp_path, arch, layers, options, flags):
    torch.manual_seed(11)
    cls = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[arch]
    module = cls(3, 5, num_layers=layers, batch_first=True).double()
    x = torch.randn(3, 20, 3, dtype=torch.float64)
    if options.get("precision") == "float32" or (options.get("reference_mode") and "precision" not in options):
        x = x.float().double()  # representable in f32: both sides see the same inputs
    w = write_net(tmp_path, "w", module, arch)
    xf = tmp_path / "x.safetensors"
    save_file({"inputs": x}, str(xf))
    report = cli(orchestrator, "--weights", w, "--inputs", xf, *flags)
    s = aelle.lyapunov_spectrum(w, x, **options)
    assert s.info["lstm_state"] == report["lstm_state"]
    assert s.info["orientation"] == report["orientation"]
    assert s.info["precision"] == report["precision"]
    assert s.log_base == report["log_base"]
    np.testing.assert_allclose(s.exponents, np.array(report["sequences"]), rtol=0, atol=1e-12)
    np.testing.assert_allclose(s.mean, report["mean"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(s.std, report["std"], rtol=0, atol=1e-12)
    # the module itself (no file) gives the same
    np.testing.assert_allclose(aelle.lyapunov_spectrum(module, x, **options).exponents, s.exponents, rtol=0,
                               atol=1e-12)


def test_population_equals_cli(orchestrator, tmp_path):
    torch.manual_seed(2)
    mods = [torch.nn.GRU(3, 4, batch_first=True).double() for _ in range(3)]
    paths = [write_net(tmp_path, f"w{i}", m, "gru") for i, m in enumerate(mods)]
    x = torch.randn(2, 12, 3, dtype=torch.float64)
    xf = tmp_path / "x.safetensors"
    save_file({"inputs": x}, str(xf))
    args = []
    for p in paths:
        args += ["--weights", p]
    reports = cli(orchestrator, *args, "--inputs", xf, "--precision", "f64")
    reports = reports["networks"]
    assert len(reports) == 3
    for s, r in zip(aelle.population_spectra(paths, x), reports):
        np.testing.assert_allclose(s.exponents, np.array(r["sequences"]), rtol=0, atol=1e-12)


CASES = [c for c in REFERENCE_CASES if not c[0].endswith("overflow")]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_reference_mode_equals_published_algorithm(case):
    name, arch, layers, hidden, warmup, ons, steps, scale, gain = case
    module = make_module(arch, layers, hidden, scale, 99, torch.float64, gain)
    x = torch.randn(2, steps, INPUT, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    want = np.stack([calc_les_reference(module, arch, layers, x[b], warmup, ons).numpy() for b in range(2)])
    s = aelle.lyapunov_spectrum(module, x, reference_mode=True, warmup=warmup, ons=ons)
    assert s.info["reference_mode"] and s.log_base == "2" and s.info["orientation"] == "JtQ"
    if arch == "lstm":
        assert s.info["lstm_state"] == "h_only"
    # the published code reports exponents in QR order. 1e-8: the unnormalised products between
    # QRs (warm-up, T_ons > 1) amplify rounding (measured up to 1.7e-10, lstm_l1_w7_ons5)
    np.testing.assert_allclose(s.exponents_qr_order, want, rtol=0, atol=1e-8)


def test_reference_mode_fixture_file(root):
    """The committed fixture written by calc_les_reference.py, read as a safetensors path."""
    from safetensors.numpy import load_file

    f = root / "crates/le-engine/tests/fixtures/refmode_lstm_l2_w500_ons3_f64.safetensors"
    t = load_file(str(f))
    s = aelle.lyapunov_spectrum(f, t["inputs"], reference_mode=True, warmup=500, ons=3, prefix="rnn.")
    np.testing.assert_allclose(s.exponents_qr_order, t["exponents"], rtol=0, atol=1e-10)
