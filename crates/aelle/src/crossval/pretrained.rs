//! One fitted AeLLE: the autoencoder and every read-out, fitted on a set of networks and
//! applied to others. Each cross-validation fold fits one on its training networks; fitted on a
//! whole population it is the pre-trained model that [`crate::transfer`] applies to another
//! population with no refitting.
//!
//! What the fit sees is explicit in the types: [`PretrainedAelle::fit`] takes the rows of the
//! networks it is fitted on (with their final losses); [`PretrainedAelle::score`] takes a
//! [`ScoredRow`], which has no final loss, so no label of a scored network can reach a score or
//! a threshold.
//!
//! The fit, on rows of the fitting networks only:
//! 1. label = final loss strictly below the median final loss of the fitting networks;
//! 2. the fitting networks split (stratified by group) into inner-training and
//!    inner-validation networks (`1 / inner_validation_fraction` folds, the first held out);
//! 3. feature standardisation on inner-training rows; the autoencoder trained on
//!    inner-training rows and early-stopped on inner-validation rows (all checkpoints);
//! 4. PCA of the latent of inner-training rows;
//! 5. at each evaluation point (one row per network, the nearest checkpoint), every
//!    classifier of [`ClassifierKind::ALL`] fitted on inner-training networks and its threshold
//!    chosen on inner-validation networks; the loss-based cut is the median current loss of
//!    all fitting networks at the point and the predictor head's the median final loss of the
//!    fitting networks, so both use the fitting networks only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::stratified_folds;
use crate::classify::{LogisticRegression, choose_threshold};
use crate::error::{AelleError, Result};
use crate::features::Standardizer;
use crate::matrix::Matrix;
use crate::metrics::{median, spearman};
use crate::model::{AelleModel, AutoencoderPredictor};
use crate::pca::Pca;
use crate::pipeline::{AelleConfig, ClassifierKind, EvaluationPoint, derive_seed, nearest_rows};
use crate::table::SpectrumRow;

/// What scoring sees of a network's checkpoint: everything observable at that point in
/// training, and no final loss.
#[derive(Debug, Clone, Copy)]
pub struct ScoredRow<'a> {
    /// The mean spectrum.
    pub spectrum: &'a [f64],
    /// The test loss at this checkpoint.
    pub current_loss: f64,
    /// The group (cell).
    pub group: &'a str,
    /// The network's hyperparameters.
    pub hyperparameters: &'a BTreeMap<String, f64>,
}

impl<'a> ScoredRow<'a> {
    /// The observable part of `row`.
    pub fn of(row: &'a SpectrumRow) -> Self {
        Self {
            spectrum: &row.spectrum,
            current_loss: row.current_loss,
            group: &row.group,
            hyperparameters: &row.hyperparameters,
        }
    }
}

/// The hyperparameter design: the group one-hot and, per group, each hyperparameter and its
/// square (`G + 2 G H` columns): a per-cell quadratic in every hyperparameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HyperparameterDesign {
    /// Group labels, sorted (one-hot order).
    pub groups: Vec<String>,
    /// Hyperparameter names, sorted.
    pub names: Vec<String>,
}

impl HyperparameterDesign {
    /// The design row of one network; a group not in [`Self::groups`] gets a zero one-hot.
    pub fn row(&self, group: &str, hyperparameters: &BTreeMap<String, f64>) -> Result<Vec<f64>> {
        let g = self.groups.len();
        let mut out = vec![0.0; g + 2 * g * self.names.len()];
        if let Some(gi) = self.groups.iter().position(|x| x == group) {
            out[gi] = 1.0;
            for (h, name) in self.names.iter().enumerate() {
                let v = *hyperparameters.get(name).ok_or_else(|| AelleError::InvalidConfig {
                    field: "hyperparameters",
                    expected: "every hyperparameter the model was fitted with",
                    got: format!("no `{name}` (have {:?})", hyperparameters.keys()),
                })?;
                out[g + 2 * (gi * self.names.len() + h)] = v;
                out[g + 2 * (gi * self.names.len() + h) + 1] = v * v;
            }
        }
        Ok(out)
    }

