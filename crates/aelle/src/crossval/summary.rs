//! From out-of-fold scores to the reported numbers: metrics per classifier as the mean over
//! repeats with a stratified bootstrap interval over networks, paired AUROC differences on the
//! same resamples, and the within-cell results.
//!
//! For a statistic `m` (AUROC, precision, ...) and repeats `r = 1..R` with out-of-fold scores
//! `s_r`, the reported value is `mean_r m(s_r)` on all networks, and the interval is the
//! percentile interval of `mean_r m(s_r; resample b)` over resamples `b` of the networks (the
//! same resamples for every classifier, so differences are paired). The spread over repeats
//! (`repeat_min`, `repeat_max`) shows how much the autoencoder seed and fold assignment move
//! the full-sample value.
//!
//! Within-cell: "high" = final loss below the median of the network's own cell. Per cell, the
//! AUROC of each score against that label; pooled, the fraction of concordant (high, low)
//! pairs taken within the same cell only, so the architecture itself carries no information.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::CrossValidationConfig;
use crate::bootstrap::{Interval, Resamples, percentile_interval};
use crate::metrics::{ConfusionCounts, auroc, spearman};
use crate::pipeline::{ClassifierKind, EvaluationPoint};

/// A metric: mean over repeats, its bootstrap interval and the spread over repeats.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// Mean over repeats of the full-sample value.
    pub value: f64,
    /// Lower end of the bootstrap interval.
    pub low: f64,
    /// Upper end of the bootstrap interval.
    pub high: f64,
    /// Resamples on which the statistic was defined.
    pub resamples_used: usize,
    /// Smallest full-sample value over repeats.
    pub repeat_min: f64,
    /// Largest full-sample value over repeats.
    pub repeat_max: f64,
}

impl Estimate {
    fn new(interval: Interval, per_repeat: &[f64]) -> Self {
        Self {
            value: interval.value,
            low: interval.low,
            high: interval.high,
            resamples_used: interval.resamples_used,
            repeat_min: per_repeat.iter().copied().fold(f64::INFINITY, f64::min),
            repeat_max: per_repeat.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        }
    }

    /// Whether `x` lies in the interval.
    pub fn contains(&self, x: f64) -> bool {
        self.low <= x && x <= self.high
    }

    /// `value [low, high]` with `digits` decimals.
    pub fn display(&self, digits: usize) -> String {
        format!("{:.digits$} [{:.digits$}, {:.digits$}]", self.value, self.low, self.high)
    }
}

/// Every metric of one classifier at one point (out of fold, all networks).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassifierEstimate {
    /// The classifier.
    pub classifier: ClassifierKind,
    /// AUROC of the score against "high performing".
    pub auroc: Option<Estimate>,
    /// Precision of `score >= cut`.
    pub precision: Option<Estimate>,
    /// Recall of `score >= cut`.
    pub recall: Option<Estimate>,
    /// F1 of `score >= cut`.
    pub f1: Option<Estimate>,
    /// Spearman of the negated score with the final loss (positive = ranks networks well).
    pub spearman_with_final_loss: Option<Estimate>,
}

/// A paired AUROC difference `better - than`, on the same resamples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The classifier expected to be better.
    pub better: ClassifierKind,
    /// The one it is compared with.
    pub than: ClassifierKind,
    /// `AUROC(better) - AUROC(than)`.
    pub auroc_difference: Option<Estimate>,
    /// Fraction of resamples with a difference `<= 0` (a one-sided bootstrap p-value).
    pub fraction_at_or_below_zero: Option<f64>,
}

/// AUROC of one classifier against the within-cell label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellAuroc {
    /// The classifier.
    pub classifier: ClassifierKind,
    /// Its AUROC.
    pub auroc: Option<Estimate>,
}

/// Within-cell results of one cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellResult {
    /// The cell (group).
    pub group: String,
    /// Networks of the cell with a checkpoint at the point.
    pub networks: usize,
    /// Per classifier, the AUROC against "below the cell's median final loss".
    pub classifiers: Vec<CellAuroc>,
}

/// Within-cell results at one point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WithinCell {
    /// Pooled within-cell AUROC (pairs within a cell only) per classifier.
    pub pooled: Vec<CellAuroc>,
    /// Paired differences of pooled within-cell AUROCs.
    pub comparisons: Vec<Comparison>,
    /// Per cell.
    pub cells: Vec<CellResult>,
}

