//! Exact t-SNE (van der Maaten & Hinton 2008) with an `O(n^2)` gradient, for up to a few
//! thousand points.
//!
//! Input affinities: for each point `i`, a Gaussian `p_{j|i} ~ exp(-beta_i |x_i - x_j|^2)`
//! whose precision `beta_i` is found by bisection so that the entropy `H(P_i) = ln(perplexity)`
//! (nats); then `p_ij = (p_{j|i} + p_{i|j}) / (2n)`. Output affinities: Student-t
//! `q_ij = (1 + |y_i - y_j|^2)^-1 / Z`. Gradient of `KL(P || Q)`:
//! `dC/dy_i = 4 sum_j (e p_ij - q_ij) (1 + |y_i - y_j|^2)^-1 (y_i - y_j)`, with early
//! exaggeration `e` for the first iterations, momentum 0.5 then 0.8, and per-coordinate
//! adaptive gains. Initial `y ~ N(0, 1e-4 I)` from a seeded ChaCha8 generator; rows are
//! processed in parallel but every sum is reduced in a fixed order, so the result is
//! bit-identical for a given seed regardless of thread count.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{AelleError, Result};
use crate::matrix::Matrix;

/// t-SNE settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TsneConfig {
    /// Perplexity, the effective number of neighbours. Default 10 (the published choice).
    /// Must be below `(n - 1) / 3`; the pipeline lowers it for small sets and reports that.
    pub perplexity: f64,
    /// Gradient iterations. Default 1000. Time is `iterations * n^2` pair evaluations.
    pub iterations: usize,
    /// Step size; `None` (default) means `max(n / (4 e), 50)` (the "auto" rule of
    /// Belkina et al. 2019, as in scikit-learn); the original paper uses 200.
    pub learning_rate: Option<f64>,
    /// Early exaggeration factor `e`: multiplies `p_ij` early on so clusters form first.
    /// Default 12 (scikit-learn, openTSNE); the original paper uses 4.
    pub early_exaggeration: f64,
    /// Iterations with exaggeration and momentum 0.5 (momentum 0.8 afterwards). Default 250.
    pub exaggeration_iterations: usize,
}

impl Default for TsneConfig {
    fn default() -> Self {
        Self {
            perplexity: 10.0,
            iterations: 1000,
            learning_rate: None,
            early_exaggeration: 12.0,
            exaggeration_iterations: 250,
        }
    }
}

/// Largest `iterations` accepted: 100,000 (100x the default; each iteration costs `n^2` pair
/// evaluations, so this bounds the time of a mistyped value).
pub const MAX_TSNE_ITERATIONS: usize = 100_000;

impl TsneConfig {
    /// Checks the ranges documented on each field (the perplexity's upper bound depends on the
    /// number of points and is checked by [`tsne_2d`]).
    pub fn validate(&self) -> Result<()> {
        let bad =
            |field, expected, got: String| Err(AelleError::InvalidConfig { field, expected, got });
        if !(self.perplexity.is_finite() && self.perplexity >= 1.0) {
            return bad(
                "embedding.tsne.perplexity",
                "a finite perplexity >= 1",
                self.perplexity.to_string(),
            );
        }
        if !(1..=MAX_TSNE_ITERATIONS).contains(&self.iterations) {
            return bad("embedding.tsne.iterations", "1 ..= 100000", self.iterations.to_string());
        }
        if self.exaggeration_iterations > self.iterations {
            return bad(
                "embedding.tsne.exaggeration_iterations",
                "0 ..= embedding.tsne.iterations",
                self.exaggeration_iterations.to_string(),
            );
        }
        if !(self.early_exaggeration.is_finite()
            && (1.0..=1000.0).contains(&self.early_exaggeration))
        {
            return bad(
                "embedding.tsne.early_exaggeration",
                "a finite factor in [1, 1000]",
                self.early_exaggeration.to_string(),
            );
        }
        if let Some(lr) = self.learning_rate
            && !(lr.is_finite() && lr > 0.0 && lr <= 1e6)
        {
            return bad(
                "embedding.tsne.learning_rate",
                "a finite step size in (0, 1e6], or absent (auto)",
                lr.to_string(),
            );
        }
        Ok(())
    }
}

