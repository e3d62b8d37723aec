//! A synthetic population whose truth is known, for tests and benchmarks.
//!
//! Each network `n` has two hidden factors `f1, f2 ~ N(0, 1)`. Its spectrum at training
//! fraction `p`, exponent `i` of `k` (`x = i / (k - 1)`), is
//!
//! ```text
//! lambda_i = 0.05 - 1.2 x + f1 (0.25 (1 - x) + 0.05) + f2 0.12 sin(2 pi x)
//!            - 0.05 p (1 - x) + offset(group) + noise N(0, sigma^2)
//! ```
//!
//! so `f1` (which alone sets the final loss) dominates the spectral variance and `f2` is a
//! nuisance direction. Final loss `exp(-1 + 0.4 f1 + 0.05 e)`, `e ~ N(0, 1)` per network;
//! current loss `final + (2.3 - final) exp(-4 p) (1 + 0.05 eta)`, `eta ~ N(0, 1)` per row,
//! so the current loss says nothing about the final one at `p = 0` and more as `p` grows.
//! Groups differ in spectrum length (resampling is exercised) and by a small offset. Each
//! network also has one hyperparameter `knob = 0.6 f1 + 0.8 u`, `u ~ N(0, 1)` (drawn from a
//! second generator, seed + 1), so a hyperparameter-only baseline sees part of the truth
//! (correlation 0.6 with `f1`) and the spectrum all of it.

use std::collections::BTreeMap;

use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use crate::error::{AelleError, Result};
use crate::table::SpectrumRow;

/// Settings of the synthetic population.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyntheticConfig {
    /// Number of networks, assigned to groups in turn. Default 1000.
    pub networks: usize,
    /// Checkpoint fractions; checkpoint `e` has epoch `e`. Default 0, .1, .2, .5, 1.
    pub fractions: Vec<f64>,
    /// `(group label, spectrum length)` per group. Default `("arch-a", 32), ("arch-b", 64)`.
    pub groups: Vec<(String, usize)>,
    /// Per-exponent noise standard deviation `sigma`. Default 0.02.
    pub noise: f64,
    /// Number of rows whose spectrum gets a NaN (to exercise exclusion). Default 0.
    pub non_finite_rows: usize,
    /// Seed. Default 0.
    pub seed: u64,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self {
            networks: 1000,
            fractions: vec![0.0, 0.1, 0.2, 0.5, 1.0],
            groups: vec![("arch-a".into(), 32), ("arch-b".into(), 64)],
            noise: 0.02,
            non_finite_rows: 0,
            seed: 0,
        }
    }
}

/// The rows and the hidden truth.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticPopulation {
    /// The input table.
    pub rows: Vec<SpectrumRow>,
    /// `f1` (the performance factor) per network id.
    pub performance_factor: BTreeMap<String, f64>,
    /// `f2` (the nuisance factor) per network id.
    pub nuisance_factor: BTreeMap<String, f64>,
}

/// Generates the population described in the module docs.
pub fn two_factor_population(config: &SyntheticConfig) -> Result<SyntheticPopulation> {
    if config.groups.is_empty() || config.groups.iter().any(|(_, k)| *k == 0) {
        return Err(AelleError::InvalidConfig {
            field: "synthetic.groups",
            expected: "at least one group, each with spectrum length >= 1",
            got: format!("{:?}", config.groups),
        });
    }
    if !(config.noise >= 0.0 && config.noise.is_finite()) {
        return Err(AelleError::InvalidConfig {
            field: "synthetic.noise",
            expected: "a finite standard deviation >= 0",
            got: config.noise.to_string(),
        });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let gauss = |rng: &mut ChaCha8Rng| -> f64 { rng.sample(StandardNormal) };
    let mut knob_rng = ChaCha8Rng::seed_from_u64(config.seed.wrapping_add(1));
    let mut rows = Vec::new();
    let mut performance_factor = BTreeMap::new();
    let mut nuisance_factor = BTreeMap::new();
    for n in 0..config.networks {
        let (group, k) = &config.groups[n % config.groups.len()];
        let offset = -0.03 * (n % config.groups.len()) as f64;
        let id = format!("net-{n:05}");
        let (f1, f2) = (gauss(&mut rng), gauss(&mut rng));
        let final_loss = (-1.0 + 0.4 * f1 + 0.05 * gauss(&mut rng)).exp();
        let knob = 0.6 * f1 + 0.8 * gauss(&mut knob_rng);
        let hyperparameters = BTreeMap::from([("knob".to_string(), knob)]);
        performance_factor.insert(id.clone(), f1);
        nuisance_factor.insert(id.clone(), f2);
        for (epoch, &p) in config.fractions.iter().enumerate() {
            let spectrum: Vec<f64> = (0..*k)
                .map(|i| {
                    let x = if *k > 1 { i as f64 / (*k - 1) as f64 } else { 0.0 };
                    0.05 - 1.2 * x
                        + f1 * (0.25 * (1.0 - x) + 0.05)
                        + f2 * 0.12 * (2.0 * std::f64::consts::PI * x).sin()
                        - 0.05 * p * (1.0 - x)
                        + offset
                        + config.noise * gauss(&mut rng)
                })
                .collect();
            let current_loss =
                final_loss + (2.3 - final_loss) * (-4.0 * p).exp() * (1.0 + 0.05 * gauss(&mut rng));
            rows.push(SpectrumRow {
                network_id: id.clone(),
                epoch: epoch as u32,
                training_fraction: p,
                spectrum,
                current_loss,
                final_loss,
                group: group.clone(),
                hyperparameters: hyperparameters.clone(),
            });
        }
    }
    let corrupt = config.non_finite_rows.min(rows.len());
    for r in sample(&mut rng, rows.len(), corrupt) {
        rows[r].spectrum[0] = f64::NAN;
    }
    Ok(SyntheticPopulation { rows, performance_factor, nuisance_factor })
}
