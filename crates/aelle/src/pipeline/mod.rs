//! The whole analysis in one call: features, split by network, autoencoder, PCA and t-SNE of
//! the latent, and the early-performance classifiers evaluated on held-out test networks.
//!
//! Data flow (`n` kept rows, `L` features, `d` latent):
//!
//! 1. exclude non-finite rows (listed), split networks into train / validation / test;
//! 2. features `[n, L]`, standardised with training-row statistics;
//! 3. autoencoder trained on training rows, early-stopped on validation rows;
//! 4. latent `[n, d]`; PCA fitted on training rows, all rows projected to 2-D; t-SNE of a
//!    seeded sample of rows;
//! 5. "high performing" = final loss strictly below the median final loss of the networks
//!    (one value per network; a label definition that uses no prediction);
//! 6. at each evaluation point, one row per network (the nearest checkpoint), and per method:
//!    fit on training networks, choose the threshold on validation networks, report on test
//!    networks only.

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::classify::{
    ChosenThreshold, LogisticRegression, RidgeRegression, ThresholdCriterion, choose_threshold,
};
use crate::crossval::CrossValidationConfig;
use crate::error::{AelleError, Result};
use crate::features::{FeatureConfig, Standardizer};
use crate::matrix::Matrix;
use crate::metrics::{ConfusionCounts, auroc, median, spearman};
use crate::model::{AelleModel, AutoencoderConfig, AutoencoderPredictor, TrainingHistory};
use crate::pca::Pca;
use crate::split::{NetworkSplit, Split, SplitConfig, split_networks};
use crate::table::{ExcludedRow, SpectrumRow, exclude_non_finite, validate_rows};
use crate::tsne::{TsneConfig, tsne_2d};

mod evaluate;

use evaluate::EvaluationContext;

/// A point in training at which the classifiers are evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvaluationPoint {
    /// The checkpoint whose `training_fraction` is nearest this value (within the tolerance;
    /// ties go to the earlier checkpoint, which uses less information).
    Fraction(f64),
    /// The checkpoint with exactly this epoch.
    Epoch(u32),
}

/// Embedding settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbeddingConfig {
    /// t-SNE settings.
    pub tsne: TsneConfig,
    /// At most this many rows (a seeded sample) are embedded by t-SNE, whose cost grows as
    /// `n^2`; 0 disables t-SNE. Default 1000 (about a second or two per 1000 iterations).
    pub tsne_max_points: usize,
}

impl Default for EmbeddingConfig {
    fn default() -> Self {
        Self { tsne: TsneConfig::default(), tsne_max_points: 1000 }
    }
}

/// Evaluation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvaluationConfig {
    /// Where to evaluate. Default fractions 0, 0.1, 0.2, 0.5 (the published table).
    pub points: Vec<EvaluationPoint>,
    /// Largest `|training_fraction - target|` accepted for a `Fraction` point. Default 0.05
    /// (half of a 10 % checkpoint spacing).
    pub fraction_tolerance: f64,
    /// How thresholds are chosen on validation networks. Default Youden's J (balances recall
    /// and specificity); `F1` trades precision for recall. The reference tunes its PC1
    /// threshold on the networks it reports, which neither option reproduces (on purpose).
    pub threshold_criterion: ThresholdCriterion,
    /// L2 penalty of the logistic classifier on the standardised latent (penalty
    /// `l2 / 2 |w|^2` against a log-likelihood summed over ~hundreds of networks, so 1.0 only
    /// tames separable or collinear latents). Default 1.0. The reference has no logistic
    /// classifier.
    pub logistic_l2: f64,
    /// L2 penalty of the linear-regression baselines on standardised inputs. Default 1.0
    /// (keeps the full-spectrum fit well posed when `L` approaches the number of networks;
    /// the reference uses ordinary least squares).
    pub ridge_l2: f64,
}

impl Default for EvaluationConfig {
    fn default() -> Self {
        Self {
            points: [0.0, 0.1, 0.2, 0.5].into_iter().map(EvaluationPoint::Fraction).collect(),
            fraction_tolerance: 0.05,
            threshold_criterion: ThresholdCriterion::Youden,
            logistic_l2: 1.0,
            ridge_l2: 1.0,
        }
    }
}