/// Embeds the rows of `x` (`[n, c]`, finite, `n >= 4`) in 2-D; returns `[n, 2]`.
pub fn tsne_2d(x: &Matrix, config: &TsneConfig, seed: u64) -> Result<Matrix> {
    let n = x.rows();
    if n < 4 {
        return Err(AelleError::TooFew { what: "points for t-SNE", expected: 4, got: n });
    }
    if let Some((index, value)) = x.first_non_finite() {
        return Err(AelleError::NonFinite { context: "t-SNE input", index, value });
    }
    config.validate()?;
    let max_perplexity = (n - 1) as f64 / 3.0;
    if !(config.perplexity >= 1.0 && config.perplexity <= max_perplexity) {
        return Err(AelleError::InvalidConfig {
            field: "tsne.perplexity",
            expected: "a perplexity in [1, (n - 1) / 3]",
            got: format!("{} with n = {n}", config.perplexity),
        });
    }
    let learning_rate = config
        .learning_rate
        .unwrap_or_else(|| (n as f64 / (4.0 * config.early_exaggeration.max(1.0))).max(50.0));
    if !(learning_rate > 0.0 && learning_rate.is_finite()) {
        return Err(AelleError::InvalidConfig {
            field: "tsne.learning_rate",
            expected: "a positive finite step size",
            got: learning_rate.to_string(),
        });
    }
    let p = joint_probabilities(x, config.perplexity);

    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let normal = Normal::new(0.0, 1e-2).map_err(|_| AelleError::InvalidConfig {
        field: "tsne init",
        expected: "a valid normal distribution",
        got: "std 1e-2".into(),
    })?;
    let mut y: Vec<f64> = (0..2 * n).map(|_| normal.sample(&mut rng)).collect();
    let mut velocity = vec![0.0; 2 * n];
    let mut gains = vec![1.0_f64; 2 * n];

    for iter in 0..config.iterations {
        let exaggerate = iter < config.exaggeration_iterations;
        let e = if exaggerate { config.early_exaggeration } else { 1.0 };
        let momentum = if exaggerate { 0.5 } else { 0.8 };
        // Z = sum_{i != j} (1 + d_ij^2)^-1, reduced in row order.
        let row_sums: Vec<f64> = (0..n)
            .into_par_iter()
            .map(|i| {
                let (yi0, yi1) = (y[2 * i], y[2 * i + 1]);
                (0..n)
                    .filter(|&j| j != i)
                    .map(|j| {
                        let (d0, d1) = (yi0 - y[2 * j], yi1 - y[2 * j + 1]);
                        1.0 / (1.0 + d0 * d0 + d1 * d1)
                    })
                    .sum::<f64>()
            })
            .collect();
        let z: f64 = row_sums.iter().sum::<f64>().max(f64::MIN_POSITIVE);
        let grad: Vec<[f64; 2]> = (0..n)
            .into_par_iter()
            .map(|i| {
                let (yi0, yi1) = (y[2 * i], y[2 * i + 1]);
                let mut g = [0.0; 2];
                for j in 0..n {
                    if j == i {
                        continue;
                    }
                    let (d0, d1) = (yi0 - y[2 * j], yi1 - y[2 * j + 1]);
                    let num = 1.0 / (1.0 + d0 * d0 + d1 * d1);
                    let coeff = (e * p[i * n + j] - num / z) * num;
                    g[0] += coeff * d0;
                    g[1] += coeff * d1;
                }
                [4.0 * g[0], 4.0 * g[1]]
            })
            .collect();
        for (i, g) in grad.iter().enumerate() {
            for (d, &gk) in g.iter().enumerate() {
                let k = 2 * i + d;
                gains[k] = if (gk > 0.0) != (velocity[k] > 0.0) {
                    gains[k] + 0.2
                } else {
                    (gains[k] * 0.8).max(0.01)
                };
                velocity[k] = momentum * velocity[k] - learning_rate * gains[k] * gk;
                y[k] += velocity[k];
            }
        }
        // Re-centre (the cost is translation invariant).
        let (m0, m1) = (0..n).fold((0.0, 0.0), |(a, b), i| (a + y[2 * i], b + y[2 * i + 1]));
        for i in 0..n {
            y[2 * i] -= m0 / n as f64;
            y[2 * i + 1] -= m1 / n as f64;
        }
    }
    if let Some(index) = y.iter().position(|v| !v.is_finite()) {
        return Err(AelleError::NonFinite {
            context: "t-SNE output (reduce the learning rate)",
            index,
            value: y[index],
        });
    }
    Matrix::new(n, 2, y)
}

