//! What a run folder already holds, decided in one place: whether a network's training is
//! complete (its `metrics.json` says finished or diverged, every checkpoint exists), whether a
//! spectrum record exists and parses, whether a whole (possibly sharded) run is complete, and
//! the counts `--dry-run` prices.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, Result};
use rnn_models::NetMetrics;

use super::config::ExperimentConfig;
use super::plan::{WorkDone, networks, units_of_shard};
use super::records::{ShardRecord, SpectrumRecord};
use super::run_folder::RunFolder;
use super::shard::Shard;
use crate::fs::read_json;

/// Reads an `rnn-models` `metrics.json`, naming the file on error.
pub fn read_metrics_file(path: &Path) -> Result<NetMetrics> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        crate::error::usage(format!("{}: not a valid metrics file: {e}", path.display()))
    })
}

/// The metrics of a network whose training is complete (finished with every epoch's record
/// and checkpoint, or diverged), else a bad-input error naming the file and what is missing.
/// The one completeness rule of a network: `sweep` skips what passes it, `spectra`, `merge`,
/// `aelle` and `report` require it.
pub fn trained_network(run: &RunFolder, config: &ExperimentConfig, id: &str) -> Result<NetMetrics> {
    let usage = |msg: String| -> anyhow::Error { crate::error::usage(msg) };
    let path = run.metrics(id);
    if !path.exists() {
        return Err(usage(format!(
            "{}: missing (network not trained); run `sweep` (every shard) and `merge` first",
            path.display()
        )));
    }
    let m = read_metrics_file(&path)?;
    if m.diverged() {
        return Ok(m);
    }
    let epochs = config.training.epochs;
    let last = m.epochs.last().map(|e| e.epoch);
    if !m.finished() || last != Some(epochs as usize) {
        return Err(usage(format!(
            "{}: training incomplete (last epoch {last:?} of {epochs})",
            path.display()
        )));
    }
    if m.epochs.len() != epochs as usize + 1 {
        return Err(usage(format!(
            "{}: {} epoch records, expected {} (epochs 0..={epochs})",
            path.display(),
            m.epochs.len(),
            epochs + 1
        )));
    }
    for e in 0..=epochs {
        let c = run.checkpoint(id, e);
        if !c.is_file() {
            return Err(usage(format!("{}: checkpoint missing", c.display())));
        }
        // What a rerun skips is checked, not trusted: the header must describe the file's
        // size exactly (reads the header only).
        if let Err(err) = le_engine::tensor_data::check_safetensors_size(&c) {
            return Err(usage(format!(
                "corrupt checkpoint: {err}; delete {} and rerun `sweep` to retrain that network",
                run.net_dir(id).display()
            )));
        }
    }
    Ok(m)
}

/// The spectrum record of `id` at `epoch`, which `stage` needs: a missing one is bad input
/// that says to run `spectra` first.
pub fn spectrum_record(
    run: &RunFolder,
    id: &str,
    epoch: u32,
    stage: &str,
) -> Result<SpectrumRecord> {
    let path = run.spectrum(id, epoch);
    if !path.exists() {
        return Err(crate::error::usage(format!(
            "{}: spectrum missing; run `spectra` (every shard) and `merge` before `{stage}`",
            path.display()
        )));
    }
    read_json(&path)
}

/// Whether `spectra/<id>/epoch-<e>.json` exists and parses.
pub fn spectrum_is_complete(run: &RunFolder, id: &str, epoch: u32) -> bool {
    let p = run.spectrum(id, epoch);
    p.exists() && read_json::<SpectrumRecord>(&p).is_ok()
}

/// Checks that every network is trained and every spectrum computed; with sharded runs, that
/// every shard reported. Errors list what is missing, by shard and file.
pub fn check_complete(run: &RunFolder, config: &ExperimentConfig) -> Result<()> {
    let mut problems: Vec<String> = Vec::new();
    // Shard records: every index of every count that appears must be present.
    let shards_dir = run.root().join("shards");
    for stage in ["sweep", "spectra"] {
        let mut counts: BTreeSet<usize> = BTreeSet::new();
        let mut present: BTreeSet<(usize, usize)> = BTreeSet::new();
        if let Ok(rd) = std::fs::read_dir(&shards_dir) {
            for e in rd.flatten() {
                let p = e.path();
                let fname = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if fname.starts_with(&format!("{stage}-shard-")) && fname.ends_with(".json") {
                    let r: ShardRecord = read_json(&p)?;
                    counts.insert(r.count);
                    present.insert((r.index, r.count));
                }
            }
        }
        for &n in &counts {
            let missing: Vec<String> = (0..n)
                .filter(|i| !present.contains(&(*i, n)))
                .map(|i| format!("{i}/{n}"))
                .collect();
            if !missing.is_empty() {
                let shard_nets: Vec<String> = missing
                    .iter()
                    .filter_map(|m| Shard::parse_with_env(m, |_| None).ok())
                    .flat_map(|s| {
                        units_of_shard(config, s)
                            .into_iter()
                            .flat_map(|u| u.networks.into_iter().map(|n| n.id))
                    })
                    .collect();
                problems.push(format!(
                    "{stage}: shard(s) {} of {n} did not report (no {}); their networks: {}",
                    missing.join(", "),
                    run.shard_record(stage, &format!("shard-<i>-of-{n}")).display(),
                    shard_nets.join(", ")
                ));
            }
        }
    }
    let epochs = config.spectrum_epochs();
    for net in networks(config) {
        if let Err(e) = trained_network(run, config, &net.id) {
            problems.push(format!("{e:#}"));
            continue;
        }
        for &e in &epochs {
            if !spectrum_is_complete(run, &net.id, e) {
                problems.push(format!(
                    "{}: spectrum missing or unreadable",
                    run.spectrum(&net.id, e).display()
                ));
            }
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    let n = problems.len();
    let shown: Vec<String> = problems.into_iter().take(8).collect();
    Err(crate::error::UsageError(format!(
        "{}: incomplete run ({n} problem(s)): {}{}",
        run.root().display(),
        shown.join("; "),
        if n > 8 { format!("; and {} more", n - 8) } else { String::new() }
    ))
    .into())
}

/// What the run folder holds of the shard's work (for `--dry-run`'s estimate).
pub fn work_done(run: &RunFolder, config: &ExperimentConfig, shard: Shard) -> WorkDone {
    let mut done = WorkDone {
        aelle: run.aelle_dir().join("metrics.json").exists(),
        report: run.report_dir().join("index.html").exists(),
        ..WorkDone::default()
    };
    let epochs = config.spectrum_epochs();
    for net in units_of_shard(config, shard).into_iter().flat_map(|u| u.networks) {
        for &e in &epochs {
            if spectrum_is_complete(run, &net.id, e) {
                done.spectra.insert((net.id.clone(), e));
            }
        }
        if trained_network(run, config, &net.id).is_ok() {
            done.trained.insert(net.id);
        }
    }
    done
}
