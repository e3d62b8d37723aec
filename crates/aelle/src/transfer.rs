//! A pre-trained AeLLE applied to another population, with no refitting: the autoencoder,
//! PCA, classifiers and cuts of a [`PretrainedAelle`] fitted on population A score every
//! network of population B at the model's evaluation points; the metrics (with bootstrap
//! intervals over B's networks) use B's own labels (final loss below B's median final loss,
//! and within-cell below the cell's median). Spectra of a different length (another hidden
//! size) go through the model's feature resampling.

use serde::{Deserialize, Serialize};

use crate::crossval::summary::{PointScores, summarize_point};
use crate::crossval::{
    CrossValidationConfig, GroupSummary, Networks, PointSummary, PretrainedAelle, ScoredRow,
    conclusions,
};
use crate::error::Result;
use crate::pipeline::{ClassifierKind, EvaluationConfig, nearest_rows};
use crate::table::{SpectrumRow, exclude_non_finite, validate_rows};

/// The transfer output (`transfer/<name>.json` of population B's run folder).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransferReport {
    /// Networks the model was fitted on (population A).
    pub model_fitted_networks: usize,
    /// Population B's network ids (sorted).
    pub networks: Vec<String>,
    /// Population B per group.
    pub groups: Vec<GroupSummary>,
    /// B's median final loss ("high" = strictly below).
    pub label_threshold: f64,
    /// One summary per evaluation point of the model (one repeat: nothing is refitted).
    pub points: Vec<PointSummary>,
    /// What the numbers say, in words.
    pub conclusions: Vec<String>,
}

/// Scores `rows` (population B) with `model` and summarises as described in the module docs;
/// `intervals` gives the bootstrap settings and `evaluation` the fraction tolerance of the
/// checkpoint nearest each point.
pub fn transfer(
    model: &PretrainedAelle,
    rows: &[SpectrumRow],
    intervals: &CrossValidationConfig,
    evaluation: &EvaluationConfig,
    seed: u64,
) -> Result<TransferReport> {
    intervals.validate()?;
    validate_rows(rows)?;
    let (kept, _) = exclude_non_finite(rows);
    let nets = Networks::of(rows, &kept)?;
    let n = nets.ids.len();
    let classifiers = ClassifierKind::ALL.len();
    let mut points = Vec::new();
    for (pi, &point) in model.readout.evaluation_points.iter().enumerate() {
        let at: Vec<usize> = nearest_rows(kept.iter().copied(), |i| &rows[i], point, evaluation)
            .into_values()
            .collect();
        let view: Vec<ScoredRow<'_>> = at.iter().map(|&i| ScoredRow::of(&rows[i])).collect();
        let Some(scores) = model.score(&view, pi)? else {
            continue;
        };
        let mut ps = PointScores {
            scores: vec![vec![vec![None; n]; classifiers]],
            high: vec![vec![vec![None; n]; classifiers]],
        };
        // Every scored row is a kept row, so its network is in `nets`.
        for (net, s) in
            at.iter().zip(scores).filter_map(|(&i, s)| Some((nets.index(&rows[i].network_id)?, s)))
        {
            for c in 0..classifiers {
                ps.scores[0][c][net] = Some(s.scores[c]);
                ps.high[0][c][net] = Some(s.high[c]);
            }
        }
        points.push(summarize_point(point, &nets.population(), &ps, intervals, seed ^ pi as u64));
    }
    Ok(TransferReport {
        model_fitted_networks: model.readout.fitted_networks,
        networks: nets.ids.clone(),
        groups: nets.group_summaries(),
        label_threshold: nets.label_threshold,
        conclusions: conclusions(&points, intervals.confidence, "transfer"),
        points,
    })
}