/// Everything reported at one evaluation point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointSummary {
    /// The point.
    pub point: EvaluationPoint,
    /// Networks scored at the point (in every repeat).
    pub networks: usize,
    /// Fraction of them that are high performing.
    pub positive_fraction: Option<f64>,
    /// Per classifier, in [`ClassifierKind::ALL`] order.
    pub classifiers: Vec<ClassifierEstimate>,
    /// Paired AUROC differences.
    pub comparisons: Vec<Comparison>,
    /// The within-cell results.
    pub within_cell: WithinCell,
}

/// The comparisons a reader asks for: does AeLLE beat the loss, the hyperparameters, and does
/// the spectrum add to the hyperparameters.
pub const COMPARISONS: [(ClassifierKind, ClassifierKind); 4] = [
    (ClassifierKind::AelleLogistic, ClassifierKind::LossBased),
    (ClassifierKind::AelleLogistic, ClassifierKind::Hyperparameters),
    (ClassifierKind::AelleWithHyperparameters, ClassifierKind::Hyperparameters),
    (ClassifierKind::AellePc1, ClassifierKind::LossBased),
];

/// The population at one point: per network its group, labels and final loss.
pub(crate) struct Population<'a> {
    /// Group index per network.
    pub group_of: &'a [usize],
    /// Group labels.
    pub groups: &'a [String],
    /// Below the population median final loss.
    pub label: &'a [bool],
    /// Below the network's cell median final loss.
    pub cell_label: &'a [bool],
    /// Final loss per network.
    pub final_loss: &'a [f64],
}

/// Out-of-fold results at one point: `scores[r][c][n]` and `high[r][c][n]` for repeat `r`,
/// classifier `c` ([`ClassifierKind::ALL`] order) and network `n` (`None` = not scored).
pub(crate) struct PointScores {
    pub scores: Vec<Vec<Vec<Option<f64>>>>,
    pub high: Vec<Vec<Vec<Option<bool>>>>,
}

const N_METRICS: usize = 5;

/// The labels metrics are computed against: the population's, or (for the
/// [`ClassifierKind::ShuffledLabels`] control) a random permutation of them.
struct Truth {
    label: Vec<bool>,
    cell_label: Vec<bool>,
    final_loss: Vec<f64>,
}

impl Truth {
    fn of(pop: &Population<'_>) -> Self {
        Self {
            label: pop.label.to_vec(),
            cell_label: pop.cell_label.to_vec(),
            final_loss: pop.final_loss.to_vec(),
        }
    }

    /// The population's labels permuted among the networks `present`: the global label and
    /// final loss together across all of them, the within-cell label within each cell.
    fn permuted(pop: &Population<'_>, present: &[usize], rng: &mut ChaCha8Rng) -> Self {
        let mut t = Self::of(pop);
        let mut order = present.to_vec();
        order.shuffle(rng);
        for (&to, &from) in present.iter().zip(&order) {
            t.label[to] = pop.label[from];
            t.final_loss[to] = pop.final_loss[from];
        }
        for g in 0..pop.groups.len() {
            let members: Vec<usize> =
                present.iter().copied().filter(|&n| pop.group_of[n] == g).collect();
            let mut order = members.clone();
            order.shuffle(rng);
            for (&to, &from) in members.iter().zip(&order) {
                t.cell_label[to] = pop.cell_label[from];
            }
        }
        t
    }
}

/// `[auroc, precision, recall, f1, spearman]` of classifier scores on networks `idx`.
fn metrics(
    idx: &[usize],
    score: &[Option<f64>],
    high: &[Option<bool>],
    truth: &Truth,
) -> [Option<f64>; N_METRICS] {
    let s: Vec<f64> = idx.iter().map(|&n| score[n].unwrap_or(0.0)).collect();
    let h: Vec<bool> = idx.iter().map(|&n| high[n].unwrap_or(false)).collect();
    let l: Vec<bool> = idx.iter().map(|&n| truth.label[n]).collect();
    let f: Vec<f64> = idx.iter().map(|&n| truth.final_loss[n]).collect();
    let neg: Vec<f64> = s.iter().map(|v| -v).collect();
    let c = ConfusionCounts::from_predictions(&h, &l).unwrap_or_default();
    [
        auroc(&s, &l).ok().flatten(),
        c.precision(),
        c.recall(),
        c.f1(),
        spearman(&neg, &f).ok().flatten(),
    ]
}

/// Per-cell AUROCs and the pooled within-cell AUROC.
type CellAurocs = (Vec<Option<f64>>, Option<f64>);

