//! Network-level cross-validation of the early-performance classifiers: the numbers the report
//! leads with.
//!
//! Repeated, stratified K-fold over **networks** (every checkpoint of a network is in one
//! fold): in each of `repeats` repeats the networks are dealt into `folds` folds within each
//! group (cell), with a fresh assignment and a fresh autoencoder seed per repeat. For each fold
//! a [`PretrainedAelle`] is fitted on the other folds' networks only (its autoencoder, PCA,
//! classifiers and every threshold; see [`pretrained`]) and scores the held-out fold, so each
//! network is predicted once per repeat, out of fold. [`summary`] turns the out-of-fold scores
//! into metrics with stratified-bootstrap intervals over networks, paired AUROC differences,
//! the controls (hyperparameters only, shuffled labels) and the within-cell results.
//!
//! Labels: "high performing" = final loss strictly below the median final loss of the whole
//! population (the evaluation label); each fit labels its own networks by their median, so no
//! fit sees a held-out network's final loss. Within-cell labels use each cell's median.

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub mod pretrained;
pub mod summary;

pub use pretrained::{
    HyperparameterDesign, NetworkScores, PointReadout, PretrainedAelle, Readout, ScoredRow,
};
pub use summary::{
    COMPARISONS, CellAuroc, CellResult, ClassifierEstimate, Comparison, Estimate, PointSummary,
    WithinCell, conclusions,
};

use crate::error::{AelleError, Result};
use crate::metrics::median;
use crate::pipeline::{AelleConfig, ClassifierKind, derive_seed, nearest_rows};
use crate::table::{SpectrumRow, exclude_non_finite, validate_rows};
use summary::{PointScores, Population, summarize_point};

/// Cross-validation settings (`[aelle.cross_validation]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CrossValidationConfig {
    /// Folds `K` (>= 2). Default 5.
    pub folds: usize,
    /// Repeats, each with its own fold assignment and autoencoder seed (>= 1). Default 3.
    pub repeats: usize,
    /// Fraction of each fit's networks held out for early stopping and thresholds, in
    /// (0, 0.5]. Default 0.2.
    pub inner_validation_fraction: f64,
    /// Bootstrap resamples of the networks (>= 100). Default 1000.
    pub bootstrap_resamples: usize,
    /// Confidence level of the intervals, in (0, 1). Default 0.95.
    pub confidence: f64,
}

impl Default for CrossValidationConfig {
    fn default() -> Self {
        Self {
            folds: 5,
            repeats: 3,
            inner_validation_fraction: 0.2,
            bootstrap_resamples: 1000,
            confidence: 0.95,
        }
    }
}

impl CrossValidationConfig {
    /// Checks the documented ranges.
    pub fn validate(&self) -> Result<()> {
        let bad =
            |field, expected, got: String| Err(AelleError::InvalidConfig { field, expected, got });
        if !(2..=100).contains(&self.folds) {
            return bad("cross_validation.folds", "2 ..= 100", self.folds.to_string());
        }
        if !(1..=100).contains(&self.repeats) {
            return bad("cross_validation.repeats", "1 ..= 100", self.repeats.to_string());
        }
        let f = self.inner_validation_fraction;
        if !(f > 0.0 && f <= 0.5) {
            return bad(
                "cross_validation.inner_validation_fraction",
                "a fraction in (0, 0.5]",
                f.to_string(),
            );
        }
        if !(100..=100_000).contains(&self.bootstrap_resamples) {
            return bad(
                "cross_validation.bootstrap_resamples",
                "100 ..= 100000",
                self.bootstrap_resamples.to_string(),
            );
        }
        let c = self.confidence;
        if !(c > 0.0 && c < 1.0) {
            return bad("cross_validation.confidence", "a level in (0, 1)", c.to_string());
        }
        Ok(())
    }
}

/// Deals `networks` (`(id, group)`, one entry per network) into `k` folds: within each group
/// (sorted by label) the sorted ids are shuffled with a seeded ChaCha8 generator and dealt in
/// turn, continuing the count from group to group so fold sizes differ by at most one.
/// Returns id -> fold.
pub fn stratified_folds(
    networks: &[(String, String)],
    k: usize,
    seed: u64,
) -> BTreeMap<String, usize> {
    let mut by_group: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (id, group) in networks {
        by_group.entry(group).or_default().push(id);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = BTreeMap::new();
    let mut next = 0usize;
    for ids in by_group.values_mut() {
        ids.sort_unstable();
        ids.dedup();
        ids.shuffle(&mut rng);
        for id in ids.iter() {
            out.insert((*id).to_string(), next % k);
            next += 1;
        }
    }
    out
}

/// One fold of one repeat: its held-out networks and the cuts its fit chose.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoldRecord {
    /// Repeat index.
    pub repeat: usize,
    /// Fold index.
    pub fold: usize,
    /// Networks the fit was fitted on.
    pub fitted_networks: usize,
    /// The held-out networks (sorted ids).
    pub held_out: Vec<String>,
    /// Per evaluation point, the cut of each classifier ([`ClassifierKind::ALL`] order), or
    /// `None` where the fit had too few networks at the point.
    pub cuts: Vec<Option<Vec<f64>>>,
}

