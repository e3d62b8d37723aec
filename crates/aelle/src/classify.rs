//! Small, exact fitters used on top of the latent: L2-regularised logistic regression (IRLS),
//! ridge linear regression, and the validation-set threshold choice.
//!
//! Both regressions standardise their inputs with training statistics (constant columns are
//! only centred) and leave the intercept unpenalised.
//!
//! - Logistic: maximise `sum_i [y_i log s(w.x_i + b) + (1 - y_i) log(1 - s(w.x_i + b))] - (l2 / 2) |w|^2`
//!   by Newton's method (`(X^T W X + l2 I) dw = X^T (y - p) - l2 w`, `W = diag(p (1 - p))`).
//! - Ridge: minimise `|y - X w - b|^2 + l2 |w|^2`, solved by Cholesky on the normal equations.

use serde::{Deserialize, Serialize};

use crate::error::{AelleError, Result};
use crate::features::Standardizer;
use crate::matrix::{Matrix, solve_symmetric_positive_definite};
use crate::metrics::ConfusionCounts;

fn check_design(x: &Matrix, n_targets: usize, context: &'static str) -> Result<()> {
    if x.rows() != n_targets {
        return Err(AelleError::ShapeMismatch { context, expected: x.rows(), got: n_targets });
    }
    if x.rows() < 2 {
        return Err(AelleError::TooFew {
            what: "training rows for a regression",
            expected: 2,
            got: x.rows(),
        });
    }
    if let Some((index, value)) = x.first_non_finite() {
        return Err(AelleError::NonFinite { context, index, value });
    }
    Ok(())
}

/// Design matrix with a leading column of ones, from standardised features: `[n, c + 1]`.
fn with_intercept(z: &Matrix) -> Matrix {
    let (n, c) = (z.rows(), z.cols());
    let mut out = Matrix::zeros(n, c + 1);
    for i in 0..n {
        let row = out.row_mut(i);
        row[0] = 1.0;
        row[1..].copy_from_slice(z.row(i));
    }
    out
}

/// `A^T diag(w) A + diag(penalty)` for the normal equations; penalty 0 on the intercept.
fn weighted_gram(a: &Matrix, weights: &[f64], l2: f64) -> Vec<f64> {
    let k = a.cols();
    let mut g = vec![0.0; k * k];
    for (i, &w) in weights.iter().enumerate() {
        let row = a.row(i);
        for p in 0..k {
            let wp = w * row[p];
            for q in p..k {
                g[p * k + q] += wp * row[q];
            }
        }
    }
    for p in 0..k {
        for q in 0..p {
            g[p * k + q] = g[q * k + p];
        }
        if p > 0 {
            g[p * k + p] += l2;
        }
    }
    g
}

/// A fitted L2-regularised logistic regression `P(y = 1 | x) = s(w . z(x) + b)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogisticRegression {
    /// Input standardisation (training statistics).
    pub standardizer: Standardizer,
    /// Intercept `b`.
    pub intercept: f64,
    /// Weights `w` on the standardised inputs.
    pub weights: Vec<f64>,
}

fn sigmoid(t: f64) -> f64 {
    if t >= 0.0 {
        1.0 / (1.0 + (-t).exp())
    } else {
        let e = t.exp();
        e / (1.0 + e)
    }
}

impl LogisticRegression {
    /// Fits on rows of `x` (`[n, c]`) with labels `y`; `l2 > 0`. Newton iterations stop when
    /// the largest step is below `1e-10` or after 100 iterations.
    pub fn fit(x: &Matrix, y: &[bool], l2: f64) -> Result<Self> {
        check_design(x, y.len(), "logistic regression: rows vs labels")?;
        if !(l2 > 0.0 && l2.is_finite()) {
            return Err(AelleError::InvalidConfig {
                field: "logistic l2",
                expected: "a positive finite penalty",
                got: l2.to_string(),
            });
        }
        let standardizer = Standardizer::fit(x)?;
        let a = with_intercept(&standardizer.apply(x)?);
        let k = a.cols();
        let mut beta = vec![0.0; k];
        for _ in 0..100 {
            let probs: Vec<f64> = (0..a.rows())
                .map(|i| sigmoid(a.row(i).iter().zip(&beta).map(|(u, v)| u * v).sum()))
                .collect();
            let weights: Vec<f64> = probs.iter().map(|p| (p * (1.0 - p)).max(1e-12)).collect();
            let mut grad = vec![0.0; k];
            for i in 0..a.rows() {
                let r = f64::from(u8::from(y[i])) - probs[i];
                for (g, v) in grad.iter_mut().zip(a.row(i)) {
                    *g += r * v;
                }
            }
            for p in 1..k {
                grad[p] -= l2 * beta[p];
            }
            // Tiny ridge on the intercept keeps the system definite if one class is absent.
            let mut hessian = weighted_gram(&a, &weights, l2);
            hessian[0] += 1e-9;
            let step = solve_symmetric_positive_definite(&hessian, &grad, "logistic Newton step")?;
            let max_step = step.iter().fold(0.0_f64, |m, s| m.max(s.abs()));
            for (b, s) in beta.iter_mut().zip(&step) {
                *b += s;
            }
            if max_step < 1e-10 {
                break;
            }
        }
        if let Some(index) = beta.iter().position(|v| !v.is_finite()) {
            return Err(AelleError::NonFinite {
                context: "logistic regression coefficients",
                index,
                value: beta[index],
            });
        }
        Ok(Self { standardizer, intercept: beta[0], weights: beta[1..].to_vec() })
    }

