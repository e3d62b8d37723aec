//! Train / validation / test split **by network**: every row (epoch) of a network lands in the
//! split of its network, so no network is seen in training and evaluated in test. The reference
//! split rows, so epochs of one network leaked across its splits; this module makes that
//! impossible by construction (one split per network id).
//!
//! Within each group (architecture), the sorted network ids are shuffled with a seeded
//! ChaCha8 generator; the first `round(n_g * test_fraction)` go to test, the next
//! `round(n_g * validation_fraction)` to validation, the rest to training.

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{AelleError, Result};

/// Which part of the population a network belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// Fits the autoencoder, the standardiser, the PCA and the classifiers.
    Train,
    /// Early stopping and classifier thresholds.
    Validation,
    /// Every reported number.
    Test,
}

/// Split settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SplitConfig {
    /// Fraction of networks (per group) used for validation. Default 0.2. The reference has no
    /// validation networks: it tunes on what it reports.
    pub validation_fraction: f64,
    /// Fraction of networks (per group) held out for test. Default 0.2.
    pub test_fraction: f64,
    /// Stratify by group so every architecture is in every split in proportion (per-group
    /// rounding, so tiny groups may miss a split). Default `true`; `false` shuffles all
    /// networks together.
    pub stratify_by_group: bool,
}

impl Default for SplitConfig {
    fn default() -> Self {
        Self { validation_fraction: 0.2, test_fraction: 0.2, stratify_by_group: true }
    }
}

impl SplitConfig {
    /// Both fractions in (0, 1) with a sum below 1.
    pub fn validate(&self) -> Result<()> {
        let ok = |f: f64| f.is_finite() && f > 0.0 && f < 1.0;
        if !ok(self.validation_fraction) {
            return Err(AelleError::InvalidConfig {
                field: "split.validation_fraction",
                expected: "a fraction in (0, 1)",
                got: self.validation_fraction.to_string(),
            });
        }
        if !ok(self.test_fraction) || self.validation_fraction + self.test_fraction >= 1.0 {
            return Err(AelleError::InvalidConfig {
                field: "split.test_fraction",
                expected: "a fraction in (0, 1) with validation_fraction + test_fraction < 1",
                got: self.test_fraction.to_string(),
            });
        }
        Ok(())
    }
}

/// The split of every network id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkSplit {
    /// Network id -> split. One entry per network, so no id can be in two splits.
    pub assignment: BTreeMap<String, Split>,
}

impl NetworkSplit {
    /// The split of `network_id`, if known.
    pub fn split_of(&self, network_id: &str) -> Option<Split> {
        self.assignment.get(network_id).copied()
    }

    /// Sorted ids of the networks in `split`.
    pub fn networks_in(&self, split: Split) -> Vec<String> {
        self.assignment.iter().filter(|(_, s)| **s == split).map(|(id, _)| id.clone()).collect()
    }
}

/// Splits networks given as `(network id, group)` pairs (one pair per network; duplicates of
/// the same pair are ignored, one id in two groups is an error). Needs at least 3 networks and
/// fails if any split would be empty.
pub fn split_networks(
    networks: &[(String, String)],
    config: &SplitConfig,
    seed: u64,
) -> Result<NetworkSplit> {
    config.validate()?;
    let mut group_of: BTreeMap<&str, &str> = BTreeMap::new();
    for (id, group) in networks {
        if let Some(previous) = group_of.insert(id, group)
            && previous != group
        {
            return Err(AelleError::InvalidConfig {
                field: "network group",
                expected: "one group label per network id",
                got: format!("network `{id}` in groups `{previous}` and `{group}`"),
            });
        }
    }
    let mut by_group: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (id, group) in &group_of {
        let key = if config.stratify_by_group { *group } else { "" };
        by_group.entry(key).or_default().push(id);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut assignment = BTreeMap::new();
    for ids in by_group.values_mut() {
        ids.shuffle(&mut rng);
        let n = ids.len() as f64;
        let n_test = (n * config.test_fraction).round() as usize;
        let n_val = (n * config.validation_fraction).round() as usize;
        for (k, id) in ids.iter().enumerate() {
            let split = if k < n_test {
                Split::Test
            } else if k < n_test + n_val {
                Split::Validation
            } else {
                Split::Train
            };
            assignment.insert((*id).to_string(), split);
        }
    }
    let result = NetworkSplit { assignment };
    for (split, what) in [
        (Split::Train, "training networks"),
        (Split::Validation, "validation networks"),
        (Split::Test, "test networks"),
    ] {
        let got = result.networks_in(split).len();
        if got == 0 {
            return Err(AelleError::TooFew { what, expected: 1, got });
        }
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn population(n: usize) -> Vec<(String, String)> {
        (0..n)
            .map(|i| (format!("net-{i:03}"), if i % 3 == 0 { "gru" } else { "lstm" }.to_string()))
            .collect()
    }

    #[test]
    fn split_is_seeded_stratified_and_sized() {
        let nets = population(90);
        let a = split_networks(&nets, &SplitConfig::default(), 5).unwrap();
        let b = split_networks(&nets, &SplitConfig::default(), 5).unwrap();
        let c = split_networks(&nets, &SplitConfig::default(), 6).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.assignment.len(), 90);
        // 30 gru -> 6 test, 6 val; 60 lstm -> 12 test, 12 val.
        assert_eq!(a.networks_in(Split::Test).len(), 18);
        assert_eq!(a.networks_in(Split::Validation).len(), 18);
        let gru_test = a
            .networks_in(Split::Test)
            .iter()
            .filter(|id| nets.iter().any(|(n, g)| n == *id && g == "gru"))
            .count();
        assert_eq!(gru_test, 6);
    }

    #[test]
    fn too_small_or_inconsistent_populations_are_errors() {
        assert!(matches!(
            split_networks(&population(2), &SplitConfig::default(), 0),
            Err(AelleError::TooFew { .. })
        ));
        let conflicting =
            vec![("a".to_string(), "x".to_string()), ("a".to_string(), "y".to_string())];
        assert!(split_networks(&conflicting, &SplitConfig::default(), 0).is_err());
        let bad = SplitConfig { test_fraction: 0.9, ..SplitConfig::default() };
        assert!(split_networks(&population(10), &bad, 0).is_err());
    }
}
