//! Population training: `M` networks of one shape trained together, each with its own data
//! order (`seed`), learning rate, optimiser state and dropout masks.
//!
//! Network `m` sees exactly what it would see alone: its batches come from
//! `BatchIter::for_epoch(task, Train, batch_size, spec.seed, epoch)`, its dropout masks from
//! `ChaCha8Rng::seed_from_u64(spec.seed)` on a stream of `(epoch, batch)`, its loss is its own
//! mean, and the batched matmuls never mix networks. So training a population equals training
//! each network alone, up to float rounding.

use candle_core::{DType, Device, Tensor};
use datasets::{Batch, BatchIter, Split, Targets, Task};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::config::{NetSpec, TrainConfig};
use crate::error::{ModelError, Result};
use crate::model::{Head, ModelShape, PopulationModel};
use crate::optim::PopulationAdam;

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

/// Trains a [`PopulationModel`] on a [`Task`].
pub struct PopulationTrainer<'t> {
    task: &'t dyn Task,
    model: PopulationModel,
    optimizer: PopulationAdam,
    config: TrainConfig,
    active: Vec<bool>,
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
        Ok(Self { task, model, optimizer, config: config.clone(), active })
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

    /// Stacks one batch per network into inputs `[M, B, T, I]` and targets.
    fn stack(&self, batches: Vec<Batch>) -> Result<(Tensor, Tensor, usize)> {
        let m = batches.len();
        let first = &batches[0];
        let (b, t, i) = (first.batch_size, first.seq_len, first.input_size);
        let head = self.model.shape().head;
        let mut inputs = Vec::with_capacity(m * b * t * i);
        let mut classes = Vec::new();
        let mut values = Vec::new();
        for batch in batches {
            if batch.input_shape() != [b, t, i] {
                return Err(ModelError::UnsupportedTask(format!(
                    "batches of one step differ in shape: {:?} vs {:?}",
                    batch.input_shape(),
                    [b, t, i]
                )));
            }
            inputs.extend_from_slice(&batch.inputs);
            match batch.targets {
                Targets::ClassPerSequence(v) | Targets::ClassPerStep(v) => classes.extend(v),
                Targets::ValuePerSequence(v) | Targets::ValuePerStep(v) => values.extend(v),
            }
        }
        let device = self.model.device();
        let x = Tensor::from_vec(inputs, (m, b, t, i), device)?;
        let rows = if head.is_per_step() { b * t } else { b };
        let y = if head.is_classification() {
            let c = head.readout_size();
            if let Some(bad) = classes.iter().find(|&&k| k as usize >= c) {
                return Err(ModelError::UnsupportedTask(format!(
                    "target class {bad} >= {c} classes"
                )));
            }
            Tensor::from_vec(classes, (m, rows), device)?
        } else {
            let o = head.readout_size();
            if values.len() != m * rows * o {
                return Err(ModelError::UnsupportedTask(format!(
                    "{} target values, expected {}",
                    values.len(),
                    m * rows * o
                )));
            }
            Tensor::from_vec(values, (m, rows, o), device)?
        };
        Ok((x, y, rows))
    }

    /// Readout dropout masks `[M, R, N]` for batch `batch` of epoch `epoch`, or `None`.
    fn dropout_mask(&self, epoch: usize, batch: usize, rows: usize) -> Result<Option<Tensor>> {
        let q = self.config.readout_dropout;
        if q <= 0.0 {
            return Ok(None);
        }
        let n = self.model.shape().hidden_size;
        let keep = (1.0 / (1.0 - q)) as f32;
        let mut mask = Vec::with_capacity(self.model.num_networks() * rows * n);
        for spec in self.model.specs() {
            let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
            rng.set_stream((1u64 << 63) | ((epoch as u64) << 32) | batch as u64);
            mask.extend((0..rows * n).map(|_| if rng.random::<f64>() < q { 0.0 } else { keep }));
        }
        Ok(Some(Tensor::from_vec(mask, (self.model.num_networks(), rows, n), self.model.device())?))
    }

    /// One training epoch (`epoch` >= 1 selects the data order and dropout streams).
    pub fn train_epoch(&mut self, epoch: usize) -> Result<Vec<TrainEpochResult>> {
        let m = self.model.num_networks();
        let bs = self.config.batch_size;
        let mut iters = self
            .model
            .specs()
            .iter()
            .map(|s| {
                BatchIter::for_epoch(self.task, Split::Train, bs, s.seed, epoch as u64, false)
                    .map_err(ModelError::from)
            })
            .collect::<Result<Vec<_>>>()?;
        let lrs: Vec<f64> = self.model.specs().iter().map(|s| s.lr).collect();
        let mut loss_sum = vec![0.0f64; m];
        let mut correct = vec![0.0f64; m];
        let mut seen = vec![0usize; m];
        let mut diverged = vec![None; m];
        let mut batch_index = 0usize;
        loop {
            if !self.active.iter().any(|&a| a) {
                break;
            }
            let mut batches = Vec::with_capacity(m);
            for it in &mut iters {
                match it.next() {
                    Some(b) => batches.push(b?),
                    None => break,
                }
            }
            if batches.len() < m {
                break;
            }
            let b = batches[0].batch_size;
            let (x, y, rows) = self.stack(batches)?;
            let mask = self.dropout_mask(epoch, batch_index, rows)?;
            let params = self.model.tracked_params();
            let out = self.model.forward(&params, &x, mask.as_ref())?;
            let (loss, n_correct) = self.model.loss(&out, &y)?;
            let losses = loss.to_dtype(DType::F64)?.to_vec1::<f64>()?;
            for k in 0..m {
                if self.active[k] && !losses[k].is_finite() {
                    self.active[k] = false;
                    diverged[k] = Some(Divergence { epoch, batch: batch_index });
                }
            }
            let live: Vec<u32> = (0..m as u32).filter(|&k| self.active[k as usize]).collect();
            if live.is_empty() {
                break;
            }
            let idx = Tensor::from_vec(live.clone(), live.len(), self.model.device())?;
            let total = loss.index_select(&idx, 0)?.sum_all()?;
            let grads = total.backward()?;
            let before = self.active.clone();
            self.optimizer.step(self.model.vars(), &grads, &lrs, &mut self.active)?;
            let hits = match n_correct {
                Some(c) => Some(c.to_vec1::<f32>()?),
                None => None,
            };
            for k in 0..m {
                if before[k] && !self.active[k] {
                    diverged[k] = Some(Divergence { epoch, batch: batch_index });
                }
                if before[k] {
                    loss_sum[k] += losses[k] * b as f64;
                    seen[k] += b;
                    if let Some(h) = &hits {
                        correct[k] += f64::from(h[k]) * (b as f64) / (rows as f64);
                    }
                }
            }
            batch_index += 1;
        }
        let classification = self.model.shape().head.is_classification();
        Ok((0..m)
            .map(|k| TrainEpochResult {
                loss: (seen[k] > 0 && diverged[k].is_none()).then(|| loss_sum[k] / seen[k] as f64),
                accuracy: (classification && seen[k] > 0 && diverged[k].is_none())
                    .then(|| correct[k] / seen[k] as f64),
                diverged: diverged[k],
            })
            .collect())
    }

    /// Loss and accuracy of every network on `split` (in order, no dropout, no graph).
    /// Networks that diverged get `NaN`.
    pub fn evaluate(&self, split: Split) -> Result<Vec<EvalResult>> {
        let m = self.model.num_networks();
        let params = self.model.detached_params();
        let n = self.task.num_examples(split);
        let iter =
            BatchIter::new(self.task, split, (0..n).collect(), self.config.eval_batch_size, false)?;
        let mut loss_sum = vec![0.0f64; m];
        let mut correct = vec![0.0f64; m];
        let mut seen = 0usize;
        for batch in iter {
            let batch = batch?;
            let b = batch.batch_size;
            let copies = vec![batch; m];
            let (x, y, rows) = self.stack(copies)?;
            let out = self.model.forward(&params, &x, None)?;
            let (loss, hits) = self.model.loss(&out, &y)?;
            let loss = loss.to_dtype(DType::F64)?.to_vec1::<f64>()?;
            let hits = match hits {
                Some(h) => Some(h.to_vec1::<f32>()?),
                None => None,
            };
            for k in 0..m {
                loss_sum[k] += loss[k] * b as f64;
                if let Some(h) = &hits {
                    correct[k] += f64::from(h[k]) * (b as f64) / (rows as f64);
                }
            }
            seen += b;
        }
        if seen == 0 {
            return Err(ModelError::UnsupportedTask(format!(
                "split {} of {} is empty",
                split.name(),
                self.task.name()
            )));
        }
        let classification = self.model.shape().head.is_classification();
        Ok((0..m)
            .map(|k| {
                if self.active[k] {
                    EvalResult {
                        loss: loss_sum[k] / seen as f64,
                        accuracy: classification.then(|| correct[k] / seen as f64),
                    }
                } else {
                    EvalResult { loss: f64::NAN, accuracy: None }
                }
            })
            .collect())
    }
}
