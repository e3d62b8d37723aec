//! Small dense helpers: Jacobian-times-block products and `ln |det J|` by LU.
//!
//! Conventions: a full Jacobian `J` is **row-major** `D x D` with `J[i * D + j] = d out_i /
//! d in_j` (rows are outputs, as in the `--jacobians` file format); tangent blocks `Q`, `Z` are
//! **column-major** `D x k` (column `c` is `Q[c * D .. (c + 1) * D]`).

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

/// A zero-initialised buffer of `len` scalars whose first element sits on a 64-byte boundary.
/// Blocks handed to [`crate::qr::orthonormalize_in_place`] in such a buffer (with `D` a
/// multiple of 16 for f32, 8 for f64) let the AVX-512 kernels' full-width loads stay inside
/// cache lines (`orchestrator bench` measures the QR on such a block next to the same block one
/// element off). Dereferences to a slice; a clone is aligned again.
#[derive(Debug)]
pub struct AlignedBuf<T> {
    buf: Vec<T>,
    off: usize,
    len: usize,
}

impl<T: Copy + Default> AlignedBuf<T> {
    /// `len` zeros, the first on a 64-byte boundary (when the allocator allows it).
    pub fn zeroed(len: usize) -> Self {
        let slack = 64 / std::mem::size_of::<T>().max(1);
        let buf = vec![T::default(); len + slack];
        let off = buf.as_ptr().align_offset(64);
        let off = if off <= slack { off } else { 0 };
        Self { buf, off, len }
    }
}

impl<T: Copy + Default> Clone for AlignedBuf<T> {
    fn clone(&self) -> Self {
        let mut c = Self::zeroed(self.len);
        c.copy_from_slice(self);
        c
    }
}

impl<T> std::ops::Deref for AlignedBuf<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.buf[self.off..self.off + self.len]
    }
}

impl<T> std::ops::DerefMut for AlignedBuf<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.buf[self.off..self.off + self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_buffers_and_their_clones_start_on_a_cache_line() {
        for len in [1usize, 7, 64, 1000] {
            let mut a = AlignedBuf::<f32>::zeroed(len);
            assert_eq!(a.len(), len);
            assert!(a.iter().all(|&x| x == 0.0));
            assert_eq!(a.as_ptr() as usize % 64, 0, "len {len}");
            a[len - 1] = 3.0;
            let b = a.clone();
            assert_eq!(b.as_ptr() as usize % 64, 0, "clone, len {len}");
            assert_eq!(&b[..], &a[..]);
            let c = AlignedBuf::<f64>::zeroed(len);
            assert_eq!(c.as_ptr() as usize % 64, 0, "f64, len {len}");
        }
    }

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
