//! `orchestrator transfer --model RUN_A --run-dir RUN_B`: the pre-trained AeLLE of run A
//! (autoencoder, PCA, classifiers and cuts fitted on all of A's networks) applied with no
//! refitting to population B ([`aelle::transfer`]), which may differ in seed, hidden size or
//! cells. Writes `RUN_B/transfer/<A's name>.json` and re-renders B's report, which then shows
//! the transfer next to B's own cross-validation.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::aelle::collect_rows;
use crate::error::usage;
use crate::experiment::config::read_resolved;
use crate::experiment::run_folder::RunFolder;
use crate::experiment::status::check_complete;
use crate::fs::write_json;

/// The model file a `--model` argument names: a run folder (its
/// `aelle/pretrained/model.safetensors`) or a model file itself.
pub fn model_path(model: &Path) -> PathBuf {
    if model.is_dir() { RunFolder::new(model).pretrained_model() } else { model.to_path_buf() }
}

/// The name the transfer is filed under in B: A's run name when `--model` is a run folder,
/// else the model file's stem.
fn source_name(model: &Path) -> String {
    if model.is_dir() {
        let config = model.join("config.toml");
        if let Ok(c) = read_resolved(&config) {
            return c.name;
        }
    }
    model.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into())
}

/// Runs the transfer and returns the path of the written JSON.
pub fn run(model: &Path, run_dir: &Path, name: Option<&str>) -> Result<PathBuf> {
    let weights = model_path(model);
    let readout = aelle::PretrainedAelle::readout_path(&weights);
    if !readout.exists() {
        return Err(usage(format!(
            "{}: no pre-trained AeLLE model (expected {}; run `orchestrator aelle` on the source run first)",
            model.display(),
            readout.display()
        )));
    }
    let pretrained = aelle::PretrainedAelle::load(&weights)
        .map_err(|e| usage(format!("{}: {e}", weights.display())))?;
    let config_path = run_dir.join("config.toml");
    if !config_path.exists() {
        return Err(usage(format!("{}: not a run folder (no config.toml)", run_dir.display())));
    }
    let config = read_resolved(&config_path)?;
    let run = RunFolder::open(run_dir, &config)?;
    check_complete(&run, &config)?;
    let rows = collect_rows(&run, &config)?;
    let name = name.map_or_else(|| source_name(model), str::to_string);
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(usage(format!("transfer name {name:?}: expected a plain file name")));
    }
    tracing::info!(source = %weights.display(), target = %run_dir.display(), rows = rows.len(), "transfer: applying the pre-trained AeLLE");
    let report = aelle::transfer(
        &pretrained,
        &rows,
        &config.aelle.cross_validation,
        &config.aelle.evaluation,
        config.aelle.seed,
    )
    .context("AeLLE transfer")?;
    // One line per point (the comparisons are in the report).
    for p in &report.points {
        tracing::info!("{}", p.headline("transfer"));
    }
    let out = run.transfer_dir().join(format!("{name}.json"));
    write_json(&out, &report)?;
    if run.aelle_dir().join("metrics.json").exists() {
        super::report::run_stage(&run, &config)?;
    }
    Ok(out)
}