/// Everything the analysis needs. Every sub-config documents its defaults; the master seed
/// defaults to 0.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AelleConfig {
    /// Master seed: the split, weight init, dropout, batch order and t-SNE all derive from it.
    pub seed: u64,
    /// Feature construction.
    pub features: FeatureConfig,
    /// Network split.
    pub split: SplitConfig,
    /// Autoencoder and its training.
    pub autoencoder: AutoencoderConfig,
    /// PCA / t-SNE.
    pub embedding: EmbeddingConfig,
    /// Classifiers and metrics.
    pub evaluation: EvaluationConfig,
    /// Cross-validation, bootstrap intervals and controls ([`crate::crossval`]).
    pub cross_validation: CrossValidationConfig,
}

impl AelleConfig {
    /// Checks every sub-config.
    pub fn validate(&self) -> Result<()> {
        self.features.validate()?;
        self.split.validate()?;
        self.autoencoder.validate()?;
        self.cross_validation.validate()?;
        let e = &self.evaluation;
        if !(e.fraction_tolerance >= 0.0 && e.fraction_tolerance.is_finite()) {
            return Err(AelleError::InvalidConfig {
                field: "evaluation.fraction_tolerance",
                expected: "a finite tolerance >= 0",
                got: e.fraction_tolerance.to_string(),
            });
        }
        self.embedding.tsne.validate()?;
        if self.embedding.tsne_max_points > MAX_TSNE_POINTS {
            return Err(AelleError::InvalidConfig {
                field: "embedding.tsne_max_points",
                expected: "0 (no t-SNE) ..= 20000 (its cost and memory grow as n^2)",
                got: self.embedding.tsne_max_points.to_string(),
            });
        }
        if e.points.is_empty() {
            return Err(AelleError::InvalidConfig {
                field: "evaluation.points",
                expected: "at least one point, e.g. [{ fraction = 0.1 }]",
                got: "[]".into(),
            });
        }
        for p in &e.points {
            if let EvaluationPoint::Fraction(f) = p
                && !(0.0..=1.0).contains(f)
            {
                return Err(AelleError::InvalidConfig {
                    field: "evaluation.points",
                    expected: "fractions in [0, 1]",
                    got: f.to_string(),
                });
            }
        }
        if !(e.logistic_l2 > 0.0 && e.logistic_l2.is_finite()) {
            return Err(AelleError::InvalidConfig {
                field: "evaluation.logistic_l2",
                expected: "a positive finite penalty",
                got: e.logistic_l2.to_string(),
            });
        }
        if !(e.ridge_l2 >= 0.0 && e.ridge_l2.is_finite()) {
            return Err(AelleError::InvalidConfig {
                field: "evaluation.ridge_l2",
                expected: "a finite penalty >= 0",
                got: e.ridge_l2.to_string(),
            });
        }
        Ok(())
    }
}

/// Largest `embedding.tsne_max_points` accepted.
pub const MAX_TSNE_POINTS: usize = 20_000;

impl AelleConfig {
    /// Estimated peak memory of the analysis of `rows` spectrum rows, in bytes (checked
    /// arithmetic; `None` on overflow): the feature matrices (raw, standardised,
    /// reconstructed: `3 rows L` values), per concurrent fit (one per rayon thread) the
    /// parameters with their gradients and two Adam moments (`4 P`) and a batch's activations,
    /// and t-SNE's `n^2` affinity matrix, all `f64`.
    pub fn memory_estimate(&self, rows: usize) -> Option<u64> {
        let l = self.features.length as u64;
        let params = self.autoencoder.parameter_count(self.features.length)?;
        let h = self.autoencoder.hidden_width.unwrap_or((self.features.length / 4).max(1)) as u64;
        let d = self.autoencoder.latent_dim as u64;
        let rows = rows as u64;
        let batch = (self.autoencoder.batch_size as u64).min(rows.max(1));
        let fits = rayon::current_num_threads() as u64;
        let features = 3u64.checked_mul(rows)?.checked_mul(l)?;
        let per_fit = params.checked_mul(4)?.checked_add(
            batch
                .checked_mul(l.checked_mul(2)?.checked_add(h.checked_mul(2)?)?.checked_add(d)?)?
                .checked_mul(4)?,
        )?;
        let tsne = (self.embedding.tsne_max_points as u64).min(rows).pow(2);
        let values = features.checked_add(per_fit.checked_mul(fits)?)?.checked_add(tsne)?;
        values.checked_mul(8)
    }

