//! The evaluation at one point of training: one row per network (the nearest checkpoint), and
//! per method a score fitted on training networks, a threshold chosen on validation networks,
//! and metrics on test networks only.

use super::*;

pub(super) struct EvaluationContext<'a> {
    pub(super) rows: &'a [SpectrumRow],
    pub(super) kept: &'a [usize],
    pub(super) split_of_kept: &'a [Split],
    pub(super) features: &'a Matrix,
    pub(super) latent: &'a Matrix,
    pub(super) pc1: Vec<f64>,
    pub(super) predicted: &'a [f64],
    pub(super) label_threshold: f64,
    pub(super) config: &'a EvaluationConfig,
}

/// Metrics of a score (higher = predicted high performing) and its binary predictions.
fn classifier_metrics(
    classifier: ClassifierKind,
    threshold: Option<ChosenThreshold>,
    predicted_high: &[bool],
    score: &[f64],
    labels: &[bool],
    final_loss: &[f64],
) -> Result<ClassifierEvaluation> {
    let confusion = ConfusionCounts::from_predictions(predicted_high, labels)?;
    let loss_like: Vec<f64> = score.iter().map(|s| -s).collect();
    Ok(ClassifierEvaluation {
        classifier,
        threshold,
        confusion,
        precision: confusion.precision(),
        recall: confusion.recall(),
        f1: confusion.f1(),
        auroc: auroc(score, labels)?,
        spearman_with_final_loss: spearman(&loss_like, final_loss)?,
    })
}

