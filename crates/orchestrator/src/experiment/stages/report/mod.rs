//! The `report` stage: `report/index.html` (self-contained: figures embedded as PNG data
//! URIs), `report/summary.md`, and every figure as PNG and SVG.
//!
//! Figures: test accuracy per cell over epochs (mean +- std over networks); the mean Lyapunov
//! spectrum per cell at initialisation and at the end (mean +- std over networks);
//! `lambda_max` against the init scale p; the AeLLE latent (PCA and t-SNE) coloured by cell and
//! by final test loss. Tables: per-cell accuracies, "AeLLE vs loss-based classifier at
//! 0/10/20/50 % of training" next to the published numbers (METHOD.md section 6), the
//! configuration and the stage timings.

pub mod crossval;
pub mod html;
pub mod plots;

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Deserialize;

use le_engine::LogBase;

use crate::experiment::config::{ExperimentConfig, TaskKind};
use crate::experiment::plan::{NetworkPlan, networks};
use crate::experiment::records::{SpectrumRecord, Timing};
use crate::experiment::run_folder::RunFolder;
use crate::experiment::status::{spectrum_record, trained_network};
use crate::fs::{read_json, write_atomic};
use plots::{BandSeries, Dot, Figure, Panel, PanelContent, arch_color, viridis};
use rnn_models::NetMetrics;