    /// [`AelleConfig::memory_estimate`] of `rows` rows against the machine's memory.
    pub fn check_memory(&self, rows: usize) -> Result<u64> {
        Ok(aelle_support::mem::check_fits(
            format!(
                "the AeLLE analysis of {rows} rows (features.length = {}, autoencoder.latent_dim = {}, hidden width {})",
                self.features.length,
                self.autoencoder.latent_dim,
                self.autoencoder.hidden_width.unwrap_or((self.features.length / 4).max(1))
            ),
            self.memory_estimate(rows),
        )?)
    }
}

/// The row of each network nearest `point`: among the candidates `c` (row `row_of(c)`), per network id the one whose `training_fraction` is nearest a `Fraction` point
/// (within `config.fraction_tolerance`; ties go to the earlier checkpoint, which uses less
/// information) or whose epoch equals an `Epoch` point. Returns network id -> candidate.
pub(crate) fn nearest_rows<'r, C: Copy>(
    candidates: impl IntoIterator<Item = C>,
    row_of: impl Fn(C) -> &'r SpectrumRow,
    point: EvaluationPoint,
    config: &EvaluationConfig,
) -> BTreeMap<&'r str, C> {
    let mut best: BTreeMap<&str, (f64, f64, C)> = BTreeMap::new();
    for c in candidates {
        let r = row_of(c);
        let distance = match point {
            EvaluationPoint::Fraction(f) => {
                let d = (r.training_fraction - f).abs();
                if d > config.fraction_tolerance + 1e-12 {
                    continue;
                }
                d
            }
            EvaluationPoint::Epoch(e) => {
                if r.epoch != e {
                    continue;
                }
                0.0
            }
        };
        let candidate = (distance, r.training_fraction, c);
        let entry = best.entry(&r.network_id).or_insert(candidate);
        if (candidate.0, candidate.1) < (entry.0, entry.1) {
            *entry = candidate;
        }
    }
    best.into_iter().map(|(id, (_, _, c))| (id, c)).collect()
}

