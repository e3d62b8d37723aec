//! The report's headline sections: cross-validated early prediction with intervals and
//! controls (`aelle/crossval.json`), within-cell results, and the transfers of other runs'
//! pre-trained models (`transfer/*.json`). Each table is built once ([`Table`]) and rendered to
//! both HTML and Markdown.

use std::fmt::Write;

use aelle::crossval::{COMPARISONS, Comparison, Estimate, PointSummary};
use aelle::{ClassifierKind, CrossValidationReport, EvaluationPoint, TransferReport};

use super::{CellMetric, CellSummary, PUBLISHED, Published};

/// A table: id (HTML), header, rows of cells; `shaded` columns hold published numbers.
pub struct Table {
    pub id: &'static str,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub shaded: Vec<usize>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

impl Table {
    pub fn html(&self) -> String {
        let mut h = format!("<table id=\"{}\"><tr>", self.id);
        for (i, c) in self.header.iter().enumerate() {
            let class = if self.shaded.contains(&i) { " class=pub" } else { "" };
            let _ = write!(h, "<th{class}>{}</th>", esc(c));
        }
        h.push_str("</tr>\n");
        for r in &self.rows {
            h.push_str("<tr>");
            for (i, c) in r.iter().enumerate() {
                let class = if self.shaded.contains(&i) { " class=pub" } else { "" };
                let _ = write!(h, "<td{class}>{}</td>", esc(c));
            }
            h.push_str("</tr>\n");
        }
        h.push_str("</table>\n");
        h
    }

