//! The Householder QR of one block: entry points, reflectors, and the two drivers (the
//! blocked factorisation and the backward accumulation of `Q`), see the [`super`] docs.

use aelle_support::simd::Level;

use super::panel::{panel_factor_tiled, panel_form_q_tiled};
use super::update::{CHUNK_COLS, build_t, prepare_y, tiled_update, tiled_updates, update_columns};
use super::{OUTER_PANELS, QrWorkspace, aligned_row};
use crate::linalg::primitives::{axpy, dot, fmadd};
use crate::scalar::Real;

/// Useful flops of one reduced Householder factorisation of a `d x k` block
/// (`2 d k^2 - 2 k^3 / 3`, the count used in LAPACK working notes). Forming `Q` costs as much
/// again.
pub fn qr_flops(d: usize, k: usize) -> f64 {
    let (d, k) = (d as f64, k as f64);
    2.0 * d * k * k - 2.0 * k * k * k / 3.0
}

/// Orthonormalise the `d x k` column-major block `a` in place: on return `a = Q` with
/// `Z = Q R`, `diag(R) >= 0`, and `log_diag[i] = ln R_ii` (natural log, `-inf` when a column
/// is linearly dependent on the previous ones, NaN/inf propagate from non-finite input).
///
/// Shapes: `a.len() == d * k`, `log_diag.len() == k`; `ws` must have been built for `(d, k)`.
pub fn orthonormalize_in_place<T: Real>(
    a: &mut [T],
    log_diag: &mut [f64],
    ws: &mut QrWorkspace<T>,
) {
    householder_factor(a, log_diag, ws);
    form_q_in_place(a, ws);
}

/// First half of [`orthonormalize_in_place`]: the Householder factorisation. On return the upper
/// triangle of `a` holds `R` (before the sign fix), the strict lower triangle the reflectors,
/// `log_diag[i] = ln |R_ii|`.
pub fn householder_factor<T: Real>(a: &mut [T], log_diag: &mut [f64], ws: &mut QrWorkspace<T>) {
    check_shapes(a, log_diag.len(), ws);
    match ws.simd {
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => unsafe { kernels::factor_avx512(a, log_diag, ws) },
        #[cfg(target_arch = "x86_64")]
        Level::Avx2Fma => unsafe { kernels::factor_avx2(a, log_diag, ws) },
        Level::Baseline => factor_impl::<T, false>(a, log_diag, ws),
    }
}

/// Second half of [`orthonormalize_in_place`]: overwrite the factored block with the explicit
/// `Q` (sign-fixed so that `diag(R) >= 0`). Must follow [`householder_factor`] with the same
/// workspace.
pub fn form_q_in_place<T: Real>(a: &mut [T], ws: &mut QrWorkspace<T>) {
    check_shapes(a, ws.k, ws);
    match ws.simd {
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => unsafe { kernels::form_q_avx512(a, ws) },
        #[cfg(target_arch = "x86_64")]
        Level::Avx2Fma => unsafe { kernels::form_q_avx2(a, ws) },
        Level::Baseline => form_q_impl::<T, false>(a, ws),
    }
}

fn check_shapes<T: Real>(a: &[T], k: usize, ws: &QrWorkspace<T>) {
    assert_eq!(k, ws.k, "log_diag has {k} entries, the workspace is for k = {}", ws.k);
    assert_eq!(
        a.len(),
        ws.d * ws.k,
        "block has {} entries, expected D * k = {} * {}",
        a.len(),
        ws.d,
        ws.k
    );
}