    /// `P(y = 1 | x)` for each row of `x` (`[m, c]`).
    pub fn predict_probability(&self, x: &Matrix) -> Result<Vec<f64>> {
        let z = self.standardizer.apply(x)?;
        Ok((0..z.rows())
            .map(|i| {
                sigmoid(
                    self.intercept
                        + z.row(i).iter().zip(&self.weights).map(|(u, v)| u * v).sum::<f64>(),
                )
            })
            .collect())
    }
}

/// A fitted ridge regression `y = w . z(x) + b`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RidgeRegression {
    /// Input standardisation (training statistics).
    pub standardizer: Standardizer,
    /// Intercept `b` (the training mean of `y`).
    pub intercept: f64,
    /// Weights `w` on the standardised inputs.
    pub weights: Vec<f64>,
}

impl RidgeRegression {
    /// Fits on rows of `x` (`[n, c]`) against finite targets `y`; `l2 >= 0` (with `l2 = 0` the
    /// fit fails on collinear inputs, so use a small positive value for wide designs).
    pub fn fit(x: &Matrix, y: &[f64], l2: f64) -> Result<Self> {
        check_design(x, y.len(), "ridge regression: rows vs targets")?;
        if let Some(index) = y.iter().position(|v| !v.is_finite()) {
            return Err(AelleError::NonFinite {
                context: "ridge regression targets",
                index,
                value: y[index],
            });
        }
        if !(l2 >= 0.0 && l2.is_finite()) {
            return Err(AelleError::InvalidConfig {
                field: "ridge l2",
                expected: "a finite penalty >= 0",
                got: l2.to_string(),
            });
        }
        let standardizer = Standardizer::fit(x)?;
        let a = with_intercept(&standardizer.apply(x)?);
        let gram = weighted_gram(&a, &vec![1.0; a.rows()], l2);
        let mut rhs = vec![0.0; a.cols()];
        for (i, &t) in y.iter().enumerate() {
            for (r, v) in rhs.iter_mut().zip(a.row(i)) {
                *r += t * v;
            }
        }
        let beta = solve_symmetric_positive_definite(&gram, &rhs, "ridge normal equations")?;
        Ok(Self { standardizer, intercept: beta[0], weights: beta[1..].to_vec() })
    }

    /// Predictions for each row of `x` (`[m, c]`).
    pub fn predict(&self, x: &Matrix) -> Result<Vec<f64>> {
        let z = self.standardizer.apply(x)?;
        Ok((0..z.rows())
            .map(|i| {
                self.intercept + z.row(i).iter().zip(&self.weights).map(|(u, v)| u * v).sum::<f64>()
            })
            .collect())
    }
}

/// How a score threshold is chosen on validation networks (predict "high" iff score >= t).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdCriterion {
    /// Maximise Youden's J = recall + specificity - 1 (balanced; default). A constant
    /// "everyone is high" classifier scores J = 0, so it is never preferred to a real cut.
    #[default]
    Youden,
    /// Maximise F1 (favours recall; a constant "everyone is high" classifier already scores
    /// `2 pi / (1 + pi)` at base rate `pi`).
    F1,
}

/// A threshold and how it was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ChosenThreshold {
    /// The cut `t`: predict high iff `score >= t`.
    pub threshold: f64,
    /// `true` if the criterion was undefined on validation (one class only) and the median
    /// validation score was used instead.
    pub fallback_to_median: bool,
}

