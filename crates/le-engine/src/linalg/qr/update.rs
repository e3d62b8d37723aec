//! The trailing update `C -= V op(T) V^T C` of one panel, in its three variants: the
//! register-tiled kernels (AVX-512 or AVX2 + FMA) (panel width 8, with `Y = V op(T)` precomputed), two calls of the
//! `gemm` crate with a scalar triangular product, and (narrow trailing blocks) reflector by
//! reflector; plus the compact-WY factor `T` (`dlarft`) they use.

use aelle_support::simd::Level;

use super::householder::apply_reflector;
use super::{MAX_PANEL_WIDTH, QrWorkspace, aligned_row};
use crate::linalg::primitives::{dot, fmadd};
use crate::scalar::Real;

/// Trailing updates narrower than this many columns are applied column by column (the GEMM
/// call overhead does not pay off below it).
const GEMM_MIN_COLS: usize = 8;

/// `dst (m x n, col-major, leading dim ld_dst) = alpha_dst * dst + beta * lhs * rhs` with
/// arbitrary strides for `lhs` (`m x kk`) and `rhs` (`kk x n`), one thread.
///
/// # Safety
/// Every element reached through the given shapes and strides must be in bounds of the
/// respective slice; the callers below derive the strides from the block layout.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn gemm_strided<T: Real>(
    m: usize,
    n: usize,
    kk: usize,
    dst: *mut T,
    ld_dst: usize,
    read_dst: bool,
    lhs: *const T,
    lhs_rs: usize,
    lhs_cs: usize,
    rhs: *const T,
    rhs_rs: usize,
    rhs_cs: usize,
    beta: T,
) {
    unsafe {
        gemm::gemm(
            m,
            n,
            kk,
            dst,
            ld_dst as isize,
            1,
            read_dst,
            lhs,
            lhs_cs as isize,
            lhs_rs as isize,
            rhs,
            rhs_cs as isize,
            rhs_rs as isize,
            T::one(),
            beta,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Build the upper-triangular `T` (`nb x nb`, col-major) of the panel whose reflectors sit in
/// panel slot `slot` (LAPACK `dlarft`, forward, columnwise): `T_jj = tau_j`,
/// `T[0..j, j] = -tau_j T[0..j, 0..j] V[:, 0..j]^T v_j`.
#[inline(always)]
pub(super) fn build_t<T: Real, const FMA: bool>(
    ws: &mut QrWorkspace<T>,
    slot: usize,
    p: usize,
    pe: usize,
    t: &mut [T],
) {
    let d = ws.d;
    let nb = ws.nb;
    let vb = ws.slot_start(slot);
    let panel = &ws.panel[vb..vb + nb * d];
    let mut tmp = [T::zero(); MAX_PANEL_WIDTH];
    for j in 0..pe - p {
        let tau = ws.tau[p + j];
        let vj = &panel[j * d + p + j..(j + 1) * d];
        for (i, ti) in tmp.iter_mut().enumerate().take(j) {
            let vi = &panel[i * d + p + j..(i + 1) * d];
            *ti = -tau * dot::<T, FMA>(vi, vj);
        }
        for i in 0..j {
            let mut s = T::zero();
            for l in i..j {
                s = fmadd::<T, FMA>(t[i + l * nb], tmp[l], s);
            }
            t[i + j * nb] = s;
        }
        t[j + j * nb] = tau;
        for i in j + 1..nb {
            t[i + j * nb] = T::zero();
        }
    }
}

/// Whether the register-tiled trailing updates (and the two-level blocking built on them)
/// serve this workspace: panel width 8 and a workspace level of AVX-512 or AVX2 + FMA.
#[inline(always)]
pub(super) fn tiled_updates<T: Real>(ws: &QrWorkspace<T>) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        ws.nb == super::tiles_update::NB && ws.simd != Level::Baseline
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = ws;
        false
    }
}

/// `Y = V op(T)` (rows `p..d`) of the panel in slot `slot` into the same slot of `panel_y`:
/// column `r` of `Y` is a combination of the panel's reflectors, so the update
/// `C -= V op(T) V^T C` becomes `C -= Y (V^T C)` with no scalar triangular product.
/// `op(T) = T^T` applies `H_{pe-1} ... H_p` (factorisation), `op(T) = T` applies
/// `H_p ... H_{pe-1}` (forming `Q`).
#[inline(always)]
pub(super) fn prepare_y<T: Real>(
    ws: &mut QrWorkspace<T>,
    t: &[T],
    slot: usize,
    p: usize,
    pe: usize,
    transpose_t: bool,
) {
    let (d, ldt) = (ws.d, ws.nb);
    let nb = pe - p;
    let base = ws.slot_start(slot);
    // From the aligned row p0: the slot's rows p0..p are zero, so are Y's.
    let p0 = aligned_row::<T>(p, d);
    #[cfg(target_arch = "x86_64")]
    {
        debug_assert_eq!(ldt, super::tiles_update::NB);
        assert!(base + ldt * d <= ws.panel_y.len() && base + nb * d <= ws.panel.len());
        assert!(t.len() >= ldt * ldt);
        // SAFETY: the level checked by the caller (`tiled_updates`); V = rows p0..d of the nb
        // reflectors of the slot, Y = rows p0..d of the NB columns of its Y slot, T = nb x nb
        // inside `t` (all bounds asserted above).
        unsafe {
            super::tiles_update::y_from_v_dispatch(
                ws.simd,
                d - p0,
                nb,
                ws.panel.as_ptr().add(base + p0),
                d,
                ws.panel_y.as_mut_ptr().add(base + p0),
                d,
                t.as_ptr(),
                ldt,
                transpose_t,
            );
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (ws, t, nb, base, p0, ldt, transpose_t);
        unreachable!("tiled updates are x86_64-only");
    }
}

/// `C -= Y (V^T C)` for `C = a[p.., c0..c1]` with the `NB`-wide panel in slot `slot` (its `Y`
/// from [`prepare_y`]), by the register-tiled kernels of `tiles_update.rs`.
#[inline(always)]
pub(super) fn tiled_update<T: Real>(
    a: &mut [T],
    ws: &mut QrWorkspace<T>,
    slot: usize,
    p: usize,
    c0: usize,
    c1: usize,
) {
    #[cfg(target_arch = "x86_64")]
    {
        let d = ws.d;
        // Start at the 64-byte-aligned row p0 <= p: rows p0..p of the slots are zero, so
        // they add nothing to W and leave rows p0..p of C unchanged.
        let p = aligned_row::<T>(p, d);
        let (m, n2) = (d - p, c1 - c0);
        if n2 == 0 {
            return;
        }
        let base = ws.slot_start(slot);
        assert!(c1 <= ws.k && ws.w.len() >= super::tiles_update::NB * n2);
        // SAFETY: the level is checked by the caller (`tiled_updates`); V and Y are rows p..d of
        // the NB slots of `slot` (element (i, r) at base + p + i + r d), C is rows p..d of
        // columns c0..c1 of `a` (element (i, c) at (c0 + c) d + p + i), W is NB x n2 inside
        // ws.w (checked above).
        unsafe {
            super::tiles_update::vt_c_dispatch(
                ws.simd,
                m,
                n2,
                ws.panel.as_ptr().add(base + p),
                d,
                a.as_ptr().add(c0 * d + p),
                d,
                ws.w.as_mut_ptr(),
            );
            super::tiles_update::c_minus_v_w_dispatch(
                ws.simd,
                m,
                n2,
                ws.panel_y.as_ptr().add(base + p),
                d,
                a.as_mut_ptr().add(c0 * d + p),
                d,
                ws.w.as_ptr(),
            );
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (a, ws, slot, p, c0, c1);
        unreachable!("tiled updates are x86_64-only");
    }
}

/// `C -= V op(T) V^T C` for the trailing block `C = a[p.., c0..k]` with the panel `V` in slot 0
/// and its `T` in `t`, by two calls of the `gemm` crate and a scalar triangular product
/// (panel widths other than the tiled kernels' `NB`, and the baseline level).
#[inline(always)]
fn gemm_update<T: Real, const FMA: bool>(
    a: &mut [T],
    ws: &mut QrWorkspace<T>,
    t: &[T],
    p: usize,
    pe: usize,
    c0: usize,
    transpose_t: bool,
) {
    let (d, k) = (ws.d, ws.k);
    let nb = pe - p;
    let m = d - p;
    let n2 = k - c0;
    let ldt = ws.nb;
    // W = V^T C  (nb x n2, leading dim nb)
    // SAFETY: V is rows p..d of the panel slots (element (i, j) at p + i + j d, j < nb <=
    // ws.nb), C is rows p..d of columns c0..k of `a` (element (i, c) at (c0 + c) d + p + i),
    // W is nb x n2 inside ws.w (len ws.nb * k).
    unsafe {
        gemm_strided(
            nb,
            n2,
            m,
            ws.w.as_mut_ptr(),
            nb,
            false,
            ws.panel.as_ptr().add(p),
            d,
            1,
            a.as_ptr().add(c0 * d + p),
            1,
            d,
            T::one(),
        );
    };
    // W = op(T) W, in place, column by column
    for c in 0..n2 {
        let w = &mut ws.w[c * nb..(c + 1) * nb];
        if transpose_t {
            // w'_j = sum_{i <= j} T[i, j] w_i, from the bottom up
            for j in (0..nb).rev() {
                let mut s = T::zero();
                for i in 0..=j {
                    s = fmadd::<T, FMA>(t[i + j * ldt], w[i], s);
                }
                w[j] = s;
            }
        } else {
            // w'_i = sum_{j >= i} T[i, j] w_j, from the top down
            for i in 0..nb {
                let mut s = T::zero();
                for j in i..nb {
                    s = fmadd::<T, FMA>(t[i + j * ldt], w[j], s);
                }
                w[i] = s;
            }
        }
    }
    // C -= V W
    // SAFETY: as above.
    unsafe {
        gemm_strided(
            m,
            n2,
            nb,
            a.as_mut_ptr().add(c0 * d + p),
            d,
            true,
            ws.panel.as_ptr().add(p),
            1,
            d,
            ws.w.as_ptr(),
            1,
            nb,
            -T::one(),
        );
    }
}

/// Columns per chunk of the outer trailing update (a `D x CHUNK` slab stays in L1).
pub(super) const CHUNK_COLS: usize = 16;

/// Apply panel `slot` of the current outer block (reflectors `p..pe`) to the columns `c0..c1`
/// of `a`: tiled kernels, or (one-level path) the `gemm` update or, for a narrow trailing
/// block, each reflector in turn (`reverse`: `H_{pe-1}` first, for forming `Q`).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn update_columns<T: Real, const FMA: bool>(
    a: &mut [T],
    ws: &mut QrWorkspace<T>,
    t: &[T],
    slot: usize,
    (p, pe): (usize, usize),
    (c0, c1): (usize, usize),
    tiled: bool,
    factor: bool,
) {
    if c1 <= c0 {
        return;
    }
    let d = ws.d;
    if tiled {
        tiled_update(a, ws, slot, p, c0, c1);
    } else if c1 == ws.k && c1 - c0 >= GEMM_MIN_COLS {
        gemm_update::<T, FMA>(a, ws, t, p, pe, c0, factor);
    } else {
        // Narrow trailing block: each column receives the panel while it is in cache.
        let base = ws.slot_start(slot);
        for j in c0..c1 {
            let col = &mut a[j * d..(j + 1) * d];
            let mut apply = |r: usize| {
                let v = &ws.panel[base + (r - p) * d + r..base + (r - p + 1) * d];
                apply_reflector::<T, FMA>(v, ws.tau[r], &mut col[r..]);
            };
            if factor {
                (p..pe).for_each(&mut apply);
            } else {
                (p..pe).rev().for_each(&mut apply);
            }
        }
    }
}
