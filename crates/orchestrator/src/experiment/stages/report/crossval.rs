//! The report's headline sections: cross-validated early prediction with intervals and
//! controls (`aelle/crossval.json`), within-cell results, and the transfers of other runs'
//! pre-trained models (`transfer/*.json`). Each table is built once ([`Table`]) and rendered to
//! both HTML and Markdown.

use std::fmt::Write;

use aelle::crossval::{COMPARISONS, Comparison, Estimate, PointSummary};
use aelle::{ClassifierKind, CrossValidationReport, EvaluationPoint, TransferReport};

use super::{ArchAccuracy, PUBLISHED, Published};

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

/// `value [low, high]` (3 decimals) or a dash.
pub fn est(e: Option<Estimate>) -> String {
    e.map_or_else(|| "–".to_string(), |e| e.display(3))
}

/// In percent, one decimal.
fn est_pct(e: Option<Estimate>) -> String {
    e.map_or_else(
        || "–".to_string(),
        |e| format!("{:.1} [{:.1}, {:.1}]", 100.0 * e.value, 100.0 * e.low, 100.0 * e.high),
    )
}

fn diff(c: &Comparison) -> String {
    match (c.auroc_difference, c.fraction_at_or_below_zero) {
        (Some(d), Some(p)) => {
            format!("{:+.3} [{:+.3}, {:+.3}] (p = {:.3})", d.value, d.low, d.high, p)
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

/// Precision and recall of AeLLE PC1 and the loss-based classifier next to the published ones.
pub fn precision_recall_table(points: &[PointSummary]) -> Table {
    let header = [
        "point",
        "AeLLE PC1 precision",
        "AeLLE PC1 recall",
        "AeLLE logistic precision",
        "AeLLE logistic recall",
        "loss-based precision",
        "loss-based recall",
        "published AeLLE P / R",
        "published loss-based P / R",
    ]
    .map(String::from)
    .to_vec();
    let rows = points
        .iter()
        .map(|p| {
            let c = |k: ClassifierKind| &p.classifiers[k.index()];
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
            vec![
                point_label(p.point),
                est_pct(c(ClassifierKind::AellePc1).precision),
                est_pct(c(ClassifierKind::AellePc1).recall),
                est_pct(c(ClassifierKind::AelleLogistic).precision),
                est_pct(c(ClassifierKind::AelleLogistic).recall),
                est_pct(c(ClassifierKind::LossBased).precision),
                est_pct(c(ClassifierKind::LossBased).recall),
                pa,
                pl,
            ]
        })
        .collect();
    Table { id: "cv-precision-recall", header, rows, shaded: vec![7, 8] }
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

/// The explanatory paragraph of the cross-validation section.
pub fn method_note(cv: &CrossValidationReport) -> String {
    let c = &cv.config;
    let groups: Vec<String> =
        cv.groups.iter().map(|g| format!("{} {}/{}", g.group, g.high, g.networks)).collect();
    format!(
        "Every number is out of fold: {} networks in {}-fold cross-validation stratified by cell, repeated {} times (a new fold assignment and autoencoder seed each time); each fold's autoencoder, PCA, classifiers and thresholds are fitted on the other folds' networks only. \"High performing\" = final test loss below the population median ({:.4}); high networks per cell: {}. Values are the mean over repeats with a {:.0} % stratified bootstrap interval over networks ({} resamples); differences are paired (same resamples), with the fraction of resamples at or below zero as a one-sided p. The shuffled-label control scores AeLLE against permuted labels (value and interval of the permutation null): what chance looks like at this size. The hyperparameter-only classifier knows the cell and p (a per-cell quadratic in p) and nothing of the spectrum.",
        cv.networks.len(),
        c.folds,
        c.repeats,
        cv.label_threshold,
        groups.join(", "),
        100.0 * c.confidence,
        c.bootstrap_resamples
    )
}

/// Cells whose final accuracies barely vary: within-cell results there rest on small
/// differences, and the report says so.
pub fn narrow_cells(accuracies: &[ArchAccuracy]) -> Vec<String> {
    accuracies
        .iter()
        .filter(|a| a.best - a.worst < 0.10)
        .map(|a| {
            format!(
                "{}: final test accuracies span only {:.1}-{:.1} % over its {} networks, so \"high\" and \"low\" within this cell differ little and its within-cell AUROCs rest on small differences.",
                a.arch,
                100.0 * a.worst,
                100.0 * a.best,
                a.networks
            )
        })
        .collect()
}
