//! `J <- J Q` with `Q` kept factored ([`apply_q_right`]): the kernel of the factored-`Q`
//! population path (`factored.rs`), AVX-512 or AVX2 + FMA.
#![allow(unsafe_op_in_unsafe_fn, clippy::too_many_arguments, clippy::needless_range_loop)]

use super::tiles_reg::Reg;
use super::tiles_update::NB;

/// `J <- J Q` in place for a square `d x d` block `J` (column-major, leading dimension `d`) and
/// the orthonormal `Q` of a previous [`crate::linalg::qr::householder_factor`] of another `d x d`
/// block `a`, kept in factored form: `Q = H_0 ... H_{d-1} S` with the reflectors below the
/// diagonal of `a`, the panels' compact-WY factors `H_p ... H_{p+NB-1} = I - V_s T_s V_s^T`
/// in `tf` (`NB x NB` each, column-major, zero below the diagonal), and `S = diag(sign)`.
/// `a` must have been prepared by [`unit_panel_triangles`] (each panel's upper triangle and
/// diagonal inside its own `NB` columns hold the zeros and ones of `V`), so that every entry
/// the kernel reads from a reflector column is the reflector's.
///
/// `J Q` acts on each row of `J` separately, so the block is processed in stripes of three
/// registers of rows (AVX-512: 48 rows in f32, 24 in f64, the last stripe two or one, masked;
/// AVX2, 16 registers: two registers, 16 rows in f32, 8 in f64, each pass in two sweeps of
/// `NB / 2` reflectors, the last stripe one register) that stay in L1
/// while every panel is applied: `W = J_stripe V_s` (the stripe's columns times broadcast
/// reflector entries, `3 x NB` accumulators, no horizontal reductions), `W <- W T_s` in
/// registers, `J_stripe -= W V_s^T` (same form), and finally the columns with `sign < 0`
/// change sign. Flops: about `2 d^3`, all in broadcast-FMA form, replacing both the
/// formation of `Q` and the `J Q` product of the explicit path.
///
/// # Safety
/// The register type's instruction set available; `j` and `a` valid for `d * d` entries, `tf` for `ceil(d / NB) NB^2`,
/// `sign` for `d`, `zeros` for `d` entries that are all zero.
#[inline(always)]
pub(crate) unsafe fn apply_q_right<R: Reg>(
    d: usize,
    j: *mut R::T,
    a: *const R::T,
    tf: *const R::T,
    sign: *const R::T,
    zeros: *const R::T,
) {
    let mut r0 = 0;
    while r0 < d {
        let left = d - r0;
        // AVX-512: three registers of rows while they are full (3 x NB accumulators, 24 of
        // the 32 registers), then one stripe of two or one. AVX2 (16 registers): stripes of
        // two registers with each pass split into two sweeps of NB / 2 reflectors (2 x NB / 2
        // accumulators, `SWEEPS = 2`; three registers spill and ran slower in
        // `examples/rnn_profile`), the last stripe one register over all NB reflectors.
        let regs = if R::WIDE && left >= 3 * R::L {
            3
        } else if left > R::L {
            2
        } else {
            1
        };
        let ns: [usize; 3] = std::array::from_fn(|q| left.saturating_sub(q * R::L).min(R::L));
        let full = ns[regs - 1] == R::L;
        let js = j.add(r0);
        let mut p = 0;
        while p < d {
            let t = tf.add((p / NB) * NB * NB);
            // AVX2's two-register stripes sweep twice (`apply_panel_stripe`).
            match (regs, full) {
                (3, _) => apply_panel_stripe::<R, 3, true, 1>(d, js, ns, a, p, t, zeros),
                (2, true) if R::WIDE => {
                    apply_panel_stripe::<R, 2, true, 1>(d, js, ns, a, p, t, zeros);
                }
                (2, false) if R::WIDE => {
                    apply_panel_stripe::<R, 2, false, 1>(d, js, ns, a, p, t, zeros);
                }
                (2, true) => apply_panel_stripe::<R, 2, true, 2>(d, js, ns, a, p, t, zeros),
                (2, false) => apply_panel_stripe::<R, 2, false, 2>(d, js, ns, a, p, t, zeros),
                (_, true) => apply_panel_stripe::<R, 1, true, 1>(d, js, ns, a, p, t, zeros),
                (_, false) => apply_panel_stripe::<R, 1, false, 1>(d, js, ns, a, p, t, zeros),
            }
            p += NB;
        }
        for c in 0..d {
            if *sign.add(c) < R::ZERO {
                let col = js.add(c * d);
                for (q, &n) in ns.iter().enumerate().take(regs) {
                    let x = R::load(col.add(q * R::L), n);
                    R::store(col.add(q * R::L), R::fnmadd(x, R::splat(R::ONE), R::zero()), n);
                }
            }
        }
        r0 += regs * R::L;
    }
}

