"""Bad input raises ValueError / TypeError / OSError naming the tensor and the expectation; two
calls run concurrently (the GIL is released inside the engine); a Rust panic surfaces as
``aelle.RustPanic`` and the interpreter lives on."""

import threading

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import aelle
from aelle import _native


@pytest.fixture
def lstm():
    torch.manual_seed(0)
    return torch.nn.LSTM(3, 4, batch_first=True).double()


@pytest.fixture
def x():
    return torch.randn(2, 10, 3, dtype=torch.float64)


def test_wrong_input_shapes(lstm, x):
    with pytest.raises(ValueError, match=r"inputs: expected a 3-D array, got shape \[10, 3\]"):
        aelle.lyapunov_spectrum(lstm, x[0])
    with pytest.raises(ValueError, match=r"I = 5 per step.*input_size = 3"):
        aelle.lyapunov_spectrum(lstm, torch.randn(2, 10, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"inputs.*B = 0"):
        aelle.lyapunov_spectrum(lstm, torch.zeros(0, 10, 3))


def test_wrong_dtypes(lstm, x):
    with pytest.raises(TypeError, match=r"inputs: expected a real floating-point tensor, got dtype torch.complex64"):
        aelle.lyapunov_spectrum(lstm, torch.zeros(2, 10, 3, dtype=torch.complex64))
    with pytest.raises(TypeError, match=r"inputs: expected real numbers, got dtype <U1"):
        aelle.lyapunov_spectrum(lstm, np.full((2, 10, 3), "a"))
    sd = {k: v.numpy() for k, v in lstm.state_dict().items()}
    sd["weight_hh_l0"] = sd["weight_hh_l0"].astype(np.int64)
    with pytest.raises(TypeError, match=r"tensor `weight_hh_l0` has dtype int64, expected a floating-point dtype"):
        aelle.lyapunov_spectrum(sd, x)


def test_missing_and_misnamed_tensors(lstm, x, tmp_path):
    sd = dict(lstm.state_dict())
    del sd["weight_ih_l0"]
    with pytest.raises(ValueError, match=r"state_dict: missing tensor `weight_ih_l0`"):
        aelle.lyapunov_spectrum(sd, x)
    sd = {k.replace("weight_hh", "weight_HH"): v for k, v in lstm.state_dict().items()}
    with pytest.raises(ValueError, match=r"cannot tell the cell"):
        aelle.lyapunov_spectrum(sd, x)
    with pytest.raises(ValueError, match=r"missing tensor `weight_hh_l0`"):
        aelle.lyapunov_spectrum(sd, x, arch="lstm")
    sd = dict(lstm.state_dict())
    sd["weight_hh_l0"] = sd["weight_hh_l0"][:, :3]
    with pytest.raises(ValueError, match=r"weight_hh_l0` has shape \[16, 3\], expected"):
        aelle.lyapunov_spectrum(sd, x, arch="lstm")
    p = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in lstm.state_dict().items() if k != "bias_hh_l0"}, str(p),
              metadata={"arch": "lstm"})
    with pytest.raises(ValueError, match=r"w.safetensors: missing tensor `bias_hh_l0`"):
        aelle.lyapunov_spectrum(p, x)
    with pytest.raises(FileNotFoundError, match=r"no such safetensors file"):
        aelle.lyapunov_spectrum(tmp_path / "absent.safetensors", x)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match=r"bad.safetensors: not a valid safetensors file"):
        aelle.lyapunov_spectrum(bad, x, arch="lstm")


def test_unsupported_modules(x):
    with pytest.raises(TypeError, match=r"model: expected torch.nn.RNN, GRU or LSTM.*got Linear"):
        aelle.lyapunov_spectrum(torch.nn.Linear(3, 4), x)
    with pytest.raises(ValueError, match=r"bidirectional"):
        aelle.lyapunov_spectrum(torch.nn.GRU(3, 4, bidirectional=True, batch_first=True), x)
    with pytest.raises(ValueError, match=r"nonlinearity='relu'"):
        aelle.lyapunov_spectrum(torch.nn.RNN(3, 4, nonlinearity="relu", batch_first=True), x)
    with pytest.raises(ValueError, match=r"proj_size = 2"):
        aelle.lyapunov_spectrum(torch.nn.LSTM(3, 4, proj_size=2, batch_first=True), x)
    with pytest.raises(TypeError, match=r"model: expected a torch.nn.RNN/GRU/LSTM.*got int"):
        aelle.lyapunov_spectrum(3, x)
    with pytest.raises(TypeError, match=r"models: expected a sequence of models.*got LSTM"):
        aelle.population_spectra(torch.nn.LSTM(3, 4), x)
    with pytest.raises(ValueError, match=r"a population needs one cell kind"):
        aelle.population_spectra([torch.nn.LSTM(3, 4), torch.nn.GRU(3, 4)], x)
    with pytest.raises(ValueError, match=r"network 1 is a lstm with N = 5"):
        aelle.population_spectra([torch.nn.LSTM(3, 4), torch.nn.LSTM(3, 5)], x)


