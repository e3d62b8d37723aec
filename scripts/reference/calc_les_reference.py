#!/usr/bin/env python3
"""Independent PyTorch fixtures for le-engine's Lyapunov spectra of RNNs.

Two families of safetensors files under ``crates/le-engine/tests/fixtures/``, read by
``crates/le-engine/tests/reference_mode.rs``:

``refmode_<case>_<f32|f64>.safetensors`` -- the published algorithm (``calc_LEs_an`` of the
AeLLE / rnn-lyapunov PyTorch code), re-implemented here from its description, not from
le-engine:

* ``Q = I`` (D x D, all exponents), zero initial state, LSTM Jacobian ``dh'/dh`` with the
  cell state ``c`` frozen (h-only), orientation ``J^T Q``, log2;
* warm-up over the first ``min(warmup, T)`` inputs: at each step the Jacobian at the current
  state, one module step, ``Q <- J^T Q`` with no re-orthonormalisation; then one reduced QR,
  ``Q <- q``;
* main loop over the same T inputs from the warmed-up state: at ``t % T_ons == 0``
  ``q, r = qr(J^T Q)``, ``S = sign(diag r)``, ``Q <- q S``, ``R_t = S r``; otherwise
  ``Q <- J^T Q``, ``R_t = I``;
* ``lambda_i = (1 / T) sum_t log2 (R_t)_ii``.

``stdorder_<lstm|gru>_l2_f64.safetensors`` -- the standard Benettin spectrum on PyTorch's own
state order: the LSTM state ``(h_n, c_n)`` flattened as ``[h_l0, h_l1, c_l0, c_l1]`` (GRU:
``[h_l0, h_l1]``), ``Q_0 = I``, no warm-up, ``Z = J Q``, QR every step with ``diag R > 0``,
natural log, ``lambda_i = (1 / T) sum_t ln R_ii``. Also one state ``x_t`` (t = 3, sequence 0),
its input, the Jacobian there and the next state, in that order, to check the public
``Network::step_state`` / ``Network::jacobian_at``.

Every Jacobian is ``torch.func.jacrev`` of one step of the ``torch.nn.RNN`` / ``GRU`` /
``LSTM`` module (``batch_first``, one sequence at a time) with respect to the flattened
state; rows are outputs, ``J[i, j] = d x'_i / d x_j``. The arithmetic of each file is in its
dtype (``f32`` like the published code, or ``f64`` to check the algorithm without rounding);
QR is ``torch.linalg.qr`` (LAPACK), log sums in that dtype. The oneDNN (mkldnn) RNN kernels
are switched off: their f32 LSTM backward has no ``workspace`` under ``jacrev``; the native
kernels compute the same cell.

Tensors of every file: the module parameters under ``rnn.<state_dict name>`` (weights drawn
U(-p, p)), ``inputs`` [B, T, I] ~ N(0, 1) in the file's dtype, ``exponents`` [B, D] (float64;
NaN/inf where the computation overflowed, as the published code yields). ``__metadata__``:
arch, hidden_size, input_size, num_layers, bias, kind (reference / standard), dtype, warmup,
ons, steps, batch, init_scale, seed, lstm_state, torch_version, generator (the command),
generated (UTC date).

How to run (from the repository root; deterministic, CPU):
    python3 scripts/reference/calc_les_reference.py [--out crates/le-engine/tests/fixtures]
"""

import argparse
import datetime
import os
import sys

import torch
from safetensors.torch import save_file

HIDDEN = 6
INPUT = 3
BATCH = 3
STEPS = 28
ARCHS = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}