    pub fn markdown(&self) -> String {
        let mut s = format!("| {} |\n|", self.header.join(" | "));
        for i in 0..self.header.len() {
            s.push_str(if i == 0 { " --- |" } else { " ---: |" });
        }
        s.push('\n');
        for r in &self.rows {
            let _ = writeln!(s, "| {} |", r.join(" | "));
        }
        s
    }
}

fn point_label(p: EvaluationPoint) -> String {
    match p {
        EvaluationPoint::Fraction(f) => format!("{:.0} %", f * 100.0),
        EvaluationPoint::Epoch(e) => format!("epoch {e}"),
    }
}

fn published_at(p: EvaluationPoint) -> Option<Published> {
    match p {
        EvaluationPoint::Fraction(f) => {
            PUBLISHED.iter().find(|x| (x.fraction - f).abs() < 1e-9).copied()
        }
        EvaluationPoint::Epoch(_) => None,
    }
}

/// ` (min–max)`: the smallest and largest full-sample value over the repeats, when they differ
/// (a single repeat, or repeats that agree, show none).
fn spread(e: &Estimate, scale: f64, digits: usize) -> String {
    if e.repeat_min.is_finite() && e.repeat_max.is_finite() && e.repeat_min < e.repeat_max {
        format!(" ({:.digits$}–{:.digits$})", scale * e.repeat_min, scale * e.repeat_max)
    } else {
        String::new()
    }
}

/// `value [low, high] (min–max)` (3 decimals; the spread over repeats as in [`spread`]) or a
/// dash.
pub fn est(e: Option<Estimate>) -> String {
    e.map_or_else(|| "–".to_string(), |e| format!("{}{}", e.display(3), spread(&e, 1.0, 3)))
}

/// In percent, one decimal, with the spread over repeats.
fn est_pct(e: Option<Estimate>) -> String {
    e.map_or_else(
        || "–".to_string(),
        |e| {
            format!(
                "{:.1} [{:.1}, {:.1}]{}",
                100.0 * e.value,
                100.0 * e.low,
                100.0 * e.high,
                spread(&e, 100.0, 1)
            )
        },
    )
}

fn diff(c: &Comparison) -> String {
    match (c.auroc_difference, c.fraction_at_or_below_zero) {
        (Some(d), Some(p)) => {
            let range = if d.repeat_min < d.repeat_max {
                format!(" ({:+.3}–{:+.3})", d.repeat_min, d.repeat_max)
            } else {
                String::new()
            };
            format!("{:+.3} [{:+.3}, {:+.3}]{range} (p = {:.3})", d.value, d.low, d.high, p)
        }
        _ => "–".into(),
    }
}

const AUROC_COLUMNS: [ClassifierKind; 6] = [
    ClassifierKind::AellePc1,
    ClassifierKind::AelleLogistic,
    ClassifierKind::AelleWithHyperparameters,
    ClassifierKind::Hyperparameters,
    ClassifierKind::LossBased,
    ClassifierKind::ShuffledLabels,
];

/// AUROC of every classifier at every point.
pub fn auroc_table(points: &[PointSummary], id: &'static str) -> Table {
    let mut header = vec!["point".to_string(), "networks".into(), "high".into()];
    header.extend(AUROC_COLUMNS.iter().map(|k| k.label().to_string()));
    let rows = points
        .iter()
        .map(|p| {
            let mut r = vec![
                point_label(p.point),
                p.networks.to_string(),
                p.positive_fraction.map_or("–".into(), |f| format!("{:.0} %", 100.0 * f)),
            ];
            r.extend(AUROC_COLUMNS.iter().map(|k| est(p.classifiers[k.index()].auroc)));
            r
        })
        .collect();
    Table { id, header, rows, shaded: Vec::new() }
}

/// Precision and recall of AeLLE PC1 and the loss-based classifier, next to the published ones
/// when `with_published` (the published table is for sequential MNIST only).
pub fn precision_recall_table(points: &[PointSummary], with_published: bool) -> Table {
    let mut header = [
        "point",
        "AeLLE PC1 precision",
        "AeLLE PC1 recall",
        "AeLLE logistic precision",
        "AeLLE logistic recall",
        "loss-based precision",
        "loss-based recall",
    ]
    .map(String::from)
    .to_vec();
    if with_published {
        header.extend(["published AeLLE P / R", "published loss-based P / R"].map(String::from));
    }
    let rows = points
        .iter()
        .map(|p| {
            let c = |k: ClassifierKind| &p.classifiers[k.index()];
            let mut row = vec![
                point_label(p.point),
                est_pct(c(ClassifierKind::AellePc1).precision),
                est_pct(c(ClassifierKind::AellePc1).recall),
                est_pct(c(ClassifierKind::AelleLogistic).precision),
                est_pct(c(ClassifierKind::AelleLogistic).recall),
                est_pct(c(ClassifierKind::LossBased).precision),
                est_pct(c(ClassifierKind::LossBased).recall),
            ];
            if with_published {
                let (pa, pl) = match published_at(p.point) {
                    Some(x) => (
                        format!("{:.1} / {:.1}", x.aelle_precision, x.aelle_recall),
                        match (x.loss_precision, x.loss_recall) {
                            (Some(a), Some(b)) => format!("{a:.1} / {b:.1}"),
                            _ => "–".into(),
                        },
                    ),
                    None => ("n/a".into(), "n/a".into()),
                };
                row.extend([pa, pl]);
            }
            row
        })
        .collect();
    let shaded = if with_published { vec![7, 8] } else { Vec::new() };
    Table { id: "cv-precision-recall", header, rows, shaded }
}

/// The paired AUROC differences, pooled and within cells.
pub fn comparison_table(points: &[PointSummary]) -> Table {
    let mut header = vec!["point".to_string()];
    for (a, b) in COMPARISONS {
        header.push(format!("{} − {}", a.label(), b.label()));
    }
    for (a, b) in COMPARISONS.iter().take(3) {
        header.push(format!("within cells: {} − {}", a.label(), b.label()));
    }
    let rows = points
        .iter()
        .map(|p| {
            let mut r = vec![point_label(p.point)];
            r.extend(p.comparisons.iter().map(diff));
            r.extend(p.within_cell.comparisons.iter().take(3).map(diff));
            r
        })
        .collect();
    Table { id: "cv-comparisons", header, rows, shaded: Vec::new() }
}

const WITHIN_ROWS: [ClassifierKind; 4] = [
    ClassifierKind::AelleLogistic,
    ClassifierKind::AelleWithHyperparameters,
    ClassifierKind::Hyperparameters,
    ClassifierKind::LossBased,
];

/// Within-cell AUROC per cell (and pooled) and classifier, one column per point.
pub fn within_cell_table(points: &[PointSummary]) -> Table {
    let mut header = vec!["cell".to_string(), "classifier".into()];
    header.extend(points.iter().map(|p| point_label(p.point)));
    let mut rows = Vec::new();
    let cells: Vec<String> = points
        .first()
        .map(|p| p.within_cell.cells.iter().map(|c| c.group.clone()).collect())
        .unwrap_or_default();
    for k in WITHIN_ROWS {
        let mut r = vec!["pooled (pairs within a cell)".to_string(), k.label().to_string()];
        r.extend(points.iter().map(|p| est(p.within_cell.pooled[k.index()].auroc)));
        rows.push(r);
    }
    for (g, cell) in cells.iter().enumerate() {
        for k in WITHIN_ROWS {
            let mut r = vec![cell.clone(), k.label().to_string()];
            r.extend(
                points.iter().map(|p| est(p.within_cell.cells[g].classifiers[k.index()].auroc)),
            );
            rows.push(r);
        }
    }
    Table { id: "cv-within-cell", header, rows, shaded: Vec::new() }
}

/// In-population cross-validation next to one transfer.
pub fn transfer_table(cv: Option<&CrossValidationReport>, t: &TransferReport) -> Table {
    let header = [
        "point",
        "in-population CV: AeLLE logistic",
        "transfer: AeLLE logistic",
        "transfer: AeLLE PC1",
        "transfer: loss-based",
        "transfer: shuffled-label control",
    ]
    .map(String::from)
    .to_vec();
    let rows = t
        .points
        .iter()
        .map(|p| {
            let own = cv
                .and_then(|cv| cv.points.iter().find(|q| q.point == p.point))
                .and_then(|q| q.classifiers[ClassifierKind::AelleLogistic.index()].auroc);
            let a = |k: ClassifierKind| est(p.classifiers[k.index()].auroc);
            vec![
                point_label(p.point),
                est(own),
                a(ClassifierKind::AelleLogistic),
                a(ClassifierKind::AellePc1),
                a(ClassifierKind::LossBased),
                a(ClassifierKind::ShuffledLabels),
            ]
        })
        .collect();
    Table { id: "transfer", header, rows, shaded: Vec::new() }
}

/// The explanatory paragraph of the cross-validation section; `held_out` names the split whose
/// final loss is the target (`"test"`, or `"validation"` for `char-lm`), `loss` writes a loss
/// value (with its unit where the task has one, [`super::ReportData::loss_text`]).
pub fn method_note(
    cv: &CrossValidationReport,
    held_out: &str,
    loss: &dyn Fn(f64) -> String,
) -> String {
    let c = &cv.config;
    let groups: Vec<String> =
        cv.groups.iter().map(|g| format!("{} {}/{}", g.group, g.high, g.networks)).collect();
    format!(
        "Every number is out of fold: {} networks in {}-fold cross-validation stratified by cell, repeated {} times (a new fold assignment and autoencoder seed each time); each fold's autoencoder, PCA, classifiers and thresholds are fitted on the other folds' networks only. \"High performing\" = final {held_out} loss below the population median ({}); high networks per cell: {}. Values are the mean over repeats with a {:.0} % stratified bootstrap interval over networks ({} resamples), then in parentheses the smallest and largest value over the {} repeats (absent where they agree); differences are paired (same resamples), with the fraction of resamples at or below zero as a one-sided p. The shuffled-label control scores AeLLE against permuted labels (value and interval of the permutation null): what chance looks like at this size. The hyperparameter-only classifier knows the cell and p (a per-cell quadratic in p) and nothing of the spectrum.",
        cv.networks.len(),
        c.folds,
        c.repeats,
        loss(cv.label_threshold),
        groups.join(", "),
        100.0 * c.confidence,
        c.bootstrap_resamples,
        c.repeats
    )
}

/// Cells whose final performance barely varies (accuracies within 10 points, or validation
/// losses within 0.1 bits per character): within-cell results there rest on small differences,
/// and the report says so.
pub fn narrow_cells(cells: &[CellSummary], metric: CellMetric) -> Vec<String> {
    cells
        .iter()
        .filter(|a| (a.best - a.worst).abs() < 0.10)
        .map(|a| {
            let span = match metric {
                CellMetric::TestAccuracy => format!(
                    "final test accuracies span only {:.1}-{:.1} %",
                    100.0 * a.worst,
                    100.0 * a.best
                ),
                CellMetric::ValidationBitsPerChar => format!(
                    "final validation losses span only {:.3}-{:.3} bits per character",
                    a.best, a.worst
                ),
            };
            format!(
                "{}: {span} over its {} networks, so \"high\" and \"low\" within this cell differ little and its within-cell AUROCs rest on small differences.",
                a.arch, a.networks
            )
        })
        .collect()
}
