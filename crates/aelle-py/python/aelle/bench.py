"""``python -m aelle.bench``: the package against PyTorch, in one process, on the same inputs.

Setting (the engine's benchmark, ``orchestrator bench --rnn``): populations of ``M = 32``
networks (PyTorch's default init), ``B = 16`` driving sequences of ``T = 100`` steps after a
warm-up of 20, ``I = 28``, float32, LSTM full ``(h, c)`` state, all ``k = D`` exponents, a QR
every step. Rates are sequence-steps per second (one sequence advanced one step, state and
all ``k`` tangent directions).

Compared, each at its best on this machine's threads:

* ``aelle``: ``population_spectra`` of the 32 modules; ``engine`` is the Rust call's own wall
  time (``Spectrum.info["engine_seconds"]``), so ``1 - engine / wall`` is the Python-call
  overhead (conversions of 32 state dicts, inputs, results).
* ``torch reference``: the repository's PyTorch reference algorithm
  (``scripts/reference/calc_les_reference.py``, ``standard_les``: per sequence and step,
  ``torch.func.jacrev`` of one module step, ``torch.linalg.qr``), timed on the first
  ``--ref-steps`` steps of one sequence (its cost per step is constant).
* ``torch jacrev (batched)``: the fast way to do it in PyTorch: per step
  ``vmap(jacrev(cell_step))`` over the 16 sequences of a network (the cell written with
  torch ops, checked against the module), one batched ``bmm`` and one batched
  ``torch.linalg.qr``; timed on the first ``--jacrev-steps`` steps of one network.

Prints the rates and the ratios. A benchmark, not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

import aelle

M, B, T, W, I = 32, 16, 100, 20, 28


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def simd_level() -> str:
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return "unknown"
    if " avx512f" in flags:
        return "avx512"
    return "avx2" if " avx2" in flags else "sse"


def cell_step(torch, arch, p):
    """One step of layer 0 of a PyTorch LSTM / GRU on the flattened state, written with torch
    ops (PyTorch's gate equations), so that vmap(jacrev(.)) applies."""
    w_ih, w_hh, b_ih, b_hh = p["weight_ih_l0"], p["weight_hh_l0"], p["bias_ih_l0"], p["bias_hh_l0"]
    n = w_hh.shape[1]
    if arch == "lstm":
        def f(state, x):
            h, c = state[:n], state[n:]
            g = w_ih @ x + b_ih + w_hh @ h + b_hh
            i, fg, gg, o = torch.sigmoid(g[:n]), torch.sigmoid(g[n:2 * n]), torch.tanh(g[2 * n:3 * n]), torch.sigmoid(g[3 * n:])
            c2 = fg * c + i * gg
            return torch.cat([o * torch.tanh(c2), c2])
        return f, 2 * n

    def f(h, x):
        gi, gh = w_ih @ x + b_ih, w_hh @ h + b_hh
        r = torch.sigmoid(gi[:n] + gh[:n])
        z = torch.sigmoid(gi[n:2 * n] + gh[n:2 * n])
        cand = torch.tanh(gi[2 * n:] + r * gh[2 * n:])
        return (1 - z) * cand + z * h
    return f, n


def torch_batched_jacrev(torch, arch, module, x):
    """Log-stretch sums of one network on x [B, T, I] (after the warm-up W when T > W):
    vmap(jacrev) + bmm + batched QR per step."""
    p = {k: v.detach() for k, v in module.state_dict().items()}
    f, d = cell_step(torch, arch, p)
    jac = torch.func.vmap(torch.func.jacrev(f), in_dims=(0, 0))
    step = torch.func.vmap(f, in_dims=(0, 0))
    b = x.shape[0]
    state = torch.zeros(b, d, dtype=x.dtype)
    q = torch.eye(d, dtype=x.dtype).expand(b, d, d).contiguous()
    total = torch.zeros(b, d, dtype=torch.float64)
    with torch.no_grad():
        for t in range(x.shape[1]):
            j = jac(state, x[:, t])
            state = step(state, x[:, t])
            q, r = torch.linalg.qr(torch.bmm(j, q))
            diag = torch.diagonal(r, dim1=1, dim2=2)
            q = q * torch.sign(diag)[:, None, :]
            if t >= W or x.shape[1] <= W:
                total += torch.log(diag.abs()).double()
    return total.sort(dim=1, descending=True).values


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m aelle.bench", description=__doc__.split("\n")[0])
    ap.add_argument("--cases", default="lstm:64,lstm:128,gru:64", help="arch:N,... (default %(default)s)")
    ap.add_argument("--repeats", type=int, default=3, help="aelle calls per case (best is reported)")
    ap.add_argument("--ref-steps", type=int, default=10, help="steps of one sequence timed for the torch reference")
    ap.add_argument("--jacrev-steps", type=int, default=15,
                    help="steps of one network's 16 sequences timed for batched jacrev")
    args = ap.parse_args(argv)
    import torch

    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    torch.backends.mkldnn.enabled = False  # as the reference script (jacrev of the LSTM module)
    root = Path(__file__).resolve()
    ref_dir = next((p / "scripts" / "reference" for p in [Path.cwd(), *root.parents]
                    if (p / "scripts" / "reference" / "calc_les_reference.py").is_file()), None)
    standard_les = None
    if ref_dir is not None:
        sys.path.insert(0, str(ref_dir))
        from calc_les_reference import standard_les  # the repository's PyTorch reference
    print(f"CPU: {cpu_name()} ({threads} threads, SIMD {simd_level()}); torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), aelle {aelle.__version__} (engine pool {aelle.num_threads()} threads)")
    print(f"setting: M = {M} networks, B = {B}, T = {T} + {W} warm-up, I = {I}, float32, k = D, QR every step")
    if standard_les is None:
        print("(scripts/reference/calc_les_reference.py not found: run from the repository for the reference column)")
    header = ("| case | D | aelle seq-steps/s | call overhead | torch reference seq-steps/s | aelle / reference "
              "| torch jacrev (batched) seq-steps/s | aelle / jacrev |")
    print()
    print(header)
    print("|" + " --- |" * 8)
    for case in args.cases.split(","):
        arch, n = case.split(":")
        n = int(n)
        cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[arch]
        torch.manual_seed(n)
        mods = [cls(I, n, batch_first=True) for _ in range(M)]
        x = torch.randn(B, T + W, I, generator=torch.Generator().manual_seed(77))
        # aelle: the whole population in one call
        best_wall, engine = float("inf"), None
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            pop = aelle.population_spectra(mods, x, warmup=W, precision="float32")
            wall = time.perf_counter() - t0
            if wall < best_wall:
                best_wall, engine = wall, pop[0].info["engine_seconds"]
        d = pop[0].k
        rate = M * B * (T + W) / best_wall
        overhead = 1 - engine / best_wall
        # batched jacrev: check the hand-written cell against the module, then time it
        f, _ = cell_step(torch, arch, {k: v.detach() for k, v in mods[0].state_dict().items()})
        with torch.no_grad():
            h0 = torch.zeros(1, 1, n)
            out = mods[0](x[:1, :1], (h0, h0) if arch == "lstm" else h0)[1]
            flat = torch.cat([out[0].reshape(-1), out[1].reshape(-1)]) if arch == "lstm" else out.reshape(-1)
            assert torch.allclose(f(torch.zeros(d), x[0, 0]), flat, atol=1e-5), "cell_step != module step"
        steps = min(args.jacrev_steps, T + W)
        torch_batched_jacrev(torch, arch, mods[0], x[:, :1])  # first call (tracing) untimed
        t0 = time.perf_counter()
        torch_batched_jacrev(torch, arch, mods[0], x[:, :steps])
        jac_rate = B * steps / (time.perf_counter() - t0)
        # the repository's reference, one sequence at a time
        ref_cell = "n/a"
        ref_ratio = "n/a"
        if standard_les is not None and args.ref_steps > 0:
            steps = min(args.ref_steps, T + W)
            standard_les(mods[0], arch, 1, x[0, :1])  # first call untimed
            t0 = time.perf_counter()
            standard_les(mods[0], arch, 1, x[0, :steps])
            ref_rate = steps / (time.perf_counter() - t0)
            ref_cell, ref_ratio = f"{ref_rate:,.0f}", f"{rate / ref_rate:,.0f}x"
        print(f"| {arch.upper()} {n} | {d} | {rate:,.0f} | {100 * overhead:.2f} % | {ref_cell} | {ref_ratio} "
              f"| {jac_rate:,.0f} | {rate / jac_rate:,.1f}x |", flush=True)


if __name__ == "__main__":
    main()
