//! The input table: one row per (network, checkpoint), and its validation and the non-finite
//! exclusions.
//!
//! A row whose spectrum or current loss is non-finite is excluded, and a network whose final
//! loss is non-finite is excluded with all its rows; every exclusion is listed with its
//! reason. Nothing is ever replaced by a copy of another row (the reference overwrites NaN
//! spectra with other networks' rows).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::error::{AelleError, Result};

/// One checkpoint of one network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpectrumRow {
    /// Network id; all rows of a network share it and fall in one split.
    pub network_id: String,
    /// Training epoch of the checkpoint (0 = initialisation).
    pub epoch: u32,
    /// Fraction of training completed at this checkpoint, in `[0, 1]`.
    pub training_fraction: f64,
    /// Mean Lyapunov spectrum (any length >= 1; lengths may differ between networks).
    pub spectrum: Vec<f64>,
    /// Test loss at this checkpoint (for the loss-based baseline).
    pub current_loss: f64,
    /// Final test loss of the network (the same on every row of the network).
    pub final_loss: f64,
    /// Group label such as the architecture (`"lstm"`, `"gru"`, ...), used for stratification.
    pub group: String,
    /// Numeric hyperparameters of the network known before training (e.g. the init scale `p`),
    /// by name; the same names on every row and the same values on every row of a network.
    /// Used only by the hyperparameter-only baseline of [`crate::crossval`]. Empty when
    /// absent (tables written before the field existed read as empty).
    #[serde(default)]
    pub hyperparameters: BTreeMap<String, f64>,
}

/// Why a row was left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExclusionReason {
    /// The spectrum holds a NaN or infinity (diverged or saturated network).
    NonFiniteSpectrum,
    /// The current loss is not finite.
    NonFiniteCurrentLoss,
    /// The network's final loss is not finite (all its rows are excluded).
    NonFiniteFinalLoss,
}

/// A row left out of the analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExcludedRow {
    /// Index in the input table.
    pub row: usize,
    /// The row's network.
    pub network_id: String,
    /// The row's epoch.
    pub epoch: u32,
    /// Why.
    pub reason: ExclusionReason,
}

