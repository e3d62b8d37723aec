//! `Q` kept in the factored form its Householder QR leaves (reflectors, each panel's
//! compact-WY `T`, the signs of `diag(R)`) and applied from the right, `J <- J Q`, by the tiled
//! kernels of `tiles_apply_q.rs`: the one-layer LSTM/GRU population path at `k = D`.

use aelle_support::simd::Level;

use super::{DEFAULT_PANEL_WIDTH, QrWorkspace, householder_factor};
use crate::scalar::Real;

/// [`householder_factor`] of the square `d x d` block `a` for [`apply_factored_q_right`]: on
/// return `a`'s strict lower triangle holds the reflectors and, inside each panel's own
/// columns, its upper triangle and diagonal hold `V`'s zeros and ones (so `R` is gone but for
/// `ln |R_ii|` in `log_diag`); `ws` holds the panels' `T` and the signs
/// ([`QrWorkspace::factored_q_parts`]).
pub(crate) fn factor_keeping_reflectors<T: Real>(
    a: &mut [T],
    log_diag: &mut [f64],
    ws: &mut QrWorkspace<T>,
) {
    householder_factor(a, log_diag, ws);
    let (d, nb) = (ws.d, ws.nb);
    assert_eq!(ws.k, d, "factored Q is for square blocks");
    let mut p = 0;
    while p < d {
        for r in 0..(d - p).min(nb) {
            let col = &mut a[(p + r) * d + p..(p + r) * d + p + r + 1];
            col[..r].fill(T::zero());
            col[r] = T::one();
        }
        p += nb;
    }
}

/// `j <- j Q` for square `d x d` blocks, `Q` in the factored form
/// [`factor_keeping_reflectors`] left in `a` (`tf`, `sign` from [`QrWorkspace::factored_q_parts`] of a workspace with
/// [`QrWorkspace::supports_factored_q`], whose [`QrWorkspace::simd_level`] is `level`); see
/// `tiles_apply_q::apply_q_right`. `zeros` is scratch of at least `d` zeros.
pub(crate) fn apply_factored_q_right<T: Real>(
    level: Level,
    d: usize,
    j: &mut [T],
    a: &[T],
    tf: &[T],
    sign: &[T],
    zeros: &[T],
) {
    assert!(j.len() >= d * d && a.len() >= d * d && sign.len() >= d && zeros.len() >= d);
    assert!(tf.len() >= d.div_ceil(DEFAULT_PANEL_WIDTH) * DEFAULT_PANEL_WIDTH.pow(2));
    #[cfg(target_arch = "x86_64")]
    {
        assert!(level != Level::Baseline, "factored Q needs the tiled path (AVX-512 or AVX2)");
        // SAFETY: `level` is a workspace's level, so this CPU has it (not the baseline,
        // asserted above); all extents asserted above.
        unsafe {
            super::tiles_apply_q::apply_q_right_dispatch(
                level,
                d,
                j.as_mut_ptr(),
                a.as_ptr(),
                tf.as_ptr(),
                sign.as_ptr(),
                zeros.as_ptr(),
            );
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (level, tf, zeros);
        unreachable!("factored Q is x86_64-only");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linalg::qr::form_q_in_place;

    /// `J Q` with `Q` kept factored equals `J` times the explicit `Q` of the same
    /// factorisation (formed by `form_q_in_place`, multiplied in f64).
    fn factored_q_matches_explicit<T: Real>(tol: f64) {
        let levels: Vec<Level> = aelle_support::simd::supported()
            .into_iter()
            .filter(|l| *l != Level::Baseline)
            .collect();
        if levels.is_empty() {
            aelle_support::simd::avx512_or_skip("factored_q_matches_explicit (no tiled level)");
        }
        for level in levels {
            factored_q_matches_explicit_at::<T>(tol, level);
        }
    }

    fn factored_q_matches_explicit_at<T: Real>(tol: f64, level: Level) {
        let mut u = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = || {
            u ^= u << 13;
            u ^= u >> 7;
            u ^= u << 17;
            (u >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        for d in [1usize, 5, 8, 13, 31, 32, 33, 64, 100, 128, 130] {
            let z: Vec<T> = (0..d * d).map(|_| T::from_f64(rnd())).collect();
            let jm: Vec<T> = (0..d * d).map(|_| T::from_f64(rnd())).collect();
            let mut ws = QrWorkspace::<T>::new(d, d).with_simd_level(level).expect("supported");
            assert!(ws.supports_factored_q());
            let mut a = z.clone();
            let mut logs = vec![0.0; d];
            factor_keeping_reflectors(&mut a, &mut logs, &mut ws);
            let (tf, sign) = ws.factored_q_parts();
            let (tf, sign) = (tf.to_vec(), sign.to_vec());
            let mut got = jm.clone();
            assert_eq!(ws.simd_level(), level);
            apply_factored_q_right(level, d, &mut got, &a, &tf, &sign, &vec![T::zero(); d]);
            let mut q = a.clone();
            form_q_in_place(&mut q, &mut ws);
            let mut worst = 0.0f64;
            for c in 0..d {
                for r in 0..d {
                    let want: f64 =
                        (0..d).map(|i| jm[r + i * d].as_f64() * q[i + c * d].as_f64()).sum();
                    worst = worst.max((got[r + c * d].as_f64() - want).abs());
                }
            }
            assert!(
                worst <= tol * d as f64,
                "{} d = {d} ({}): J Q off by {worst:e}",
                T::NAME,
                level.name()
            );
        }
    }

    #[test]
    fn factored_q_matches_explicit_f64() {
        factored_q_matches_explicit::<f64>(1e-14);
    }

    #[test]
    fn factored_q_matches_explicit_f32() {
        factored_q_matches_explicit::<f32>(1e-6);
    }
}
