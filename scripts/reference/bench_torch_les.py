#!/usr/bin/env python3
"""PyTorch CPU reference of `orchestrator bench --rnn`: Lyapunov spectra of LSTM populations.

The same computation as the engine's RNN rows: one-layer LSTMs (PyTorch gate order i, f, g, o),
full state (h, c) of dimension D = 2N in PyTorch's order, all k = D exponents, Q_0 = I, h_0 = c_0
= 0, B sequences per network sharing one input sequence set, W warm-up steps re-orthonormalised
but not accumulated, then T accumulated steps with a QR every step, f32 state and tangents,
lambda_i = (1 / T) sum ln |R_ii| (log sums in f64).

The tangent map is analytic and batched as well as PyTorch allows: per network ONE GEMM of the
recurrent weights with the h-rows of all B tangent blocks (`U Q_h`, [4N, N] x [N, B D]), then
the gate derivatives elementwise:

    dc'/dh Q_h = a_i (U_i Q_h) + a_f (U_f Q_h) + a_g (U_g Q_h),   a_i = g i (1 - i),
                 a_f = c f (1 - f), a_g = i (1 - g^2)
    Z_c = dc'/dh Q_h + f Q_c
    Z_h = a_o (U_o Q_h) + k Z_c,   a_o = tanh(c') o (1 - o),  k = o (1 - tanh(c')^2)

then one batched `torch.linalg.qr` of all M B blocks. (Forming J explicitly and a batched
`J @ Q` costs the same flops in smaller GEMMs: slower.)

Setups measured (the best is reported): one process with all intra-op threads ("threads"), and
P processes of one thread each splitting the networks ("processes", P = the thread count).
`--modes processes-compiled,threads-compiled` runs the same with the tangent step under
`torch.compile` (inductor; the QR stays eager). Whether that pays depends on the machine: on a
2-core Intel Xeon, 2026-12-08 (`--hidden 64 --networks 8 --modes processes,processes-compiled
--no-sgemm`, then `--hidden 128 --networks 4`), 3,873 / 3,724 compiled against 3,491 / 3,526
seq-steps/s eager at N = 64 and 894 against 814 at N = 128. Compiled children of the
processes setup can hang (see `run_processes`), so `orchestrator bench --against-torch` runs
the eager setups only.
Also the machine's SGEMM through torch (MKL or OpenBLAS, as the wheel ships) and numpy
(n = 512 and 1024, one and all threads), the denominator `orchestrator bench` compares with.

`--self-check` checks the analytic tangent map against autograd Jacobians of `nn.LSTMCell`
(f64 exponents equal to 1e-9; measured 7.5e-11 with torch 2.15.0).

How to run (from the repository root, with torch, numpy and safetensors installed):
    python3 scripts/reference/bench_torch_les.py --hidden 64 [--networks 8] [--json]
    python3 scripts/reference/bench_torch_les.py --weights POP.safetensors --json

`--weights` reads the population `orchestrator bench --rnn --against-torch PYTHON` writes
(`w_ih` [M, 4N, I], `w_hh` [M, 4N, N], `b` [M, 4N] = bias_ih + bias_hh, `inputs` [B, W + T, I],
metadata `warmup`), so both sides run the same networks on the same inputs, and prints the
per-network mean exponents too, which the bench compares with the engine's.
"""

import argparse
import json
import multiprocessing as mp
import os
import sys
import time

import numpy as np
import torch


def tangent_step(pre_in, h, c, q, w_t, w_hh):
    """One forward step of all M B sequences and their tangent blocks: the new (h, c) and
    Z = J Q, [M, B, D, D], before its QR."""
    m, _, n = w_hh.shape
    bsz, d = h.shape[1], 2 * n
    pre = pre_in + torch.bmm(h, w_t)  # [M, B, 4N]
    i, f, g, o = pre.chunk(4, dim=-1)
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c_new = f * c + i * g
    tc = torch.tanh(c_new)
    h_new = o * tc
    a_i = g * i * (1 - i)
    a_f = c * f * (1 - f)
    a_g = i * (1 - g * g)
    a_o = tc * o * (1 - o)
    k = o * (1 - tc * tc)
    # U Q_h for all B blocks of a network at once: [M, 4N, N] x [M, N, B D].
    qh = q[:, :, :n, :].permute(0, 2, 1, 3).reshape(m, n, bsz * d)
    uq = torch.bmm(w_hh, qh).reshape(m, 4, n, bsz, d).permute(1, 0, 3, 2, 4)  # [4, M, B, N, D]
    qc = q[:, :, n:, :]
    zc = (
        a_i[..., None] * uq[0]
        + a_f[..., None] * uq[1]
        + a_g[..., None] * uq[2]
        + f[..., None] * qc
    )
    zh = a_o[..., None] * uq[3] + k[..., None] * zc
    return torch.cat([zh, zc], dim=2), h_new, c_new


