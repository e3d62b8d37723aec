#!/usr/bin/env python3
"""The Lorenz-63 spectrum from torch.func.jacrev Jacobians, with aelle.spectrum_from_jacobians.

Lorenz-63 (sigma = 10, rho = 28, beta = 8/3), RK4 with dt = 0.01 in float64 torch. The Jacobian
of one RK4 step at every point of a trajectory on the attractor comes from
``torch.func.vmap(torch.func.jacrev(rk4_step))``; ``spectrum_from_jacobians(J, dt=0.01)`` turns
the ``[T, 3, 3]`` sequence into exponents per unit time. Known values (Sprott, *Chaos and
Time-Series Analysis*, 2003): 0.9056, 0, -14.5723; their sum is -(sigma + 1 + beta) = -13.667.

    python examples/python/lorenz63_jacrev.py [--steps 100000]
"""

import argparse
import time

import torch

import aelle

SIGMA, RHO, BETA = 10.0, 28.0, 8.0 / 3.0
KNOWN = (0.9056, 0.0, -14.5723)


def lorenz(x):
    return torch.stack([SIGMA * (x[1] - x[0]), x[0] * (RHO - x[2]) - x[1], x[0] * x[1] - BETA * x[2]])


def rk4_step(x, dt):
    k1 = lorenz(x)
    k2 = lorenz(x + 0.5 * dt * k1)
    k3 = lorenz(x + 0.5 * dt * k2)
    k4 = lorenz(x + dt * k3)
    return x + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)


def rk4_point(x, dt):
    """The same RK4 step on plain floats: the trajectory itself is not differentiated, and
    Python floats are much faster than 3-element tensors for a 10^5-step loop."""
    def f(p):
        return (SIGMA * (p[1] - p[0]), p[0] * (RHO - p[2]) - p[1], p[0] * p[1] - BETA * p[2])

    k1 = f(x)
    k2 = f([a + 0.5 * dt * b for a, b in zip(x, k1)])
    k3 = f([a + 0.5 * dt * b for a, b in zip(x, k2)])
    k4 = f([a + dt * b for a, b in zip(x, k3)])
    return [a + dt / 6.0 * (b + 2 * c + 2 * d + e) for a, b, c, d, e in zip(x, k1, k2, k3, k4)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=100_000, help="accumulated RK4 steps T")
    ap.add_argument("--warmup", type=int, default=2_000, help="steps onto the attractor, discarded")
    ap.add_argument("--dt", type=float, default=0.01)
    args = ap.parse_args()
    x = [1.0, 1.0, 1.0]
    for _ in range(args.warmup):
        x = rk4_point(x, args.dt)
    t0 = time.perf_counter()
    points = []
    for _ in range(args.steps):
        points.append(x)
        x = rk4_point(x, args.dt)
    traj = torch.tensor(points, dtype=torch.float64)  # [T, 3]: J_t is taken at x_t
    t1 = time.perf_counter()
    jacobians = torch.func.vmap(torch.func.jacrev(lambda s: rk4_step(s, args.dt)))(traj)  # [T, 3, 3]
    t2 = time.perf_counter()
    s = aelle.spectrum_from_jacobians(jacobians, dt=args.dt)
    t3 = time.perf_counter()
    print(f"trajectory {t1 - t0:.2f} s, jacrev {t2 - t1:.2f} s, spectrum {t3 - t2:.3f} s "
          f"(T = {args.steps}, dt = {args.dt})")
    print(f"exponents ({s.units}): " + ", ".join(f"{v:+.4f}" for v in s.exponents[0]))
    print("known:                  " + ", ".join(f"{v:+.4f}" for v in KNOWN))
    print(f"sum {s.sum[0]:+.4f} (exact -(sigma + 1 + beta) = {-(SIGMA + 1 + BETA):+.4f}), "
          f"Kaplan-Yorke dimension {s.kaplan_yorke[0]:.4f}")
    # a finite trajectory: the estimates converge like 1 / sqrt(T dt)
    tol = (0.03, 0.01, 0.05) if args.steps >= 100_000 else (0.2, 0.1, 0.3)
    for got, want, t in zip(s.exponents[0], KNOWN, tol):
        assert abs(got - want) < t, f"{got} vs {want}"
    print("within", tol, "of the known values")


if __name__ == "__main__":
    main()
