//! Classification and ranking metrics with explicit "undefined" results.
//!
//! A metric whose denominator is zero is `None` (serialised as JSON `null`), never `NaN` and
//! never a panic:
//!
//! - precision `= TP / (TP + FP)`, undefined when nothing is predicted positive;
//! - recall `= TP / (TP + FN)`, undefined when there are no actual positives;
//! - F1 `= 2 P R / (P + R)`, undefined when P or R is; `0` when both are `0`;
//! - AUROC `= P(score of a random positive > score of a random negative) + P(tie) / 2`
//!   (Mann-Whitney U / (n+ n-)), undefined when either class is empty;
//! - Spearman's rho = Pearson correlation of the average ranks (ties share the mean of the
//!   ranks they span), undefined for fewer than 2 points or a constant input.

use serde::{Deserialize, Serialize};

use crate::error::{AelleError, Result};

/// Counts of a binary confusion matrix ("positive" = predicted or actually high performing).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfusionCounts {
    /// Predicted positive, actually positive.
    pub true_positives: usize,
    /// Predicted positive, actually negative.
    pub false_positives: usize,
    /// Predicted negative, actually negative.
    pub true_negatives: usize,
    /// Predicted negative, actually positive.
    pub false_negatives: usize,
}

impl ConfusionCounts {
    /// Tallies `predicted[i]` against `actual[i]`. Errors if the lengths differ.
    pub fn from_predictions(predicted: &[bool], actual: &[bool]) -> Result<Self> {
        check_len("confusion counts: predictions vs labels", actual.len(), predicted.len())?;
        let mut c = Self::default();
        for (&p, &a) in predicted.iter().zip(actual) {
            match (p, a) {
                (true, true) => c.true_positives += 1,
                (true, false) => c.false_positives += 1,
                (false, false) => c.true_negatives += 1,
                (false, true) => c.false_negatives += 1,
            }
        }
        Ok(c)
    }

    /// Total number of items.
    pub fn total(&self) -> usize {
        self.true_positives + self.false_positives + self.true_negatives + self.false_negatives
    }

    /// `TP / (TP + FP)`; `None` when nothing was predicted positive.
    pub fn precision(&self) -> Option<f64> {
        ratio(self.true_positives, self.true_positives + self.false_positives)
    }

    /// `TP / (TP + FN)`; `None` when there are no actual positives.
    pub fn recall(&self) -> Option<f64> {
        ratio(self.true_positives, self.true_positives + self.false_negatives)
    }

    /// `TN / (TN + FP)`; `None` when there are no actual negatives.
    pub fn specificity(&self) -> Option<f64> {
        ratio(self.true_negatives, self.true_negatives + self.false_positives)
    }

    /// Harmonic mean of precision and recall; `None` if either is undefined, `0` if both are 0.
    pub fn f1(&self) -> Option<f64> {
        let (p, r) = (self.precision()?, self.recall()?);
        if p + r == 0.0 { Some(0.0) } else { Some(2.0 * p * r / (p + r)) }
    }

    /// `(TP + TN) / total`; `None` for an empty matrix.
    pub fn accuracy(&self) -> Option<f64> {
        ratio(self.true_positives + self.true_negatives, self.total())
    }

    /// Youden's J = recall + specificity - 1; `None` if either class is empty.
    pub fn youden_j(&self) -> Option<f64> {
        Some(self.recall()? + self.specificity()? - 1.0)
    }
}

fn ratio(num: usize, den: usize) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

/// `Ok` when the length `got` is the `expected` one, else a [`AelleError::ShapeMismatch`].
fn check_len(context: &'static str, expected: usize, got: usize) -> Result<()> {
    if got != expected {
        return Err(AelleError::ShapeMismatch { context, expected, got });
    }
    Ok(())
}

fn check_finite(values: &[f64], context: &'static str) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(AelleError::NonFinite { context, index, value: values[index] }),
        None => Ok(()),
    }
}

/// Average ranks (1-based); tied values share the mean of the ranks they occupy.
/// Errors on non-finite input.
pub fn average_ranks(values: &[f64]) -> Result<Vec<f64>> {
    check_finite(values, "average_ranks input")?;
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        // Positions start..end hold ranks start+1 ..= end; their mean:
        let mean_rank = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = mean_rank;
        }
        start = end;
    }
    Ok(ranks)
}

