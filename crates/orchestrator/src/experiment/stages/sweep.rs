//! The `sweep` stage: trains the population through `rnn_models::run_sweep`, one training
//! unit (a few networks of one cell, trained as one batched population) per call.
//!
//! `rnn-models` writes `nets/<id>/epoch-<e>.safetensors` for e = 0 ..= epochs and
//! `nets/<id>/metrics.json`, and resumes a network from its last complete epoch (checkpoint +
//! Adam state), so an interrupted unit loses at most the epoch in progress and the resumed
//! run writes the same checkpoints. A network is complete when its `metrics.json` says
//! `finished` (all epochs) or `diverged` (non-finite loss; its checkpoints so far are kept).

use anyhow::{Context, Result};

use crate::experiment::config::ExperimentConfig;
use crate::experiment::plan::{NetworkPlan, TrainingUnit};
use crate::experiment::run_folder::RunFolder;

/// The `rnn-models` spec of a planned network: `U(-p, p)` initialisation of every cell
/// parameter (the published sweep), biases on, published cell constants.
pub fn net_spec(config: &ExperimentConfig, net: &NetworkPlan) -> rnn_models::NetSpec {
    let mut s = rnn_models::NetSpec::new(
        net.id.clone(),
        net.arch,
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
