"""Spectra of torch.nn.RNN / GRU / LSTM against PyTorch itself.

Truth: ``standard_les`` of ``scripts/reference/calc_les_reference.py`` -- per sequence,
``torch.func.jacrev`` of one step of the *module itself* with respect to PyTorch's flattened
state (LSTM ``[h_l0, h_l1, .., c_l0, c_l1, ..]``), ``Q_0 = I``, no warm-up, ``Z = J Q``,
``torch.linalg.qr`` (LAPACK) every step with ``diag R > 0``, ``lambda = (1/T) sum ln R_ii``, all
in float64. Our float64 spectra must equal it to 1e-8 per exponent, for 1 and 2 layers, with
and without bias, both ``batch_first``; the module, its state_dict, a prefixed state_dict of
numpy arrays and a safetensors file of it must give identical numbers.
"""

import numpy as np
import pytest
import torch
from calc_les_reference import standard_les
from safetensors.torch import save_file

import aelle

N, I, B, T = 4, 3, 2, 24
CLASSES = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}


def make(arch, layers, bias, batch_first, seed=0, scale=0.8):
    torch.manual_seed(seed)
    m = CLASSES[arch](I, N, num_layers=layers, bias=bias, batch_first=batch_first).double()
    with torch.no_grad():
        for p in m.parameters():
            p.uniform_(-scale, scale)
    return m


def torch_reference(module, arch, layers, x_btI):
    return np.stack([
        np.sort(standard_les(module, arch, layers, x_btI[b]).numpy())[::-1] for b in range(x_btI.shape[0])
    ])


@pytest.mark.parametrize("arch", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batch_first", [True, False])
def test_module_matches_jacrev_qr_reference(arch, layers, bias, batch_first):
    module = make(arch, layers, bias, batch_first, seed=layers * 10 + bias)
    x = torch.randn(B, T, I, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    want = torch_reference(module, arch, layers, x)
    given = x if batch_first else x.transpose(0, 1).contiguous()  # what the module itself takes
    s = aelle.lyapunov_spectrum(module, given)
    d = (2 if arch == "lstm" else 1) * layers * N
    assert s.exponents.shape == (B, d)
    assert s.info["dim"] == d and s.info["precision"] == "f64"
    np.testing.assert_allclose(s.exponents, want, rtol=0, atol=1e-8)
    assert np.all(np.diff(s.exponents, axis=1) <= 0), "sorted descending"
    np.testing.assert_allclose(s.mean, want.mean(0), rtol=0, atol=1e-8)
    np.testing.assert_allclose(s.std, want.std(0, ddof=1), rtol=0, atol=1e-8)
    np.testing.assert_allclose(s.sum, want.sum(1), rtol=0, atol=1e-8)
    assert s.status == ["finite"] * B and s.finite.all()


@pytest.mark.parametrize("arch", ["rnn", "gru", "lstm"])
def test_module_state_dict_arrays_and_file_agree(arch, tmp_path):
    module = make(arch, 2, True, True, seed=3)
    x = torch.randn(3, 15, I, dtype=torch.float64)
    from_module = aelle.lyapunov_spectrum(module, x)
    sd = module.state_dict()
    from_sd = aelle.lyapunov_spectrum(sd, x)
    arrays = {f"rnn.{k}": v.numpy() for k, v in sd.items()}
    from_arrays = aelle.lyapunov_spectrum(arrays, x.numpy())
    path = tmp_path / "w.safetensors"
    save_file({f"net.{k}": v.contiguous() for k, v in sd.items()}, str(path), metadata={"arch": arch})
    from_file = aelle.lyapunov_spectrum(path, x)
    for other in (from_sd, from_arrays, from_file):
        np.testing.assert_array_equal(other.exponents, from_module.exponents)
        np.testing.assert_array_equal(other.exponents_qr_order, from_module.exponents_qr_order)
    # a float32 file and float32 tensors: the same network (exact widening) and the same numbers
    path32 = tmp_path / "w32.safetensors"
    m32 = {k: v.float().contiguous() for k, v in sd.items()}
    save_file(m32, str(path32), metadata={"arch": arch})
    np.testing.assert_array_equal(aelle.lyapunov_spectrum(path32, x).exponents,
                                  aelle.lyapunov_spectrum(m32, x).exponents)


def test_population_equals_one_call_per_network():
    mods = [make("gru", 1, True, True, seed=s) for s in range(3)]
    x = torch.randn(2, 20, I, dtype=torch.float64)
    pop = aelle.population_spectra(torch.nn.ModuleList(mods), x)
    assert len(pop) == 3
    for m, s in zip(mods, pop):
        np.testing.assert_array_equal(s.exponents, aelle.lyapunov_spectrum(m, x).exponents)
    # one input set per network
    xs = torch.randn(3, 2, 20, I, dtype=torch.float64)
    pop = aelle.population_spectra(mods, xs)
    for m, s, xi in zip(mods, pop, xs):
        np.testing.assert_array_equal(s.exponents, aelle.lyapunov_spectrum(m, xi).exponents)


def test_options_k_warmup_trace_float32_log2():
    module = make("lstm", 1, True, True, seed=5)
    x = torch.randn(2, 40, I, dtype=torch.float64)
    full = aelle.lyapunov_spectrum(module, x)
    # log base 2 is the same spectrum in bits
    bits = aelle.lyapunov_spectrum(module, x, log_base=2)
    np.testing.assert_allclose(bits.exponents, full.exponents / np.log(2), rtol=1e-12, atol=1e-14)
    # the first k exponents of k < D equal the full spectrum's (same Q_0 columns)
    top = aelle.lyapunov_spectrum(module, x, k=3)
    np.testing.assert_allclose(top.exponents, full.exponents[:, :3], rtol=0, atol=1e-10)
    # trace: the last point is the result (QR order)
    tr = aelle.lyapunov_spectrum(module, x, trace_every=10)
    assert tr.history.shape == (2, 4, 2 * N) and list(tr.history_steps) == [10, 20, 30, 40]
    np.testing.assert_allclose(tr.history[:, -1], tr.exponents_qr_order, rtol=0, atol=1e-12)
    assert full.history is None
    # float32 state: close to float64
    f32 = aelle.lyapunov_spectrum(module, x, precision="float32")
    assert f32.info["precision"] == "f32"
    np.testing.assert_allclose(f32.exponents, full.exponents, rtol=0, atol=1e-4)
    # h-only: the published code's dh'/dh, N exponents
    h = aelle.lyapunov_spectrum(module, x, lstm_state="h_only")
    assert h.exponents.shape == (2, N)
    # warm-up: the same as dropping the first inputs' accumulation
    w = aelle.lyapunov_spectrum(module, x, warmup=10)
    assert w.info["steps"] == 30