    /// The design rows of `rows` as a matrix `[n, G + 2 G H]`.
    fn matrix<'r>(&self, rows: impl Iterator<Item = ScoredRow<'r>>) -> Result<Matrix> {
        let d = rows.map(|r| self.row(r.group, r.hyperparameters)).collect::<Result<Vec<_>>>()?;
        Matrix::from_rows(&d)
    }
}

/// `[z | d]`: the columns of `d` appended to those of `z` (same rows).
fn joined(z: &Matrix, d: &Matrix) -> Result<Matrix> {
    let rows: Vec<Vec<f64>> = (0..z.rows()).map(|i| [z.row(i), d.row(i)].concat()).collect();
    Matrix::from_rows(&rows)
}

/// The read-outs fitted at one evaluation point. Scores are "higher = predicted high
/// performing"; a network is predicted high iff its score is at least the method's cut.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointReadout {
    /// The point.
    pub point: EvaluationPoint,
    /// `-1` or `1`: PC1 times this grows with performance (oriented on inner-training rows).
    pub pc1_orientation: f64,
    /// Mean and standard deviation of the oriented PC1 on inner-training networks (PC1 scores
    /// are reported standardised, so scores of different fits are on one scale).
    pub pc1_mean: f64,
    /// See [`Self::pc1_mean`].
    pub pc1_scale: f64,
    /// Logistic read-out of the latent.
    pub logistic: LogisticRegression,
    /// Logistic regression on the hyperparameter design.
    pub hyperparameters: LogisticRegression,
    /// Logistic regression on the latent and the hyperparameter design.
    pub combined: LogisticRegression,
    /// Median current loss of the fitting networks at this point (the loss-based cut).
    pub loss_median: f64,
    /// The cut of each classifier, in [`ClassifierKind::ALL`] order.
    pub cuts: Vec<f64>,
}

/// The read-out part of a fitted AeLLE (saved as JSON next to the autoencoder).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Readout {
    /// Networks the model was fitted on.
    pub fitted_networks: usize,
    /// Median final loss of the fitting networks (their label threshold and the predictor
    /// head's cut).
    pub median_final_loss: f64,
    /// PCA of the inner-training latent.
    pub pca: Pca,
    /// The hyperparameter design.
    pub design: HyperparameterDesign,
    /// The evaluation points the read-outs were fitted at.
    pub evaluation_points: Vec<EvaluationPoint>,
    /// One entry per evaluation point; `None` where too few fitting networks have a
    /// checkpoint at it.
    pub points: Vec<Option<PointReadout>>,
}

/// A fitted AeLLE: the autoencoder model and its read-outs.
#[derive(Debug, Clone)]
pub struct PretrainedAelle {
    /// Features, standardisation and the autoencoder/predictor.
    pub model: AelleModel,
    /// PCA, classifiers and cuts per evaluation point.
    pub readout: Readout,
}

/// The scores of one network at one point, in [`ClassifierKind::ALL`] order, and whether each
/// classifier predicts it high performing.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkScores {
    /// Score per classifier (higher = predicted better).
    pub scores: Vec<f64>,
    /// `score >= cut` per classifier.
    pub high: Vec<bool>,
}

impl PretrainedAelle {
    /// Fits on a whole population table (validated; rows with non-finite values excluded as in
    /// [`crate::run_aelle`]): the pre-trained model that [`crate::transfer`] applies to other
    /// populations. Deterministic given `config.seed`.
    pub fn fit_population(rows: &[SpectrumRow], config: &AelleConfig) -> Result<Self> {
        config.validate()?;
        crate::table::validate_rows(rows)?;
        let (kept, _) = crate::table::exclude_non_finite(rows);
        let kept_rows: Vec<&SpectrumRow> = kept.iter().map(|&i| &rows[i]).collect();
        let mut groups: Vec<String> = kept_rows.iter().map(|r| r.group.clone()).collect();
        groups.sort();
        groups.dedup();
        Self::fit(&kept_rows, &groups, config, derive_seed(config.seed, 4000))
    }