# (name, arch, layers, hidden, warmup, T_ons, steps, init_scale, recurrent gain)
#
# The published warm-up multiplies w Jacobians without re-orthonormalising: the product's
# condition number grows like 2^((lambda_1 - lambda_D) w), and once it nears 1 / eps the minor
# directions of Q are rounding noise in any implementation (U(-0.5, 0.5) LSTMs at w = 28 give
# f64 results that differ by 1e-2 between two correct codes). To compare exponent by exponent,
# the cases use orthogonal recurrent gate blocks (gain 1, 0.8; GRU with a long warm-up 0.3,
# since its J is about diag(z) + (1 - z) r U_n) and small input weights, which keep the product
# well conditioned; the overflow case is a generic chaotic network.
REFERENCE_CASES = [
    ("rnn_l1_w0_ons1", "rnn", 1, HIDDEN, 0, 1, STEPS, 0.3, 1.0),
    ("rnn_l1_w10_ons1", "rnn", 1, HIDDEN, 10, 1, STEPS, 0.3, 1.0),
    ("rnn_l2_w500_ons3", "rnn", 2, HIDDEN, 500, 3, STEPS, 0.3, 1.0),
    ("gru_l1_w500_ons1", "gru", 1, HIDDEN, 500, 1, STEPS, 0.3, 0.3),
    ("gru_l2_w10_ons3", "gru", 2, HIDDEN, 10, 3, STEPS, 0.5, 0.8),
    ("gru_l2_w500_ons1", "gru", 2, HIDDEN, 500, 1, STEPS, 0.3, 0.3),
    ("lstm_l1_w0_ons3", "lstm", 1, HIDDEN, 0, 3, STEPS, 0.3, 1.0),
    ("lstm_l1_w500_ons1", "lstm", 1, HIDDEN, 500, 1, STEPS, 0.3, 1.0),
    ("lstm_l2_w500_ons3", "lstm", 2, HIDDEN, 500, 3, STEPS, 0.3, 1.0),
    ("lstm_l1_w7_ons5", "lstm", 1, HIDDEN, 7, 5, STEPS, 0.3, 1.0),
    # a chaotic tanh RNN (N = 32, weights U(-1.25, 1.25), gain about 4) over a long warm-up:
    # the unnormalised warm-up product grows past the f32 range (about 2^128), not past f64's
    ("rnn_l1_overflow", "rnn", 1, 32, 500, 1, 500, 1.25, None),
]
STANDARD_CASES = [("lstm_l2", "lstm", 2, 0.8), ("gru_l2", "gru", 2, 0.8)]
OVERFLOW_INPUT_SCALE = 0.1


def jacobian_of(f, x):
    """``torch.func.jacrev`` of ``f`` at ``x``."""
    return torch.func.jacrev(f)(x)