/// Symmetrised input affinities `p_ij` as a dense `[n, n]` row-major vector (zero diagonal).
fn joint_probabilities(x: &Matrix, perplexity: f64) -> Vec<f64> {
    let n = x.rows();
    let target_entropy = perplexity.ln();
    let conditional: Vec<Vec<f64>> = (0..n)
        .into_par_iter()
        .map(|i| {
            let xi = x.row(i);
            let d2: Vec<f64> = (0..n)
                .map(|j| {
                    if j == i {
                        0.0
                    } else {
                        xi.iter().zip(x.row(j)).map(|(a, b)| (a - b) * (a - b)).sum()
                    }
                })
                .collect();
            conditional_row(&d2, i, target_entropy)
        })
        .collect();
    let mut p = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            if i != j {
                p[i * n + j] =
                    ((conditional[i][j] + conditional[j][i]) / (2.0 * n as f64)).max(1e-12);
            }
        }
    }
    p
}

/// `p_{j|i}` for one row by bisection on the precision `beta` (distances shifted by their
/// minimum for numerical safety; the shift cancels in the normalisation).
fn conditional_row(d2: &[f64], i: usize, target_entropy: f64) -> Vec<f64> {
    let n = d2.len();
    let d_min = d2
        .iter()
        .enumerate()
        .filter(|&(j, _)| j != i)
        .map(|(_, d)| *d)
        .fold(f64::INFINITY, f64::min);
    let mut beta = 1.0;
    let (mut lo, mut hi) = (0.0_f64, f64::INFINITY);
    let mut row = vec![0.0; n];
    for _ in 0..100 {
        let mut sum = 0.0;
        let mut weighted = 0.0;
        for j in 0..n {
            if j == i {
                row[j] = 0.0;
                continue;
            }
            let shifted = d2[j] - d_min;
            let w = (-beta * shifted).exp();
            row[j] = w;
            sum += w;
            weighted += w * shifted;
        }
        // H = ln(sum) + beta * E[d]; sum >= 1 because the nearest neighbour has weight 1.
        let entropy = sum.ln() + beta * weighted / sum;
        for v in &mut row {
            *v /= sum;
        }
        let diff = entropy - target_entropy;
        if diff.abs() < 1e-6 {
            break;
        }
        if diff > 0.0 {
            lo = beta;
            beta = if hi.is_finite() { 0.5 * (beta + hi) } else { beta * 2.0 };
        } else {
            hi = beta;
            beta = 0.5 * (beta + lo);
        }
    }
    row
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn conditional_rows_hit_the_target_perplexity() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let d2: Vec<f64> =
            (0..50).map(|j| if j == 0 { 0.0 } else { rng.random_range(0.1..5.0) }).collect();
        let row = conditional_row(&d2, 0, 10f64.ln());
        let h: f64 = -row.iter().filter(|&&p| p > 0.0).map(|p| p * p.ln()).sum::<f64>();
        assert!((h.exp() - 10.0).abs() < 1e-3, "perplexity {}", h.exp());
        assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn separated_clusters_stay_separated_and_output_is_seeded() {
        // Three Gaussian blobs in 10-D, 30 points each, centres 20 apart, unit spread.
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let mut rows = Vec::new();
        let mut labels = Vec::new();
        for c in 0..3 {
            for _ in 0..30 {
                let row: Vec<f64> = (0..10)
                    .map(|d| if d == c { 20.0 } else { 0.0 } + rng.random_range(-1.0..1.0))
                    .collect();
                rows.push(row);
                labels.push(c);
            }
        }
        let x = Matrix::from_rows(&rows).unwrap();
        let cfg = TsneConfig { iterations: 500, ..TsneConfig::default() };
        let y = tsne_2d(&x, &cfg, 1).unwrap();
        assert_eq!(y, tsne_2d(&x, &cfg, 1).unwrap());
        // Every point's nearest embedded neighbour is in its own cluster, and the largest
        // within-cluster distance is below the smallest between-cluster distance.
        let dist = |a: usize, b: usize| {
            ((y.get(a, 0) - y.get(b, 0)).powi(2) + (y.get(a, 1) - y.get(b, 1)).powi(2)).sqrt()
        };
        let (mut max_within, mut min_between) = (0.0_f64, f64::INFINITY);
        for a in 0..90 {
            for b in (a + 1)..90 {
                if labels[a] == labels[b] {
                    max_within = max_within.max(dist(a, b));
                } else {
                    min_between = min_between.min(dist(a, b));
                }
            }
        }
        assert!(max_within < min_between, "within {max_within} vs between {min_between}");
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(tsne_2d(&Matrix::zeros(3, 2), &TsneConfig::default(), 0).is_err());
        // perplexity 10 needs n >= 31.
        assert!(matches!(
            tsne_2d(&Matrix::zeros(20, 2), &TsneConfig::default(), 0),
            Err(AelleError::InvalidConfig { .. })
        ));
    }
}
