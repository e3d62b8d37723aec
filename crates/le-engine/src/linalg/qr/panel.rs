//! One panel of the tiled (AVX-512 or AVX2 + FMA, panel width 8) path: its left-looking factorisation in
//! compact WY form and the explicit columns of `Q` it owns.

use super::householder::make_reflector;
use super::{QrWorkspace, aligned_row};
use crate::linalg::primitives::fmadd;
use crate::scalar::Real;

/// Factor the panel `p..pe` (at most `NB` columns) of the tiled path, left-looking in compact
/// WY form: column `c` receives the panel's earlier reflectors as
/// `col -= V T^T (V^T col)` (one tiled `V^T x` and one tiled `x -= V w`, instead of one dot and
/// one `axpy` per reflector), and `T` is built column by column as the reflectors appear
/// (`T[0..j, j] = -tau_j T[0..j, 0..j] V^T v_j`, LAPACK `dlarft`). Writes the reflectors to
/// slot `slot`, `tau`, signs and `ln |R_cc|`, and the panel's `T` to `t`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn panel_factor_tiled<T: Real, const FMA: bool>(
    a: &mut [T],
    log_diag: &mut [f64],
    ws: &mut QrWorkspace<T>,
    t: &mut [T],
    slot: usize,
    p: usize,
    pe: usize,
) {
    #[cfg(target_arch = "x86_64")]
    {
        use super::tiles_update::NB;
        let (d, nb) = (ws.d, ws.nb);
        debug_assert_eq!(nb, NB);
        let base = ws.slot_start(slot);
        // Aligned start row (the slot's rows above p are zero, see `tiled_update`).
        let p0 = aligned_row::<T>(p, d);
        let m = d - p0;
        // Reflector slots not yet written are zero (they enter the tiled products).
        ws.panel[base..base + nb * d].fill(T::zero());
        t[..nb * nb].fill(T::zero());
        // w = V^T col (first half: V^T of the newest reflector, for T), from one paired call
        // at the end of the previous column.
        let mut w = [T::zero(); 2 * NB];
        let mut w2 = [T::zero(); NB];
        for c in p..pe {
            let j = c - p;
            if j > 0 {
                // w2 = T^T (V^T col) on the first j reflectors (zero beyond).
                for i in 0..NB {
                    let mut acc = T::zero();
                    if i < j {
                        for l in 0..=i {
                            acc = fmadd::<T, FMA>(t[l + i * nb], w[NB + l], acc);
                        }
                    }
                    w2[i] = acc;
                }
                // SAFETY: the level checked by the caller; V = rows p0..d of the NB slots, x =
                // rows p0..d of column c, w2 has NB entries.
                unsafe {
                    super::tiles_update::c_minus_v_w_dispatch(
                        ws.simd,
                        m,
                        1,
                        ws.panel.as_ptr().add(base + p0),
                        d,
                        a.as_mut_ptr().add(c * d + p0),
                        d,
                        w2.as_ptr(),
                    );
                }
            }
            let col = &mut a[c * d..(c + 1) * d];
            let tau = make_reflector::<T, FMA>(&mut col[c..]);
            ws.tau[c] = tau;
            let beta = col[c];
            // |R_cc| now; the logarithms of the whole block are taken at the end (`ln_all`).
            log_diag[c] = beta.as_f64().abs();
            ws.sign[c] = if beta < T::zero() { -T::one() } else { T::one() };
            let slot_v = &mut ws.panel[base + j * d..base + (j + 1) * d];
            slot_v[c] = T::one();
            slot_v[c + 1..].copy_from_slice(&col[c + 1..]);
            // One paired pass: V^T v_j (for T's column j) and V^T col_{c+1} (for the next
            // column's update, V now including v_j).
            let next = if c + 1 < pe { c + 1 } else { c };
            // SAFETY: the level checked by the caller; V = rows p0..d of the NB slots, x0 = rows
            // p0..d of slot j, x1 = rows p0..d of column `next` of `a`, w has 2 NB entries.
            unsafe {
                super::tiles_update::vt_2cols_dispatch(
                    ws.simd,
                    m,
                    ws.panel.as_ptr().add(base + p0),
                    d,
                    ws.panel.as_ptr().add(base + j * d + p0),
                    a.as_ptr().add(next * d + p0),
                    w.as_mut_ptr(),
                );
            }
            for i in 0..j {
                let mut acc = T::zero();
                for l in i..j {
                    acc = fmadd::<T, FMA>(t[i + l * nb], w[l], acc);
                }
                t[i + j * nb] = -tau * acc;
            }
            t[j + j * nb] = tau;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (a, log_diag, ws, t, slot, p, pe);
        unreachable!("tiled updates are x86_64-only");
    }
}

/// The explicit columns `p..pe` of `Q` for the tiled path: with the columns right of the panel
/// already formed, `Q e_j = H_p ... H_{pe-1} e_j = e_j - Y V[j, :]^T` (`Y = V T` from
/// [`prepare_y`]), one tiled `C -= Y W` with `W = V[p..pe, :]^T` on identity columns instead
/// of LAPACK `dorg2r`'s reflector-by-reflector accumulation.
#[inline(always)]
pub(super) fn panel_form_q_tiled<T: Real>(
    a: &mut [T],
    ws: &mut QrWorkspace<T>,
    slot: usize,
    p: usize,
    pe: usize,
) {
    #[cfg(target_arch = "x86_64")]
    {
        use super::tiles_update::NB;
        let d = ws.d;
        let base = ws.slot_start(slot);
        let npc = pe - p;
        let p0 = aligned_row::<T>(p, d);
        for jj in 0..npc {
            for r in 0..NB {
                ws.w[r + NB * jj] =
                    if r < npc { ws.panel[base + r * d + p + jj] } else { T::zero() };
            }
            let col = &mut a[(p + jj) * d..(p + jj + 1) * d];
            col.fill(T::zero());
            col[p + jj] = T::one();
        }
        // SAFETY: the level checked by the caller; Y = rows p..d of the NB slots (unused ones
        // zeroed by prepare_y), C = rows p..d of columns p..pe, W = NB x npc in ws.w.
        unsafe {
            super::tiles_update::c_minus_v_w_dispatch(
                ws.simd,
                d - p0,
                npc,
                ws.panel_y.as_ptr().add(base + p0),
                d,
                a.as_mut_ptr().add(p * d + p0),
                d,
                ws.w.as_ptr(),
            );
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (a, ws, slot, p, pe);
        unreachable!("tiled updates are x86_64-only");
    }
}