/// The parts of `aelle/metrics.json` the report shows (the file is `aelle::AelleReport`).
#[derive(Debug, Clone, Deserialize)]
pub struct AelleMetricsFile {
    pub rows_in: usize,
    pub rows_used: usize,
    pub excluded: Vec<serde_json::Value>,
    pub high_performance_threshold: f64,
    pub pca_explained_variance_ratio: Vec<f64>,
    pub tsne_perplexity: Option<f64>,
    pub rows: Vec<AelleRowOut>,
    pub evaluations: Vec<PointOut>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AelleRowOut {
    pub network_id: String,
    pub group: String,
    pub split: String,
    pub final_loss: f64,
    pub pca: Vec<f64>,
    pub tsne: Option<[f64; 2]>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SplitCountsOut {
    pub test: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PointOut {
    pub point: serde_json::Value,
    pub networks: SplitCountsOut,
    pub skipped: Option<String>,
    pub classifiers: Vec<ClassifierOut>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ClassifierOut {
    pub classifier: String,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    pub f1: Option<f64>,
    pub auroc: Option<f64>,
}

impl PointOut {
    /// `(label, fraction if the point is a fraction)`.
    pub fn label(&self) -> (String, Option<f64>) {
        if let Some(f) = self.point.get("fraction").and_then(serde_json::Value::as_f64) {
            (format!("{:.0} %", f * 100.0), Some(f))
        } else if let Some(e) = self.point.get("epoch").and_then(serde_json::Value::as_u64) {
            (format!("epoch {e}"), None)
        } else {
            (self.point.to_string(), None)
        }
    }
    pub fn classifier(&self, name: &str) -> Option<&ClassifierOut> {
        self.classifiers.iter().find(|c| c.classifier == name)
    }
}

/// One row of the published table, in percent (`None` = not reported).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Published {
    pub fraction: f64,
    pub aelle_recall: f64,
    pub aelle_precision: f64,
    pub loss_recall: Option<f64>,
    pub loss_precision: Option<f64>,
}

const fn published(
    fraction: f64,
    aelle_recall: f64,
    aelle_precision: f64,
    loss_recall: Option<f64>,
    loss_precision: Option<f64>,
) -> Published {
    Published { fraction, aelle_recall, aelle_precision, loss_recall, loss_precision }
}

/// Published numbers (METHOD.md section 6; sequential MNIST, 200 networks of N = 64 per cell).
pub const PUBLISHED: [Published; 4] = [
    published(0.0, 92.2, 81.9, None, None),
    published(0.1, 96.9, 83.6, Some(21.4), Some(100.0)),
    published(0.2, 96.7, 82.8, Some(49.0), Some(100.0)),
    published(0.5, 95.3, 81.0, Some(70.4), Some(99.0)),
];

/// Everything the report shows.
pub struct ReportData {
    pub config: ExperimentConfig,
    pub nets: Vec<(NetworkPlan, NetMetrics)>,
    pub spectra: Vec<SpectrumRecord>,
    pub aelle: AelleMetricsFile,
    /// `aelle/crossval.json`, when the stage has written it.
    pub crossval: Option<aelle::CrossValidationReport>,
    /// `transfer/<source>.json`: other runs' pre-trained models applied to this population.
    pub transfers: Vec<(String, aelle::TransferReport)>,
    pub timings: Vec<Timing>,
}

/// Per-cell summary of the final performance: test accuracy (`smnist-row`, higher is better) or
/// validation bits per character (`char-lm`, lower is better); see [`ReportData::cell_metric`].
#[derive(Debug, Clone)]
pub struct CellSummary {
    pub arch: String,
    pub networks: usize,
    pub mean: f64,
    pub std: f64,
    /// Highest accuracy or lowest bits per character.
    pub best: f64,
    pub worst: f64,
    pub diverged: usize,
}

/// The per-network number the report summarises per cell, and how it names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellMetric {
    /// Final test accuracy (fraction; higher is better).
    TestAccuracy,
    /// Final validation loss in bits per character (lower is better).
    ValidationBitsPerChar,
}

impl CellMetric {
    /// The section heading of the per-cell table.
    pub fn heading(self) -> &'static str {
        match self {
            CellMetric::TestAccuracy => "Final test accuracy per cell",
            CellMetric::ValidationBitsPerChar => {
                "Final validation loss per cell (bits per character, lower is better)"
            }
        }
    }

    /// The value at one epoch of a network's metrics.
    pub fn at(self, m: &rnn_models::EpochMetrics) -> Option<f64> {
        match self {
            CellMetric::TestAccuracy => m.test_accuracy,
            CellMetric::ValidationBitsPerChar => m.test_bits_per_char,
        }
    }

    /// The value at the end of training (NaN for a diverged network).
    pub fn final_value(self, m: &NetMetrics) -> f64 {
        if m.diverged() {
            return f64::NAN;
        }
        m.last().and_then(|e| self.at(e)).unwrap_or(f64::NAN)
    }

    fn higher_is_better(self) -> bool {
        self == CellMetric::TestAccuracy
    }
}

/// Said where a task has no published comparison values.
pub const NO_PUBLISHED: &str = "No published comparison values are shown for this task: the published table (Vogt et al., METHOD.md section 6) is for sequential MNIST, and no published numbers for this task are recorded in METHOD.md.";

fn mean_std(v: &[f64]) -> (f64, f64) {
    let v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let m = v.iter().sum::<f64>() / v.len() as f64;
    let s = if v.len() > 1 {
        (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
    } else {
        0.0
    };
    (m, s)
}

impl ReportData {
    /// Reads everything from the run folder.
    pub fn load(run: &RunFolder, config: &ExperimentConfig) -> Result<Self> {
        let mut nets = Vec::new();
        let mut spectra = Vec::new();
        for net in networks(config) {
            let m = trained_network(run, config, &net.id)?;
            for e in config.spectrum_epochs() {
                spectra.push(spectrum_record(run, &net.id, e, "report")?);
            }
            nets.push((net, m));
        }
        let aelle_path = run.aelle_dir().join("metrics.json");
        if !aelle_path.exists() {
            return Err(crate::error::UsageError(format!(
                "{}: missing; run `aelle` before `report`",
                aelle_path.display()
            ))
            .into());
        }
        let aelle: AelleMetricsFile = read_json(&aelle_path)?;
        let crossval_path = run.aelle_dir().join("crossval.json");
        let crossval = if crossval_path.exists() { Some(read_json(&crossval_path)?) } else { None };
        let mut transfers = Vec::new();
        if let Ok(dir) = std::fs::read_dir(run.transfer_dir()) {
            let mut paths: Vec<_> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
            paths.sort();
            for p in paths {
                if p.extension().is_some_and(|x| x == "json") {
                    let name = p.file_stem().map(|s| s.to_string_lossy().into_owned());
                    transfers.push((name.unwrap_or_default(), read_json(&p)?));
                }
            }
        }
        let mut timings = Vec::new();
        if let Ok(dir) = std::fs::read_dir(run.timings_dir()) {
            let mut paths: Vec<_> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
            paths.sort();
            for p in paths {
                if p.extension().is_some_and(|x| x == "json")
                    && let Ok(t) = read_json::<Timing>(&p)
                {
                    timings.push(t);
                }
            }
        }
        Ok(Self { config: config.clone(), nets, spectra, aelle, crossval, transfers, timings })
    }

    fn archs(&self) -> Vec<String> {
        self.config.population.architectures.iter().map(|a| a.name().to_string()).collect()
    }

    /// The task of the run.
    pub fn kind(&self) -> TaskKind {
        self.config.task.kind
    }

    /// Whether the published (sequential MNIST) numbers are for this run's task.
    pub fn published_applies(&self) -> bool {
        self.kind() == TaskKind::SmnistRow
    }

    /// The split whose final loss is the target: `"test"` or `"validation"`.
    pub fn held_out(&self) -> &'static str {
        self.kind().held_out_split()
    }

    /// What the per-cell table and the training figure show.
    pub fn cell_metric(&self) -> CellMetric {
        match self.kind() {
            TaskKind::SmnistRow => CellMetric::TestAccuracy,
            TaskKind::CharLm => CellMetric::ValidationBitsPerChar,
        }
    }

    /// A loss value as the report writes it: nats (4 decimals), and for `char-lm` also in bits
    /// per character, the unit of its per-cell table.
    pub fn loss_text(&self, nats: f64) -> String {
        match self.kind() {
            TaskKind::SmnistRow => format!("{nats:.4}"),
            TaskKind::CharLm => {
                format!("{nats:.4} nats = {:.3} bits per character", nats / std::f64::consts::LN_2)
            }
        }
    }

    /// The task, its data and its target, in one sentence.
    pub fn task_line(&self) -> String {
        let c = &self.config;
        let (train, test) = c.example_counts();
        match self.kind() {
            TaskKind::SmnistRow => format!(
                "Task: smnist-row, row-wise sequential MNIST (T = 28 rows of I = 28 pixels, 10 classes; the target is the final test loss). Data: {}; {train} training / {test} test images used.",
                c.task.describe()
            ),
            TaskKind::CharLm => {
                let (t, i, _) = c.task.kind.shape();
                format!(
                    "Task: char-lm, next-character prediction on Moby-Dick (windows of T = {t} one-hot characters, I = V = {i}; a softmax over the {i} characters at every step; the target is the final validation loss, the mean cross-entropy per character on the last 10 % of the text). Data: {}; {train} training / {test} validation windows used.",
                    c.task.describe()
                )
            }
        }
    }

    /// Final performance per cell ([`Self::cell_metric`]).
    pub fn cell_summaries(&self) -> Vec<CellSummary> {
        let metric = self.cell_metric();
        self.archs()
            .into_iter()
            .map(|arch| {
                let values: Vec<f64> = self
                    .nets
                    .iter()
                    .filter(|(n, _)| n.arch.name() == arch)
                    .map(|(_, m)| metric.final_value(m))
                    .collect();
                let finite: Vec<f64> = values.iter().copied().filter(|a| a.is_finite()).collect();
                let (mean, std) = mean_std(&finite);
                let max = finite.iter().copied().fold(f64::NAN, f64::max);
                let min = finite.iter().copied().fold(f64::NAN, f64::min);
                let (best, worst) = if metric.higher_is_better() { (max, min) } else { (min, max) };
                CellSummary {
                    networks: values.len(),
                    mean,
                    std,
                    best,
                    worst,
                    diverged: values.len() - finite.len(),
                    arch,
                }
            })
            .collect()
    }

    fn training_figure(&self) -> Figure {
        let metric = self.cell_metric();
        let series = self
            .archs()
            .into_iter()
            .map(|arch| {
                let of_arch: Vec<&NetMetrics> = self
                    .nets
                    .iter()
                    .filter(|(n, _)| n.arch.name() == arch)
                    .map(|(_, m)| m)
                    .collect();
                let points = (0..=self.config.training.epochs)
                    .map(|e| {
                        let v: Vec<f64> = of_arch
                            .iter()
                            .filter_map(|m| {
                                m.at(e as usize).map(|x| metric.at(x).unwrap_or(f64::NAN))
                            })
                            .collect();
                        let (m, s) = mean_std(&v);
                        (e as f64, m, s)
                    })
                    .filter(|p| p.1.is_finite())
                    .collect();
                BandSeries { color: arch_color(&arch), label: arch, points }
            })
            .collect();
        let (title, y_label) = match metric {
            CellMetric::TestAccuracy => {
                ("Test accuracy per cell (mean ± std over networks)", "test accuracy")
            }
            CellMetric::ValidationBitsPerChar => (
                "Validation loss per cell (mean ± std over networks)",
                "validation bits per character",
            ),
        };
        Figure {
            width: 900,
            height: 480,
            panels: vec![Panel {
                title: title.into(),
                x_label: "epoch".into(),
                y_label: y_label.into(),
                content: PanelContent::Bands(series),
            }],
        }
    }

    fn spectra_panel(&self, epoch: u32, title: String) -> Panel {
        let series = self
            .archs()
            .into_iter()
            .map(|arch| {
                let recs: Vec<&SpectrumRecord> =
                    self.spectra.iter().filter(|r| r.arch == arch && r.epoch == epoch).collect();
                let k = recs.iter().map(|r| r.mean.len()).max().unwrap_or(0);
                let points = (0..k)
                    .map(|i| {
                        let v: Vec<f64> =
                            recs.iter().filter_map(|r| r.mean.get(i).copied().flatten()).collect();
                        let (m, s) = mean_std(&v);
                        ((i + 1) as f64, m, s)
                    })
                    .filter(|p| p.1.is_finite())
                    .collect();
                BandSeries { color: arch_color(&arch), label: arch, points }
            })
            .collect();
        let unit = if self.config.spectra.log_base == LogBase::Two { "bits" } else { "nats" };
        Panel {
            title,
            x_label: "exponent index i".into(),
            y_label: format!("λ_i ({unit} / step)"),
            content: PanelContent::Bands(series),
        }
    }

    fn spectra_figure(&self) -> Figure {
        let last = self.config.training.epochs;
        let epochs = self.config.spectrum_epochs();
        let final_epoch = epochs.iter().copied().max().unwrap_or(last);
        Figure {
            width: 1200,
            height: 480,
            panels: vec![
                self.spectra_panel(0, "Lyapunov spectra at initialisation".into()),
                self.spectra_panel(final_epoch, format!("Lyapunov spectra at epoch {final_epoch}")),
            ],
        }
    }

    fn legend(&self) -> Vec<(String, plots::Rgb)> {
        self.archs().into_iter().map(|a| (a.clone(), arch_color(&a))).collect()
    }

    fn lambda_max_figure(&self) -> Figure {
        let epochs = self.config.spectrum_epochs();
        let final_epoch = epochs.iter().copied().max().unwrap_or(0);
        let panel = |epoch: u32, title: String| {
            let dots = self
                .spectra
                .iter()
                .filter(|r| r.epoch == epoch)
                .filter_map(|r| {
                    r.lambda_max().map(|l| Dot { x: r.p, y: l, color: arch_color(&r.arch) })
                })
                .collect();
            Panel {
                title,
                x_label: "init scale p".into(),
                y_label: "λ_max".into(),
                content: PanelContent::Scatter { dots, legend: self.legend(), colorbar: None },
            }
        };
        Figure {
            width: 1200,
            height: 480,
            panels: vec![
                panel(0, "λ_max vs p at initialisation".into()),
                panel(final_epoch, format!("λ_max vs p at epoch {final_epoch}")),
            ],
        }
    }

    fn latent_figure(&self, which: &str) -> Figure {
        let coords: Vec<(&AelleRowOut, [f64; 2])> = self
            .aelle
            .rows
            .iter()
            .filter_map(|r| match which {
                "pca" => (r.pca.len() >= 2).then(|| (r, [r.pca[0], r.pca[1]])),
                _ => r.tsne.map(|t| (r, t)),
            })
            .collect();
        let logs: Vec<f64> =
            coords.iter().map(|(r, _)| r.final_loss.ln()).filter(|v| v.is_finite()).collect();
        let (lo, hi) = (
            logs.iter().copied().fold(f64::INFINITY, f64::min),
            logs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        );
        let t_of = |loss: f64| if hi > lo { (loss.ln() - lo) / (hi - lo) } else { 0.5 };
        let by_arch = coords
            .iter()
            .map(|(r, c)| Dot { x: c[0], y: c[1], color: arch_color(&r.group) })
            .collect();
        // Low loss = bright (yellow): good networks stand out.
        let by_loss = coords
            .iter()
            .map(|(r, c)| Dot { x: c[0], y: c[1], color: viridis(1.0 - t_of(r.final_loss)) })
            .collect();
        let (name, xl, yl) = match which {
            "pca" => {
                let ev = &self.aelle.pca_explained_variance_ratio;
                let pct = |i: usize| {
                    ev.get(i).map(|v| format!(" ({:.0} %)", v * 100.0)).unwrap_or_default()
                };
                ("PCA", format!("PC1{}", pct(0)), format!("PC2{}", pct(1)))
            }
            _ => ("t-SNE", "t-SNE 1".to_string(), "t-SNE 2".to_string()),
        };
        let cb = if lo.is_finite() && hi.is_finite() {
            Some((lo.exp(), hi.exp(), "final loss".to_string()))
        } else {
            None
        };
        Figure {
            width: 1200,
            height: 520,
            panels: vec![
                Panel {
                    title: format!("AeLLE latent, {name}: by cell"),
                    x_label: xl.clone(),
                    y_label: yl.clone(),
                    content: PanelContent::Scatter {
                        dots: by_arch,
                        legend: self.legend(),
                        colorbar: None,
                    },
                },
                Panel {
                    title: format!("AeLLE latent, {name}: by final {} loss", self.held_out()),
                    x_label: xl,
                    y_label: yl,
                    content: PanelContent::Scatter {
                        dots: by_loss,
                        legend: Vec::new(),
                        // the bar runs from the best (top, yellow) to the worst loss
                        colorbar: cb.map(|(a, b, l)| (b, a, l)),
                    },
                },
            ],
        }
    }
}

/// A rendered figure.
pub struct RenderedFigure {
    pub name: &'static str,
    pub caption: String,
    pub png: Vec<u8>,
}

/// Runs the stage: always re-renders (cheap), so a report reflects the latest stages.
pub fn run_stage(run: &RunFolder, config: &ExperimentConfig) -> Result<()> {
    let data = ReportData::load(run, config)?;
    let dir = run.report_dir();
    let unit = if config.spectra.log_base == LogBase::Two { "bits" } else { "nats" };
    let held_out = data.held_out();
    let (training_name, training_caption) = match data.cell_metric() {
        CellMetric::TestAccuracy => ("accuracy", "Test accuracy of every cell over training: mean ± one standard deviation over the networks of the cell (all p).".to_string()),
        CellMetric::ValidationBitsPerChar => ("validation-loss", "Validation loss (bits per character) of every cell over training: mean ± one standard deviation over the networks of the cell (all p).".to_string()),
    };
    let driving = match data.kind() {
        TaskKind::SmnistRow => "fixed driving sequences (test images)",
        TaskKind::CharLm => "fixed driving sequences (one-hot validation windows)",
    };
    let figures: Vec<(&'static str, String, Figure)> = vec![
        (training_name, training_caption, data.training_figure()),
        ("spectra", format!("Mean Lyapunov spectrum per cell ({unit} per step, {} {driving}; mean ± std over networks) at initialisation and at the end of training.", config.spectra.driving_sequences), data.spectra_figure()),
        ("lambda-max-vs-p", "Largest Lyapunov exponent against the initialisation scale p, at initialisation and at the end of training.".to_string(), data.lambda_max_figure()),
        ("latent-pca", format!("AeLLE latent of every (network, checkpoint) row, first two principal components (fitted on training networks): coloured by cell, and by the network's final {held_out} loss (yellow = low loss = good)."), data.latent_figure("pca")),
        ("latent-tsne", "The same latent embedded with t-SNE.".to_string(), data.latent_figure("tsne")),
    ];
    let mut rendered = Vec::new();
    for (name, caption, fig) in figures {
        let (png_bytes, svg) = plots::render(&fig)?;
        write_atomic(&dir.join(format!("{name}.png")), &png_bytes)?;
        write_atomic(&dir.join(format!("{name}.svg")), svg.as_bytes())?;
        rendered.push(RenderedFigure { name, caption, png: png_bytes });
    }
    let config_toml = config.to_toml()?;
    write_atomic(
        &dir.join("summary.md"),
        html::summary_markdown(&data, &rendered, &config_toml).as_bytes(),
    )?;
    write_atomic(
        &dir.join("index.html"),
        html::index_html(&data, &rendered, &config_toml).as_bytes(),
    )?;
    tracing::info!(path = %dir.join("index.html").display(), "report written");
    Ok(())
}

/// Count of networks per split (test networks are what every number is computed on).
pub fn split_counts(data: &ReportData) -> BTreeMap<String, usize> {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for r in &data.aelle.rows {
        seen.insert(&r.network_id, &r.split);
    }
    let mut out = BTreeMap::new();
    for s in seen.values() {
        *out.entry(s.to_string()).or_insert(0) += 1;
    }
    out
}
