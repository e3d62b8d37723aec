//! Exact centred PCA by SVD.
//!
//! For training data `X` (`[n, c]`) with column means `mu`, the centred matrix
//! `X_c = X - 1 mu^T` has the thin SVD `X_c = U S V^T`. Component `k` is column `k` of `V`,
//! its variance is `s_k^2 / (n - 1)`, and a point `x` projects to `(x - mu)^T V`.
//! Signs are fixed so that the largest-magnitude loading of each component is positive
//! (SVD alone leaves them arbitrary).

use serde::{Deserialize, Serialize};

use crate::error::{AelleError, Result};
use crate::matrix::{Matrix, singular_values_and_right_vectors};

/// A fitted PCA.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pca {
    /// Column means `mu` of the training data, length `c`.
    pub mean: Vec<f64>,
    /// Principal axes as rows: `[c, c]`, row `k` = component `k` (unit norm).
    pub components: Matrix,
    /// Variance along each component, `s_k^2 / (n - 1)`, descending.
    pub explained_variance: Vec<f64>,
}

impl Pca {
    /// Fits on the rows of `x` (`[n, c]`, `n >= 2`, finite).
    pub fn fit(x: &Matrix) -> Result<Self> {
        let (n, c) = (x.rows(), x.cols());
        if n < 2 {
            return Err(AelleError::TooFew { what: "rows to fit PCA", expected: 2, got: n });
        }
        if let Some((index, value)) = x.first_non_finite() {
            return Err(AelleError::NonFinite { context: "PCA input", index, value });
        }
        let mut mean = vec![0.0; c];
        for i in 0..n {
            for (m, v) in mean.iter_mut().zip(x.row(i)) {
                *m += v;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        let mut centred = x.clone();
        for i in 0..n {
            for (v, m) in centred.row_mut(i).iter_mut().zip(&mean) {
                *v -= m;
            }
        }
        let (singular, v) = singular_values_and_right_vectors(&centred);
        let mut components = Matrix::zeros(c, c);
        for k in 0..c {
            let axis: Vec<f64> = (0..c).map(|i| v.get(i, k)).collect();
            let pivot = axis
                .iter()
                .copied()
                .enumerate()
                .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()).then(b.0.cmp(&a.0)))
                .map_or(1.0, |(_, value)| value);
            let sign = if pivot < 0.0 { -1.0 } else { 1.0 };
            for (dst, a) in components.row_mut(k).iter_mut().zip(&axis) {
                *dst = sign * a;
            }
        }
        let explained_variance = singular.iter().map(|s| s * s / (n - 1) as f64).collect();
        Ok(Self { mean, components, explained_variance })
    }

    /// Fraction of the total variance on each component.
    pub fn explained_variance_ratio(&self) -> Vec<f64> {
        let total: f64 = self.explained_variance.iter().sum();
        self.explained_variance.iter().map(|v| if total > 0.0 { v / total } else { 0.0 }).collect()
    }

    /// Projects the rows of `x` (`[m, c]`) onto the first `k` components: `[m, k]`.
    pub fn transform(&self, x: &Matrix, k: usize) -> Result<Matrix> {
        let c = self.mean.len();
        if x.cols() != c {
            return Err(AelleError::ShapeMismatch {
                context: "PCA transform input columns",
                expected: c,
                got: x.cols(),
            });
        }
        if k > c {
            return Err(AelleError::InvalidConfig {
                field: "PCA component count",
                expected: "at most the input dimension",
                got: k.to_string(),
            });
        }
        let mut out = Matrix::zeros(x.rows(), k);
        for i in 0..x.rows() {
            let row = x.row(i);
            for j in 0..k {
                let axis = self.components.row(j);
                out.row_mut(i)[j] =
                    row.iter().zip(&self.mean).zip(axis).map(|((v, m), a)| (v - m) * a).sum();
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_on_a_line_have_one_component() {
        // y = 2x + 1 for x = 0..5: the axis is (1, 2)/sqrt(5), all variance on PC1.
        let rows: Vec<Vec<f64>> = (0..5).map(|i| vec![i as f64, 2.0 * i as f64 + 1.0]).collect();
        let x = Matrix::from_rows(&rows).unwrap();
        let pca = Pca::fit(&x).unwrap();
        let s5 = 5f64.sqrt();
        assert!((pca.components.get(0, 0) - 1.0 / s5).abs() < 1e-12);
        assert!((pca.components.get(0, 1) - 2.0 / s5).abs() < 1e-12);
        // var of t*(1,2) along the axis: var(x) * 5 = 2.5 * 5 = 12.5 (sample variance of 0..4 is 2.5).
        assert!((pca.explained_variance[0] - 12.5).abs() < 1e-10);
        assert!(pca.explained_variance[1].abs() < 1e-12);
        // Projections are sqrt(5) * (x - 2).
        let z = pca.transform(&x, 1).unwrap();
        for i in 0..5 {
            assert!((z.get(i, 0) - s5 * (i as f64 - 2.0)).abs() < 1e-12);
        }
    }

    #[test]
    fn known_covariance_gives_known_axes() {
        // Points (+-2, 0), (0, +-1) around (10, -3): covariance diag(8/3, 2/3).
        let rows = vec![vec![12.0, -3.0], vec![8.0, -3.0], vec![10.0, -2.0], vec![10.0, -4.0]];
        let pca = Pca::fit(&Matrix::from_rows(&rows).unwrap()).unwrap();
        assert_eq!(pca.mean, vec![10.0, -3.0]);
        assert!((pca.explained_variance[0] - 8.0 / 3.0).abs() < 1e-12);
        assert!((pca.explained_variance[1] - 2.0 / 3.0).abs() < 1e-12);
        assert!((pca.components.get(0, 0) - 1.0).abs() < 1e-12);
        assert!((pca.components.get(1, 1) - 1.0).abs() < 1e-12);
        let ratio = pca.explained_variance_ratio();
        assert!((ratio[0] - 0.8).abs() < 1e-12);
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(Pca::fit(&Matrix::zeros(1, 3)).is_err());
        let nan = Matrix::from_rows(&[vec![0.0], vec![f64::NAN]]).unwrap();
        assert!(matches!(Pca::fit(&nan), Err(AelleError::NonFinite { .. })));
        let pca = Pca::fit(&Matrix::zeros(3, 2)).unwrap();
        assert!(pca.transform(&Matrix::zeros(1, 3), 1).is_err());
        assert!(pca.transform(&Matrix::zeros(1, 2), 3).is_err());
    }
}
