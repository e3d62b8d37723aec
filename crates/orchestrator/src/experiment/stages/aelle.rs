//! The `aelle` stage: one [`aelle::SpectrumRow`] per (network, spectrum checkpoint) — mean
//! spectrum, current test loss, final test loss, cell as the group — then
//! [`aelle::run_aelle`]: features, autoencoder, PCA / t-SNE of the latent, and the early
//! classifiers evaluated on held-out test networks.
//!
//! Three analyses of one table:
//! - [`aelle::cross_validate`]: the headline numbers, out of fold with intervals and controls
//!   (`aelle/crossval.json`);
//! - [`aelle::PretrainedAelle::fit_population`]: the model fitted on every network, for
//!   `orchestrator transfer` (`aelle/pretrained/model.safetensors`, `model.json`,
//!   `model.readout.json`);
//! - [`aelle::run_aelle`]: one train / validation / test split, whose latent the report's
//!   embedding figures show (`aelle/model.safetensors` + `model.json`, `aelle/metrics.json`).
//!
//! Writes `aelle/rows.json` (the input table) first and `aelle/metrics.json` last; each output
//! that exists is kept, so a rerun computes only what is missing (a folder made before the
//! cross-validation existed gains it).

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

/// Runs the stage (skipped when all its outputs exist). Returns whether it computed anything.
pub fn run_stage(run: &RunFolder, config: &ExperimentConfig) -> Result<bool> {
    let metrics_path = run.aelle_dir().join("metrics.json");
    let crossval_path = run.aelle_dir().join("crossval.json");
    let pretrained_path = run.pretrained_model();
    let readout_path = aelle::PretrainedAelle::readout_path(&pretrained_path);
    let rows_path = run.aelle_dir().join("rows.json");
    let rows = collect_rows(run, config)?;
    if metrics_path.exists() && crossval_path.exists() && readout_path.exists() {
        // The input table is checked, not trusted: a truncated or stale copy is rewritten.
        // (Compared as the bytes `write_json` writes: rows may hold NaN, which is not equal
        // to itself.)
        let mut want = serde_json::to_vec_pretty(&rows)?;
        want.push(b'\n');
        if std::fs::read(&rows_path).ok().as_ref() != Some(&want) {
            tracing::warn!(path = %rows_path.display(), "aelle: rows.json missing or not the run's table; rewriting");
            write_json(&rows_path, &rows)?;
        }
        tracing::info!(path = %metrics_path.display(), "aelle: already done, skipping");
        return Ok(false);
    }
    write_json(&rows_path, &rows)?;
    if !crossval_path.exists() {
        let cv = &config.aelle.cross_validation;
        tracing::info!(
            rows = rows.len(),
            folds = cv.folds,
            repeats = cv.repeats,
            "aelle: cross-validating ({} autoencoder fits)",
            cv.folds * cv.repeats
        );
        let report =
            aelle::cross_validate(&rows, &config.aelle).context("AeLLE cross-validation")?;
        // One line per point (the comparisons are in the report).
        for p in &report.points {
            tracing::info!("{}", p.headline("cross-validated"));
        }
        write_json(&crossval_path, &report)?;
    }
    if !readout_path.exists() {
        tracing::info!("aelle: fitting the pre-trained model on every network");
        let model = aelle::PretrainedAelle::fit_population(&rows, &config.aelle)
            .context("AeLLE pre-trained model")?;
        model.save(&pretrained_path).with_context(|| {
            format!("{}: cannot save the pre-trained AeLLE model", pretrained_path.display())
        })?;
    }
    if !metrics_path.exists() {
        tracing::info!(rows = rows.len(), "aelle: single split for the embedding figures");
        let result = aelle::run_aelle(&rows, &config.aelle).context("AeLLE analysis")?;
        tracing::info!(
            used = result.report.rows_used,
            excluded = result.report.excluded.len(),
            "aelle: done"
        );
        let model_path = run.aelle_dir().join("model.safetensors");
        result
            .model
            .save(&model_path)
            .with_context(|| format!("{}: cannot save the AeLLE model", model_path.display()))?;
        // Last: its presence marks the stage complete.
        write_json(&metrics_path, &result.report)?;
    }
    Ok(true)
}