impl EvaluationContext<'_> {
    /// Kept-row index per network at `point`, grouped by split.
    fn rows_at(&self, point: EvaluationPoint) -> BTreeMap<Split, Vec<usize>> {
        let nearest =
            nearest_rows(0..self.kept.len(), |k| &self.rows[self.kept[k]], point, self.config);
        let mut by_split: BTreeMap<Split, Vec<usize>> = BTreeMap::new();
        for k in nearest.into_values() {
            by_split.entry(self.split_of_kept[k]).or_default().push(k);
        }
        by_split
    }

    fn label(&self, k: usize) -> bool {
        self.rows[self.kept[k]].final_loss < self.label_threshold
    }

    fn final_loss(&self, k: usize) -> f64 {
        self.rows[self.kept[k]].final_loss
    }

    pub(super) fn evaluate_point(&self, point: EvaluationPoint) -> Result<PointEvaluation> {
        let by_split = self.rows_at(point);
        let get = |s: Split| by_split.get(&s).cloned().unwrap_or_default();
        let (train, val, test) = (get(Split::Train), get(Split::Validation), get(Split::Test));
        let networks = SplitCounts { train: train.len(), validation: val.len(), test: test.len() };
        let test_labels: Vec<bool> = test.iter().map(|&k| self.label(k)).collect();
        let test_positive_fraction = (!test.is_empty())
            .then(|| test_labels.iter().filter(|&&l| l).count() as f64 / test.len() as f64);
        let mut out = PointEvaluation {
            point,
            networks,
            test_positive_fraction,
            skipped: None,
            classifiers: Vec::new(),
            baselines: Vec::new(),
        };
        if train.len() < 2 || val.is_empty() || test.is_empty() {
            out.skipped = Some(format!(
                "expected >= 2 training, >= 1 validation and >= 1 test networks with a checkpoint at this point, got {} / {} / {}",
                train.len(),
                val.len(),
                test.len()
            ));
            return Ok(out);
        }
        let train_labels: Vec<bool> = train.iter().map(|&k| self.label(k)).collect();
        let val_labels: Vec<bool> = val.iter().map(|&k| self.label(k)).collect();
        let test_final: Vec<f64> = test.iter().map(|&k| self.final_loss(k)).collect();
        let train_final: Vec<f64> = train.iter().map(|&k| self.final_loss(k)).collect();
        let criterion = self.config.threshold_criterion;

        // AeLLE PC1: orient on training networks, cut on validation, report on test.
        let pc1_of = |ks: &[usize]| -> Vec<f64> { ks.iter().map(|&k| self.pc1[k]).collect() };
        let orientation = match spearman(&pc1_of(&train), &train_final)? {
            Some(rho) if rho > 0.0 => -1.0,
            _ => 1.0,
        };
        let oriented = |ks: &[usize]| -> Vec<f64> {
            pc1_of(ks).into_iter().map(|v| orientation * v).collect()
        };
        out.classifiers.push(self.thresholded(
            ClassifierKind::AellePc1,
            &oriented(&val),
            &val_labels,
            &oriented(&test),
            &test_labels,
            &test_final,
            criterion,
        )?);

        // AeLLE logistic regression on the latent.
        let logistic = LogisticRegression::fit(
            &self.latent.select_rows(&train),
            &train_labels,
            self.config.logistic_l2,
        )?;
        let val_p = logistic.predict_probability(&self.latent.select_rows(&val))?;
        let test_p = logistic.predict_probability(&self.latent.select_rows(&test))?;
        out.classifiers.push(self.thresholded(
            ClassifierKind::AelleLogistic,
            &val_p,
            &val_labels,
            &test_p,
            &test_labels,
            &test_final,
            criterion,
        )?);

        // AeLLE predictor head: predicted final loss below the label median.
        let head_score: Vec<f64> = test.iter().map(|&k| -self.predicted[k]).collect();
        let head_high: Vec<bool> =
            test.iter().map(|&k| self.predicted[k] < self.label_threshold).collect();
        out.classifiers.push(classifier_metrics(
            ClassifierKind::AellePredictorHead,
            None,
            &head_high,
            &head_score,
            &test_labels,
            &test_final,
        )?);

        // Loss-based: current loss at or below its median over the test networks.
        let current: Vec<f64> =
            test.iter().map(|&k| self.rows[self.kept[k]].current_loss).collect();
        let current_median = median(&current)?.unwrap_or(0.0);
        let loss_high: Vec<bool> = current.iter().map(|&c| c <= current_median).collect();
        let loss_score: Vec<f64> = current.iter().map(|c| -c).collect();
        let cut = ChosenThreshold { threshold: -current_median, fallback_to_median: false };
        out.classifiers.push(classifier_metrics(
            ClassifierKind::LossBased,
            Some(cut),
            &loss_high,
            &loss_score,
            &test_labels,
            &test_final,
        )?);

        // Regression baselines.
        for kind in
            [BaselineKind::FullSpectrum, BaselineKind::MaxExponent, BaselineKind::MeanExponent]
        {
            let design = |ks: &[usize]| -> Result<Matrix> {
                match kind {
                    BaselineKind::FullSpectrum => Ok(self.features.select_rows(ks)),
                    BaselineKind::MaxExponent | BaselineKind::MeanExponent => {
                        let col: Vec<Vec<f64>> = ks
                            .iter()
                            .map(|&k| {
                                let s = &self.rows[self.kept[k]].spectrum;
                                vec![if kind == BaselineKind::MaxExponent {
                                    s.iter().copied().fold(f64::NEG_INFINITY, f64::max)
                                } else {
                                    s.iter().sum::<f64>() / s.len() as f64
                                }]
                            })
                            .collect();
                        Matrix::from_rows(&col)
                    }
                }
            };
            let fit = RidgeRegression::fit(&design(&train)?, &train_final, self.config.ridge_l2)?;
            let pred = fit.predict(&design(&test)?)?;
            out.baselines.push(self.baseline_metrics(kind, &pred, &test_labels, &test_final)?);
        }
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn thresholded(
        &self,
        classifier: ClassifierKind,
        val_score: &[f64],
        val_labels: &[bool],
        test_score: &[f64],
        test_labels: &[bool],
        test_final: &[f64],
        criterion: ThresholdCriterion,
    ) -> Result<ClassifierEvaluation> {
        let cut = choose_threshold(val_score, val_labels, criterion)?;
        let high: Vec<bool> = test_score.iter().map(|&s| s >= cut.threshold).collect();
        classifier_metrics(classifier, Some(cut), &high, test_score, test_labels, test_final)
    }

    fn baseline_metrics(
        &self,
        baseline: BaselineKind,
        predicted: &[f64],
        labels: &[bool],
        final_loss: &[f64],
    ) -> Result<BaselineEvaluation> {
        let n = final_loss.len() as f64;
        let sse: f64 = predicted.iter().zip(final_loss).map(|(p, y)| (p - y).powi(2)).sum();
        let mean = final_loss.iter().sum::<f64>() / n;
        let sst: f64 = final_loss.iter().map(|y| (y - mean).powi(2)).sum();
        let high: Vec<bool> = predicted.iter().map(|&p| p < self.label_threshold).collect();
        let confusion = ConfusionCounts::from_predictions(&high, labels)?;
        let score: Vec<f64> = predicted.iter().map(|p| -p).collect();
        Ok(BaselineEvaluation {
            baseline,
            spearman_with_final_loss: spearman(predicted, final_loss)?,
            rmse: (n > 0.0).then(|| (sse / n).sqrt()),
            r_squared: (sst > 0.0).then(|| 1.0 - sse / sst),
            confusion,
            precision: confusion.precision(),
            recall: confusion.recall(),
            f1: confusion.f1(),
            auroc: auroc(&score, labels)?,
        })
    }
}