/// Per-cell AUROCs against the within-cell label and the pooled within-cell AUROC.
fn within_cell(
    idx: &[usize],
    score: &[Option<f64>],
    pop: &Population<'_>,
    truth: &Truth,
) -> CellAurocs {
    let mut per_cell = Vec::with_capacity(pop.groups.len());
    let (mut concordant, mut pairs) = (0.0, 0.0);
    for g in 0..pop.groups.len() {
        let members: Vec<usize> = idx.iter().copied().filter(|&n| pop.group_of[n] == g).collect();
        let s: Vec<f64> = members.iter().map(|&n| score[n].unwrap_or(0.0)).collect();
        let l: Vec<bool> = members.iter().map(|&n| truth.cell_label[n]).collect();
        let a = auroc(&s, &l).ok().flatten();
        if let Some(a) = a {
            let pos = l.iter().filter(|&&x| x).count() as f64;
            let p = pos * (l.len() as f64 - pos);
            concordant += a * p;
            pairs += p;
        }
        per_cell.push(a);
    }
    (per_cell, (pairs > 0.0).then(|| concordant / pairs))
}

/// Mean over repeats, `None` if any repeat is undefined.
fn mean_defined(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let (mut sum, mut n) = (0.0, 0usize);
    for v in values {
        sum += v?;
        n += 1;
    }
    (n > 0).then(|| sum / n as f64)
}

fn estimate(
    per_repeat: &[Option<f64>],
    replicates: &[Option<f64>],
    level: f64,
) -> Option<Estimate> {
    let value = mean_defined(per_repeat.iter().copied());
    let defined: Vec<f64> = per_repeat.iter().flatten().copied().collect();
    percentile_interval(value, replicates, level).map(|iv| Estimate::new(iv, &defined))
}