/// The column kernels compiled for each instruction set (chosen at run time by
/// [`aelle_support::simd::level`]).
mod kernels {
    use super::*;

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
    pub unsafe fn factor_avx512<T: Real>(a: &mut [T], l: &mut [f64], ws: &mut QrWorkspace<T>) {
        factor_impl::<T, true>(a, l, ws);
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn factor_avx2<T: Real>(a: &mut [T], l: &mut [f64], ws: &mut QrWorkspace<T>) {
        factor_impl::<T, true>(a, l, ws);
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
    pub unsafe fn form_q_avx512<T: Real>(a: &mut [T], ws: &mut QrWorkspace<T>) {
        form_q_impl::<T, true>(a, ws);
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn form_q_avx2<T: Real>(a: &mut [T], ws: &mut QrWorkspace<T>) {
        form_q_impl::<T, true>(a, ws);
    }
}

/// Apply `H = I - tau v v^T` to `x` (`v[0] = 1` stored explicitly, same length as `x`).
#[inline(always)]
pub(super) fn apply_reflector<T: Real, const FMA: bool>(v: &[T], tau: T, x: &mut [T]) {
    if tau == T::zero() {
        return;
    }
    let s = tau * dot::<T, FMA>(v, x);
    axpy::<T, FMA>(-s, v, x);
}

/// Sum of squares of `x` without overflow or harmful underflow.
#[inline(always)]
fn sum_of_squares_scaled<T: Real, const FMA: bool>(x: &[T]) -> (T, T) {
    // Fast path: plain sum of squares, accepted when it is comfortably inside the range.
    let s = dot::<T, FMA>(x, x);
    let tiny = T::min_positive_value() / T::epsilon();
    let huge = T::max_value() * T::epsilon();
    if s.is_finite() && s > tiny && s < huge {
        return (T::one(), s);
    }
    // Slow path: scale by the largest magnitude (LAPACK dnrm2 idea). Returns (scale, ssq) with
    // sum x_i^2 = scale^2 * ssq.
    let mut scale = T::zero();
    for &v in x {
        let a = v.abs();
        if a > scale || a.is_nan() {
            scale = a;
        }
    }
    if scale == T::zero() || !scale.is_finite() {
        return (T::one(), if scale.is_finite() { T::zero() } else { scale * scale });
    }
    let inv = T::one() / scale;
    let mut ssq = T::zero();
    for &v in x {
        let t = v * inv;
        ssq = fmadd::<T, FMA>(t, t, ssq);
    }
    (scale, ssq)
}

/// Compute the reflector annihilating `x[1..]`: on return `x[0] = beta` (the new `R_cc`) and
/// `x[1..] = v[1..]`; returns `tau`.
#[inline(always)]
pub(super) fn make_reflector<T: Real, const FMA: bool>(x: &mut [T]) -> T {
    let alpha = x[0];
    let (scale, ssq) = sum_of_squares_scaled::<T, FMA>(&x[1..]);
    if ssq == T::zero() {
        // Already upper triangular in this column: H = I, R_cc = alpha.
        return T::zero();
    }
    // ||x|| = hypot(alpha, scale * sqrt(ssq)), computed without overflow.
    let norm = if scale == T::one() {
        // fast path (ssq is comfortably inside the range): plain sqrt, unless alpha^2 overflows
        let n2 = alpha * alpha + ssq;
        if n2.is_finite() { n2.sqrt() } else { alpha.hypot(ssq.sqrt()) }
    } else {
        alpha.hypot(scale * ssq.sqrt())
    };
    let beta = if alpha >= T::zero() { -norm } else { norm };
    let tau = (beta - alpha) / beta;
    let inv = T::one() / (alpha - beta);
    for v in &mut x[1..] {
        *v *= inv;
    }
    x[0] = beta;
    tau
}

#[inline(always)]
fn factor_impl<T: Real, const FMA: bool>(
    a: &mut [T],
    log_diag: &mut [f64],
    ws: &mut QrWorkspace<T>,
) {
    let (d, k, nb) = (ws.d, ws.k, ws.nb);
    let tiled = tiled_updates(ws);
    let outer = if tiled { OUTER_PANELS } else { 1 };
    let mut t_factors = std::mem::take(&mut ws.t_factors);
    let mut p2 = 0;
    while p2 < k {
        let pe2 = (p2 + outer * nb).min(k);
        let mut p = p2;
        let mut slot = 0;
        while p < pe2 {
            let pe = (p + nb).min(pe2);
            let base = ws.slot_start(slot);
            let pi = p / nb;
            if tiled {
                let t = &mut t_factors[pi * nb * nb..(pi + 1) * nb * nb];
                panel_factor_tiled::<T, FMA>(a, log_diag, ws, t, slot, p, pe);
                prepare_y(ws, t, slot, p, pe, true);
                update_columns::<T, FMA>(a, ws, t, slot, (p, pe), (pe, pe2), true, true);
                p = pe;
                slot += 1;
                continue;
            }
            // Panel: left-looking inside the panel.
            for c in p..pe {
                let col = &mut a[c * d..(c + 1) * d];
                for r in p..c {
                    let v = &ws.panel[base + (r - p) * d + r..base + (r - p + 1) * d];
                    apply_reflector::<T, FMA>(v, ws.tau[r], &mut col[r..]);
                }
                let tau = make_reflector::<T, FMA>(&mut col[c..]);
                ws.tau[c] = tau;
                let beta = col[c];
                log_diag[c] = beta.as_f64().abs().ln();
                ws.sign[c] = if beta < T::zero() { -T::one() } else { T::one() };
                let slot_v = &mut ws.panel[base + (c - p) * d..base + (c - p + 1) * d];
                for x in &mut slot_v[p..c] {
                    *x = T::zero();
                }
                slot_v[c] = T::one();
                slot_v[c + 1..].copy_from_slice(&col[c + 1..]);
            }
            let t = &mut t_factors[pi * nb * nb..(pi + 1) * nb * nb];
            build_t::<T, FMA>(ws, slot, p, pe, t);
            update_columns::<T, FMA>(a, ws, t, slot, (p, pe), (pe, k), false, true);
            p = pe;
            slot += 1;
        }
        if tiled {
            // Columns right of the outer block, chunk by chunk, panels in order.
            let mut c0 = pe2;
            while c0 < k {
                let c1 = (c0 + CHUNK_COLS).min(k);
                for s in 0..slot {
                    let ps = p2 + s * nb;
                    tiled_update(a, ws, s, ps, c0, c1);
                }
                c0 = c1;
            }
        }
        p2 = pe2;
    }
    ws.t_factors = t_factors;
    if tiled {
        ln_all(ws.simd, log_diag);
    }
}

/// `ln` of the tiled path's `|R_cc|`, vectorised for the workspace's level (see
/// `tiles_update::ln_in_place`).
#[inline(always)]
fn ln_all(level: Level, x: &mut [f64]) {
    match level {
        // SAFETY: the workspace's level is one this CPU has.
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => unsafe { super::tiles_update::ln_in_place(x) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Level::Avx2Fma => unsafe { super::tiles_update::ln_in_place_avx2(x) },
        Level::Baseline => x.iter_mut().for_each(|v| *v = v.ln()),
    }
}

#[inline(always)]
fn form_q_impl<T: Real, const FMA: bool>(a: &mut [T], ws: &mut QrWorkspace<T>) {
    let (d, k, nb) = (ws.d, ws.k, ws.nb);
    if k == 0 {
        return;
    }
    let tiled = tiled_updates(ws);
    let outer = if tiled { OUTER_PANELS } else { 1 };
    let t_factors = std::mem::take(&mut ws.t_factors);
    // Outer blocks from the last to the first.
    let nouter = k.div_ceil(outer * nb);
    for ob in (0..nouter).rev() {
        let p2 = ob * outer * nb;
        let pe2 = (p2 + outer * nb).min(k);
        let npanels = (pe2 - p2).div_ceil(nb);
        // Save the block's reflectors before their columns are overwritten.
        for s in 0..npanels {
            let p = p2 + s * nb;
            let pe = (p + nb).min(pe2);
            let base = ws.slot_start(s);
            let p0 = aligned_row::<T>(p, d);
            for c in p..pe {
                let slot_v = &mut ws.panel[base + (c - p) * d..base + (c - p + 1) * d];
                for x in &mut slot_v[p0..c] {
                    *x = T::zero();
                }
                slot_v[c] = T::one();
                slot_v[c + 1..].copy_from_slice(&a[c * d + c + 1..(c + 1) * d]);
            }
            if tiled {
                let pi = p / nb;
                prepare_y(ws, &t_factors[pi * nb * nb..(pi + 1) * nb * nb], s, p, pe, false);
            }
        }
        // Columns right of the block already hold H_pe2 ... H_{k-1} [I; 0] (zero above row
        // pe2); apply the block's panels, last first.
        if tiled {
            let mut c0 = pe2;
            while c0 < k {
                let c1 = (c0 + CHUNK_COLS).min(k);
                for s in (0..npanels).rev() {
                    tiled_update(a, ws, s, p2 + s * nb, c0, c1);
                }
                c0 = c1;
            }
        }
        for s in (0..npanels).rev() {
            let p = p2 + s * nb;
            let pe = (p + nb).min(pe2);
            let pi = p / nb;
            let t = &t_factors[pi * nb * nb..(pi + 1) * nb * nb];
            // Columns of the block right of this panel (one-level path: all columns right).
            let right = if tiled { pe2 } else { k };
            update_columns::<T, FMA>(a, ws, t, s, (p, pe), (pe, right), tiled, false);
            if tiled {
                panel_form_q_tiled(a, ws, s, p, pe);
                continue;
            }
            // Inside the panel: unblocked backward accumulation (dorg2r).
            let base = ws.slot_start(s);
            for i in (p..pe).rev() {
                let tau = ws.tau[i];
                for j in i + 1..pe {
                    let v = &ws.panel[base + (i - p) * d + i..base + (i - p + 1) * d];
                    let col = &mut a[j * d + i..(j + 1) * d];
                    apply_reflector::<T, FMA>(v, tau, col);
                }
                let col = &mut a[i * d..(i + 1) * d];
                for x in &mut col[..i] {
                    *x = T::zero();
                }
                col[i] = T::one() - tau;
                for x in &mut col[i + 1..] {
                    *x = -tau * *x;
                }
            }
        }
    }
    ws.t_factors = t_factors;
    // Sign fix: diag(R) >= 0.
    for c in 0..k {
        if ws.sign[c] < T::zero() {
            for x in &mut a[c * d..(c + 1) * d] {
                *x = -*x;
            }
        }
    }
}