/// One panel of [`apply_q_right`] on one stripe of `NR` registers of rows at `js` (leading
/// dimension `ld`; `ns[q]` rows in register `q`, all full when `FULL`, so no masks): the
/// reflectors `p .. p + NB` (fewer at the end: missing columns read `zeros`). Each pass
/// sweeps the columns `SWEEPS` times, over `NB / SWEEPS` reflectors each: one sweep where the
/// `NR x NB` accumulators fit (AVX-512), two on AVX2's 16 registers (per column and sweep `NR`
/// loads and `NB / 2` broadcasts feed `NR x NB / 2` FMAs). `W` stays in a small stack array
/// between the passes (in registers when one sweep).
#[inline(always)]
unsafe fn apply_panel_stripe<R: Reg, const NR: usize, const FULL: bool, const SWEEPS: usize>(
    ld: usize,
    js: *mut R::T,
    ns: [usize; 3],
    a: *const R::T,
    p: usize,
    t: *const R::T,
    zeros: *const R::T,
) {
    let h_len = NB / SWEEPS;
    let ns: [usize; NR] = std::array::from_fn(|q| if FULL { R::L } else { ns[q] });
    let nbp = (ld - p).min(NB);
    let ncols = ld - p;
    // vc[r][i] = V[p + i, r].
    let mut vc = [zeros; NB];
    for (r, v) in vc.iter_mut().enumerate().take(nbp) {
        *v = a.add((p + r) * ld + p);
    }
    // Pass 1: W = J V, reflectors h h_len .. (h + 1) h_len in sweep h.
    let mut w = [[R::zero(); NR]; NB];
    for h in 0..SWEEPS {
        let wh = &mut w[h * h_len..(h + 1) * h_len];
        for i in 0..ncols {
            let col = js.add((p + i) * ld);
            let x: [R::V; NR] = std::array::from_fn(|q| R::load(col.add(q * R::L), ns[q]));
            for (r, wr) in wh.iter_mut().enumerate() {
                let b = R::splat(*vc[h * h_len + r].add(i));
                for q in 0..NR {
                    wr[q] = R::fmadd(x[q], b, wr[q]);
                }
            }
        }
    }
    // W <- W T (T upper triangular): column r from the top down, highest r first.
    for r in (0..NB).rev() {
        let mut acc = [R::zero(); NR];
        for l in 0..=r {
            let b = R::splat(*t.add(l + r * NB));
            for q in 0..NR {
                acc[q] = R::fmadd(w[l][q], b, acc[q]);
            }
        }
        w[r] = acc;
    }
    // Pass 2: J -= W V^T, one column at a time per sweep (one FMA chain per register: the
    // columns are independent, so out-of-order execution overlaps their chains).
    for h in 0..SWEEPS {
        let wh = &w[h * h_len..(h + 1) * h_len];
        for i in 0..ncols {
            let col = js.add((p + i) * ld);
            let mut x: [R::V; NR] = std::array::from_fn(|q| R::load(col.add(q * R::L), ns[q]));
            for (r, wr) in wh.iter().enumerate() {
                let b = R::splat(*vc[h * h_len + r].add(i));
                for q in 0..NR {
                    x[q] = R::fnmadd(wr[q], b, x[q]);
                }
            }
            for q in 0..NR {
                R::store(col.add(q * R::L), x[q], ns[q]);
            }
        }
    }
}

dispatch_simd!(
    /// [`apply_q_right`] on the QR's element type.
    apply_q_right_dispatch => apply_q_right(
        d: usize,
        j: *mut T,
        a: *const T,
        tf: *const T,
        sign: *const T,
        zeros: *const T,
    )
);