/// The summary of one point (see the module docs).
pub(crate) fn summarize_point(
    point: EvaluationPoint,
    pop: &Population<'_>,
    ps: &PointScores,
    config: &CrossValidationConfig,
    seed: u64,
) -> PointSummary {
    let repeats = ps.scores.len();
    let classifiers = ClassifierKind::ALL.len();
    let n_total = pop.label.len();
    // Networks scored in every repeat.
    let present: Vec<usize> =
        (0..n_total).filter(|&n| (0..repeats).all(|r| ps.scores[r][0][n].is_some())).collect();
    let resamples = Resamples::stratified(&present, pop.group_of, config.bootstrap_resamples, seed);
    let level = config.confidence;
    let shuffled = ClassifierKind::ShuffledLabels.index();
    let truth = Truth::of(pop);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5EED_0F5A_FF1E);
    // The control's labels: one permutation per repeat on the full sample, one per repeat and
    // resample on the resamples.
    let full_perm: Vec<Truth> =
        (0..repeats).map(|_| Truth::permuted(pop, &present, &mut rng)).collect();
    fn pick<'t>(shuffled: bool, r: usize, perm: &'t [Truth], truth: &'t Truth) -> &'t Truth {
        if shuffled { &perm[r] } else { truth }
    }

    // full[c][r]: metrics on the full sample; boot[c][k][b]: mean over repeats on resample b.
    let full: Vec<Vec<[Option<f64>; N_METRICS]>> = (0..classifiers)
        .map(|c| {
            (0..repeats)
                .map(|r| {
                    let t = pick(c == shuffled, r, &full_perm, &truth);
                    metrics(&present, &ps.scores[r][c], &ps.high[r][c], t)
                })
                .collect()
        })
        .collect();
    let full_cells: Vec<Vec<CellAurocs>> = (0..classifiers)
        .map(|c| {
            (0..repeats)
                .map(|r| {
                    within_cell(
                        &present,
                        &ps.scores[r][c],
                        pop,
                        pick(c == shuffled, r, &full_perm, &truth),
                    )
                })
                .collect()
        })
        .collect();
    let mut boot: Vec<Vec<Vec<Option<f64>>>> = vec![vec![Vec::new(); N_METRICS]; classifiers];
    let mut boot_cells: Vec<Vec<Vec<Option<f64>>>> =
        vec![vec![Vec::new(); pop.groups.len() + 1]; classifiers];
    // Per resample and repeat, AUROC and pooled within-cell AUROC per classifier (for the
    // paired differences, taken per repeat before averaging).
    let mut boot_auroc_rep: Vec<Vec<Vec<Option<f64>>>> = vec![Vec::new(); classifiers];
    let mut boot_pooled_rep: Vec<Vec<Vec<Option<f64>>>> = vec![Vec::new(); classifiers];
    for idx in &resamples.indices {
        let perm: Vec<Truth> =
            (0..repeats).map(|_| Truth::permuted(pop, &present, &mut rng)).collect();
        for c in 0..classifiers {
            let m: Vec<[Option<f64>; N_METRICS]> = (0..repeats)
                .map(|r| {
                    metrics(
                        idx,
                        &ps.scores[r][c],
                        &ps.high[r][c],
                        pick(c == shuffled, r, &perm, &truth),
                    )
                })
                .collect();
            for k in 0..N_METRICS {
                boot[c][k].push(mean_defined(m.iter().map(|x| x[k])));
            }
            let w: Vec<CellAurocs> = (0..repeats)
                .map(|r| {
                    within_cell(idx, &ps.scores[r][c], pop, pick(c == shuffled, r, &perm, &truth))
                })
                .collect();
            let groups = pop.groups.len();
            for (g, cell) in boot_cells[c].iter_mut().enumerate() {
                cell.push(if g < groups {
                    mean_defined(w.iter().map(|x| x.0[g]))
                } else {
                    mean_defined(w.iter().map(|x| x.1))
                });
            }
            boot_auroc_rep[c].push(m.iter().map(|x| x[0]).collect());
            boot_pooled_rep[c].push(w.iter().map(|x| x.1).collect());
        }
    }

    let classifier_estimates = ClassifierKind::ALL
        .iter()
        .enumerate()
        .map(|(c, &kind)| {
            let e = |k: usize| {
                let per_repeat: Vec<Option<f64>> = if c == shuffled {
                    // The control's value is the mean of its permutation null (one
                    // permutation alone is as noisy as the null is wide).
                    vec![mean_defined(boot[c][k].iter().copied().filter(Option::is_some))]
                } else {
                    full[c].iter().map(|m| m[k]).collect()
                };
                estimate(&per_repeat, &boot[c][k], level)
            };
            ClassifierEstimate {
                classifier: kind,
                auroc: e(0),
                precision: e(1),
                recall: e(2),
                f1: e(3),
                spearman_with_final_loss: e(4),
            }
        })
        .collect();

    let compare = |full_a: &dyn Fn(usize) -> Vec<Option<f64>>,
                   boot_rep: &[Vec<Vec<Option<f64>>>],
                   a: ClassifierKind,
                   b: ClassifierKind| {
        let (ia, ib) = (a.index(), b.index());
        let (fa, fb) = (full_a(ia), full_a(ib));
        let per_repeat: Vec<Option<f64>> =
            fa.iter().zip(&fb).map(|(x, y)| Some((*x)? - (*y)?)).collect();
        let replicates: Vec<Option<f64>> = boot_rep[ia]
            .iter()
            .zip(&boot_rep[ib])
            .map(|(ra, rb)| mean_defined(ra.iter().zip(rb).map(|(x, y)| Some((*x)? - (*y)?))))
            .collect();
        let defined: Vec<f64> = replicates.iter().flatten().copied().collect();
        let difference = estimate(&per_repeat, &replicates, level);
        Comparison {
            better: a,
            than: b,
            fraction_at_or_below_zero: difference.map(|_| {
                defined.iter().filter(|&&d| d <= 0.0).count() as f64 / defined.len() as f64
            }),
            auroc_difference: difference,
        }
    };
    let full_auroc = |c: usize| full[c].iter().map(|m| m[0]).collect::<Vec<_>>();
    let full_pooled = |c: usize| full_cells[c].iter().map(|w| w.1).collect::<Vec<_>>();
    let comparisons =
        COMPARISONS.iter().map(|&(a, b)| compare(&full_auroc, &boot_auroc_rep, a, b)).collect();
    let within_comparisons =
        COMPARISONS.iter().map(|&(a, b)| compare(&full_pooled, &boot_pooled_rep, a, b)).collect();

    let cell_auroc = |c: usize, g: Option<usize>| -> Option<Estimate> {
        let per_repeat: Vec<Option<f64>> = full_cells[c]
            .iter()
            .map(|w| match g {
                Some(g) => w.0[g],
                None => w.1,
            })
            .collect();
        estimate(&per_repeat, &boot_cells[c][g.unwrap_or(pop.groups.len())], level)
    };
    let pooled = ClassifierKind::ALL
        .iter()
        .enumerate()
        .map(|(c, &kind)| CellAuroc { classifier: kind, auroc: cell_auroc(c, None) })
        .collect();
    let cells = pop
        .groups
        .iter()
        .enumerate()
        .map(|(g, name)| CellResult {
            group: name.clone(),
            networks: present.iter().filter(|&&n| pop.group_of[n] == g).count(),
            classifiers: ClassifierKind::ALL
                .iter()
                .enumerate()
                .map(|(c, &kind)| CellAuroc { classifier: kind, auroc: cell_auroc(c, Some(g)) })
                .collect(),
        })
        .collect();
    let positives = present.iter().filter(|&&n| pop.label[n]).count();
    PointSummary {
        point,
        networks: present.len(),
        positive_fraction: (!present.is_empty()).then(|| positives as f64 / present.len() as f64),
        classifiers: classifier_estimates,
        comparisons,
        within_cell: WithinCell { pooled, comparisons: within_comparisons, cells },
    }
}