def test_non_finite_weights_and_inputs(lstm, x):
    sd = {k: v.clone() for k, v in lstm.state_dict().items()}
    sd["weight_hh_l0"][2, 1] = float("nan")
    with pytest.raises(ValueError, match=r"state_dict: tensor `weight_hh_l0` holds a non-finite value \(NaN\) at index \[2, 1\]"):
        aelle.lyapunov_spectrum(sd, x)
    y = x.clone()
    y[1, 4, 2] = float("inf")
    with pytest.raises(ValueError, match=r"inputs: non-finite value at \[1, 4, 2\]"):
        aelle.lyapunov_spectrum(lstm, y)


def test_bad_options(lstm, x):
    with pytest.raises(ValueError, match=r"k: number of exponents must be in 1..=8"):
        aelle.lyapunov_spectrum(lstm, x, k=9)
    with pytest.raises(ValueError, match=r"k: expected an int >= 1, got 0"):
        aelle.lyapunov_spectrum(lstm, x, k=0)
    with pytest.raises(TypeError, match=r"ons: expected an int"):
        aelle.lyapunov_spectrum(lstm, x, ons=1.5)
    with pytest.raises(ValueError, match=r"precision: expected"):
        aelle.lyapunov_spectrum(lstm, x, precision="float16")
    with pytest.raises(ValueError, match=r"lstm_state: expected \"full\" or \"h_only\""):
        aelle.lyapunov_spectrum(lstm, x, lstm_state="c")
    with pytest.raises(ValueError, match=r"log_base: expected"):
        aelle.lyapunov_spectrum(lstm, x, log_base=10)
    with pytest.raises(ValueError, match=r"warmup"):
        aelle.lyapunov_spectrum(lstm, x, warmup=10)
    with pytest.raises(ValueError, match=r"arch=.*LSTM"):
        aelle.lyapunov_spectrum(lstm, x, arch="gru")
    with pytest.raises(ValueError, match=r"asrnn needs `gamma`"):
        aelle.lyapunov_spectrum({"weight_hh_l0": np.eye(2), "weight_ih_l0": np.ones((2, 3))}, x, arch="asrnn")


def test_jacobian_errors():
    with pytest.raises(ValueError, match=r"J: expected square Jacobians"):
        aelle.spectrum_from_jacobians(np.zeros((5, 2, 3)))
    with pytest.raises(ValueError, match=r"J: expected a 3-D or 4-D array"):
        aelle.spectrum_from_jacobians(np.zeros((2, 2)))
    j = np.tile(np.eye(2), (4, 1, 1))
    j[3, 1, 0] = np.nan
    with pytest.raises(ValueError, match=r"J: non-finite value NaN at \[0, 3, 1, 0\]"):
        aelle.spectrum_from_jacobians(j)
    with pytest.raises(ValueError, match=r"dt: expected a finite time step > 0"):
        aelle.spectrum_from_jacobians(np.tile(np.eye(2), (4, 1, 1)), dt=0.0)


def test_errors_leave_the_interpreter_usable(lstm, x):
    with pytest.raises(ValueError):
        aelle.lyapunov_spectrum(lstm, x, k=99)
    assert aelle.lyapunov_spectrum(lstm, x).exponents.shape == (2, 8)


@pytest.mark.parametrize("in_pool", [False, True])
def test_rust_panic_is_an_exception(in_pool, lstm, x):
    with pytest.raises(aelle.RustPanic, match=r"panic inside the Rust engine: test panic") as info:
        _native._debug_panic(in_pool)
    assert isinstance(info.value, RuntimeError)
    # the interpreter and the engine's pool live on
    assert aelle.lyapunov_spectrum(lstm, x).finite.all()


def test_two_calls_run_concurrently():
    """Two Python threads each make one long engine call. With the GIL held during the call the
    second could only start after the first returned (peak 1); released, they overlap (peak 2).
    Their results equal the same calls made one after the other."""
    torch.manual_seed(1)
    net = torch.nn.LSTM(8, 48, batch_first=True).double()
    xs = [torch.randn(4, 600, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(s)) for s in (1, 2)]
    serial = [aelle.lyapunov_spectrum(net, xi).exponents for xi in xs]
    results = [None, None]
    start = threading.Barrier(2)

    def work(i):
        start.wait()
        results[i] = aelle.lyapunov_spectrum(net, xs[i]).exponents

    _native._reset_peak_concurrency()
    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert _native._peak_concurrency() == 2
    for got, want in zip(results, serial):
        np.testing.assert_array_equal(got, want)
