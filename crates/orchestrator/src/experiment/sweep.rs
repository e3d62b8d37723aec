//! The `sweep` stage: trains the population through `rnn_models::run_sweep`, one training
//! unit (a few networks of one cell, trained as one batched population) per call.
//!
//! `rnn-models` writes `nets/<id>/epoch-<e>.safetensors` for e = 0 ..= epochs and
//! `nets/<id>/metrics.json`, and resumes a network from its last complete epoch (checkpoint +
//! Adam state), so an interrupted unit loses at most the epoch in progress and the resumed
//! run writes the same checkpoints. A network is complete when its `metrics.json` says
//! `finished` (all epochs) or `diverged` (non-finite loss; its checkpoints so far are kept).

use std::path::Path;

use anyhow::{Context, Result};

use super::config::{Arch, ExperimentConfig};
use super::metrics::{EpochMetrics, NetMetrics};
use super::plan::{NetworkPlan, TrainingUnit};
use super::run_folder::RunFolder;

pub(super) fn model_arch(a: Arch) -> rnn_models::Arch {
    match a {
        Arch::Lstm => rnn_models::Arch::Lstm,
        Arch::Gru => rnn_models::Arch::Gru,
        Arch::Rnn => rnn_models::Arch::Rnn,
        Arch::Asrnn => rnn_models::Arch::Asrnn,
        Arch::Cornn => rnn_models::Arch::Cornn,
    }
}

/// The `rnn-models` spec of a planned network: `U(-p, p)` initialisation of every cell
/// parameter (the published sweep), biases on, published cell constants.
pub fn net_spec(config: &ExperimentConfig, net: &NetworkPlan) -> rnn_models::NetSpec {
    let mut s = rnn_models::NetSpec::new(
        net.id.clone(),
        model_arch(net.arch),
        config.population.hidden_size,
        net.p,
        config.training.learning_rate,
        net.seed,
    );
    s.num_layers = config.population.num_layers;
    s
}

/// The `rnn-models` training settings.
pub fn train_config(config: &ExperimentConfig) -> rnn_models::TrainConfig {
    rnn_models::TrainConfig {
        epochs: config.training.epochs as usize,
        batch_size: config.training.batch_size,
        max_population: config.runtime.networks_per_unit.max(1),
        // The epoch-0 training loss is not used by any stage (the test loss is).
        eval_train_at_epoch0: false,
        ..rnn_models::TrainConfig::default()
    }
}

/// Reads an `rnn-models` `metrics.json` into the numbers the later stages use.
pub fn read_metrics_file(path: &Path) -> Result<NetMetrics> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let m: rnn_models::NetMetrics = serde_json::from_slice(&bytes).map_err(|e| {
        crate::error::UsageError(format!("{}: not a valid metrics file: {e}", path.display()))
    })?;
    let nan = |v: Option<f64>| v.unwrap_or(f64::NAN);
    Ok(NetMetrics {
        epochs: m
            .epochs
            .iter()
            .map(|e| EpochMetrics {
                epoch: e.epoch as u32,
                test_loss: nan(e.test_loss),
                test_accuracy: nan(e.test_accuracy),
                train_loss: nan(e.train_loss),
            })
            .collect(),
        diverged: m.status == rnn_models::NetStatus::Diverged,
        finished: m.status == rnn_models::NetStatus::Finished,
    })
}

/// `Ok` when the network's training is complete (finished or diverged), else why not.
pub fn network_is_complete(
    run: &RunFolder,
    config: &ExperimentConfig,
    id: &str,
) -> Result<NetMetrics> {
    let path = run.metrics(id);
    if !path.exists() {
        return Err(crate::error::UsageError(format!(
            "{}: missing (network not trained)",
            path.display()
        ))
        .into());
    }
    let m = read_metrics_file(&path)?;
    if m.diverged {
        return Ok(m);
    }
    let last = m.epochs.last().map(|e| e.epoch);
    if !m.finished || last != Some(config.training.epochs) {
        return Err(crate::error::UsageError(format!(
            "{}: training incomplete (last epoch {:?} of {})",
            path.display(),
            last,
            config.training.epochs
        ))
        .into());
    }
    for e in 0..=config.training.epochs {
        let c = run.checkpoint(id, e);
        if !c.is_file() {
            return Err(
                crate::error::UsageError(format!("{}: checkpoint missing", c.display())).into()
            );
        }
    }
    Ok(m)
}

/// Trains one unit (resuming whatever is done). Blocking; call from a worker thread.
pub fn train_unit(
    run: &RunFolder,
    config: &ExperimentConfig,
    task: &dyn datasets::Task,
    unit: &TrainingUnit,
) -> Result<()> {
    let specs: Vec<rnn_models::NetSpec> =
        unit.networks.iter().map(|n| net_spec(config, n)).collect();
    let device = config.runtime.candle_device()?;
    let outcomes = rnn_models::run_sweep(task, &specs, &train_config(config), run.root(), &device)
        .with_context(|| {
            format!(
                "training unit {} ({})",
                unit.index,
                unit.networks.iter().map(|n| n.id.as_str()).collect::<Vec<_>>().join(", ")
            )
        })?;
    for o in outcomes {
        tracing::debug!(network = %o.id, status = ?o.status, resumed_from = ?o.resumed_from, "trained");
    }
    Ok(())
}
