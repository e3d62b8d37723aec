//! Spectrum features: bring mean spectra of different lengths to one length `L`, optionally
//! sort them, and standardise each feature with statistics fitted on training rows.
//!
//! Resampling of a spectrum `lambda` of length `k` to length `L`:
//!
//! - **Midpoint doubling** (the published reference, `AE_utils.interpolate_LEs`): repeat
//!   `lambda -> [lambda_0, (lambda_0 + lambda_1)/2, lambda_1, ..., lambda_{k-1}, lambda_{k-1} - (lambda_{k-2} - lambda_{k-1})/2]`,
//!   which doubles the length (the last inserted value extrapolates the last step), until the
//!   length is `L`. Requires `L = k 2^m`; `k = 1` repeats the single value.
//! - **Linear**: sample the piecewise-linear interpolant of `(i / (k-1), lambda_i)` at
//!   `j / (L-1)`, `j = 0..L`. Works for any `k, L >= 1` (down-sampling too); exact at the ends.
//!
//! Standardisation: `z_j = (x_j - mu_j) / sigma_j` with `mu, sigma` the training-row mean and
//! population standard deviation of feature `j` (`sigma_j` replaced by 1 when below `1e-12`,
//! i.e. a constant feature is only centred). The statistics travel with the saved model.

use serde::{Deserialize, Serialize};

use crate::error::{AelleError, Result};
use crate::matrix::Matrix;

/// How spectra of different lengths are brought to the feature length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ResamplingMethod {
    /// Repeated midpoint insertion, doubling the length each time (published reference; needs
    /// `L / k` to be a power of two, otherwise the feature build fails with a typed error).
    MidpointDoubling,
    /// Piecewise-linear interpolation on a uniform grid over the exponent index; any lengths.
    #[default]
    Linear,
}

/// Largest feature length accepted (512x the longest spectrum of the presets).
pub const MAX_FEATURE_LENGTH: usize = 1 << 16;

/// Feature construction settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeatureConfig {
    /// Feature length `L` every spectrum is resampled to. Default 128. The encoder's hidden
    /// width is `L / 4`, so `L` sets the model's size (the reference uses 1024: 16x the input
    /// work per row for no gain on spectra of <= 128 exponents). Must be >= 4.
    pub length: usize,
    /// Resampling method. Default [`ResamplingMethod::Linear`]; the reference is
    /// [`ResamplingMethod::MidpointDoubling`].
    pub resampling: ResamplingMethod,
    /// Sort each spectrum in descending order before resampling. Default `true` (QR ordering
    /// is only approximately sorted for finite runs; sorting makes feature `j` mean "the j-th
    /// largest exponent"). The reference does not sort.
    pub sort_descending: bool,
    /// Standardise features with training-row statistics. Default `true`; the reference feeds
    /// raw exponents (`false`).
    pub standardize: bool,
}

impl Default for FeatureConfig {
    fn default() -> Self {
        Self {
            length: 128,
            resampling: ResamplingMethod::Linear,
            sort_descending: true,
            standardize: true,
        }
    }
}

impl FeatureConfig {
    /// Checks the ranges documented on each field.
    pub fn validate(&self) -> Result<()> {
        if !(4..=MAX_FEATURE_LENGTH).contains(&self.length) {
            return Err(AelleError::InvalidConfig {
                field: "features.length",
                expected: "a feature length in 4 ..= 65536 (the encoder's hidden width is length / 4)",
                got: self.length.to_string(),
            });
        }
        Ok(())
    }

    /// Turns one finite, non-empty spectrum into a raw (unstandardised) feature vector of
    /// length `self.length`.
    pub fn spectrum_to_features(&self, spectrum: &[f64]) -> Result<Vec<f64>> {
        if spectrum.is_empty() {
            return Err(AelleError::TooFew {
                what: "exponents in a spectrum",
                expected: 1,
                got: 0,
            });
        }
        if let Some(index) = spectrum.iter().position(|v| !v.is_finite()) {
            return Err(AelleError::NonFinite {
                context: "spectrum",
                index,
                value: spectrum[index],
            });
        }
        let mut s = spectrum.to_vec();
        if self.sort_descending {
            s.sort_by(|a, b| b.total_cmp(a));
        }
        match self.resampling {
            ResamplingMethod::Linear => Ok(resample_linear(&s, self.length)),
            ResamplingMethod::MidpointDoubling => resample_midpoint_doubling(&s, self.length),
        }
    }
}

/// Linear resampling of `values` (length `k >= 1`) to `length` points (see module docs).
pub fn resample_linear(values: &[f64], length: usize) -> Vec<f64> {
    let k = values.len();
    if k == 0 || length == 0 {
        return Vec::new();
    }
    if k == 1 || length == 1 {
        return vec![values[0]; length];
    }
    (0..length)
        .map(|j| {
            let x = j as f64 * (k - 1) as f64 / (length - 1) as f64;
            let i = (x.floor() as usize).min(k - 2);
            let t = x - i as f64;
            values[i] + t * (values[i + 1] - values[i])
        })
        .collect()
}

/// The reference's midpoint doubling (see module docs). Errors unless `length = k 2^m`.
pub fn resample_midpoint_doubling(values: &[f64], length: usize) -> Result<Vec<f64>> {
    let k = values.len();
    if k == 0 || length < k || !length.is_multiple_of(k) || !(length / k).is_power_of_two() {
        return Err(AelleError::NotPowerOfTwoMultiple { from: k, to: length });
    }
    let mut current = values.to_vec();
    while current.len() < length {
        let n = current.len();
        let mut next = Vec::with_capacity(2 * n);
        for i in 0..n {
            // diff_i = (x_i - x_{i+1}) / 2, with the last diff copied from the one before
            // (and 0 for a single value).
            let diff = if i + 1 < n {
                (current[i] - current[i + 1]) / 2.0
            } else if n >= 2 {
                (current[n - 2] - current[n - 1]) / 2.0
            } else {
                0.0
            };
            next.push(current[i]);
            next.push(current[i] - diff);
        }
        current = next;
    }
    Ok(current)
}

