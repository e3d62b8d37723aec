//! A plain row-major `f64` matrix, the crate's currency for features, latents and coordinates,
//! plus the two small dense solvers the crate needs: Cholesky solves for the regressions and a
//! one-sided Jacobi SVD for PCA.

use serde::{Deserialize, Serialize};

use crate::error::{AelleError, Result};

/// Row-major dense matrix of shape `[rows, cols]`: element `(i, j)` is `data[i * cols + j]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Matrix {
    rows: usize,
    cols: usize,
    data: Vec<f64>,
}

impl Matrix {
    /// Wraps `data` (length `rows * cols`, row-major) as a matrix.
    pub fn new(rows: usize, cols: usize, data: Vec<f64>) -> Result<Self> {
        let expected = rows.checked_mul(cols).ok_or(AelleError::InvalidConfig {
            field: "matrix shape",
            expected: "rows * cols to fit in usize",
            got: format!("{rows} x {cols}"),
        })?;
        if data.len() != expected {
            return Err(AelleError::ShapeMismatch {
                context: "Matrix::new data length (rows * cols)",
                expected,
                got: data.len(),
            });
        }
        Ok(Self { rows, cols, data })
    }

    /// A `[rows, cols]` matrix of zeros.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Self { rows, cols, data: vec![0.0; rows * cols] }
    }

    /// Builds a matrix from equally long rows. An empty list gives a `[0, 0]` matrix.
    pub fn from_rows(rows: &[Vec<f64>]) -> Result<Self> {
        let cols = rows.first().map_or(0, Vec::len);
        let mut data = Vec::with_capacity(rows.len() * cols);
        for row in rows {
            if row.len() != cols {
                return Err(AelleError::ShapeMismatch {
                    context: "Matrix::from_rows row length",
                    expected: cols,
                    got: row.len(),
                });
            }
            data.extend_from_slice(row);
        }
        Ok(Self { rows: rows.len(), cols, data })
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The row-major storage.
    pub fn data(&self) -> &[f64] {
        &self.data
    }

    /// Row `i` as a slice of length `cols`. Panics if `i >= rows` (internal indexing only).
    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// Mutable row `i`.
    pub fn row_mut(&mut self, i: usize) -> &mut [f64] {
        &mut self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// Element `(i, j)`. Panics if out of range (internal indexing only).
    pub fn get(&self, i: usize, j: usize) -> f64 {
        self.data[i * self.cols + j]
    }

    /// Column `j` copied out.
    pub fn column(&self, j: usize) -> Vec<f64> {
        (0..self.rows).map(|i| self.get(i, j)).collect()
    }

    /// The rows at `indices`, in that order, as a new matrix.
    pub fn select_rows(&self, indices: &[usize]) -> Self {
        let mut data = Vec::with_capacity(indices.len() * self.cols);
        for &i in indices {
            data.extend_from_slice(self.row(i));
        }
        Self { rows: indices.len(), cols: self.cols, data }
    }

    /// Rows as owned vectors.
    pub fn to_rows(&self) -> Vec<Vec<f64>> {
        (0..self.rows).map(|i| self.row(i).to_vec()).collect()
    }

    /// Index of the first non-finite element, with its value.
    pub fn first_non_finite(&self) -> Option<(usize, f64)> {
        self.data.iter().copied().enumerate().find(|(_, v)| !v.is_finite())
    }
}

/// Solves `A x = b` for symmetric positive-definite `A` (`[n, n]`, row-major) by Cholesky
/// factorisation `A = L L^T`. Cost `n^3 / 3` flops.
pub fn solve_symmetric_positive_definite(
    a: &[f64],
    b: &[f64],
    context: &'static str,
) -> Result<Vec<f64>> {
    let n = b.len();
    if a.len() != n * n {
        return Err(AelleError::ShapeMismatch {
            context: "Cholesky solve matrix size (n * n)",
            expected: n * n,
            got: a.len(),
        });
    }
    let mut l = vec![0.0; n * n];
    for j in 0..n {
        let mut diag = a[j * n + j];
        for k in 0..j {
            diag -= l[j * n + k] * l[j * n + k];
        }
        if diag.is_nan() || diag <= 0.0 || diag.is_infinite() {
            return Err(AelleError::NotPositiveDefinite { context, pivot: j, value: diag });
        }
        let d = diag.sqrt();
        l[j * n + j] = d;
        for i in (j + 1)..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= l[i * n + k] * l[j * n + k];
            }
            l[i * n + j] = s / d;
        }
    }
    // Forward substitution L y = b, then back substitution L^T x = y.
    let mut y = vec![0.0; n];
    for i in 0..n {
        let mut s = b[i];
        for k in 0..i {
            s -= l[i * n + k] * y[k];
        }
        y[i] = s / l[i * n + i];
    }
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        let mut s = y[i];
        for k in (i + 1)..n {
            s -= l[k * n + i] * x[k];
        }
        x[i] = s / l[i * n + i];
    }
    Ok(x)
}

