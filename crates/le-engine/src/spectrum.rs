//! The result of a spectrum computation and the numbers derived from it.

use serde::{Deserialize, Serialize};

use crate::config::LogBase;

/// Whether a run stayed finite.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Status {
    /// Every state, tangent product and `ln R_ii` was finite.
    Finite,
    /// A non-finite value appeared at `step` (counted from 0 at the first warm-up step; warm-up
    /// steps come first). The run stopped there; its exponents are NaN, never a partial or
    /// substituted estimate.
    Diverged {
        /// The main-loop step where it happened.
        step: usize,
        /// What became non-finite.
        reason: String,
    },
}

impl Status {
    /// `true` for [`Status::Finite`].
    pub fn is_finite(&self) -> bool {
        matches!(self, Status::Finite)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Status::Finite => write!(f, "finite"),
            Status::Diverged { step, reason } => write!(f, "diverged at step {step}: {reason}"),
        }
    }
}

/// Running estimate of the exponents (QR order) after `step` accumulated steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TracePoint {
    /// Accumulated steps so far.
    pub step: usize,
    /// The exponents' estimate after them (QR order).
    pub exponents: Vec<f64>,
}

/// A Lyapunov spectrum with its derived quantities.
///
/// Units: `log_base` per step for maps and Jacobian sequences, per unit time for flows (and for
/// Jacobian sequences with a `dt`). Exponents are NaN when `status` is diverged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spectrum {
    /// Exponents sorted in descending order.
    pub exponents: Vec<f64>,
    /// Exponents in the order of the QR columns (the order the algorithm produces; for a
    /// converged run it is already nearly descending).
    pub exponents_qr_order: Vec<f64>,
    /// Sum of the `k` exponents.
    pub sum: f64,
    /// Time mean of `ln |det J_t|` (same units), when the system provides explicit Jacobians and
    /// `log_det` was on. With `k = D` it equals `sum` up to rounding.
    pub mean_log_abs_det: Option<f64>,
    /// Number of exponents greater than `zero_tolerance`.
    pub n_positive: usize,
    /// Kaplan-Yorke (Lyapunov) dimension `j + (l_1 + .. + l_j) / |l_{j+1}|`, `j` the largest
    /// index with a non-negative partial sum; `k` when all partial sums are non-negative (then a
    /// lower bound if `k < D`).
    pub kaplan_yorke: f64,
    /// Sum of the positive exponents (Pesin's upper bound of the Kolmogorov-Sinai entropy).
    pub entropy_rate: f64,
    /// Accumulated steps (excluding warm-up).
    pub steps: usize,
    /// Time per step (1 for maps).
    pub dt: f64,
    /// Base of the logarithm.
    pub log_base: LogBase,
    /// Finite, or where the run diverged.
    pub status: Status,
    /// Running estimates, when requested.
    pub trace: Vec<TracePoint>,
}

impl Spectrum {
    /// Assemble a spectrum from exponents in QR order (already in the final units).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn from_exponents(
        exponents_qr_order: Vec<f64>,
        mean_log_abs_det: Option<f64>,
        steps: usize,
        dt: f64,
        log_base: LogBase,
        zero_tolerance: f64,
        status: Status,
        trace: Vec<TracePoint>,
    ) -> Self {
        let mut exponents = exponents_qr_order.clone();
        exponents.sort_by(|a, b| b.total_cmp(a));
        let sum = exponents.iter().sum();
        let n_positive = exponents.iter().filter(|&&l| l > zero_tolerance).count();
        // (an empty float sum is -0.0 in Rust; start from +0.0)
        let entropy_rate = 0.0 + exponents.iter().filter(|&&l| l > zero_tolerance).sum::<f64>();
        let kaplan_yorke = kaplan_yorke_dimension(&exponents);
        Self {
            exponents,
            exponents_qr_order,
            sum,
            mean_log_abs_det,
            n_positive,
            kaplan_yorke,
            entropy_rate,
            steps,
            dt,
            log_base,
            status,
            trace,
        }
    }

    /// Largest exponent.
    pub fn max_exponent(&self) -> f64 {
        self.exponents.first().copied().unwrap_or(f64::NAN)
    }
}