impl PointSummary {
    /// The comparison `better - than` (one of [`COMPARISONS`]), pooled or within cells.
    pub fn comparison(
        &self,
        better: ClassifierKind,
        than: ClassifierKind,
        within_cells: bool,
    ) -> Option<&Comparison> {
        let list = if within_cells { &self.within_cell.comparisons } else { &self.comparisons };
        list.iter().find(|c| c.better == better && c.than == than)
    }

    /// `"0 % of training"` or `"epoch 3"`.
    pub fn point_label(&self) -> String {
        match self.point {
            EvaluationPoint::Fraction(f) => format!("{:.0} % of training", f * 100.0),
            EvaluationPoint::Epoch(e) => format!("epoch {e}"),
        }
    }

    /// One line with the AUROCs a reader looks at first; `what` names the setting
    /// ("cross-validated", "transfer").
    pub fn headline(&self, what: &str) -> String {
        let auroc_of = |k: ClassifierKind| {
            self.classifiers[k.index()].auroc.map_or("undefined".to_string(), |e| e.display(2))
        };
        format!(
            "At {} ({what}, {} networks): AeLLE logistic AUROC {}, loss-based {}, hyperparameters only {}, shuffled-label control {}.",
            self.point_label(),
            self.networks,
            auroc_of(ClassifierKind::AelleLogistic),
            auroc_of(ClassifierKind::LossBased),
            auroc_of(ClassifierKind::Hyperparameters),
            auroc_of(ClassifierKind::ShuffledLabels),
        )
    }
}

/// A comparison in words: better, worse, or indistinguishable at `pct` % confidence.
fn verdict(c: &Comparison, pct: f64) -> String {
    let (a, b) = (c.better.label(), c.than.label());
    match c.auroc_difference {
        Some(d) if d.low > 0.0 => format!(
            "{a} is better than {b} (AUROC difference {:+.3} [{:+.3}, {:+.3}], the {pct:.0} % interval excludes 0)",
            d.value, d.low, d.high
        ),
        Some(d) if d.high < 0.0 => format!(
            "{a} is worse than {b} (AUROC difference {:+.3} [{:+.3}, {:+.3}])",
            d.value, d.low, d.high
        ),
        Some(d) => format!(
            "{a} and {b} cannot be told apart (AUROC difference {:+.3} [{:+.3}, {:+.3}] includes 0)",
            d.value, d.low, d.high
        ),
        None => format!("{a} vs {b}: no difference could be estimated"),
    }
}

/// Sentences for the report: at each point the [`PointSummary::headline`], whether AeLLE
/// beats the loss and the hyperparameters and whether the spectrum adds to the
/// hyperparameters (pooled and within cells). `what` names the setting ("cross-validated",
/// "transfer").
pub fn conclusions(points: &[PointSummary], confidence: f64, what: &str) -> Vec<String> {
    use ClassifierKind::{AelleLogistic, AelleWithHyperparameters, Hyperparameters, LossBased};
    let pct = (confidence * 100.0).round();
    let mut out = Vec::new();
    for p in points {
        let at = p.point_label();
        out.push(p.headline(what));
        for (a, b) in [
            (AelleLogistic, LossBased),
            (AelleLogistic, Hyperparameters),
            (AelleWithHyperparameters, Hyperparameters),
        ] {
            if let Some(c) = p.comparison(a, b, false) {
                out.push(format!("At {at}: {}.", verdict(c, pct)));
            }
        }
        if let Some(c) = p.comparison(AelleWithHyperparameters, Hyperparameters, true) {
            out.push(format!(
                "At {at}, within cells (high = below the cell's median): {}.",
                verdict(c, pct)
            ));
        }
    }
    out
}