def make_module(arch, layers, hidden, scale, seed, dtype, gain=None):
    """The module with every parameter U(-scale, scale), except, when ``gain`` is given, every
    gate block of each recurrent matrix ``weight_hh_l{l}``: ``gain`` times a random orthogonal
    matrix (QR of a Gaussian one). Drawn in float64 and rounded to float32, so that the f32 and
    f64 files of a case hold the same network."""
    torch.manual_seed(seed)
    kwargs = dict(input_size=INPUT, hidden_size=hidden, num_layers=layers, bias=True,
                  batch_first=True)
    if arch == "rnn":
        kwargs["nonlinearity"] = "tanh"
    module = ARCHS[arch](**kwargs).double()
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.uniform_(-scale, scale)
            if gain is not None and name.startswith("weight_hh"):
                for g in range(p.shape[0] // hidden):
                    q, _ = torch.linalg.qr(torch.randn(hidden, hidden, dtype=torch.float64))
                    p[g * hidden:(g + 1) * hidden] = gain * q
            p.copy_(p.float().double())
    return module.to(dtype)


def one_step(module, arch, x_t, state):
    """One module step of one sequence; x_t [1, 1, I], state h [L, 1, N] or (h, c)."""
    if arch == "lstm":
        _, (h, c) = module(x_t, state)
        return (h, c)
    _, h = module(x_t, state)
    return h


def reference_jacobian(module, arch, x_t, state):
    """d h' / d h on the flattened [h_l0, h_l1, ..] (LSTM: c frozen at its current value)."""
    if arch == "lstm":
        h0, c0 = state
        shape = h0.shape

        def f(hflat):
            _, (h, _) = module(x_t, (hflat.reshape(shape), c0))
            return h.reshape(-1)

        return jacobian_of(f, h0.reshape(-1))
    shape = state.shape

    def f(hflat):
        _, h = module(x_t, hflat.reshape(shape))
        return h.reshape(-1)

    return jacobian_of(f, state.reshape(-1))


def flatten_state(arch, state):
    """PyTorch's state order: (h_n, c_n) -> [h_l0, h_l1, .., c_l0, c_l1, ..]."""
    if arch == "lstm":
        return torch.cat([state[0].reshape(-1), state[1].reshape(-1)])
    return state.reshape(-1)


def unflatten_state(arch, flat, layers):
    if arch == "lstm":
        n = flat.numel() // 2
        return (flat[:n].reshape(layers, 1, -1), flat[n:].reshape(layers, 1, -1))
    return flat.reshape(layers, 1, -1)


def full_jacobian(module, arch, x_t, state, layers):
    """d x' / d x on PyTorch's flattened state (LSTM: (h, c), nothing frozen)."""

    def f(flat):
        return flatten_state(arch, one_step(module, arch, x_t, unflatten_state(arch, flat, layers)))

    return jacobian_of(f, flatten_state(arch, state))


def zero_state(arch, layers, hidden, dtype):
    h = torch.zeros(layers, 1, hidden, dtype=dtype)
    return (h, torch.zeros_like(h)) if arch == "lstm" else h


def calc_les_reference(module, arch, layers, x, warmup, ons):
    """The published algorithm on one sequence x [T, I]; returns lambda [D] (log2 per step)."""
    dtype = x.dtype
    steps = x.shape[0]
    d = layers * module.hidden_size
    q = torch.eye(d, dtype=dtype)
    state = zero_state(arch, layers, module.hidden_size, dtype)
    with torch.no_grad():
        for t in range(min(warmup, steps)):
            x_t = x[t].reshape(1, 1, -1)
            jac = reference_jacobian(module, arch, x_t, state)
            state = one_step(module, arch, x_t, state)
            q = jac.T @ q
        if min(warmup, steps) > 0:
            q, _ = torch.linalg.qr(q)
        log_r = torch.zeros(steps, d, dtype=dtype)
        for t in range(steps):
            x_t = x[t].reshape(1, 1, -1)
            jac = reference_jacobian(module, arch, x_t, state)
            state = one_step(module, arch, x_t, state)
            z = jac.T @ q
            if t % ons == 0:
                qq, r = torch.linalg.qr(z)
                s = torch.sign(torch.diagonal(r))
                q = qq * s
                log_r[t] = torch.log2(torch.diagonal(r) * s)
            else:
                q = z
        return log_r.sum(dim=0) / steps


def standard_les(module, arch, layers, x):
    """Standard Benettin on PyTorch's flattened state: Q_0 = I, J Q, QR every step, ln."""
    dtype = x.dtype
    steps = x.shape[0]
    state = zero_state(arch, layers, module.hidden_size, dtype)
    d = flatten_state(arch, state).numel()
    q = torch.eye(d, dtype=dtype)
    total = torch.zeros(d, dtype=dtype)
    with torch.no_grad():
        for t in range(steps):
            x_t = x[t].reshape(1, 1, -1)
            jac = full_jacobian(module, arch, x_t, state, layers)
            state = one_step(module, arch, x_t, state)
            qq, r = torch.linalg.qr(jac @ q)
            s = torch.sign(torch.diagonal(r))
            q = qq * s
            total += torch.log(torch.diagonal(r) * s)
    return total / steps


def params(module):
    return {f"rnn.{k}": v.detach().clone().contiguous() for k, v in module.state_dict().items()}


def metadata(arch, layers, hidden, kind, dtype, warmup, ons, steps, scale, seed, lstm_state,
             gain=None):
    return {
        "arch": arch,
        "hidden_size": str(hidden),
        "input_size": str(INPUT),
        "num_layers": str(layers),
        "bias": "true",
        "kind": kind,
        "dtype": dtype,
        "warmup": str(warmup),
        "ons": str(ons),
        "steps": str(steps),
        "batch": str(BATCH),
        "init_scale": str(scale),
        "recurrent_gain": "none (uniform)" if gain is None else str(gain),
        "seed": str(seed),
        "lstm_state": lstm_state,
        "torch_version": torch.__version__,
        "generator": "python3 " + " ".join(sys.argv),
        "generated": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
    }


def write(path, tensors, meta):
    save_file(tensors, path, metadata=meta)
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="crates/le-engine/tests/fixtures")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)
    torch.backends.mkldnn.enabled = False
    for index, (name, arch, layers, hidden, warmup, ons, steps, scale, gain) in enumerate(
            REFERENCE_CASES):
        seed = 4321 + index
        for dname, dtype in [("f32", torch.float32), ("f64", torch.float64)]:
            module = make_module(arch, layers, hidden, scale, seed, dtype, gain)
            gen = torch.Generator().manual_seed(seed + 1000)
            inputs = torch.randn(BATCH, steps, INPUT, generator=gen, dtype=torch.float64)
            if name.endswith("overflow"):
                inputs = inputs * OVERFLOW_INPUT_SCALE
            inputs = inputs.float().to(dtype)
            les = torch.stack([calc_les_reference(module, arch, layers, inputs[b], warmup, ons)
                               for b in range(BATCH)])
            tensors = params(module)
            tensors["inputs"] = inputs.contiguous()
            tensors["exponents"] = les.to(torch.float64).contiguous()
            meta = metadata(arch, layers, hidden, "reference", dname, warmup, ons, steps, scale, seed,
                            "h_only" if arch == "lstm" else "full", gain)
            print(name, dname, [round(v, 6) for v in les[0].tolist()])
            write(os.path.join(args.out, f"refmode_{name}_{dname}.safetensors"), tensors, meta)
    for index, (name, arch, layers, scale) in enumerate(STANDARD_CASES):
        seed = 8765 + index
        dtype = torch.float64
        module = make_module(arch, layers, HIDDEN, scale, seed, dtype)
        gen = torch.Generator().manual_seed(seed + 1000)
        inputs = torch.randn(BATCH, STEPS, INPUT, generator=gen, dtype=dtype)
        les = torch.stack([standard_les(module, arch, layers, inputs[b]) for b in range(BATCH)])
        # one state, its Jacobian and its successor (sequence 0, t = 3), PyTorch order
        at = 3
        with torch.no_grad():
            state = zero_state(arch, layers, HIDDEN, dtype)
            for t in range(at):
                state = one_step(module, arch, inputs[0, t].reshape(1, 1, -1), state)
            x_t = inputs[0, at].reshape(1, 1, -1)
            jac = full_jacobian(module, arch, x_t, state, layers)
            nxt = one_step(module, arch, x_t, state)
        tensors = params(module)
        tensors["inputs"] = inputs.contiguous()
        tensors["exponents"] = les.contiguous()
        tensors["state_t"] = flatten_state(arch, state).contiguous()
        tensors["input_t"] = inputs[0, at].clone().contiguous()
        tensors["jacobian_t"] = jac.contiguous()
        tensors["state_next"] = flatten_state(arch, nxt).contiguous()
        meta = metadata(arch, layers, HIDDEN, "standard", "f64", 0, 1, STEPS, scale, seed, "full")
        print(name, [round(v, 6) for v in les[0].tolist()])
        write(os.path.join(args.out, f"stdorder_{name}_f64.safetensors"), tensors, meta)


if __name__ == "__main__":
    main()