/// Independent seed streams derived from the master seed.
pub(crate) fn derive_seed(seed: u64, stream: u64) -> u64 {
    // SplitMix64 finaliser of (seed, stream).
    let mut z = seed.wrapping_add(stream.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Per-row output, for plotting.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RowEmbedding {
    /// Index in the input table.
    pub row: usize,
    /// Network id.
    pub network_id: String,
    /// Epoch.
    pub epoch: u32,
    /// Fraction of training.
    pub training_fraction: f64,
    /// Group label.
    pub group: String,
    /// Split of the row's network.
    pub split: Split,
    /// Final loss (the target).
    pub final_loss: f64,
    /// Current loss at this checkpoint.
    pub current_loss: f64,
    /// The predictor head's estimate of the final loss.
    pub predicted_final_loss: f64,
    /// Coordinates on the first `min(2, d)` principal components of the latent.
    pub pca: Vec<f64>,
    /// t-SNE coordinates, for rows in the t-SNE sample.
    pub tsne: Option<[f64; 2]>,
}

/// Which early classifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassifierKind {
    /// Threshold on PC1 of the latent (the published AeLLE classifier), oriented on training
    /// networks so that higher score = lower final loss.
    AellePc1,
    /// Logistic regression on the full latent.
    AelleLogistic,
    /// The autoencoder's own predictor head: predicted final loss below the label median.
    AellePredictorHead,
    /// Current loss at or below the median current loss of the reference networks at this
    /// point (the test networks in the single split; the training networks in
    /// cross-validation): the published loss-based baseline, which uses no labels.
    LossBased,
    /// Control: logistic regression on the hyperparameters alone (cell one-hot, and per cell
    /// each hyperparameter and its square), no spectrum (cross-validation only).
    Hyperparameters,
    /// Logistic regression on the latent and the hyperparameter design together: whether the
    /// spectrum adds to what the user already knows (cross-validation only).
    AelleWithHyperparameters,
    /// Control: the AeLLE logistic scores measured against randomly permuted labels (a fresh
    /// permutation per repeat and per bootstrap resample), i.e. the metrics of a classifier
    /// that knows nothing, at this population size; its value is the mean and its interval the
    /// percentile interval of that permutation null (cross-validation and transfer only).
    ShuffledLabels,
}

impl ClassifierKind {
    /// Every classifier, in report order.
    pub const ALL: [ClassifierKind; 7] = [
        ClassifierKind::AellePc1,
        ClassifierKind::AelleLogistic,
        ClassifierKind::AellePredictorHead,
        ClassifierKind::AelleWithHyperparameters,
        ClassifierKind::Hyperparameters,
        ClassifierKind::LossBased,
        ClassifierKind::ShuffledLabels,
    ];

    /// The report's name of the classifier.
    pub fn label(self) -> &'static str {
        match self {
            ClassifierKind::AellePc1 => "AeLLE PC1",
            ClassifierKind::AelleLogistic => "AeLLE logistic",
            ClassifierKind::AellePredictorHead => "AeLLE predictor head",
            ClassifierKind::LossBased => "loss-based",
            ClassifierKind::Hyperparameters => "hyperparameters only",
            ClassifierKind::AelleWithHyperparameters => "AeLLE + hyperparameters",
            ClassifierKind::ShuffledLabels => "shuffled-label control",
        }
    }

    /// Position in [`Self::ALL`].
    pub fn index(self) -> usize {
        Self::ALL.iter().position(|&k| k == self).unwrap_or(0)
    }
}

/// Test-set metrics of one classifier at one evaluation point. `None` = undefined (see
/// [`crate::metrics`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassifierEvaluation {
    /// The classifier.
    pub classifier: ClassifierKind,
    /// Cut on the classifier's score, if it has one.
    pub threshold: Option<ChosenThreshold>,
    /// Test confusion counts.
    pub confusion: ConfusionCounts,
    /// Precision on test networks.
    pub precision: Option<f64>,
    /// Recall on test networks.
    pub recall: Option<f64>,
    /// F1 on test networks.
    pub f1: Option<f64>,
    /// AUROC of the continuous score on test networks.
    pub auroc: Option<f64>,
    /// Spearman correlation between the classifier's predicted-loss-like score (lower =
    /// better) and the final loss, on test networks.
    pub spearman_with_final_loss: Option<f64>,
}

/// The reference's simple regression baselines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BaselineKind {
    /// Ridge regression from the full (standardised, resampled) spectrum.
    FullSpectrum,
    /// Linear regression from the largest exponent.
    MaxExponent,
    /// Linear regression from the mean exponent.
    MeanExponent,
}

/// Test-set metrics of one regression baseline (fitted on training networks at the point).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BaselineEvaluation {
    /// Which baseline.
    pub baseline: BaselineKind,
    /// Spearman of predicted vs final loss.
    pub spearman_with_final_loss: Option<f64>,
    /// Root mean squared error.
    pub rmse: Option<f64>,
    /// Coefficient of determination `1 - SS_res / SS_tot` (undefined for constant targets).
    pub r_squared: Option<f64>,
    /// Classification "predicted loss below the label median" on test networks.
    pub confusion: ConfusionCounts,
    /// Its precision.
    pub precision: Option<f64>,
    /// Its recall.
    pub recall: Option<f64>,
    /// Its F1.
    pub f1: Option<f64>,
    /// AUROC of the negated predicted loss.
    pub auroc: Option<f64>,
}

/// Network counts per split at an evaluation point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SplitCounts {
    /// Training networks with a checkpoint at the point.
    pub train: usize,
    /// Validation networks with a checkpoint at the point.
    pub validation: usize,
    /// Test networks with a checkpoint at the point.
    pub test: usize,
}