/// Pearson correlation of `x` and `y`; `None` for fewer than 2 points or zero variance.
pub fn pearson(x: &[f64], y: &[f64]) -> Result<Option<f64>> {
    check_len("pearson: x vs y length", x.len(), y.len())?;
    check_finite(x, "pearson x")?;
    check_finite(y, "pearson y")?;
    let n = x.len();
    if n < 2 {
        return Ok(None);
    }
    let mx = x.iter().sum::<f64>() / n as f64;
    let my = y.iter().sum::<f64>() / n as f64;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (&a, &b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    if sxx <= 0.0 || syy <= 0.0 {
        return Ok(None);
    }
    Ok(Some((sxy / (sxx * syy).sqrt()).clamp(-1.0, 1.0)))
}

/// Spearman's rank correlation (Pearson on average ranks, so ties are handled exactly).
pub fn spearman(x: &[f64], y: &[f64]) -> Result<Option<f64>> {
    check_len("spearman: x vs y length", x.len(), y.len())?;
    pearson(&average_ranks(x)?, &average_ranks(y)?)
}

/// Area under the ROC curve of `scores` (higher = more likely positive) against `labels`,
/// computed as the Mann-Whitney statistic from average ranks:
/// `AUROC = (R+ - n+ (n+ + 1) / 2) / (n+ n-)` with `R+` the rank sum of the positives.
/// `None` if either class is empty.
pub fn auroc(scores: &[f64], labels: &[bool]) -> Result<Option<f64>> {
    check_len("auroc: scores vs labels length", labels.len(), scores.len())?;
    let ranks = average_ranks(scores)?;
    let n_pos = labels.iter().filter(|&&l| l).count();
    let n_neg = labels.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return Ok(None);
    }
    let rank_sum: f64 = ranks.iter().zip(labels).filter(|(_, l)| **l).map(|(r, _)| *r).sum();
    let u = rank_sum - (n_pos * (n_pos + 1)) as f64 / 2.0;
    Ok(Some(u / (n_pos as f64 * n_neg as f64)))
}