    /// Fits on `rows` (all checkpoints of the fitting networks; finite, validated), with the
    /// evaluation points, features and autoencoder of `config`. `groups` and the
    /// hyperparameter names fix the design (pass the whole population's groups so that every
    /// fit has the same columns). Deterministic given `seed`.
    pub fn fit(
        rows: &[&SpectrumRow],
        groups: &[String],
        config: &AelleConfig,
        seed: u64,
    ) -> Result<Self> {
        let design = HyperparameterDesign {
            groups: groups.to_vec(),
            names: rows
                .first()
                .map(|r| r.hyperparameters.keys().cloned().collect())
                .unwrap_or_default(),
        };
        let mut finals: BTreeMap<&str, (&str, f64)> = BTreeMap::new();
        for r in rows {
            finals.insert(&r.network_id, (&r.group, r.final_loss));
        }
        if finals.len() < 3 {
            return Err(AelleError::TooFew {
                what: "networks to fit AeLLE on",
                expected: 3,
                got: finals.len(),
            });
        }
        let final_values: Vec<f64> = finals.values().map(|v| v.1).collect();
        // At least 3 finite values, so the median exists.
        let median_final_loss = median(&final_values)?.unwrap_or(f64::NAN);
        let label = |r: &SpectrumRow| r.final_loss < median_final_loss;

        // Inner split of the fitting networks.
        let cv = &config.cross_validation;
        let inner_folds = ((1.0 / cv.inner_validation_fraction).round() as usize).max(2);
        let nets: Vec<(String, String)> =
            finals.iter().map(|(id, (g, _))| (id.to_string(), g.to_string())).collect();
        let inner = stratified_folds(&nets, inner_folds, derive_seed(seed, 1));
        let is_val = |r: &SpectrumRow| inner.get(r.network_id.as_str()) == Some(&0);
        let train_rows: Vec<usize> = (0..rows.len()).filter(|&i| !is_val(rows[i])).collect();
        let val_rows: Vec<usize> = (0..rows.len()).filter(|&i| is_val(rows[i])).collect();
        if train_rows.is_empty() || val_rows.is_empty() {
            return Err(AelleError::TooFew {
                what: "inner-training and inner-validation rows",
                expected: 1,
                got: train_rows.len().min(val_rows.len()),
            });
        }

        // Features and autoencoder.
        let raw: Vec<Vec<f64>> = rows
            .iter()
            .map(|r| config.features.spectrum_to_features(&r.spectrum))
            .collect::<Result<_>>()?;
        let raw = Matrix::from_rows(&raw)?;
        let standardizer = if config.features.standardize {
            Standardizer::fit(&raw.select_rows(&train_rows))?
        } else {
            Standardizer::identity(config.features.length)
        };
        let features = standardizer.apply(&raw)?;
        let target =
            |ks: &[usize]| -> Vec<f64> { ks.iter().map(|&k| rows[k].final_loss).collect() };
        let (network, _history) = AutoencoderPredictor::train(
            &features.select_rows(&train_rows),
            &target(&train_rows),
            &features.select_rows(&val_rows),
            &target(&val_rows),
            &config.autoencoder,
            derive_seed(seed, 2),
        )?;
        let latent = network.encode(&features)?;
        let pca = Pca::fit(&latent.select_rows(&train_rows))?;
        let pc1 = pca.transform(&latent, 1)?.column(0);

        // Read-outs per point.
        let mut points = Vec::with_capacity(config.evaluation.points.len());
        for &point in &config.evaluation.points {
            let nearest: Vec<usize> =
                nearest_rows(0..rows.len(), |k| rows[k], point, &config.evaluation)
                    .into_values()
                    .collect();
            let (train, val): (Vec<usize>, Vec<usize>) =
                nearest.iter().partition(|&&k| !is_val(rows[k]));
            if train.len() < 2 || val.is_empty() {
                points.push(None);
                continue;
            }
            let labels =
                |ks: &[usize]| -> Vec<bool> { ks.iter().map(|&k| label(rows[k])).collect() };
            let (train_labels, val_labels) = (labels(&train), labels(&val));
            let final_train = target(&train);
            let pc1_of = |ks: &[usize]| -> Vec<f64> { ks.iter().map(|&k| pc1[k]).collect() };
            let pc1_orientation = match spearman(&pc1_of(&train), &final_train)? {
                Some(rho) if rho > 0.0 => -1.0,
                _ => 1.0,
            };
            let oriented: Vec<Vec<f64>> =
                pc1_of(&train).iter().map(|v| vec![pc1_orientation * v]).collect();
            let pc1_stats = Standardizer::fit(&Matrix::from_rows(&oriented)?)?;

            let view =
                |ks: &[usize]| ks.iter().map(|&k| ScoredRow::of(rows[k])).collect::<Vec<_>>();
            let latent_train = latent.select_rows(&train);
            let design_train = design.matrix(view(&train).into_iter())?;
            let l2 = config.evaluation.logistic_l2;
            let logistic = LogisticRegression::fit(&latent_train, &train_labels, l2)?;
            let hyperparameters = LogisticRegression::fit(&design_train, &train_labels, l2)?;
            let combined =
                LogisticRegression::fit(&joined(&latent_train, &design_train)?, &train_labels, l2)?;
            let current: Vec<f64> = nearest.iter().map(|&k| rows[k].current_loss).collect();
            let loss_median = median(&current)?.unwrap_or(0.0);

            let mut readout = PointReadout {
                point,
                pc1_orientation,
                pc1_mean: pc1_stats.mean[0],
                pc1_scale: pc1_stats.scale[0],
                logistic,
                hyperparameters,
                combined,
                loss_median,
                cuts: vec![0.0; ClassifierKind::ALL.len()],
            };
            // Cuts: on inner-validation networks, except the two fixed-rule classifiers.
            let val_scores = readout.scores(
                &view(&val),
                &latent.select_rows(&val),
                &pc1_of(&val),
                &network.predict_final_loss(&features.select_rows(&val))?,
                &design,
            )?;
            for kind in ClassifierKind::ALL {
                let c = kind.index();
                readout.cuts[c] = match kind {
                    ClassifierKind::AellePredictorHead => -median_final_loss,
                    ClassifierKind::LossBased => -loss_median,
                    _ => {
                        let s: Vec<f64> = val_scores.iter().map(|v| v[c]).collect();
                        choose_threshold(&s, &val_labels, config.evaluation.threshold_criterion)?
                            .threshold
                    }
                };
            }
            points.push(Some(readout));
        }
        let model = AelleModel {
            features: config.features.clone(),
            standardizer,
            autoencoder_config: config.autoencoder.clone(),
            network,
        };
        let readout = Readout {
            fitted_networks: finals.len(),
            median_final_loss,
            pca,
            design,
            evaluation_points: config.evaluation.points.clone(),
            points,
        };
        Ok(Self { model, readout })
    }

