//! AVX-512 `f32` versions of the batched QR's hot kernels (16 lanes = one `zmm` register).
//! The generic code leaves the large accumulator tiles in memory; here every tile lives in
//! registers.
#![allow(unsafe_op_in_unsafe_fn)]

use std::arch::x86_64::*;

use super::{BATCHED_PANEL_WIDTH as NB, LANES};

/// `W[r][wcol + jj] = sum_{i = p}^{d - 1} V[i][r] C[i][col + jj]`, `r < NB`, `jj < JT`.
///
/// # Safety
/// AVX-512F available; `vp` holds `d x NB x 16`, `a` holds `d x k x 16` with
/// `col + JT <= k`, `w` holds `NB x k x 16` with `wcol + JT <= k`.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn vt_c_tile<const JT: usize>(
    vp: &[f32],
    a: &[f32],
    w: &mut [f32],
    p: usize,
    d: usize,
    k: usize,
    col: usize,
    wcol: usize,
) {
    assert!(vp.len() >= d * NB * LANES && a.len() >= ((d - 1) * k + col + JT) * LANES);
    assert!(w.len() >= ((NB - 1) * k + wcol + JT) * LANES);
    let mut acc = [[_mm512_setzero_ps(); JT]; NB];
    for i in p..d {
        let vrow = vp.as_ptr().add(i * NB * LANES);
        let xrow = a.as_ptr().add((i * k + col) * LANES);
        let mut x = [_mm512_setzero_ps(); JT];
        for (jj, xj) in x.iter_mut().enumerate() {
            *xj = _mm512_loadu_ps(xrow.add(jj * LANES));
        }
        for (r, accr) in acc.iter_mut().enumerate() {
            let v = _mm512_loadu_ps(vrow.add(r * LANES));
            for jj in 0..JT {
                accr[jj] = _mm512_fmadd_ps(v, x[jj], accr[jj]);
            }
        }
    }
    for (r, accr) in acc.iter().enumerate() {
        for (jj, accrj) in accr.iter().enumerate() {
            _mm512_storeu_ps(w.as_mut_ptr().add((r * k + wcol + jj) * LANES), *accrj);
        }
    }
}

/// `C[i][col + jj] -= sum_r V[i][r] W[r][wcol + jj]` for rows `p..d`.
///
/// # Safety
/// As [`vt_c_tile`].
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn c_minus_vw_tile<const JT: usize>(
    vp: &[f32],
    a: &mut [f32],
    w: &[f32],
    p: usize,
    d: usize,
    k: usize,
    col: usize,
    wcol: usize,
) {
    assert!(vp.len() >= d * NB * LANES && a.len() >= ((d - 1) * k + col + JT) * LANES);
    assert!(w.len() >= ((NB - 1) * k + wcol + JT) * LANES);
    let mut wt = [[_mm512_setzero_ps(); JT]; NB];
    for (r, wr) in wt.iter_mut().enumerate() {
        for (jj, wrj) in wr.iter_mut().enumerate() {
            // negated so the update is a plain FMA
            *wrj = _mm512_sub_ps(
                _mm512_setzero_ps(),
                _mm512_loadu_ps(w.as_ptr().add((r * k + wcol + jj) * LANES)),
            );
        }
    }
    for i in p..d {
        let vrow = vp.as_ptr().add(i * NB * LANES);
        let xrow = a.as_mut_ptr().add((i * k + col) * LANES);
        let mut x = [_mm512_setzero_ps(); JT];
        for (jj, xj) in x.iter_mut().enumerate() {
            *xj = _mm512_loadu_ps(xrow.add(jj * LANES));
        }
        for (r, wr) in wt.iter().enumerate() {
            let v = _mm512_loadu_ps(vrow.add(r * LANES));
            for jj in 0..JT {
                x[jj] = _mm512_fmadd_ps(v, wr[jj], x[jj]);
            }
        }
        for (jj, xj) in x.iter().enumerate() {
            _mm512_storeu_ps(xrow.add(jj * LANES), *xj);
        }
    }
}

/// Apply `H = I - tau v v^T` (panel reflector `r`, rows `row0..d`) to column `c` of `a`.
///
/// # Safety
/// AVX-512F available; shapes as in the callers (`a`: `d x k x 16`, `vp`: `d x NB x 16`).
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn apply_reflector(
    a: &mut [f32],
    vp: &[f32],
    tau: &[f32],
    k: usize,
    r: usize,
    row0: usize,
    d: usize,
    c: usize,
) {
    assert!(
        a.len() >= ((d - 1) * k + c + 1) * LANES
            && vp.len() >= d * NB * LANES
            && tau.len() >= LANES
    );
    let mut s0 = _mm512_setzero_ps();
    let mut s1 = _mm512_setzero_ps();
    let mut i = row0;
    while i + 1 < d {
        let v0 = _mm512_loadu_ps(vp.as_ptr().add((i * NB + r) * LANES));
        let v1 = _mm512_loadu_ps(vp.as_ptr().add(((i + 1) * NB + r) * LANES));
        s0 = _mm512_fmadd_ps(v0, _mm512_loadu_ps(a.as_ptr().add((i * k + c) * LANES)), s0);
        s1 = _mm512_fmadd_ps(v1, _mm512_loadu_ps(a.as_ptr().add(((i + 1) * k + c) * LANES)), s1);
        i += 2;
    }
    if i < d {
        let v0 = _mm512_loadu_ps(vp.as_ptr().add((i * NB + r) * LANES));
        s0 = _mm512_fmadd_ps(v0, _mm512_loadu_ps(a.as_ptr().add((i * k + c) * LANES)), s0);
    }
    let s = _mm512_sub_ps(
        _mm512_setzero_ps(),
        _mm512_mul_ps(_mm512_add_ps(s0, s1), _mm512_loadu_ps(tau.as_ptr())),
    );
    for i in row0..d {
        let v = _mm512_loadu_ps(vp.as_ptr().add((i * NB + r) * LANES));
        let x = a.as_mut_ptr().add((i * k + c) * LANES);
        _mm512_storeu_ps(x, _mm512_fmadd_ps(s, v, _mm512_loadu_ps(x)));
    }
}