/// Thin SVD of an `[n, c]` matrix by one-sided (Hestenes) Jacobi rotations: `X = U S V^T`.
///
/// Returns the singular values in descending order and `V` as a `[c, c]` matrix whose column
/// `k` is the right singular vector of `s[k]`. Rotations orthogonalise pairs of columns of `X`
/// until every pair satisfies `|x_p . x_q| <= eps sqrt(|x_p|^2 |x_q|^2)`; the column norms are
/// then the singular values. Accurate to working precision (no squaring of the condition
/// number, unlike an eigen-decomposition of `X^T X`). Cost about `sweeps * c^2 * n` flops.
pub fn singular_values_and_right_vectors(x: &Matrix) -> (Vec<f64>, Matrix) {
    let (n, c) = (x.rows(), x.cols());
    // Column-major working copy so that each column is contiguous.
    let mut cols: Vec<Vec<f64>> = (0..c).map(|j| x.column(j)).collect();
    let mut v: Vec<Vec<f64>> = (0..c)
        .map(|j| {
            let mut e = vec![0.0; c];
            e[j] = 1.0;
            e
        })
        .collect();
    let eps = 1e-15;
    for _sweep in 0..60 {
        let mut rotated = false;
        for p in 0..c {
            for q in (p + 1)..c {
                let (alpha, beta, gamma) = {
                    let (cp, cq) = (&cols[p], &cols[q]);
                    let mut a = 0.0;
                    let mut b = 0.0;
                    let mut g = 0.0;
                    for i in 0..n {
                        a += cp[i] * cp[i];
                        b += cq[i] * cq[i];
                        g += cp[i] * cq[i];
                    }
                    (a, b, g)
                };
                if gamma == 0.0 || gamma.abs() <= eps * (alpha * beta).sqrt() {
                    continue;
                }
                rotated = true;
                let zeta = (beta - alpha) / (2.0 * gamma);
                let t = zeta.signum() / (zeta.abs() + (1.0 + zeta * zeta).sqrt());
                let cs = 1.0 / (1.0 + t * t).sqrt();
                let sn = cs * t;
                rotate_pair(&mut cols, p, q, cs, sn);
                rotate_pair(&mut v, p, q, cs, sn);
            }
        }
        if !rotated {
            break;
        }
    }
    let norms: Vec<f64> =
        cols.iter().map(|col| col.iter().map(|a| a * a).sum::<f64>().sqrt()).collect();
    let mut order: Vec<usize> = (0..c).collect();
    order.sort_by(|&a, &b| norms[b].total_cmp(&norms[a]).then(a.cmp(&b)));
    let singular: Vec<f64> = order.iter().map(|&k| norms[k]).collect();
    let mut vm = Matrix::zeros(c, c);
    for (new_k, &old_k) in order.iter().enumerate() {
        for (i, value) in v[old_k].iter().enumerate() {
            vm.data[i * c + new_k] = *value;
        }
    }
    (singular, vm)
}

/// Applies the rotation `[x_p, x_q] <- [c x_p - s x_q, s x_p + c x_q]` to two columns.
fn rotate_pair(cols: &mut [Vec<f64>], p: usize, q: usize, cs: f64, sn: f64) {
    let (left, right) = cols.split_at_mut(q);
    let (cp, cq) = (&mut left[p], &mut right[0]);
    for (a, b) in cp.iter_mut().zip(cq.iter_mut()) {
        let (xa, xb) = (*a, *b);
        *a = cs * xa - sn * xb;
        *b = sn * xa + cs * xb;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cholesky_solves_a_known_system() {
        // A = [[4, 2], [2, 3]], x = [1, -2] -> b = [0, -4].
        let x =
            solve_symmetric_positive_definite(&[4.0, 2.0, 2.0, 3.0], &[0.0, -4.0], "test").unwrap();
        assert!((x[0] - 1.0).abs() < 1e-12 && (x[1] + 2.0).abs() < 1e-12, "{x:?}");
    }

    #[test]
    fn cholesky_rejects_indefinite_matrix() {
        let err = solve_symmetric_positive_definite(&[1.0, 2.0, 2.0, 1.0], &[1.0, 1.0], "test");
        assert!(matches!(err, Err(AelleError::NotPositiveDefinite { pivot: 1, .. })));
    }

    #[test]
    fn jacobi_svd_reconstructs_awkward_sizes() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for &(n, c) in &[(1usize, 1usize), (2, 2), (5, 3), (63, 7), (130, 17)] {
            let data: Vec<f64> = (0..n * c).map(|_| rng.random_range(-1.0..1.0)).collect();
            let x = Matrix::new(n, c, data).unwrap();
            let (s, v) = singular_values_and_right_vectors(&x);
            // V orthogonal.
            for a in 0..c {
                for b in 0..c {
                    let dot: f64 = (0..c).map(|i| v.get(i, a) * v.get(i, b)).sum();
                    let want = if a == b { 1.0 } else { 0.0 };
                    assert!((dot - want).abs() < 1e-10, "V^T V at ({a},{b}) = {dot}");
                }
            }
            // |X v_k| = s_k and descending.
            for k in 0..c {
                let norm: f64 = (0..n)
                    .map(|i| (0..c).map(|j| x.get(i, j) * v.get(j, k)).sum::<f64>().powi(2))
                    .sum::<f64>()
                    .sqrt();
                assert!((norm - s[k]).abs() < 1e-10 * (1.0 + s[0]), "{norm} vs {}", s[k]);
                if k > 0 {
                    assert!(s[k] <= s[k - 1] + 1e-12);
                }
            }
        }
    }
}