    /// Scores of `rows` (one per network) at evaluation point `point_index` (an index into the
    /// points the model was fitted with); `None` where the model has no read-out there.
    pub fn score(
        &self,
        rows: &[ScoredRow<'_>],
        point_index: usize,
    ) -> Result<Option<Vec<NetworkScores>>> {
        let Some(Some(readout)) = self.readout.points.get(point_index) else {
            return Ok(None);
        };
        if rows.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let spectra: Vec<Vec<f64>> = rows.iter().map(|r| r.spectrum.to_vec()).collect();
        let features = self.model.spectra_to_features(&spectra)?;
        let latent = self.model.network.encode(&features)?;
        let predicted = self.model.network.predict_final_loss(&features)?;
        let pc1 = self.readout.pca.transform(&latent, 1)?.column(0);
        let scores = readout.scores(rows, &latent, &pc1, &predicted, &self.readout.design)?;
        Ok(Some(
            scores
                .into_iter()
                .map(|scores| {
                    let high = scores.iter().zip(&readout.cuts).map(|(s, c)| s >= c).collect();
                    NetworkScores { scores, high }
                })
                .collect(),
        ))
    }

    /// The JSON path of the read-outs next to `weights_path`: `<stem>.readout.json`.
    pub fn readout_path(weights_path: &Path) -> PathBuf {
        weights_path.with_extension("readout.json")
    }

    /// Saves the autoencoder ([`AelleModel::save`]) and the read-outs
    /// ([`Self::readout_path`]), each written atomically.
    pub fn save(&self, weights_path: &Path) -> Result<()> {
        self.model.save(weights_path)?;
        let path = Self::readout_path(weights_path);
        let text = serde_json::to_string_pretty(&self.readout)
            .map_err(|source| AelleError::Json { path: path.clone(), source })?;
        aelle_support::fs::write_atomic(&path, text.as_bytes())
            .map_err(|e| AelleError::Io { path: e.path.clone(), source: e.source })
    }

    /// Loads what [`Self::save`] wrote.
    pub fn load(weights_path: &Path) -> Result<Self> {
        let model = AelleModel::load(weights_path)?;
        let path = Self::readout_path(weights_path);
        let text = std::fs::read_to_string(&path)
            .map_err(|source| AelleError::Io { path: path.clone(), source })?;
        let readout: Readout = serde_json::from_str(&text)
            .map_err(|source| AelleError::Json { path: path.clone(), source })?;
        let d = model.network.shape().latent_dim;
        if readout.pca.mean.len() != d {
            return Err(AelleError::CorruptModel {
                path,
                expected: format!(
                    "a PCA of the {d}-dimensional latent, found {} dimensions",
                    readout.pca.mean.len()
                ),
            });
        }
        Ok(Self { model, readout })
    }
}

impl PointReadout {
    /// The score of every classifier (`[n][c]`, [`ClassifierKind::ALL`] order) for `rows`
    /// whose latent codes (`[n, d]`), PC1 values and predicted final losses are given.
    fn scores(
        &self,
        rows: &[ScoredRow<'_>],
        latent: &Matrix,
        pc1: &[f64],
        predicted_final: &[f64],
        design: &HyperparameterDesign,
    ) -> Result<Vec<Vec<f64>>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let d = design.matrix(rows.iter().copied())?;
        let logistic = self.logistic.predict_probability(latent)?;
        let hyperparameters = self.hyperparameters.predict_probability(&d)?;
        let combined = self.combined.predict_probability(&joined(latent, &d)?)?;
        Ok((0..rows.len())
            .map(|i| {
                ClassifierKind::ALL
                    .iter()
                    .map(|kind| match kind {
                        ClassifierKind::AellePc1 => {
                            (self.pc1_orientation * pc1[i] - self.pc1_mean) / self.pc1_scale
                        }
                        // The shuffled-label control scores as AeLLE logistic; its metrics are
                        // taken against permuted labels (crate::crossval::summary).
                        ClassifierKind::AelleLogistic | ClassifierKind::ShuffledLabels => {
                            logistic[i]
                        }
                        ClassifierKind::AellePredictorHead => -predicted_final[i],
                        ClassifierKind::LossBased => -rows[i].current_loss,
                        ClassifierKind::Hyperparameters => hyperparameters[i],
                        ClassifierKind::AelleWithHyperparameters => combined[i],
                    })
                    .collect()
            })
            .collect())
    }
}