/// Checks the structural rules every table must satisfy (these are errors, not exclusions):
/// non-empty network id and spectrum, `training_fraction` in `[0, 1]`, one group and one final
/// loss per network, and no repeated `(network, epoch)`.
pub fn validate_rows(rows: &[SpectrumRow]) -> Result<()> {
    let mut per_network: BTreeMap<&str, (&str, f64, &BTreeMap<String, f64>)> = BTreeMap::new();
    let mut seen: BTreeSet<(&str, u32)> = BTreeSet::new();
    for (i, r) in rows.iter().enumerate() {
        let invalid = |expected: &'static str, got: String| AelleError::InvalidRow {
            row: i,
            network_id: r.network_id.clone(),
            expected,
            got,
        };
        if r.network_id.is_empty() {
            return Err(invalid("a non-empty network id", "\"\"".into()));
        }
        if r.spectrum.is_empty() {
            return Err(invalid(
                "a spectrum with at least one exponent",
                "an empty spectrum".into(),
            ));
        }
        if !(0.0..=1.0).contains(&r.training_fraction) {
            return Err(invalid("training_fraction in [0, 1]", r.training_fraction.to_string()));
        }
        if !seen.insert((r.network_id.as_str(), r.epoch)) {
            return Err(invalid(
                "one row per (network, epoch)",
                format!("a second row for epoch {}", r.epoch),
            ));
        }
        if let Some((name, value)) = r.hyperparameters.iter().find(|(_, v)| !v.is_finite()) {
            return Err(invalid("finite hyperparameters", format!("{name} = {value}")));
        }
        if let Some(first) = rows.first()
            && !first.hyperparameters.keys().eq(r.hyperparameters.keys())
        {
            return Err(invalid(
                "the hyperparameter names of row 0 on every row",
                format!(
                    "{:?} (row 0: {:?})",
                    r.hyperparameters.keys().collect::<Vec<_>>(),
                    first.hyperparameters.keys().collect::<Vec<_>>()
                ),
            ));
        }
        match per_network.get(r.network_id.as_str()) {
            None => {
                per_network.insert(&r.network_id, (&r.group, r.final_loss, &r.hyperparameters));
            }
            Some(&(group, final_loss, hyperparameters)) => {
                if hyperparameters != &r.hyperparameters {
                    return Err(invalid(
                        "the same hyperparameters on every row of a network",
                        format!("{:?} after {hyperparameters:?}", r.hyperparameters),
                    ));
                }
                if group != r.group {
                    return Err(invalid(
                        "one group per network",
                        format!("`{}` after `{group}`", r.group),
                    ));
                }
                let same = final_loss.to_bits() == r.final_loss.to_bits()
                    || (final_loss.is_nan() && r.final_loss.is_nan());
                if !same {
                    return Err(invalid(
                        "the same final_loss on every row of a network",
                        format!("{} after {final_loss}", r.final_loss),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Splits row indices into kept rows and exclusions (see module docs).
pub fn exclude_non_finite(rows: &[SpectrumRow]) -> (Vec<usize>, Vec<ExcludedRow>) {
    let mut kept = Vec::new();
    let mut excluded = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let reason = if !r.final_loss.is_finite() {
            Some(ExclusionReason::NonFiniteFinalLoss)
        } else if r.spectrum.iter().any(|v| !v.is_finite()) {
            Some(ExclusionReason::NonFiniteSpectrum)
        } else if !r.current_loss.is_finite() {
            Some(ExclusionReason::NonFiniteCurrentLoss)
        } else {
            None
        };
        match reason {
            Some(reason) => excluded.push(ExcludedRow {
                row: i,
                network_id: r.network_id.clone(),
                epoch: r.epoch,
                reason,
            }),
            None => kept.push(i),
        }
    }
    (kept, excluded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, epoch: u32, spectrum: Vec<f64>, final_loss: f64) -> SpectrumRow {
        SpectrumRow {
            network_id: id.into(),
            epoch,
            training_fraction: f64::from(epoch) / 10.0,
            spectrum,
            current_loss: 1.0,
            final_loss,
            group: "rnn".into(),
            hyperparameters: BTreeMap::new(),
        }
    }

    #[test]
    fn non_finite_rows_are_excluded_with_reasons_not_replaced() {
        let mut rows = vec![
            row("a", 0, vec![0.1, -0.2], 0.5),
            row("a", 1, vec![f64::NAN, -0.2], 0.5),
            row("b", 0, vec![0.1], f64::INFINITY),
            row("c", 0, vec![0.3], 0.2),
        ];
        rows[3].current_loss = f64::NAN;
        validate_rows(&rows).unwrap();
        let (kept, excluded) = exclude_non_finite(&rows);
        assert_eq!(kept, vec![0]);
        let reasons: Vec<_> = excluded.iter().map(|e| (e.row, e.reason)).collect();
        assert_eq!(
            reasons,
            vec![
                (1, ExclusionReason::NonFiniteSpectrum),
                (2, ExclusionReason::NonFiniteFinalLoss),
                (3, ExclusionReason::NonFiniteCurrentLoss)
            ]
        );
    }

    #[test]
    fn structural_problems_are_errors() {
        let ok = row("a", 0, vec![0.1], 0.5);
        let mut dup = vec![ok.clone(), ok.clone()];
        assert!(validate_rows(&dup).is_err());
        dup[1].epoch = 1;
        validate_rows(&dup).unwrap();
        dup[1].final_loss = 0.6;
        assert!(validate_rows(&dup).is_err());
        dup[1].final_loss = 0.5;
        dup[1].group = "gru".into();
        assert!(validate_rows(&dup).is_err());
        assert!(validate_rows(&[row("", 0, vec![0.1], 0.5)]).is_err());
        assert!(validate_rows(&[row("a", 0, vec![], 0.5)]).is_err());
        let mut late = ok;
        late.training_fraction = 1.5;
        assert!(validate_rows(&[late]).is_err());
    }
}
