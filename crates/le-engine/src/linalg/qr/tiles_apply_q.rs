//! `J <- J Q` with `Q` kept factored ([`apply_q_right`]): the AVX-512 kernel of the
//! factored-`Q` population path (`factored.rs`).
#![allow(unsafe_op_in_unsafe_fn, clippy::too_many_arguments, clippy::needless_range_loop)]

use super::tiles_update::NB;
use super::tiles_zmm::Zmm;

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
/// registers of rows (48 rows in f32, 24 in f64; the last stripe two, masked) that stay in L1
/// while every panel is applied: `W = J_stripe V_s` (the stripe's columns times broadcast
/// reflector entries, `3 x NB` accumulators, no horizontal reductions), `W <- W T_s` in
/// registers, `J_stripe -= W V_s^T` (same form), and finally the columns with `sign < 0`
/// change sign. Flops: about `2 d^3`, all in broadcast-FMA form, replacing both the
/// formation of `Q` and the `J Q` product of the explicit path.
///
/// # Safety
/// AVX-512F available; `j` and `a` valid for `d * d` entries, `tf` for `ceil(d / NB) NB^2`,
/// `sign` for `d`, `zeros` for `d` entries that are all zero.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn apply_q_right<T: Zmm>(
    d: usize,
    j: *mut T,
    a: *const T,
    tf: *const T,
    sign: *const T,
    zeros: *const T,
) {
    let mut r0 = 0;
    while r0 < d {
        let left = d - r0;
        // Three registers of rows while they are full, then one stripe of up to two.
        let regs = if left >= 3 * T::L { 3 } else { 2 };
        let ns: [usize; 3] = std::array::from_fn(|q| left.saturating_sub(q * T::L).min(T::L));
        let js = j.add(r0);
        let mut p = 0;
        while p < d {
            let t = tf.add((p / NB) * NB * NB);
            if regs == 3 {
                apply_panel_stripe::<T, 3, true>(d, js, ns, a, p, t, zeros);
            } else if ns[1] == T::L {
                apply_panel_stripe::<T, 2, true>(d, js, ns, a, p, t, zeros);
            } else {
                apply_panel_stripe::<T, 2, false>(d, js, ns, a, p, t, zeros);
            }
            p += NB;
        }
        for c in 0..d {
            if *sign.add(c) < T::ZERO {
                let col = js.add(c * d);
                for (q, &n) in ns.iter().enumerate().take(regs) {
                    let x = T::load(col.add(q * T::L), n);
                    T::store(col.add(q * T::L), T::fnmadd(x, T::splat(T::ONE), T::zero()), n);
                }
            }
        }
        r0 += regs * T::L;
    }
}

/// One panel of [`apply_q_right`] on one stripe of `R` registers of rows at `js` (leading
/// dimension `ld`; `ns[q]` rows in register `q`, all full when `FULL`, so no masks): the
/// reflectors `p .. p + NB` (fewer at the end: missing columns read `zeros`).
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn apply_panel_stripe<T: Zmm, const R: usize, const FULL: bool>(
    ld: usize,
    js: *mut T,
    ns: [usize; 3],
    a: *const T,
    p: usize,
    t: *const T,
    zeros: *const T,
) {
    let ns: [usize; R] = std::array::from_fn(|q| if FULL { T::L } else { ns[q] });
    let nbp = (ld - p).min(NB);
    let ncols = ld - p;
    // vc[r][i] = V[p + i, r].
    let mut vc = [zeros; NB];
    for (r, v) in vc.iter_mut().enumerate().take(nbp) {
        *v = a.add((p + r) * ld + p);
    }
    // Pass 1: W = J V (R x NB accumulators).
    let mut w = [[T::zero(); R]; NB];
    for i in 0..ncols {
        let col = js.add((p + i) * ld);
        let x: [T::V; R] = std::array::from_fn(|q| T::load(col.add(q * T::L), ns[q]));
        for r in 0..NB {
            let b = T::splat(*vc[r].add(i));
            for q in 0..R {
                w[r][q] = T::fmadd(x[q], b, w[r][q]);
            }
        }
    }
    // W <- W T (T upper triangular): column r from the top down, highest r first.
    for r in (0..NB).rev() {
        let mut acc = [T::zero(); R];
        for l in 0..=r {
            let b = T::splat(*t.add(l + r * NB));
            for q in 0..R {
                acc[q] = T::fmadd(w[l][q], b, acc[q]);
            }
        }
        w[r] = acc;
    }
    // Pass 2: J -= W V^T, one column at a time; the sum over the NB reflectors in two halves
    // when the stripe is two registers (four chains of NB / 2), in one otherwise.
    for i in 0..ncols {
        let col = js.add((p + i) * ld);
        let mut x: [T::V; R] = std::array::from_fn(|q| T::load(col.add(q * T::L), ns[q]));
        if R <= 2 {
            let mut y = [T::zero(); R];
            for r in 0..NB {
                let b = T::splat(*vc[r].add(i));
                let acc = if r % 2 == 0 { &mut x } else { &mut y };
                for q in 0..R {
                    acc[q] = T::fnmadd(w[r][q], b, acc[q]);
                }
            }
            for q in 0..R {
                x[q] = T::add(x[q], y[q]);
            }
        } else {
            for r in 0..NB {
                let b = T::splat(*vc[r].add(i));
                for q in 0..R {
                    x[q] = T::fnmadd(w[r][q], b, x[q]);
                }
            }
        }
        for q in 0..R {
            T::store(col.add(q * T::L), x[q], ns[q]);
        }
    }
}

dispatch_on_real!(
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
