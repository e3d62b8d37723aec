//! The `spectra` stage: the Lyapunov spectrum of every selected checkpoint, driven by the
//! task's fixed driving sequences (`spectra/driving.safetensors`), through le-engine's batched
//! RNN path (`le_engine::rnn::population_spectra`: all checkpoints of one network form one
//! population, all B sequences of a checkpoint advance together).
//!
//! One unit of work = one network's selected checkpoints; each result is
//! `spectra/<net-id>/epoch-<e>.json` ([`SpectrumRecord`]), written atomically. A checkpoint
//! whose weights are non-finite (a diverged training run) gets a record with status
//! `non_finite_weights` and no exponents, never invented numbers; a file that cannot be read
//! as a checkpoint (truncated, corrupt) is an error naming the file.

use std::path::Path;

use anyhow::{Context, Result};
use le_engine::rnn::{InputSet, LoadOptions, Network, RnnSpectrumConfig, population_spectra};

use le_engine::Precision;

use crate::experiment::config::ExperimentConfig;
use crate::experiment::plan::NetworkPlan;
use crate::experiment::records::{SequenceSpectrum, SpectrumRecord};
use crate::experiment::run_folder::RunFolder;
use crate::experiment::status::spectrum_is_complete;
use crate::fs::{write_atomic, write_json};