/// Out-of-fold scores of one classifier at one point in one repeat, one per network of
/// [`CrossValidationReport::networks`] (`None` = not scored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutOfFoldScores {
    /// Repeat.
    pub repeat: usize,
    /// Index into the evaluation points.
    pub point_index: usize,
    /// Classifier.
    pub classifier: ClassifierKind,
    /// Score per network.
    pub scores: Vec<Option<f64>>,
}

/// A group's size and how many of its networks are high performing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupSummary {
    /// Group label.
    pub group: String,
    /// Networks.
    pub networks: usize,
    /// High performing (population median).
    pub high: usize,
    /// Smallest and largest final loss.
    pub final_loss_range: [f64; 2],
}

/// The cross-validation output (`aelle/crossval.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrossValidationReport {
    /// The settings.
    pub config: CrossValidationConfig,
    /// Network ids (sorted), the order of every per-network vector.
    pub networks: Vec<String>,
    /// Per group.
    pub groups: Vec<GroupSummary>,
    /// The population median final loss ("high" = strictly below).
    pub label_threshold: f64,
    /// One summary per evaluation point.
    pub points: Vec<PointSummary>,
    /// Every fold's held-out networks and cuts.
    pub folds: Vec<FoldRecord>,
    /// Every out-of-fold score.
    pub out_of_fold: Vec<OutOfFoldScores>,
    /// What the numbers say, in words.
    pub conclusions: Vec<String>,
}

/// The population as the evaluation sees it: networks (sorted ids), their groups, labels and
/// final losses, and the kept rows of each.
pub(crate) struct Networks {
    pub ids: Vec<String>,
    pub groups: Vec<String>,
    pub group_of: Vec<usize>,
    pub final_loss: Vec<f64>,
    pub label: Vec<bool>,
    pub cell_label: Vec<bool>,
    pub label_threshold: f64,
}

impl Networks {
    /// From the kept rows `kept` of `rows`.
    pub(crate) fn of(rows: &[SpectrumRow], kept: &[usize]) -> Result<Self> {
        let mut per: BTreeMap<&str, (&str, f64)> = BTreeMap::new();
        for &i in kept {
            per.insert(&rows[i].network_id, (&rows[i].group, rows[i].final_loss));
        }
        let ids: Vec<String> = per.keys().map(ToString::to_string).collect();
        let mut groups: Vec<String> = per.values().map(|v| v.0.to_string()).collect();
        groups.sort();
        groups.dedup();
        let group_of: Vec<usize> =
            per.values().map(|v| groups.iter().position(|g| g == v.0).unwrap_or(0)).collect();
        let final_loss: Vec<f64> = per.values().map(|v| v.1).collect();
        let label_threshold = median(&final_loss)?.ok_or(AelleError::TooFew {
            what: "networks with finite spectra and losses",
            expected: 3,
            got: 0,
        })?;
        let label = final_loss.iter().map(|&f| f < label_threshold).collect();
        let mut cell_median = Vec::with_capacity(groups.len());
        for g in 0..groups.len() {
            let f: Vec<f64> =
                (0..ids.len()).filter(|&n| group_of[n] == g).map(|n| final_loss[n]).collect();
            cell_median.push(median(&f)?.unwrap_or(f64::INFINITY));
        }
        let cell_label = (0..ids.len()).map(|n| final_loss[n] < cell_median[group_of[n]]).collect();
        Ok(Self { ids, groups, group_of, final_loss, label, cell_label, label_threshold })
    }

    /// Position of `id` in [`Self::ids`] (sorted).
    pub(crate) fn index(&self, id: &str) -> Option<usize> {
        self.ids.binary_search_by(|x| x.as_str().cmp(id)).ok()
    }

    pub(crate) fn population(&self) -> Population<'_> {
        Population {
            group_of: &self.group_of,
            groups: &self.groups,
            label: &self.label,
            cell_label: &self.cell_label,
            final_loss: &self.final_loss,
        }
    }

    pub(crate) fn group_summaries(&self) -> Vec<GroupSummary> {
        self.groups
            .iter()
            .enumerate()
            .map(|(g, name)| {
                let members: Vec<usize> =
                    (0..self.ids.len()).filter(|&n| self.group_of[n] == g).collect();
                let f = members.iter().map(|&n| self.final_loss[n]);
                GroupSummary {
                    group: name.clone(),
                    networks: members.len(),
                    high: members.iter().filter(|&&n| self.label[n]).count(),
                    final_loss_range: [
                        f.clone().fold(f64::INFINITY, f64::min),
                        f.fold(f64::NEG_INFINITY, f64::max),
                    ],
                }
            })
            .collect()
    }
}

/// What one fold's fit produced.
struct FoldOutcome {
    record: FoldRecord,
    /// Per point: (network index, scores) of the held-out networks.
    scored: Vec<Vec<(usize, NetworkScores)>>,
}