/// All numbers at one evaluation point (every metric from test networks).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PointEvaluation {
    /// The point.
    pub point: EvaluationPoint,
    /// Networks with a checkpoint at the point, per split.
    pub networks: SplitCounts,
    /// Fraction of test networks that are high performing.
    pub test_positive_fraction: Option<f64>,
    /// Why this point was not evaluated (too few networks in a split), if it was not.
    pub skipped: Option<String>,
    /// AeLLE classifiers and the loss-based classifier.
    pub classifiers: Vec<ClassifierEvaluation>,
    /// Regression baselines.
    pub baselines: Vec<BaselineEvaluation>,
}

/// The analysis output (serialisable for `aelle/metrics.json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AelleReport {
    /// Rows given.
    pub rows_in: usize,
    /// Rows used after exclusions.
    pub rows_used: usize,
    /// Rows left out, with reasons (never replaced).
    pub excluded: Vec<ExcludedRow>,
    /// The split of every network that has a kept row.
    pub split: NetworkSplit,
    /// Final-loss median defining "high performing" (final loss strictly below it).
    pub high_performance_threshold: f64,
    /// Explained-variance ratio of each latent principal component (training rows).
    pub pca_explained_variance_ratio: Vec<f64>,
    /// Perplexity actually used by t-SNE (lowered for small samples), if t-SNE ran.
    pub tsne_perplexity: Option<f64>,
    /// One entry per kept row.
    pub rows: Vec<RowEmbedding>,
    /// One entry per evaluation point.
    pub evaluations: Vec<PointEvaluation>,
    /// Autoencoder training curves.
    pub training: TrainingHistory,
}

/// The report plus the trained model (to save with [`AelleModel::save`]).
#[derive(Debug, Clone)]
pub struct AelleRun {
    /// Numbers and coordinates.
    pub report: AelleReport,
    /// The trained model.
    pub model: AelleModel,
}