/// Median (mean of the two middle values for an even count); `None` for an empty slice.
/// Errors on non-finite input.
pub fn median(values: &[f64]) -> Result<Option<f64>> {
    check_finite(values, "median input")?;
    if values.is_empty() {
        return Ok(None);
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Ok(Some(if n % 2 == 1 { v[n / 2] } else { 0.5 * (v[n / 2 - 1] + v[n / 2]) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOL: f64 = 1e-12;

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < TOL)
    }

    #[test]
    fn confusion_matrix_by_hand() {
        // predicted: T T T F F F F, actual: T F T T F F T
        let predicted = [true, true, true, false, false, false, false];
        let actual = [true, false, true, true, false, false, true];
        let c = ConfusionCounts::from_predictions(&predicted, &actual).unwrap();
        assert_eq!(
            c,
            ConfusionCounts {
                true_positives: 2,
                false_positives: 1,
                true_negatives: 2,
                false_negatives: 2
            }
        );
        assert!(close(c.precision(), 2.0 / 3.0));
        assert!(close(c.recall(), 0.5));
        // F1 = 2 * (2/3) * (1/2) / (2/3 + 1/2) = (2/3) / (7/6) = 4/7.
        assert!(close(c.f1(), 4.0 / 7.0));
        assert!(close(c.accuracy(), 4.0 / 7.0));
        assert!(close(c.youden_j(), 0.5 + 2.0 / 3.0 - 1.0));
    }

    #[test]
    fn no_positive_predictions_leave_precision_undefined() {
        let c = ConfusionCounts::from_predictions(&[false, false, false], &[true, false, true])
            .unwrap();
        assert_eq!(c.precision(), None);
        assert!(close(c.recall(), 0.0));
        assert_eq!(c.f1(), None);
        let json = serde_json::to_string(&c.precision()).unwrap();
        assert_eq!(json, "null");
    }

    #[test]
    fn no_actual_positives_leave_recall_undefined() {
        let c = ConfusionCounts::from_predictions(&[true, false], &[false, false]).unwrap();
        assert!(close(c.precision(), 0.0));
        assert_eq!(c.recall(), None);
        assert_eq!(c.youden_j(), None);
    }

    #[test]
    fn all_wrong_gives_zero_f1_not_undefined() {
        let c = ConfusionCounts::from_predictions(&[true, false], &[false, true]).unwrap();
        assert!(close(c.f1(), 0.0));
    }

    #[test]
    fn empty_confusion_matrix_is_all_undefined() {
        let c = ConfusionCounts::from_predictions(&[], &[]).unwrap();
        assert_eq!((c.precision(), c.recall(), c.f1(), c.accuracy()), (None, None, None, None));
    }

    #[test]
    fn mismatched_lengths_are_an_error() {
        assert!(ConfusionCounts::from_predictions(&[true], &[]).is_err());
        assert!(auroc(&[1.0], &[]).is_err());
        assert!(spearman(&[1.0, 2.0], &[1.0]).is_err());
    }

    #[test]
    fn ranks_with_ties() {
        let r = average_ranks(&[10.0, 20.0, 20.0, 5.0, 20.0]).unwrap();
        assert_eq!(r, vec![2.0, 4.0, 4.0, 1.0, 4.0]);
    }

    #[test]
    fn spearman_with_ties_by_hand() {
        // x = [1, 2, 2, 3] -> ranks [1, 2.5, 2.5, 4]; y = [1, 3, 2, 4] -> ranks [1, 3, 2, 4].
        // Centred: rx = [-1.5, 0, 0, 1.5], ry = [-1.5, 0.5, -0.5, 1.5].
        // sum rx ry = 2.25 + 2.25 = 4.5; sum rx^2 = 4.5; sum ry^2 = 2.25 + .25 + .25 + 2.25 = 5.
        // rho = 4.5 / sqrt(4.5 * 5) = sqrt(0.9).
        let rho = spearman(&[1.0, 2.0, 2.0, 3.0], &[1.0, 3.0, 2.0, 4.0]).unwrap();
        assert!(close(rho, 0.9f64.sqrt()), "{rho:?}");
        // Perfectly monotone but non-linear gives exactly 1 and -1.
        assert!(close(spearman(&[1.0, 2.0, 3.0], &[1.0, 8.0, 27.0]).unwrap(), 1.0));
        assert!(close(spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, -10.0]).unwrap(), -1.0));
        // Constant input is undefined, as is a single point.
        assert_eq!(spearman(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]).unwrap(), None);
        assert_eq!(spearman(&[1.0], &[2.0]).unwrap(), None);
        assert!(spearman(&[f64::NAN, 1.0], &[1.0, 2.0]).is_err());
    }

    #[test]
    fn auroc_by_hand() {
        // Positives score [0.9, 0.4], negatives [0.5, 0.1, 0.4].
        // Pairs (pos > neg): 0.9 beats all 3; 0.4 beats 0.1, ties 0.4 (half), loses to 0.5.
        // U = 3 + 1 + 0.5 = 4.5 over 6 pairs -> 0.75.
        let scores = [0.9, 0.4, 0.5, 0.1, 0.4];
        let labels = [true, true, false, false, false];
        assert!(close(auroc(&scores, &labels).unwrap(), 0.75));
        // Perfect and reversed rankings.
        assert!(close(auroc(&[2.0, 1.0], &[true, false]).unwrap(), 1.0));
        assert!(close(auroc(&[1.0, 2.0], &[true, false]).unwrap(), 0.0));
        // All tied gives one half.
        assert!(close(auroc(&[1.0, 1.0, 1.0], &[true, false, true]).unwrap(), 0.5));
        // One class only: undefined.
        assert_eq!(auroc(&[1.0, 2.0], &[true, true]).unwrap(), None);
    }

    #[test]
    fn median_odd_even_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]).unwrap(), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]).unwrap(), Some(2.5));
        assert_eq!(median(&[]).unwrap(), None);
        assert!(median(&[f64::INFINITY]).is_err());
    }
}
