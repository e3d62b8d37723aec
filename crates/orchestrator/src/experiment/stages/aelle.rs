//! The `aelle` stage: one [`aelle::SpectrumRow`] per (network, spectrum checkpoint) — mean
//! spectrum, current test loss, final test loss, cell as the group — then
//! [`aelle::run_aelle`]: features, autoencoder, PCA / t-SNE of the latent, and the early
//! classifiers evaluated on held-out test networks.
//!
//! Writes `aelle/rows.json` (the input table), `aelle/metrics.json` (the report),
//! `aelle/model.safetensors` + `aelle/model.json`. Skipped when `aelle/metrics.json` exists.

use anyhow::{Context, Result};

use crate::experiment::config::ExperimentConfig;
use crate::experiment::plan::networks;
use crate::experiment::run_folder::RunFolder;
use crate::experiment::status::{spectrum_record, trained_network};
use crate::fs::write_json;

/// Builds the AeLLE input table from the run folder. Missing spectra or metrics are errors
/// naming the file (run `spectra` / `merge` first).
pub fn collect_rows(run: &RunFolder, config: &ExperimentConfig) -> Result<Vec<aelle::SpectrumRow>> {
    let epochs = config.spectrum_epochs();
    let mut rows = Vec::new();
    for net in networks(config) {
        let metrics = trained_network(run, config, &net.id)?;
        let final_loss = metrics.final_test_loss();
        for &e in &epochs {
            let rec = spectrum_record(run, &net.id, e, "aelle")?;
            let current = metrics.at(e as usize).and_then(|m| m.test_loss).unwrap_or(f64::NAN);
            rows.push(aelle::SpectrumRow {
                network_id: net.id.clone(),
                epoch: e,
                training_fraction: rec.training_fraction,
                spectrum: rec.mean_or_nan(),
                current_loss: current,
                final_loss,
                group: net.arch.name().to_string(),
                hyperparameters: [("p".to_string(), net.p)].into(),
            });
        }
    }
    Ok(rows)
}

/// Runs the stage (skipped when its output exists). Returns whether it computed anything.
pub fn run_stage(run: &RunFolder, config: &ExperimentConfig) -> Result<bool> {
    let metrics_path = run.aelle_dir().join("metrics.json");
    if metrics_path.exists() {
        tracing::info!(path = %metrics_path.display(), "aelle: already done, skipping");
        return Ok(false);
    }
    let rows = collect_rows(run, config)?;
    tracing::info!(rows = rows.len(), "aelle: training the autoencoder");
    let result = aelle::run_aelle(&rows, &config.aelle).context("AeLLE analysis")?;
    tracing::info!(
        used = result.report.rows_used,
        excluded = result.report.excluded.len(),
        "aelle: done"
    );
    write_json(&run.aelle_dir().join("rows.json"), &rows)?;
    let model_path = run.aelle_dir().join("model.safetensors");
    result
        .model
        .save(&model_path)
        .with_context(|| format!("{}: cannot save the AeLLE model", model_path.display()))?;
    // Last: its presence marks the stage complete.
    write_json(&metrics_path, &result.report)?;
    Ok(true)
}