/// Runs the whole analysis on `rows` (see module docs). Deterministic given `config.seed`.
pub fn run_aelle(rows: &[SpectrumRow], config: &AelleConfig) -> Result<AelleRun> {
    config.validate()?;
    validate_rows(rows)?;
    let (kept, excluded) = exclude_non_finite(rows);
    if kept.is_empty() {
        return Err(AelleError::TooFew {
            what: "rows with finite spectra and losses",
            expected: 3,
            got: 0,
        });
    }
    let networks: Vec<(String, String)> =
        kept.iter().map(|&i| (rows[i].network_id.clone(), rows[i].group.clone())).collect();
    let split = split_networks(&networks, &config.split, derive_seed(config.seed, 1))?;
    let split_of_kept: Vec<Split> =
        kept.iter().map(|&i| split.split_of(&rows[i].network_id).unwrap_or(Split::Test)).collect();

    // Features.
    let raw: Vec<Vec<f64>> = kept
        .iter()
        .map(|&i| config.features.spectrum_to_features(&rows[i].spectrum))
        .collect::<Result<_>>()?;
    let raw = Matrix::from_rows(&raw)?;
    let in_split =
        |s: Split| -> Vec<usize> { (0..kept.len()).filter(|&k| split_of_kept[k] == s).collect() };
    let (train_k, val_k) = (in_split(Split::Train), in_split(Split::Validation));
    let standardizer = if config.features.standardize {
        Standardizer::fit(&raw.select_rows(&train_k))?
    } else {
        Standardizer::identity(config.features.length)
    };
    let features = standardizer.apply(&raw)?;
    let final_of = |k: usize| rows[kept[k]].final_loss;

    // Autoencoder.
    let train_y: Vec<f64> = train_k.iter().map(|&k| final_of(k)).collect();
    let val_y: Vec<f64> = val_k.iter().map(|&k| final_of(k)).collect();
    let (network, training) = AutoencoderPredictor::train(
        &features.select_rows(&train_k),
        &train_y,
        &features.select_rows(&val_k),
        &val_y,
        &config.autoencoder,
        derive_seed(config.seed, 2),
    )?;
    let latent = network.encode(&features)?;
    let predicted = network.predict_final_loss(&features)?;

    // Embeddings.
    let pca = Pca::fit(&latent.select_rows(&train_k))?;
    let n_pc = latent.cols().min(2);
    let pcs = pca.transform(&latent, n_pc)?;
    let (tsne_coords, tsne_perplexity) =
        run_tsne(&latent, &config.embedding, derive_seed(config.seed, 3))?;

    // Labels.
    let mut final_per_network: BTreeMap<&str, f64> = BTreeMap::new();
    for &i in &kept {
        final_per_network.insert(&rows[i].network_id, rows[i].final_loss);
    }
    let finals: Vec<f64> = final_per_network.values().copied().collect();
    let label_threshold = median(&finals)?.unwrap_or(0.0);

    let ctx = EvaluationContext {
        rows,
        kept: &kept,
        split_of_kept: &split_of_kept,
        features: &features,
        latent: &latent,
        pc1: pcs.column(0),
        predicted: &predicted,
        label_threshold,
        config: &config.evaluation,
    };
    let evaluations = config
        .evaluation
        .points
        .iter()
        .map(|&p| ctx.evaluate_point(p))
        .collect::<Result<Vec<_>>>()?;

    let row_embeddings = kept
        .iter()
        .enumerate()
        .map(|(k, &i)| RowEmbedding {
            row: i,
            network_id: rows[i].network_id.clone(),
            epoch: rows[i].epoch,
            training_fraction: rows[i].training_fraction,
            group: rows[i].group.clone(),
            split: split_of_kept[k],
            final_loss: rows[i].final_loss,
            current_loss: rows[i].current_loss,
            predicted_final_loss: predicted[k],
            pca: pcs.row(k).to_vec(),
            tsne: tsne_coords.get(&k).copied(),
        })
        .collect();

    let report = AelleReport {
        rows_in: rows.len(),
        rows_used: kept.len(),
        excluded,
        split,
        high_performance_threshold: label_threshold,
        pca_explained_variance_ratio: pca.explained_variance_ratio(),
        tsne_perplexity,
        rows: row_embeddings,
        evaluations,
        training,
    };
    let model = AelleModel {
        features: config.features.clone(),
        standardizer,
        autoencoder_config: config.autoencoder.clone(),
        network,
    };
    Ok(AelleRun { report, model })
}

/// Kept-row index -> t-SNE coordinates.
type TsneCoordinates = BTreeMap<usize, [f64; 2]>;