/// Runs the repeated stratified K-fold cross-validation described in the module docs on
/// `rows`, with the features, autoencoder, evaluation points and classifier settings of
/// `config` and its `cross_validation` section. Deterministic given `config.seed`.
pub fn cross_validate(rows: &[SpectrumRow], config: &AelleConfig) -> Result<CrossValidationReport> {
    config.validate()?;
    validate_rows(rows)?;
    let cv = &config.cross_validation;
    let (kept, _excluded) = exclude_non_finite(rows);
    let nets = Networks::of(rows, &kept)?;
    if nets.ids.len() < cv.folds * 2 {
        return Err(AelleError::TooFew {
            what: "networks for cross-validation (2 per fold)",
            expected: cv.folds * 2,
            got: nets.ids.len(),
        });
    }
    let pairs: Vec<(String, String)> = (0..nets.ids.len())
        .map(|n| (nets.ids[n].clone(), nets.groups[nets.group_of[n]].clone()))
        .collect();
    let points = &config.evaluation.points;

    let assignments: Vec<BTreeMap<String, usize>> = (0..cv.repeats)
        .map(|r| stratified_folds(&pairs, cv.folds, derive_seed(config.seed, 1000 + r as u64)))
        .collect();
    let jobs: Vec<(usize, usize)> =
        (0..cv.repeats).flat_map(|r| (0..cv.folds).map(move |f| (r, f))).collect();
    let outcomes: Vec<FoldOutcome> = jobs
        .par_iter()
        .map(|&(r, f)| {
            let fold_of = |i: usize| assignments[r][&rows[i].network_id];
            let fit_rows: Vec<&SpectrumRow> =
                kept.iter().filter(|&&i| fold_of(i) != f).map(|&i| &rows[i]).collect();
            let held_out: Vec<usize> = kept.iter().copied().filter(|&i| fold_of(i) == f).collect();
            let seed = derive_seed(config.seed, 2000 + (r * cv.folds + f) as u64);
            let model = PretrainedAelle::fit(&fit_rows, &nets.groups, config, seed)?;
            let mut scored = Vec::with_capacity(points.len());
            for (pi, &point) in points.iter().enumerate() {
                let at: Vec<usize> =
                    nearest_rows(held_out.iter().copied(), |i| &rows[i], point, &config.evaluation)
                        .into_values()
                        .collect();
                let view: Vec<ScoredRow<'_>> =
                    at.iter().map(|&i| ScoredRow::of(&rows[i])).collect();
                let scores = model.score(&view, pi)?.unwrap_or_default();
                // Every scored row is a kept row, so its network is in `nets`.
                scored.push(
                    at.iter()
                        .zip(scores)
                        .filter_map(|(&i, s)| Some((nets.index(&rows[i].network_id)?, s)))
                        .collect(),
                );
            }
            let mut held_ids: Vec<String> = assignments[r]
                .iter()
                .filter(|(_, fold)| **fold == f)
                .map(|(id, _)| id.clone())
                .collect();
            held_ids.sort();
            Ok(FoldOutcome {
                record: FoldRecord {
                    repeat: r,
                    fold: f,
                    fitted_networks: model.readout.fitted_networks,
                    held_out: held_ids,
                    cuts: model
                        .readout
                        .points
                        .iter()
                        .map(|p| p.as_ref().map(|p| p.cuts.clone()))
                        .collect(),
                },
                scored,
            })
        })
        .collect::<Result<_>>()?;

    let n = nets.ids.len();
    let classifiers = ClassifierKind::ALL.len();
    let mut summaries = Vec::with_capacity(points.len());
    let mut out_of_fold = Vec::new();
    for (pi, &point) in points.iter().enumerate() {
        let mut ps = PointScores {
            scores: vec![vec![vec![None; n]; classifiers]; cv.repeats],
            high: vec![vec![vec![None; n]; classifiers]; cv.repeats],
        };
        for o in &outcomes {
            let r = o.record.repeat;
            for (net, s) in &o.scored[pi] {
                for c in 0..classifiers {
                    ps.scores[r][c][*net] = Some(s.scores[c]);
                    ps.high[r][c][*net] = Some(s.high[c]);
                }
            }
        }
        for r in 0..cv.repeats {
            for (c, &kind) in ClassifierKind::ALL.iter().enumerate() {
                out_of_fold.push(OutOfFoldScores {
                    repeat: r,
                    point_index: pi,
                    classifier: kind,
                    scores: ps.scores[r][c].clone(),
                });
            }
        }
        summaries.push(summarize_point(
            point,
            &nets.population(),
            &ps,
            cv,
            derive_seed(config.seed, 3000 + pi as u64),
        ));
    }
    let conclusions = conclusions(&summaries, cv.confidence, "cross-validated");
    Ok(CrossValidationReport {
        config: cv.clone(),
        networks: nets.ids.clone(),
        groups: nets.group_summaries(),
        label_threshold: nets.label_threshold,
        points: summaries,
        folds: outcomes.into_iter().map(|o| o.record).collect(),
        out_of_fold,
        conclusions,
    })
}

#[cfg(test)]
mod tests;
