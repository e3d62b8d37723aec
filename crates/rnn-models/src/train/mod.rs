//! Population training: `M` networks of one shape trained together, each with its own data
//! order (`seed`), learning rate, optimiser state and dropout masks.
//!
//! Network `m` sees exactly what it would see alone: its batches come from
//! `BatchIter::for_epoch(task, Train, batch_size, spec.seed, epoch)`, its dropout masks from
//! `ChaCha8Rng::seed_from_u64(spec.seed)` on a stream of `(epoch, batch)`, its loss is its own
//! mean, and the batched matmuls never mix networks. So training a population equals training
//! each network alone, up to float rounding.
//!
//! Populations the fused path supports ([`crate::fused`]; [`TrainConfig::backend`]) train and
//! evaluate on it instead of candle, with the same batches, masks, loss, optimiser and
//! divergence rules.
//!
//! Files: `candle_path.rs` (the epoch and the evaluation on candle autograd),
//! `fused_path.rs` (the same on the fused CPU path); this file holds the trainer, its
//! results and what both paths share (data order, dropout masks, per-epoch sums).

mod candle_path;
mod fused_path;

use candle_core::{DType, Device};
use datasets::{Batch, BatchIter, Split, Task};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

pub use fused_path::fused_path_applies;

use crate::config::{NetSpec, TrainBackend, TrainConfig};
use crate::error::{ModelError, Result};
use crate::model::{Head, ModelShape, PopulationModel};
use crate::optim::PopulationAdam;
use fused_path::{FusedState, fused_dims};

/// Where a network stopped with a non-finite loss or gradient.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Divergence {
    /// 1-based training epoch.
    pub epoch: usize,
    /// 0-based batch within that epoch.
    pub batch: usize,
}

/// Loss (and accuracy) of one network on a split.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EvalResult {
    /// Mean loss (cross-entropy in nats, or MSE).
    pub loss: f64,
    /// Fraction correct (classification).
    pub accuracy: Option<f64>,
}

/// One network's training-epoch statistics (means over the minibatches it trained on).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainEpochResult {
    /// Mean minibatch loss (`None` if the network was inactive all epoch).
    pub loss: Option<f64>,
    /// Minibatch accuracy (classification).
    pub accuracy: Option<f64>,
    /// Set when the network diverged during this epoch.
    pub diverged: Option<Divergence>,
}

/// Per-network sums of one training epoch (both training paths).
pub(super) struct EpochTally {
    loss_sum: Vec<f64>,
    correct: Vec<f64>,
    seen: Vec<usize>,
    diverged: Vec<Option<Divergence>>,
}

impl EpochTally {
    fn new(m: usize) -> Self {
        Self {
            loss_sum: vec![0.0; m],
            correct: vec![0.0; m],
            seen: vec![0; m],
            diverged: vec![None; m],
        }
    }

    /// Network `k` trained on a minibatch of `b` examples with mean loss `loss` and `hits`
    /// correct predictions.
    fn add(&mut self, k: usize, loss: f64, b: usize, hits: f64) {
        self.loss_sum[k] += loss * b as f64;
        self.seen[k] += b;
        self.correct[k] += hits;
    }

    /// Means over the minibatches each network trained on (`None` when it trained on none
    /// or diverged; accuracy only for classification).
    fn results(&self, classification: bool) -> Vec<TrainEpochResult> {
        (0..self.seen.len())
            .map(|k| {
                let ok = self.seen[k] > 0 && self.diverged[k].is_none();
                let seen = self.seen[k] as f64;
                TrainEpochResult {
                    loss: ok.then(|| self.loss_sum[k] / seen),
                    accuracy: (classification && ok).then(|| self.correct[k] / seen),
                    diverged: self.diverged[k],
                }
            })
            .collect()
    }
}

/// Trains a [`PopulationModel`] on a [`Task`].
pub struct PopulationTrainer<'t> {
    task: &'t dyn Task,
    model: PopulationModel,
    optimizer: PopulationAdam,
    config: TrainConfig,
    active: Vec<bool>,
    /// Set when the fused path trains this population ([`crate::fused`]).
    fused: Option<FusedState>,
}

impl std::fmt::Debug for PopulationTrainer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PopulationTrainer")
            .field("task", &self.task.name())
            .field("model", &self.model)
            .field("active", &self.active)
            .finish()
    }
}

/// The model shape of `spec` on `task`.
pub fn shape_for_task(task: &dyn Task, spec: &NetSpec) -> ModelShape {
    ModelShape::of(spec, task.input_size(), Head::for_output(task.output_kind()))
}

impl<'t> PopulationTrainer<'t> {
    /// Fresh, seeded networks.
    pub fn new(
        task: &'t dyn Task,
        specs: &[NetSpec],
        config: &TrainConfig,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let first = specs.first().ok_or_else(|| {
            ModelError::PopulationMismatch("a population needs at least one network".into())
        })?;
        let model = PopulationModel::new(shape_for_task(task, first), specs, dtype, device)?;
        Self::from_model(task, model, config)
    }