/// t-SNE of at most `tsne_max_points` rows (seeded sample, kept in row order).
fn run_tsne(
    latent: &Matrix,
    config: &EmbeddingConfig,
    seed: u64,
) -> Result<(TsneCoordinates, Option<f64>)> {
    let n = latent.rows();
    let m = n.min(config.tsne_max_points);
    if m < 4 {
        return Ok((BTreeMap::new(), None));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut chosen: Vec<usize> =
        if m == n { (0..n).collect() } else { sample(&mut rng, n, m).into_vec() };
    chosen.sort_unstable();
    let perplexity = config.tsne.perplexity.min((m - 1) as f64 / 3.0).max(1.0);
    let tsne_config = TsneConfig { perplexity, ..config.tsne.clone() };
    let y = tsne_2d(&latent.select_rows(&chosen), &tsne_config, derive_seed(seed, 1))?;
    let coords = chosen.iter().enumerate().map(|(j, &k)| (k, [y.get(j, 0), y.get(j, 1)])).collect();
    Ok((coords, Some(perplexity)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(c: &AelleConfig) -> &'static str {
        match c.validate() {
            Err(AelleError::InvalidConfig { field, .. }) => field,
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
    }

    /// Issue 16: values that were accepted and failed late (or never ended).
    #[test]
    fn regression_validation_names_the_field_of_every_bad_value() {
        let base = AelleConfig::default();
        base.validate().unwrap();
        for v in [f64::NAN, -1.0, 0.0, f64::INFINITY] {
            let mut c = base.clone();
            c.embedding.tsne.perplexity = v;
            assert_eq!(field_of(&c), "embedding.tsne.perplexity", "{v}");
        }
        let mut c = base.clone();
        c.embedding.tsne.early_exaggeration = f64::INFINITY;
        assert_eq!(field_of(&c), "embedding.tsne.early_exaggeration");
        let mut c = base.clone();
        c.embedding.tsne.iterations = 1_000_000_000;
        assert_eq!(field_of(&c), "embedding.tsne.iterations");
        let mut c = base.clone();
        c.embedding.tsne.learning_rate = Some(f64::NAN);
        assert_eq!(field_of(&c), "embedding.tsne.learning_rate");
        let mut c = base.clone();
        c.evaluation.points.clear();
        assert_eq!(field_of(&c), "evaluation.points");
        let mut c = base.clone();
        c.autoencoder.batch_size = (1 << 63) - 1;
        assert_eq!(field_of(&c), "autoencoder.batch_size");
        let mut c = base.clone();
        c.autoencoder.latent_dim = 1_000_000_000;
        assert_eq!(field_of(&c), "autoencoder.latent_dim");
        let mut c = base.clone();
        c.features.length = 1_000_000_000;
        assert_eq!(field_of(&c), "features.length");
        let mut c = base.clone();
        c.autoencoder.learning_rate = 1e308;
        assert_eq!(field_of(&c), "autoencoder.learning_rate");
        // unknown keys inside an alpha stage
        let e = serde_json::from_str::<AelleConfig>(
            r#"{"autoencoder": {"alpha_stages": [{"alpha": 1, "epochs": 1, "zzz": 1}]}}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("zzz"), "{e}");
    }

    #[test]
    fn memory_estimate_counts_the_model_and_refuses_beyond_the_machine() {
        let mut c = AelleConfig::default();
        // L = 128, H = 32, d = 32: L -> H, H -> d, d -> H, H -> L, d -> 1 with biases.
        assert_eq!(
            c.autoencoder.parameter_count(128),
            Some((128 * 32 + 32) + (32 * 32 + 32) + (32 * 32 + 32) + (32 * 128 + 128) + (32 + 1))
        );
        assert!(c.check_memory(1000).is_ok());
        c.features.length = 1 << 16;
        c.autoencoder.hidden_width = Some(1 << 16);
        c.autoencoder.latent_dim = 1 << 16;
        let needed = c.memory_estimate(1000).unwrap();
        assert!(needed > 1 << 38, "{needed}");
        let e = c.check_memory(1000).unwrap_err().to_string();
        assert!(e.contains("needs about") && e.contains("features.length = 65536"), "{e}");
    }

    #[test]
    fn config_round_trips_through_json_and_rejects_typos() {
        let config = AelleConfig::default();
        let text = serde_json::to_string(&config).unwrap();
        assert!(text.contains("{\"fraction\":0.1}"), "{text}");
        let back: AelleConfig = serde_json::from_str(&text).unwrap();
        assert_eq!(back, config);
        let partial: AelleConfig =
            serde_json::from_str(r#"{"seed": 3, "features": {"length": 64}}"#).unwrap();
        assert_eq!(partial.seed, 3);
        assert_eq!(partial.features.length, 64);
        assert_eq!(partial.autoencoder, AutoencoderConfig::default());
        assert!(serde_json::from_str::<AelleConfig>(r#"{"sed": 3}"#).is_err());
    }

    #[test]
    fn invalid_evaluation_settings_are_rejected() {
        let mut config = AelleConfig::default();
        config.evaluation.points.push(EvaluationPoint::Fraction(1.5));
        assert!(matches!(
            config.validate(),
            Err(AelleError::InvalidConfig { field: "evaluation.points", .. })
        ));
        let mut config = AelleConfig::default();
        config.evaluation.logistic_l2 = 0.0;
        assert!(config.validate().is_err());
    }

    #[test]
    fn derived_seeds_differ_per_stream() {
        assert_ne!(derive_seed(0, 1), derive_seed(0, 2));
        assert_ne!(derive_seed(0, 1), derive_seed(1, 1));
    }
}