/// Per-feature standardisation statistics, fitted on training rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Standardizer {
    /// Per-feature mean `mu_j`, length `L`.
    pub mean: Vec<f64>,
    /// Per-feature scale `sigma_j` (population std, 1 where the feature is constant), length `L`.
    pub scale: Vec<f64>,
}

impl Standardizer {
    /// Below this standard deviation a feature is treated as constant (scale 1).
    pub const MIN_SCALE: f64 = 1e-12;

    /// Fits mean and scale on the rows of `x` (`[n, L]`, `n >= 1`).
    pub fn fit(x: &Matrix) -> Result<Self> {
        if x.rows() == 0 {
            return Err(AelleError::TooFew {
                what: "rows to fit feature standardisation",
                expected: 1,
                got: 0,
            });
        }
        let (n, l) = (x.rows(), x.cols());
        let mut mean = vec![0.0; l];
        for i in 0..n {
            for (m, v) in mean.iter_mut().zip(x.row(i)) {
                *m += v;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        let mut var = vec![0.0; l];
        for i in 0..n {
            for ((s, v), m) in var.iter_mut().zip(x.row(i)).zip(&mean) {
                *s += (v - m) * (v - m);
            }
        }
        let scale = var
            .into_iter()
            .map(|s| {
                let sd = (s / n as f64).sqrt();
                if sd < Self::MIN_SCALE { 1.0 } else { sd }
            })
            .collect();
        Ok(Self { mean, scale })
    }

    /// The identity transform for `l` features (used when standardisation is off).
    pub fn identity(l: usize) -> Self {
        Self { mean: vec![0.0; l], scale: vec![1.0; l] }
    }

    /// Applies `z = (x - mu) / sigma` row by row; `x` is `[n, L]`.
    pub fn apply(&self, x: &Matrix) -> Result<Matrix> {
        if x.cols() != self.mean.len() {
            return Err(AelleError::ShapeMismatch {
                context: "standardizer feature count",
                expected: self.mean.len(),
                got: x.cols(),
            });
        }
        let mut out = x.clone();
        for i in 0..out.rows() {
            for ((v, m), s) in out.row_mut(i).iter_mut().zip(&self.mean).zip(&self.scale) {
                *v = (*v - m) / s;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn midpoint_doubling_matches_reference_formula() {
        // [4, 2, 1] -> [4, 3, 2, 1.5, 1, 0.5] (last step extrapolates the previous diff 0.5).
        let out = resample_midpoint_doubling(&[4.0, 2.0, 1.0], 6).unwrap();
        assert_eq!(out, vec![4.0, 3.0, 2.0, 1.5, 1.0, 0.5]);
        // Twice: length 12, every even position keeps the previous level's value.
        let out4 = resample_midpoint_doubling(&[4.0, 2.0, 1.0], 12).unwrap();
        assert_eq!(out4.len(), 12);
        for (i, v) in out.iter().enumerate() {
            assert_eq!(out4[2 * i], *v);
        }
        assert!(matches!(
            resample_midpoint_doubling(&[1.0, 2.0, 3.0], 9),
            Err(AelleError::NotPowerOfTwoMultiple { from: 3, to: 9 })
        ));
        assert_eq!(resample_midpoint_doubling(&[2.5], 4).unwrap(), vec![2.5; 4]);
    }

    #[test]
    fn linear_resampling_is_exact_on_lines_and_ends() {
        let line: Vec<f64> = (0..5).map(|i| 1.0 - 0.5 * i as f64).collect();
        let out = resample_linear(&line, 9);
        for (j, v) in out.iter().enumerate() {
            assert!((v - (1.0 - 0.25 * j as f64)).abs() < 1e-12);
        }
        let down = resample_linear(&[0.0, 1.0, 4.0, 9.0, 16.0], 3);
        assert_eq!(down, vec![0.0, 4.0, 16.0]);
        assert_eq!(resample_linear(&[3.0], 4), vec![3.0; 4]);
    }

    #[test]
    fn features_sort_and_reject_bad_spectra() {
        let cfg = FeatureConfig {
            length: 4,
            resampling: ResamplingMethod::Linear,
            sort_descending: true,
            standardize: true,
        };
        assert_eq!(
            cfg.spectrum_to_features(&[-1.0, 0.5, 0.0, -2.0]).unwrap(),
            vec![0.5, 0.0, -1.0, -2.0]
        );
        assert!(matches!(cfg.spectrum_to_features(&[]), Err(AelleError::TooFew { .. })));
        assert!(matches!(
            cfg.spectrum_to_features(&[0.0, f64::NAN]),
            Err(AelleError::NonFinite { index: 1, .. })
        ));
        assert!(FeatureConfig { length: 3, ..cfg }.validate().is_err());
    }

    #[test]
    fn standardizer_centres_and_scales_training_rows() {
        let x = Matrix::from_rows(&[vec![1.0, 5.0], vec![3.0, 5.0]]).unwrap();
        let s = Standardizer::fit(&x).unwrap();
        assert_eq!(s.mean, vec![2.0, 5.0]);
        assert_eq!(s.scale, vec![1.0, 1.0]); // population std of [1, 3] is 1; constant -> 1
        let z = s.apply(&x).unwrap();
        assert_eq!(z.to_rows(), vec![vec![-1.0, 0.0], vec![1.0, 0.0]]);
        assert!(s.apply(&Matrix::zeros(1, 3)).is_err());
    }
}
