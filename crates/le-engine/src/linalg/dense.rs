//! Small dense helpers: Jacobian-times-block products and `ln |det J|` by LU (storage
//! conventions in the [`crate::linalg`] docs).

use crate::scalar::Real;

/// `z = J q` (or `z = J^T q` when `transpose`), `J` row-major `d x d`, `q`, `z` column-major
/// `d x k`. Uses the `gemm` crate above a small size, a plain loop below it.
pub fn jacobian_times<T: Real>(
    jac: &[T],
    d: usize,
    q: &[T],
    k: usize,
    z: &mut [T],
    transpose: bool,
) {
    assert_eq!(jac.len(), d * d, "Jacobian must be D x D = {d} x {d}");
    assert!(q.len() >= d * k && z.len() >= d * k, "blocks must be D x k = {d} x {k}");
    // (row stride, column stride) of J or J^T seen as the left operand.
    let (rs, cs) = if transpose { (1, d) } else { (d, 1) };
    if d * d * k <= 4096 {
        for c in 0..k {
            let qc = &q[c * d..(c + 1) * d];
            for i in 0..d {
                let mut s = T::zero();
                for (j, &qj) in qc.iter().enumerate() {
                    s += jac[i * rs + j * cs] * qj;
                }
                z[c * d + i] = s;
            }
        }
        return;
    }
    // SAFETY: the asserts above guarantee every index the strides reach is in bounds:
    // J is d x d with strides (rs, cs) in {(d, 1), (1, d)}; q and z are d x k column-major.
    unsafe {
        gemm::gemm(
            d,
            k,
            d,
            z.as_mut_ptr(),
            d as isize,
            1,
            false,
            jac.as_ptr(),
            cs as isize,
            rs as isize,
            q.as_ptr(),
            d as isize,
            1,
            T::zero(),
            T::one(),
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// `ln |det J|` of a row-major `d x d` matrix by LU with partial pivoting, in `f64`.
/// `lu` is scratch of length `d * d`. Returns `-inf` for a singular matrix, NaN for NaN input.
pub fn log_abs_det<T: Real>(jac: &[T], d: usize, lu: &mut [f64]) -> f64 {
    assert_eq!(jac.len(), d * d);
    assert!(lu.len() >= d * d);
    let a = &mut lu[..d * d];
    for (dst, &src) in a.iter_mut().zip(jac) {
        *dst = src.as_f64();
    }
    let mut log_det = 0.0;
    for c in 0..d {
        // pivot: largest magnitude in column c at or below the diagonal
        let mut p = c;
        let mut best = a[c * d + c].abs();
        for r in c + 1..d {
            let v = a[r * d + c].abs();
            if v > best || v.is_nan() {
                best = v;
                p = r;
            }
        }
        if best.is_nan() {
            return f64::NAN;
        }
        if best == 0.0 {
            return f64::NEG_INFINITY;
        }
        if p != c {
            for j in 0..d {
                a.swap(c * d + j, p * d + j);
            }
        }
        let piv = a[c * d + c];
        log_det += piv.abs().ln();
        for r in c + 1..d {
            let f = a[r * d + c] / piv;
            if f != 0.0 {
                for j in c + 1..d {
                    a[r * d + j] -= f * a[c * d + j];
                }
            }
        }
    }
    log_det
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_match_naive_both_paths() {
        for &(d, k) in &[(3usize, 2usize), (40, 7)] {
            let jac: Vec<f64> = (0..d * d).map(|i| ((i * 7919) % 97) as f64 / 97.0 - 0.5).collect();
            let q: Vec<f64> = (0..d * k).map(|i| ((i * 104729) % 89) as f64 / 89.0 - 0.5).collect();
            for transpose in [false, true] {
                let mut z = vec![0.0; d * k];
                jacobian_times(&jac, d, &q, k, &mut z, transpose);
                for c in 0..k {
                    for i in 0..d {
                        let want: f64 = (0..d)
                            .map(|j| if transpose { jac[j * d + i] } else { jac[i * d + j] } * q[c * d + j])
                            .sum();
                        assert!((z[c * d + i] - want).abs() < 1e-12, "d={d} t={transpose}");
                    }
                }
            }
        }
    }

    #[test]
    fn log_det_of_known_matrices() {
        let mut lu = vec![0.0; 9];
        // det [[0, 2], [3, 1]] = -6 (needs a pivot swap)
        let v = log_abs_det(&[0.0, 2.0, 3.0, 1.0], 2, &mut lu);
        assert!((v - 6f64.ln()).abs() < 1e-14);
        assert_eq!(log_abs_det(&[1.0, 2.0, 2.0, 4.0], 2, &mut lu), f64::NEG_INFINITY);
        assert!(log_abs_det(&[f64::NAN, 0.0, 0.0, 1.0], 2, &mut lu).is_nan());
    }
}