_COMPILED = {}


def _step_fn(compiled):
    """`tangent_step`, or its `torch.compile` (inductor, static shapes; the QR stays eager:
    LAPACK has no fusible form). Compiled once per process."""
    if not compiled:
        return tangent_step
    if "step" not in _COMPILED:
        _COMPILED["step"] = torch.compile(tangent_step, dynamic=False)
    return _COMPILED["step"]


def lstm_spectra(w_ih, w_hh, b, x, warmup, compiled=False, steps=None):
    """Mean over the B sequences of each sequence's sorted exponents, [M, D], and the wall time
    of the loop (over the first `steps` steps only when given: the warm-up run)."""
    m, g4, n = w_hh.shape
    bsz, length, _ = x.shape
    d = 2 * n
    step = _step_fn(compiled)
    # Input projections of every step, for every network: [M, L, B, 4N].
    xi = torch.einsum("bli,mgi->mlbg", x, w_ih) + b[:, None, None, :]
    w_t = w_hh.transpose(1, 2).contiguous()  # [M, N, 4N]
    h = torch.zeros(m, bsz, n)
    c = torch.zeros(m, bsz, n)
    q = torch.eye(d).expand(m, bsz, d, d).contiguous()  # [M, B, D, D], Q[:, :, row, col]
    logs = torch.zeros(m, bsz, d, dtype=torch.float64)
    start = time.perf_counter()
    for t in range(length if steps is None else min(steps, length)):
        z, h, c = step(xi[:, t], h, c, q, w_t, w_hh)
        q, r = torch.linalg.qr(z)
        if t >= warmup:
            logs += torch.log(torch.abs(torch.diagonal(r, dim1=-2, dim2=-1))).double()
    wall = time.perf_counter() - start
    # Each sequence's exponents sorted (as the engine reports them), then the mean over B.
    lam = (logs / (length - warmup)).sort(dim=-1, descending=True).values
    return lam.mean(dim=1), wall


def _warm(w_ih, w_hh, b, x, compiled):
    """Warm the allocator and kernels (and, compiled, compile for exactly the timed run's
    inputs: all the networks and the whole sequence's input projections, so the per-step
    slices have the timed strides, for 3 steps, so both layouts of `q` are seen: the
    contiguous identity and the QR's output). Otherwise the timed loop would recompile."""
    mw = w_hh.shape[0] if compiled else 1
    lstm_spectra(w_ih[:mw], w_hh[:mw], b[:mw], x, 1, compiled, steps=3)


def _worker(args):
    part, w_ih, w_hh, b, x, warmup, barrier, compiled = args
    torch.set_num_threads(1)
    _warm(w_ih, w_hh, b, x, compiled)
    barrier.wait()
    t0 = time.perf_counter()
    lam, _ = lstm_spectra(w_ih, w_hh, b, x, warmup, compiled)
    return part, lam.numpy(), time.perf_counter() - t0


def run_threads(w_ih, w_hh, b, x, warmup, threads, compiled=False):
    torch.set_num_threads(threads)
    _warm(w_ih, w_hh, b, x, compiled)
    t0 = time.perf_counter()
    lam, _ = lstm_spectra(w_ih, w_hh, b, x, warmup, compiled)
    return lam.numpy(), time.perf_counter() - t0


