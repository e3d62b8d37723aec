//! Per-network training metrics (`nets/<net-id>/metrics.json`, written by `rnn-models`), read
//! into the few numbers the later stages need.

use anyhow::Result;

use super::config::ExperimentConfig;
use super::run_folder::RunFolder;

/// One checkpoint's numbers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochMetrics {
    pub epoch: u32,
    /// Test loss (NaN if the network diverged).
    pub test_loss: f64,
    /// Test accuracy in [0, 1] (NaN if undefined).
    pub test_accuracy: f64,
    /// Mean training loss of the epoch (NaN at epoch 0 if not evaluated).
    pub train_loss: f64,
}

/// A network's record.
#[derive(Debug, Clone, PartialEq)]
pub struct NetMetrics {
    pub epochs: Vec<EpochMetrics>,
    /// Training stopped at a non-finite loss or gradient (epochs after it are absent).
    pub diverged: bool,
    /// All epochs done.
    pub finished: bool,
}

impl NetMetrics {
    /// The record of `epoch`.
    pub fn at(&self, epoch: u32) -> Option<&EpochMetrics> {
        self.epochs.iter().find(|m| m.epoch == epoch)
    }
    /// Test loss at the last epoch; NaN for a diverged network (it has no final loss, and
    /// AeLLE excludes it, listed).
    pub fn final_test_loss(&self) -> f64 {
        if self.diverged {
            return f64::NAN;
        }
        self.epochs.iter().max_by_key(|m| m.epoch).map(|m| m.test_loss).unwrap_or(f64::NAN)
    }
    /// Test accuracy at the last epoch.
    pub fn final_test_accuracy(&self) -> f64 {
        self.epochs.iter().max_by_key(|m| m.epoch).map(|m| m.test_accuracy).unwrap_or(f64::NAN)
    }
}

/// Reads `nets/<id>/metrics.json`; errors name the file.
pub fn read_net_metrics(
    run: &RunFolder,
    config: &ExperimentConfig,
    id: &str,
) -> Result<NetMetrics> {
    let path = run.metrics(id);
    if !path.exists() {
        return Err(crate::error::UsageError(format!(
            "{}: metrics missing (network not trained); run `sweep` (every shard) and `merge` first",
            path.display()
        ))
        .into());
    }
    let m = super::sweep::read_metrics_file(&path)?;
    let expected = config.training.epochs + 1;
    if !m.diverged && m.epochs.len() != expected as usize {
        return Err(crate::error::UsageError(format!(
            "{}: {} epoch records, expected {expected} (epochs 0..={})",
            path.display(),
            m.epochs.len(),
            config.training.epochs
        ))
        .into());
    }
    Ok(m)
}
