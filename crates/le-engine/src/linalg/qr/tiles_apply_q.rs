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
        // accumulators; `apply_panel_stripe_halves`; three registers spill and were measured
        // slower), the last stripe one register over all NB reflectors.
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
            match (regs, full) {
                (3, _) => apply_panel_stripe::<R, 3, true>(d, js, ns, a, p, t, zeros),
                (2, true) if R::WIDE => apply_panel_stripe::<R, 2, true>(d, js, ns, a, p, t, zeros),
                (2, false) if R::WIDE => {
                    apply_panel_stripe::<R, 2, false>(d, js, ns, a, p, t, zeros);
                }
                (2, true) => apply_panel_stripe_halves::<R, 2, true>(d, js, ns, a, p, t, zeros),
                (2, false) => apply_panel_stripe_halves::<R, 2, false>(d, js, ns, a, p, t, zeros),
                (_, true) => apply_panel_stripe::<R, 1, true>(d, js, ns, a, p, t, zeros),
                (_, false) => apply_panel_stripe::<R, 1, false>(d, js, ns, a, p, t, zeros),
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

/// One panel of [`apply_q_right`] on one stripe of `R` registers of rows at `js` (leading
/// dimension `ld`; `ns[q]` rows in register `q`, all full when `FULL`, so no masks): the
/// reflectors `p .. p + NB` (fewer at the end: missing columns read `zeros`).
#[inline(always)]
unsafe fn apply_panel_stripe<R: Reg, const NR: usize, const FULL: bool>(
    ld: usize,
    js: *mut R::T,
    ns: [usize; 3],
    a: *const R::T,
    p: usize,
    t: *const R::T,
    zeros: *const R::T,
) {
    let ns: [usize; NR] = std::array::from_fn(|q| if FULL { R::L } else { ns[q] });
    let nbp = (ld - p).min(NB);
    let ncols = ld - p;
    // vc[r][i] = V[p + i, r].
    let mut vc = [zeros; NB];
    for (r, v) in vc.iter_mut().enumerate().take(nbp) {
        *v = a.add((p + r) * ld + p);
    }
    // Pass 1: W = J V (R x NB accumulators).
    let mut w = [[R::zero(); NR]; NB];
    for i in 0..ncols {
        let col = js.add((p + i) * ld);
        let x: [R::V; NR] = std::array::from_fn(|q| R::load(col.add(q * R::L), ns[q]));
        for r in 0..NB {
            let b = R::splat(*vc[r].add(i));
            for q in 0..NR {
                w[r][q] = R::fmadd(x[q], b, w[r][q]);
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
    // Pass 2: J -= W V^T, one column at a time; the sum over the NB reflectors in two halves
    // when the stripe is two registers (four chains of NB / 2), in one otherwise.
    for i in 0..ncols {
        let col = js.add((p + i) * ld);
        let mut x: [R::V; NR] = std::array::from_fn(|q| R::load(col.add(q * R::L), ns[q]));
        if NR <= 2 {
            let mut y = [R::zero(); NR];
            for r in 0..NB {
                let b = R::splat(*vc[r].add(i));
                let acc = if r % 2 == 0 { &mut x } else { &mut y };
                for q in 0..NR {
                    acc[q] = R::fnmadd(w[r][q], b, acc[q]);
                }
            }
            for q in 0..NR {
                x[q] = R::add(x[q], y[q]);
            }
        } else {
            for r in 0..NB {
                let b = R::splat(*vc[r].add(i));
                for q in 0..NR {
                    x[q] = R::fnmadd(w[r][q], b, x[q]);
                }
            }
        }
        for q in 0..NR {
            R::store(col.add(q * R::L), x[q], ns[q]);
        }
    }
}

/// [`apply_panel_stripe`] for a register file of 16 (AVX2): a stripe of `NR` (2)
/// registers of rows with both passes split into two sweeps over the columns of `NB / 2`
/// reflectors each, so the accumulators (`NR x NB / 2`), the loaded column and one broadcast
/// fit in the registers. Per column and sweep, `NR` loads and `NB / 2` broadcasts feed
/// `NR x NB / 2` FMAs (a one-register stripe over all `NB` reflectors: 1 load and `NB`
/// broadcasts for `NB` FMAs). `W` lives in a small stack array between the passes.
#[inline(always)]
unsafe fn apply_panel_stripe_halves<R: Reg, const NR: usize, const FULL: bool>(
    ld: usize,
    js: *mut R::T,
    ns: [usize; 3],
    a: *const R::T,
    p: usize,
    t: *const R::T,
    zeros: *const R::T,
) {
    const H: usize = NB / 2;
    let ns: [usize; NR] = std::array::from_fn(|q| if FULL { R::L } else { ns[q] });
    let nbp = (ld - p).min(NB);
    let ncols = ld - p;
    // vc[r][i] = V[p + i, r].
    let mut vc = [zeros; NB];
    for (r, v) in vc.iter_mut().enumerate().take(nbp) {
        *v = a.add((p + r) * ld + p);
    }
    // Pass 1: W = J V, reflectors h H .. (h + 1) H per sweep.
    let mut w = [[R::zero(); NR]; NB];
    for h in 0..2 {
        let mut acc = [[R::zero(); NR]; H];
        for i in 0..ncols {
            let col = js.add((p + i) * ld);
            let x: [R::V; NR] = std::array::from_fn(|q| R::load(col.add(q * R::L), ns[q]));
            for r in 0..H {
                let b = R::splat(*vc[h * H + r].add(i));
                for q in 0..NR {
                    acc[r][q] = R::fmadd(x[q], b, acc[r][q]);
                }
            }
        }
        w[h * H..(h + 1) * H].copy_from_slice(&acc);
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
    // Pass 2: J -= W V^T, one sweep per half of the reflectors.
    for h in 0..2 {
        let wh: [[R::V; NR]; H] = std::array::from_fn(|r| w[h * H + r]);
        for i in 0..ncols {
            let col = js.add((p + i) * ld);
            // Two chains of H / 2 (even and odd reflectors) per register, then one add.
            let mut x: [R::V; NR] = std::array::from_fn(|q| R::load(col.add(q * R::L), ns[q]));
            let mut y = [R::zero(); NR];
            for r in 0..H {
                let b = R::splat(*vc[h * H + r].add(i));
                let acc = if r % 2 == 0 { &mut x } else { &mut y };
                for q in 0..NR {
                    acc[q] = R::fnmadd(wh[r][q], b, acc[q]);
                }
            }
            for q in 0..NR {
                R::store(col.add(q * R::L), R::add(x[q], y[q]), ns[q]);
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