/// Kaplan-Yorke dimension of exponents sorted in descending order. NaN if any is NaN.
pub fn kaplan_yorke_dimension(sorted_desc: &[f64]) -> f64 {
    if sorted_desc.iter().any(|l| l.is_nan()) {
        return f64::NAN;
    }
    let mut partial = 0.0;
    for (j, &l) in sorted_desc.iter().enumerate() {
        if partial + l < 0.0 {
            // j exponents have a non-negative partial sum; interpolate into the next one.
            return j as f64 + partial / l.abs();
        }
        partial += l;
    }
    sorted_desc.len() as f64
}

/// Mean and standard deviation of a batch of spectra (over trajectories / driving sequences).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpectrumStats {
    /// Element-wise mean of the sorted exponents over the finite members.
    pub mean: Vec<f64>,
    /// Element-wise sample standard deviation (`n - 1` in the denominator; 0 for one member).
    pub std: Vec<f64>,
    /// Members that stayed finite (the statistics use these only).
    pub n_finite: usize,
    /// All members.
    pub n_total: usize,
    /// Indices of the diverged members.
    pub diverged: Vec<usize>,
}

impl SpectrumStats {
    /// Statistics of the sorted exponents of `spectra` (all of the same `k`). Diverged members are
    /// excluded and listed; if none is finite, mean and std are NaN.
    pub fn of(spectra: &[Spectrum]) -> Self {
        let k = spectra.first().map_or(0, |s| s.exponents.len());
        let finite: Vec<&Spectrum> = spectra.iter().filter(|s| s.status.is_finite()).collect();
        let diverged = spectra
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.status.is_finite())
            .map(|(i, _)| i)
            .collect();
        let n = finite.len();
        let mut mean = vec![f64::NAN; k];
        let mut std = vec![f64::NAN; k];
        if n > 0 {
            for i in 0..k {
                let m = finite.iter().map(|s| s.exponents[i]).sum::<f64>() / n as f64;
                mean[i] = m;
                std[i] = if n > 1 {
                    (finite.iter().map(|s| (s.exponents[i] - m).powi(2)).sum::<f64>()
                        / (n - 1) as f64)
                        .sqrt()
                } else {
                    0.0
                };
            }
        }
        Self { mean, std, n_finite: n, n_total: spectra.len(), diverged }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kaplan_yorke_of_lorenz_like_spectrum() {
        // 0.9056 + 0 - 14.5723: j = 2, D = 2 + 0.9056 / 14.5723
        let d = kaplan_yorke_dimension(&[0.9056, 0.0, -14.5723]);
        assert!((d - (2.0 + 0.9056 / 14.5723)).abs() < 1e-12);
        assert_eq!(kaplan_yorke_dimension(&[-0.1, -0.2]), 0.0);
        assert_eq!(kaplan_yorke_dimension(&[0.3, 0.1]), 2.0);
        // Henon: 1 + 0.41922 / 1.62319
        let d = kaplan_yorke_dimension(&[0.41922, -1.62319]);
        assert!((d - 1.258267).abs() < 1e-5, "{d}");
        assert!(kaplan_yorke_dimension(&[f64::NAN]).is_nan());
    }

    #[test]
    fn stats_exclude_diverged_members() {
        let mk = |e: Vec<f64>, status| {
            Spectrum::from_exponents(e, None, 10, 1.0, LogBase::E, 1e-3, status, vec![])
        };
        let s = SpectrumStats::of(&[
            mk(vec![1.0, -1.0], Status::Finite),
            mk(vec![f64::NAN, f64::NAN], Status::Diverged { step: 3, reason: "x".into() }),
            mk(vec![3.0, -3.0], Status::Finite),
        ]);
        assert_eq!(s.n_finite, 2);
        assert_eq!(s.diverged, vec![1]);
        assert_eq!(s.mean, vec![2.0, -2.0]);
        assert!((s.std[0] - 2f64.sqrt()).abs() < 1e-15);
    }
}
