"""``spectrum_from_jacobians`` against numpy's LAPACK QR; ASRNN and CoRNN state dicts (names of
docs/checkpoint-format.md, constants as keyword arguments) against the cells written in torch
from their papers' equations, differentiated by ``torch.func.jacrev``."""

import numpy as np
import pytest
import torch

import aelle


def benettin_numpy(jacs, k=None, dt=1.0):
    """Q_0 = I (first k columns), Z = J Q, numpy.linalg.qr every step, diag R > 0."""
    d = jacs.shape[-1]
    k = k or d
    q = np.eye(d)[:, :k]
    total = np.zeros(k)
    for j in jacs:
        q, r = np.linalg.qr(j @ q)
        s = np.sign(np.diag(r))
        q = q * s
        total += np.log(np.diag(r) * s)
    return np.sort(total / (len(jacs) * dt))[::-1]


def test_random_jacobians_match_numpy_qr():
    rng = np.random.default_rng(0)
    jacs = rng.normal(size=(3, 50, 6, 6)) / np.sqrt(6)
    s = aelle.spectrum_from_jacobians(jacs)
    want = np.stack([benettin_numpy(j) for j in jacs])
    np.testing.assert_allclose(s.exponents, want, rtol=0, atol=1e-10)
    # sum of the exponents = time mean of ln |det J| (k = D)
    np.testing.assert_allclose(s.sum, s.mean_log_abs_det, rtol=0, atol=1e-10)
    # one sequence [T, D, D]; k < D; dt scales
    one = aelle.spectrum_from_jacobians(torch.from_numpy(jacs[1]), k=2, dt=0.5)
    np.testing.assert_allclose(one.exponents[0], benettin_numpy(jacs[1], k=2, dt=0.5), rtol=0, atol=1e-10)
    assert one.units == "nats/time"


def test_jacrev_of_lstm_step_equals_module_spectrum():
    """The two entry points agree: the Jacobians of an LSTM step (jacrev of the module) give the
    spectrum that lyapunov_spectrum computes from the module."""
    torch.manual_seed(4)
    m = torch.nn.LSTM(2, 3, batch_first=True).double()
    x = torch.randn(1, 30, 2, dtype=torch.float64)
    h = torch.zeros(1, 1, 3, dtype=torch.float64)
    c = torch.zeros_like(h)
    jacs = []
    with torch.no_grad():
        for t in range(30):
            xt = x[:, t:t + 1]

            def step(flat, xt=xt):
                _, (h2, c2) = m(xt, (flat[:3].reshape(1, 1, 3), flat[3:].reshape(1, 1, 3)))
                return torch.cat([h2.reshape(-1), c2.reshape(-1)])

            flat = torch.cat([h.reshape(-1), c.reshape(-1)])
            jacs.append(torch.func.jacrev(step)(flat))
            _, (h, c) = m(xt, (h, c))
    s = aelle.spectrum_from_jacobians(torch.stack(jacs))
    np.testing.assert_allclose(s.exponents, aelle.lyapunov_spectrum(m, x).exponents, rtol=0, atol=1e-10)


def asrnn_step(p, eps, gamma, n):
    def f(h, x):
        w = p["weight_hh_l0"]
        m = w - w.T - gamma * torch.eye(n, dtype=h.dtype)
        return h + eps * torch.tanh(m @ h + p["weight_ih_l0"] @ x + p["bias_l0"])
    return f


def cornn_step(p, eps, gamma, dt, n):
    def f(state, x):
        y, z = state[:n], state[n:]
        pre = p["weight_hy_l0"] @ y + p["weight_hz_l0"] @ z + p["weight_ih_l0"] @ x + p["bias_l0"]
        z2 = z + dt * (torch.tanh(pre) - gamma * y - eps * z)
        return torch.cat([y + dt * z2, z2])
    return f


def jacrev_spectrum(f, x, d):
    """Standard Benettin with jacrev Jacobians of f(state, x_t), zero initial state, Q_0 = I."""
    out = []
    for seq in x:
        state = torch.zeros(d, dtype=torch.float64)
        q = torch.eye(d, dtype=torch.float64)
        total = torch.zeros(d, dtype=torch.float64)
        for xt in seq:
            j = torch.func.jacrev(f)(state, xt)
            state = f(state, xt)
            qq, r = torch.linalg.qr(j @ q)
            s = torch.sign(torch.diagonal(r))
            q = qq * s
            total += torch.log(torch.diagonal(r) * s)
        out.append(np.sort((total / len(seq)).numpy())[::-1])
    return np.stack(out)


def test_asrnn_from_state_dict():
    n, i = 5, 2
    g = torch.Generator().manual_seed(3)
    p = {"weight_hh_l0": torch.randn(n, n, generator=g, dtype=torch.float64),
         "weight_ih_l0": torch.randn(n, i, generator=g, dtype=torch.float64),
         "bias_l0": torch.randn(n, generator=g, dtype=torch.float64) * 0.1}
    x = torch.randn(2, 25, i, generator=g, dtype=torch.float64)
    eps, gamma = 0.1, 0.05
    want = jacrev_spectrum(asrnn_step(p, eps, gamma, n), x, n)
    s = aelle.lyapunov_spectrum({f"cell.{k}": v for k, v in p.items()}, x, arch="asrnn", eps=eps, gamma=gamma)
    assert s.info["arch"] == "asrnn"
    np.testing.assert_allclose(s.exponents, want, rtol=0, atol=1e-8)


def test_cornn_from_state_dict():
    n, i = 4, 3
    g = torch.Generator().manual_seed(4)
    p = {"weight_hy_l0": torch.randn(n, n, generator=g, dtype=torch.float64),
         "weight_hz_l0": torch.randn(n, n, generator=g, dtype=torch.float64),
         "weight_ih_l0": torch.randn(n, i, generator=g, dtype=torch.float64),
         "bias_l0": torch.randn(n, generator=g, dtype=torch.float64) * 0.1}
    x = torch.randn(2, 25, i, generator=g, dtype=torch.float64)
    eps, gamma, dt = 3.0, 2.0, 0.1
    want = jacrev_spectrum(cornn_step(p, eps, gamma, dt, n), x, 2 * n)
    s = aelle.lyapunov_spectrum(p, x, eps=eps, gamma=gamma, dt=dt)  # arch inferred from weight_hy_l0
    assert s.info["arch"] == "cornn" and s.exponents.shape == (2, 2 * n)
    np.testing.assert_allclose(s.exponents, want, rtol=0, atol=1e-8)