    /// Trains an existing model with fresh optimiser state.
    pub fn from_model(
        task: &'t dyn Task,
        model: PopulationModel,
        config: &TrainConfig,
    ) -> Result<Self> {
        config.validate()?;
        let expect = shape_for_task(task, &model.specs()[0]);
        if *model.shape() != expect {
            return Err(ModelError::PopulationMismatch(format!(
                "model shape {:?} does not fit task {} ({expect:?})",
                model.shape(),
                task.name()
            )));
        }
        let optimizer = PopulationAdam::new(model.vars(), config)?;
        let active = vec![true; model.num_networks()];
        let dims = fused_dims(&model);
        let dims = match config.backend {
            TrainBackend::Auto => dims,
            TrainBackend::Candle => None,
            TrainBackend::Fused => Some(dims.ok_or_else(|| {
                ModelError::InvalidConfig(format!(
                    "the fused backend supports LSTM and GRU with a last-step classification \
                     head in F32 on the CPU; this population is {:?} {:?} {:?} on {:?}",
                    model.shape().arch,
                    model.shape().head,
                    model.dtype(),
                    model.device().location()
                ))
            })?),
        };
        let fused = dims.map(FusedState::new);
        Ok(Self { task, model, optimizer, config: config.clone(), active, fused })
    }

    /// Whether training runs on the fused path ([`crate::fused`]) rather than candle.
    pub fn uses_fused(&self) -> bool {
        self.fused.is_some()
    }

    /// The model.
    pub fn model(&self) -> &PopulationModel {
        &self.model
    }
    /// The optimiser state.
    pub fn optimizer(&self) -> &PopulationAdam {
        &self.optimizer
    }
    /// Mutable optimiser state (to restore a saved one).
    pub fn optimizer_mut(&mut self) -> &mut PopulationAdam {
        &mut self.optimizer
    }
    /// Which networks still train (false once diverged).
    pub fn active(&self) -> &[bool] {
        &self.active
    }

    /// Readout dropout mask values `[M, R, N]` (flat) for batch `batch` of epoch `epoch`, or
    /// `None` without dropout.
    pub(super) fn dropout_values(
        &self,
        epoch: usize,
        batch: usize,
        rows: usize,
    ) -> Option<Vec<f32>> {
        let q = self.config.readout_dropout;
        if q <= 0.0 {
            return None;
        }
        let n = self.model.shape().hidden_size;
        let keep = (1.0 / (1.0 - q)) as f32;
        let mut mask = Vec::with_capacity(self.model.num_networks() * rows * n);
        for spec in self.model.specs() {
            let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
            rng.set_stream((1u64 << 63) | ((epoch as u64) << 32) | batch as u64);
            mask.extend((0..rows * n).map(|_| if rng.random::<f64>() < q { 0.0 } else { keep }));
        }
        Some(mask)
    }

    /// One training epoch (`epoch` >= 1 selects the data order and dropout streams).
    pub fn train_epoch(&mut self, epoch: usize) -> Result<Vec<TrainEpochResult>> {
        if self.fused.is_some() {
            self.train_epoch_fused(epoch)
        } else {
            self.train_epoch_candle(epoch)
        }
    }

    /// An evaluation pass that saw no rows (`seen == 0`) is an error: the split is empty.
    pub(super) fn check_evaluated(&self, split: Split, seen: usize) -> Result<()> {
        if seen == 0 {
            return Err(ModelError::UnsupportedTask(format!(
                "split {} of {} is empty",
                split.name(),
                self.task.name()
            )));
        }
        Ok(())
    }

    /// Every network's learning rate, in population order.
    pub(super) fn learning_rates(&self) -> Vec<f64> {
        self.model.specs().iter().map(|s| s.lr).collect()
    }

    /// The next minibatch of every network (one step of the epoch loop), or `None` once no
    /// network is active or any network's epoch is over.
    pub(super) fn next_live_batches(
        &self,
        iters: &mut [BatchIter<'_>],
    ) -> Result<Option<Vec<Batch>>> {
        if !self.active.iter().any(|&a| a) {
            return Ok(None);
        }
        let mut batches = Vec::with_capacity(iters.len());
        for it in iters {
            match it.next() {
                Some(b) => batches.push(b?),
                None => return Ok(None),
            }
        }
        Ok(Some(batches))
    }

    /// Every network's minibatch iterator for training epoch `epoch` (its own data order).
    pub(super) fn epoch_iters(&self, epoch: usize) -> Result<Vec<BatchIter<'t>>> {
        let bs = self.config.batch_size;
        self.model
            .specs()
            .iter()
            .map(|s| {
                BatchIter::for_epoch(self.task, Split::Train, bs, s.seed, epoch as u64, false)
                    .map_err(ModelError::from)
            })
            .collect()
    }

    /// Loss and accuracy of every network on `split` (in order, no dropout, no graph).
    /// Networks that diverged get `NaN`.
    pub fn evaluate(&self, split: Split) -> Result<Vec<EvalResult>> {
        match &self.fused {
            Some(f) => self.evaluate_fused(f, split),
            None => self.evaluate_candle(split),
        }
    }
}