def run_processes(w_ih, w_hh, b, x, warmup, procs, compiled=False):
    m = w_hh.shape[0]
    procs = max(1, min(procs, m))
    bounds = [(p * m // procs, (p + 1) * m // procs) for p in range(procs)]
    # Forked. With `compiled`, forked children have hung (2026-12-08, Intel Xeon, N = 16, in
    # either setup order) and spawned ones crashed in inductor, so `orchestrator bench` runs
    # the eager setups only; `--modes processes-compiled` is for runs by hand.
    ctx = mp.get_context("fork")
    with ctx.Manager() as manager:
        barrier = manager.Barrier(procs)
        jobs = [
            (p, w_ih[lo:hi], w_hh[lo:hi], b[lo:hi], x, warmup, barrier, compiled)
            for p, (lo, hi) in enumerate(bounds)
        ]
        with ctx.Pool(procs) as pool:
            out = pool.map(_worker, jobs)
    out.sort(key=lambda r: r[0])
    lam = np.concatenate([r[1] for r in out], axis=0)
    return lam, max(r[2] for r in out)


def _rate(f, n):
    """GFLOP/s of one n x n x n product `f`, best of three repetitions of >= 0.3 s."""
    f()
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < 0.3:
        f()
        reps += 1
    best = float("inf")
    for _ in range(3):
        t1 = time.perf_counter()
        for _ in range(reps):
            f()
        best = min(best, time.perf_counter() - t1)
    return 2.0 * n**3 * reps / best / 1e9


def sgemm_rates(threads):
    """GFLOP/s of f32 square GEMM, best of n = 512 and 1024: torch with one and with all
    intra-op threads, numpy with its BLAS's default threads (all cores)."""
    rates = {}
    for nt in sorted({1, threads}):
        torch.set_num_threads(nt)
        best = 0.0
        for n in (512, 1024):
            a, bb = torch.randn(n, n), torch.randn(n, n)
            best = max(best, _rate(lambda: torch.mm(a, bb), n))
        rates[f"torch_{nt}t"] = best
    torch.set_num_threads(threads)
    best = 0.0
    for n in (512, 1024):
        a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
        bb = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
        best = max(best, _rate(lambda: a @ bb, n))
    rates[f"numpy_{threads}t"] = best
    return rates


def random_population(networks, hidden, inputs, batch, steps, warmup, seed=0):
    gen = torch.Generator().manual_seed(seed)
    p = 1.0 / hidden**0.5

    def u(*shape):
        return (torch.rand(*shape, generator=gen) * 2 - 1) * p

    w_ih = u(networks, 4 * hidden, inputs)
    w_hh = u(networks, 4 * hidden, hidden)
    b = u(networks, 4 * hidden) + u(networks, 4 * hidden)
    x = torch.randn(batch, steps + warmup, inputs, generator=gen)
    return w_ih, w_hh, b, x


def self_check():
    """The analytic tangent map above against autograd: the exponents of small f64 LSTMs from
    `torch.autograd.functional.jacobian` of `nn.LSTMCell` (J formed, then `J Q`, QR) equal
    `lstm_spectra`'s. Returns the largest difference."""
    torch.set_default_dtype(torch.float64)
    m, n, ni, bsz, steps, warm = 2, 5, 3, 3, 12, 4
    w_ih, w_hh, b, x = (3 * t.double() for t in random_population(m, n, ni, bsz, steps, warm, 3))
    got, _ = lstm_spectra(w_ih, w_hh, b, x, warm)
    cell = torch.nn.LSTMCell(ni, n).double()
    worst = 0.0
    for k in range(m):
        with torch.no_grad():
            cell.weight_ih.copy_(w_ih[k])
            cell.weight_hh.copy_(w_hh[k])
            cell.bias_ih.copy_(b[k])
            cell.bias_hh.zero_()
        mean = torch.zeros(2 * n)
        for s in range(bsz):
            st, q, acc = torch.zeros(2 * n), torch.eye(2 * n), torch.zeros(2 * n)
            for t in range(steps + warm):
                u = x[s, t][None]

                def step(v, u=u):
                    h, c = cell(u, (v[None, :n], v[None, n:]))
                    return torch.cat([h[0], c[0]])

                jac = torch.autograd.functional.jacobian(step, st)
                q, r = torch.linalg.qr(jac @ q)
                if t >= warm:
                    acc += torch.log(torch.abs(torch.diagonal(r)))
                st = step(st).detach()
            mean += (acc / steps).sort(descending=True).values / bsz
        worst = max(worst, (got[k] - mean).abs().max().item())
    torch.set_default_dtype(torch.float32)
    return worst


MODES = ("processes", "threads", "processes-compiled", "threads-compiled")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", help="population file written by orchestrator bench")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--networks", type=int, default=8)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--modes", default="processes,threads")
    ap.add_argument(
        "--threads-networks",
        type=int,
        default=2,
        help="networks the threads mode runs (its rate is per sequence-step; it is the slow one)",
    )
    ap.add_argument("--no-sgemm", action="store_true")
    ap.add_argument("--sgemm-only", action="store_true", help="only the SGEMM rates")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--self-check", action="store_true", help="only the autograd check")
    a = ap.parse_args()
    if a.self_check:
        worst = self_check()
        print(f"analytic tangent vs autograd Jacobians (f64): max exponent difference {worst:.2e}")
        raise SystemExit(0 if worst < 1e-9 else 1)
    if a.sgemm_only:
        rates = sgemm_rates(a.threads)
        print(json.dumps({"torch": torch.__version__, "numpy": np.__version__, "sgemm_gflops": rates}))
        return
    if a.weights:
        from safetensors import safe_open

        with safe_open(a.weights, framework="pt") as fh:
            w_ih, w_hh = fh.get_tensor("w_ih"), fh.get_tensor("w_hh")
            b, x = fh.get_tensor("b"), fh.get_tensor("inputs")
            warmup = int(fh.metadata()["warmup"])
    else:
        w_ih, w_hh, b, x = random_population(
            a.networks, a.hidden, 28, a.batch, a.steps, a.warmup
        )
        warmup = a.warmup
    w_ih, w_hh, b, x = (t.float().contiguous() for t in (w_ih, w_hh, b, x))
    m, _, n = w_hh.shape
    bsz, length, _ = x.shape
    report = {
        "torch": torch.__version__,
        "numpy": np.__version__,
        "networks": m,
        "hidden": n,
        "batch": bsz,
        "length": length,
        "warmup": warmup,
        "modes": [],
    }
    best, exponents = None, None
    for mode in a.modes.split(","):
        base, _, suffix = mode.partition("-")
        if suffix not in ("", "compiled"):
            raise SystemExit(f"--modes: unknown mode {mode!r} ({', '.join(MODES)})")
        compiled = suffix == "compiled"
        if base not in ("threads", "processes"):
            raise SystemExit(f"--modes: unknown mode {mode!r} ({', '.join(MODES)})")
        try:
            if base == "threads":
                mt = max(1, min(m, a.threads_networks))
                lam, wall = run_threads(
                    w_ih[:mt], w_hh[:mt], b[:mt], x, warmup, a.threads, compiled
                )
                row = {"mode": mode, "threads": a.threads, "networks": mt}
            else:
                mt = m
                lam, wall = run_processes(w_ih, w_hh, b, x, warmup, a.threads, compiled)
                row = {"mode": mode, "processes": min(a.threads, m), "threads": 1, "networks": m}
        except Exception as e:  # noqa: BLE001 - torch.compile needs a C++ compiler
            if not compiled:
                raise
            # A compiled setup that cannot run here (no C++ compiler for inductor, an
            # unsupported platform) is reported and skipped; the eager setups still count.
            print(f"bench_torch_les: {mode} skipped: {type(e).__name__}: {e}", file=sys.stderr)
            report["modes"].append({"mode": mode, "error": f"{type(e).__name__}: {e}"})
            continue
        row["seconds"] = wall
        row["sequence_steps_per_second"] = mt * bsz * length / wall
        report["modes"].append(row)
        if exponents is None or len(lam) > len(exponents):
            exponents = lam
        if best is None or row["sequence_steps_per_second"] > best["sequence_steps_per_second"]:
            best = row
    if best is None:
        raise SystemExit("bench_torch_les: no setup could run (see the messages above)")
    report["best"] = best
    # Every network's exponents (from the mode that ran them all).
    report["exponents"] = exponents.tolist()
    if not a.no_sgemm:
        report["sgemm_gflops"] = sgemm_rates(a.threads)
    if a.json:
        print(json.dumps(report))
    else:
        print(f"torch {report['torch']}, LSTM N = {n}, M = {m}, B = {bsz}, L = {length}")
        for row in report["modes"]:
            if "error" in row:
                print(f"  {row['mode']:>9}: skipped ({row['error']})")
            else:
                print(f"  {row['mode']:>9}: {row['sequence_steps_per_second']:9.0f} seq-steps/s")
        for k, v in report.get("sgemm_gflops", {}).items():
            print(f"  SGEMM {k}: {v:.1f} GFLOP/s")
        print(f"  lambda_1 of network 0: {report['exponents'][0][0]:.5f}")


if __name__ == "__main__":
    main()