/// Chooses `t` maximising `criterion` over the candidate cuts (midpoints between consecutive
/// distinct validation scores, plus one below the minimum and one above the maximum). Ties go
/// to the smallest `t`. Errors on empty or non-finite input.
pub fn choose_threshold(
    scores: &[f64],
    labels: &[bool],
    criterion: ThresholdCriterion,
) -> Result<ChosenThreshold> {
    if scores.len() != labels.len() {
        return Err(AelleError::ShapeMismatch {
            context: "threshold choice: scores vs labels",
            expected: labels.len(),
            got: scores.len(),
        });
    }
    let Some(median) = crate::metrics::median(scores)? else {
        return Err(AelleError::TooFew {
            what: "validation scores to choose a threshold",
            expected: 1,
            got: 0,
        });
    };
    let mut sorted = scores.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.dedup();
    let mut candidates = vec![sorted[0] - 1.0];
    candidates.extend(sorted.windows(2).map(|w| 0.5 * (w[0] + w[1])));
    candidates.push(sorted[sorted.len() - 1] + 1.0);
    let mut best: Option<(f64, f64)> = None;
    for &t in &candidates {
        let predicted: Vec<bool> = scores.iter().map(|&s| s >= t).collect();
        let c = ConfusionCounts::from_predictions(&predicted, labels)?;
        let value = match criterion {
            ThresholdCriterion::Youden => c.youden_j(),
            ThresholdCriterion::F1 => c.f1(),
        };
        if let Some(v) = value
            && best.is_none_or(|(_, b)| v > b)
        {
            best = Some((t, v));
        }
    }
    Ok(match best {
        Some((threshold, _)) => ChosenThreshold { threshold, fallback_to_median: false },
        None => ChosenThreshold { threshold: median, fallback_to_median: true },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ridge_recovers_a_linear_law() {
        let rows: Vec<Vec<f64>> = (0..20).map(|i| vec![i as f64, ((i * 7) % 5) as f64]).collect();
        let y: Vec<f64> = rows.iter().map(|r| 3.0 - 2.0 * r[0] + 0.5 * r[1]).collect();
        let x = Matrix::from_rows(&rows).unwrap();
        let fit = RidgeRegression::fit(&x, &y, 0.0).unwrap();
        for (p, t) in fit.predict(&x).unwrap().iter().zip(&y) {
            assert!((p - t).abs() < 1e-9, "{p} vs {t}");
        }
        assert!(RidgeRegression::fit(&x, &y[..3], 0.0).is_err());
    }

    #[test]
    fn logistic_separates_a_one_dimensional_cut() {
        let rows: Vec<Vec<f64>> = (0..40).map(|i| vec![i as f64 / 4.0]).collect();
        // Noisy labels around x = 5 keep the MLE finite.
        let y: Vec<bool> = (0..40)
            .map(|i| {
                if i == 18 {
                    true
                } else if i == 22 {
                    false
                } else {
                    i >= 20
                }
            })
            .collect();
        let fit = LogisticRegression::fit(&Matrix::from_rows(&rows).unwrap(), &y, 1e-3).unwrap();
        let p = fit
            .predict_probability(&Matrix::from_rows(&[vec![0.0], vec![5.0], vec![10.0]]).unwrap())
            .unwrap();
        assert!(p[0] < 0.05 && p[2] > 0.95, "{p:?}");
        assert!((p[1] - 0.5).abs() < 0.2, "{p:?}");
        assert!(p[0] < p[1] && p[1] < p[2]);
    }

    #[test]
    fn threshold_choice_by_hand() {
        // Scores with labels: positives 0.9, 0.8, 0.35; negatives 0.7, 0.3, 0.1.
        // Cut 0.75: recall 2/3, spec 1 -> J = 2/3. Cut 0.325: recall 1, spec 2/3 -> J = 2/3 too;
        // ties go to the smallest t, so 0.325.
        let scores = [0.9, 0.8, 0.35, 0.7, 0.3, 0.1];
        let labels = [true, true, true, false, false, false];
        let t = choose_threshold(&scores, &labels, ThresholdCriterion::Youden).unwrap();
        assert!((t.threshold - 0.325).abs() < 1e-12 && !t.fallback_to_median, "{t:?}");
        // F1 at 0.325: P = 3/4, R = 1 -> 6/7, the best possible here.
        let f = choose_threshold(&scores, &labels, ThresholdCriterion::F1).unwrap();
        assert!((f.threshold - 0.325).abs() < 1e-12);
        // One class only: Youden undefined -> median fallback.
        let m = choose_threshold(&[1.0, 2.0, 3.0], &[true, true, true], ThresholdCriterion::Youden)
            .unwrap();
        assert_eq!(m, ChosenThreshold { threshold: 2.0, fallback_to_median: true });
        assert!(choose_threshold(&[], &[], ThresholdCriterion::F1).is_err());
    }
}