fn opt(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

/// The engine settings of the config.
pub fn engine_config(config: &ExperimentConfig) -> RnnSpectrumConfig {
    let mut c = RnnSpectrumConfig::default();
    c.spectrum.k = config.spectra.k;
    c.spectrum.precision = config.spectra.precision;
    c.spectrum.warmup = config.spectra.warmup;
    c.spectrum.log_base = config.spectra.log_base;
    c.lstm_state = config.spectra.lstm_state;
    c
}

/// The driving sequences `[B, T, I]`: computed from the task (deterministic) and saved to
/// `spectra/driving.safetensors` the first time.
pub fn driving_sequences(
    config: &ExperimentConfig,
    run: &RunFolder,
    task: &dyn datasets::Task,
) -> Result<datasets::DrivingSequences> {
    let d =
        task.driving_sequences(config.spectra.driving_sequences, config.spectra.driving_seed)?;
    let path = run.driving();
    // The file is a record of what the spectra used; an existing one must be exactly that
    // (a truncated or stale copy is rewritten, never trusted).
    // (Compared by content: the metadata's key order in the header may differ.)
    let intact = path.exists()
        && datasets::DrivingSequences::load_safetensors(&path).is_ok_and(|on_disk| on_disk == d);
    if !intact {
        if path.exists() {
            tracing::warn!(path = %path.display(), "driving sequences on disk differ from the task's; rewriting");
        }
        write_atomic(&path, &d.to_safetensors_bytes()?)?;
    }
    Ok(d)
}

/// Computes the missing spectra of `net` at `epochs`; returns how many were computed.
/// Checkpoints must exist (the network is trained).
pub fn compute_network_spectra(
    run: &RunFolder,
    config: &ExperimentConfig,
    net: &NetworkPlan,
    epochs: &[u32],
    driving: &datasets::DrivingSequences,
    diverged_in_training: bool,
) -> Result<usize> {
    let todo: Vec<u32> =
        epochs.iter().copied().filter(|&e| !spectrum_is_complete(run, &net.id, e)).collect();
    if todo.is_empty() {
        return Ok(0);
    }
    let cfg = engine_config(config);
    let log_base = config.spectra.log_base.label();
    let total_epochs = config.training.epochs as f64;
    let base_record = |epoch: u32| SpectrumRecord {
        network_id: net.id.clone(),
        arch: net.arch.name().to_string(),
        p: net.p,
        epoch,
        training_fraction: epoch as f64 / total_epochs,
        status: String::new(),
        log_base: log_base.to_string(),
        k: 0,
        mean: Vec::new(),
        std: Vec::new(),
        n_finite: 0,
        n_total: driving.num_sequences,
        per_sequence: Vec::new(),
    };
    let computed = match config.spectra.precision {
        Precision::F64 => {
            let inputs: Vec<f64> = driving.inputs.iter().map(|&v| v as f64).collect();
            load_and_compute::<f64>(
                run,
                net,
                &todo,
                &inputs,
                driving,
                &cfg,
                diverged_in_training,
                &base_record,
            )?
        }
        Precision::F32 => load_and_compute::<f32>(
            run,
            net,
            &todo,
            &driving.inputs,
            driving,
            &cfg,
            diverged_in_training,
            &base_record,
        )?,
    };
    let Some((loaded_epochs, result)) = computed else {
        return Ok(todo.len());
    };
    for (m, &e) in loaded_epochs.iter().enumerate() {
        let stats = &result.stats[m];
        let per_sequence: Vec<SequenceSpectrum> = result.spectra[m]
            .iter()
            .map(|s| {
                let (status, at) = match &s.status {
                    le_engine::Status::Finite => ("finite".to_string(), None),
                    le_engine::Status::Diverged { step, .. } => {
                        ("diverged".to_string(), Some(*step))
                    }
                };
                SequenceSpectrum {
                    exponents: s.exponents.iter().map(|&v| opt(v)).collect(),
                    status,
                    diverged_at_step: at,
                }
            })
            .collect();
        let mut r = base_record(e);
        r.k = stats.mean.len();
        r.mean = stats.mean.iter().map(|&v| opt(v)).collect();
        r.std = stats.std.iter().map(|&v| opt(v)).collect();
        r.n_finite = stats.n_finite;
        r.n_total = stats.n_total;
        r.status = if stats.n_finite == stats.n_total {
            "finite"
        } else if stats.n_finite == 0 {
            "diverged"
        } else {
            "partly_diverged"
        }
        .into();
        r.per_sequence = per_sequence;
        write_json(&run.spectrum(&net.id, e), &r)?;
    }
    Ok(todo.len())
}

/// Loads the checkpoints of `todo` as `Network<T>` (writing the records of those that have no
/// network to measure) and computes their spectra; `None` when nothing was loadable.
#[allow(clippy::too_many_arguments)]
fn load_and_compute<T: le_engine::Real>(
    run: &RunFolder,
    net: &NetworkPlan,
    todo: &[u32],
    inputs: &[T],
    driving: &datasets::DrivingSequences,
    cfg: &RnnSpectrumConfig,
    diverged_in_training: bool,
    base_record: &dyn Fn(u32) -> SpectrumRecord,
) -> Result<Option<(Vec<u32>, le_engine::rnn::PopulationSpectra)>> {
    let mut nets = Vec::new();
    let mut loaded_epochs = Vec::new();
    for &e in todo {
        let path = run.checkpoint(&net.id, e);
        if diverged_in_training && !path.exists() {
            // Training stopped before this epoch: there is no network to measure.
            let mut r = base_record(e);
            r.status = "diverged_in_training".into();
            write_json(&run.spectrum(&net.id, e), &r)?;
            continue;
        }
        check_checkpoint_exists(&path)?;
        match Network::<T>::load(&path, &LoadOptions::default()) {
            Ok(n) => {
                nets.push(n);
                loaded_epochs.push(e);
            }
            Err(le_engine::LeError::NonFinite { .. }) => {
                let mut r = base_record(e);
                r.status = "non_finite_weights".into();
                write_json(&run.spectrum(&net.id, e), &r)?;
            }
            Err(err) => {
                return Err(crate::error::UsageError(format!(
                    "corrupt checkpoint {}: {err}; delete it (and its network's metrics.json) \
                     and rerun `sweep` to retrain that network",
                    path.display()
                ))
                .into());
            }
        }
    }
    if nets.is_empty() {
        return Ok(None);
    }
    let set = InputSet::shared(inputs, driving.num_sequences, driving.seq_len);
    let result = population_spectra(&nets, &set, cfg)
        .with_context(|| format!("spectra of network {}", net.id))?;
    Ok(Some((loaded_epochs, result)))
}

fn check_checkpoint_exists(path: &Path) -> Result<()> {
    if path.exists() {
        Ok(())
    } else {
        Err(crate::error::UsageError(format!(
            "{}: checkpoint missing; run `sweep` (with the same --shard) before `spectra`",
            path.display()
        ))
        .into())
    }
}
