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

use candle_core::{DType, Device, Tensor};
use datasets::{Batch, BatchIter, Split, Targets, Task};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::config::{Arch, NetSpec, TrainBackend, TrainConfig};
use crate::error::{ModelError, Result};
use crate::fused::{FusedCell, FusedDims, Workspace};
use crate::model::{Head, ModelShape, PopulationModel};
use crate::optim::{AdamSettings, PopulationAdam, adam_step_flat};

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
struct EpochTally {
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

/// The next minibatch of every network, or `None` once any network's epoch is over.
fn next_batches(iters: &mut [BatchIter<'_>]) -> Result<Option<Vec<Batch>>> {
    let mut batches = Vec::with_capacity(iters.len());
    for it in iters {
        match it.next() {
            Some(b) => batches.push(b?),
            None => return Ok(None),
        }
    }
    Ok(Some(batches))
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

/// The fused path's shape and per-network working buffers (kept between epochs).
#[derive(Debug)]
struct FusedState {
    dims: FusedDims,
    /// Per rayon thread (plus one for callers outside the pool): the workspaces of the
    /// minibatch parts of the network it trains ([`crate::fused::step_parts`]). Nothing in them lives
    /// beyond one step, so a thread reuses its buffers (warm in its cache) for every network.
    workspaces: Vec<std::sync::Mutex<Vec<Workspace>>>,
}

/// What one network did in one fused training step.
#[derive(Clone, Copy, Debug)]
enum FusedOutcome {
    /// Inactive (diverged earlier).
    Skipped,
    /// Non-finite loss: stops before the update.
    LossNotFinite,
    /// Loss computed; `grad_ok` false when the gradient norm was not finite (no update).
    Trained { loss: f32, correct: usize, grad_ok: bool },
}

/// The fused path's dims if it supports `model`: LSTM or GRU, last-step classification,
/// `F32`, CPU.
/// Whether a population of `arch` with `head`, in `dtype` on `device`, trains on the fused CPU
/// path under [`TrainBackend::Auto`] (LSTM and GRU, last-step classification, F32, CPU);
/// everything else trains on candle.
pub fn fused_path_applies(arch: Arch, head: Head, dtype: DType, device: &Device) -> bool {
    matches!(arch, Arch::Lstm | Arch::Gru)
        && matches!(head, Head::LastStepClass { .. })
        && dtype == DType::F32
        && device.is_cpu()
}

/// The per-sequence class targets of a batch for the fused path, each checked against the
/// number of classes.
fn fused_classes(batch: &Batch, num_classes: usize) -> Result<&[u32]> {
    let Targets::ClassPerSequence(c) = &batch.targets else {
        return Err(ModelError::UnsupportedTask(
            "the fused path needs one class per sequence".into(),
        ));
    };
    if let Some(bad) = c.iter().find(|&&k| k as usize >= num_classes) {
        return Err(ModelError::UnsupportedTask(format!(
            "target class {bad} >= {num_classes} classes"
        )));
    }
    Ok(c)
}

fn fused_dims(model: &PopulationModel) -> Option<FusedDims> {
    let s = model.shape();
    if !fused_path_applies(s.arch, s.head, model.dtype(), model.device()) {
        return None;
    }
    let cell = match s.arch {
        Arch::Lstm => FusedCell::Lstm,
        Arch::Gru => FusedCell::Gru,
        _ => return None,
    };
    match s.head {
        Head::LastStepClass { classes } => Some(FusedDims {
            cell,
            input: s.input_size,
            hidden: s.hidden_size,
            layers: s.num_layers,
            bias: s.bias,
            classes,
        }),
        _ => None,
    }
}

/// Per-network flat `f32` values (canonical parameter order) of tensors `[M, ...]`.
fn pull_flat(tensors: &[Tensor], m: usize) -> Result<Vec<Vec<f32>>> {
    let mut nets = vec![Vec::new(); m];
    for t in tensors {
        let data = t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
        let per = data.len() / m;
        for (k, net) in nets.iter_mut().enumerate() {
            net.extend_from_slice(&data[k * per..(k + 1) * per]);
        }
    }
    Ok(nets)
}

/// The inverse of [`pull_flat`]: tensors shaped like `like`, in its dtype and device.
fn push_flat(nets: &[Vec<f32>], like: &[Tensor]) -> Result<Vec<Tensor>> {
    let m = nets.len();
    let mut offset = 0;
    let mut out = Vec::with_capacity(like.len());
    for t in like {
        let per = t.elem_count() / m;
        let mut data = Vec::with_capacity(per * m);
        for net in nets {
            data.extend_from_slice(&net[offset..offset + per]);
        }
        offset += per;
        out.push(Tensor::from_vec(data, t.dims(), t.device())?.to_dtype(t.dtype())?);
    }
    Ok(out)
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
        let fused = dims.map(|dims| FusedState { dims, workspaces: Vec::new() });
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

    /// Readout dropout mask values `[M, R, N]` (flat) for batch `batch` of epoch `epoch`, or
    /// `None` without dropout.
    fn dropout_values(&self, epoch: usize, batch: usize, rows: usize) -> Option<Vec<f32>> {
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

    /// Readout dropout masks `[M, R, N]` for batch `batch` of epoch `epoch`, or `None`.
    fn dropout_mask(&self, epoch: usize, batch: usize, rows: usize) -> Result<Option<Tensor>> {
        let n = self.model.shape().hidden_size;
        match self.dropout_values(epoch, batch, rows) {
            Some(mask) => Ok(Some(Tensor::from_vec(
                mask,
                (self.model.num_networks(), rows, n),
                self.model.device(),
            )?)),
            None => Ok(None),
        }
    }

    /// One training epoch (`epoch` >= 1 selects the data order and dropout streams).
    pub fn train_epoch(&mut self, epoch: usize) -> Result<Vec<TrainEpochResult>> {
        if self.fused.is_some() {
            return self.train_epoch_fused(epoch);
        }
        let m = self.model.num_networks();
        let mut iters = self.epoch_iters(epoch)?;
        let lrs: Vec<f64> = self.model.specs().iter().map(|s| s.lr).collect();
        let mut tally = EpochTally::new(m);
        let mut batch_index = 0usize;
        loop {
            if !self.active.iter().any(|&a| a) {
                break;
            }
            let Some(batches) = next_batches(&mut iters)? else {
                break;
            };
            let b = batches[0].batch_size;
            let (x, y, rows) = self.stack(batches)?;
            let mask = self.dropout_mask(epoch, batch_index, rows)?;
            let params = self.model.tracked_params();
            let out = self.model.forward(&params, &x, mask.as_ref())?;
            let (loss, n_correct) = self.model.loss(&out, &y)?;
            let losses = loss.to_dtype(DType::F64)?.to_vec1::<f64>()?;
            for (k, l) in losses.iter().enumerate() {
                if self.active[k] && !l.is_finite() {
                    self.active[k] = false;
                    tally.diverged[k] = Some(Divergence { epoch, batch: batch_index });
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
                    tally.diverged[k] = Some(Divergence { epoch, batch: batch_index });
                }
                if before[k] {
                    let hits = hits.as_ref().map(|h| f64::from(h[k]) * (b as f64) / (rows as f64));
                    tally.add(k, losses[k], b, hits.unwrap_or(0.0));
                }
            }
            batch_index += 1;
        }
        Ok(tally.results(self.model.shape().head.is_classification()))
    }

    /// Every network's minibatch iterator for training epoch `epoch` (its own data order).
    fn epoch_iters(&self, epoch: usize) -> Result<Vec<BatchIter<'t>>> {
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

    /// [`Self::train_epoch`] on the fused path: the parameters and Adam state are copied out
    /// of the candle tensors once, trained on flat slices for the whole epoch, and written
    /// back at its end (also after an error), so checkpoints, optimiser state and
    /// [`Self::evaluate`] see what the candle path would leave.
    fn train_epoch_fused(&mut self, epoch: usize) -> Result<Vec<TrainEpochResult>> {
        let m = self.model.num_networks();
        let vars: Vec<Tensor> = self.model.vars().iter().map(|v| v.as_tensor().clone()).collect();
        let mut theta = pull_flat(&vars, m)?;
        let mut m1 = pull_flat(&self.optimizer.m1, m)?;
        let mut m2 = pull_flat(&self.optimizer.m2, m)?;
        let mut steps = self.optimizer.steps.clone();
        let mut workspaces = match self.fused.as_mut() {
            Some(f) => std::mem::take(&mut f.workspaces),
            None => Vec::new(),
        };
        workspaces.resize_with(rayon::current_num_threads() + 1, Default::default);
        let result = self.fused_epoch_loop(
            epoch,
            (&mut theta, &mut m1, &mut m2, &mut steps),
            &mut workspaces,
        );
        if let Some(f) = self.fused.as_mut() {
            f.workspaces = workspaces;
        }
        for (v, t) in self.model.vars().iter().zip(push_flat(&theta, &vars)?) {
            v.set(&t)?;
        }
        self.optimizer.m1 = push_flat(&m1, &self.optimizer.m1)?;
        self.optimizer.m2 = push_flat(&m2, &self.optimizer.m2)?;
        self.optimizer.steps = steps;
        result
    }

    /// The epoch loop of [`Self::train_epoch_fused`] on the flat state `(theta, m1, m2,
    /// steps)`. Networks run in parallel (one per rayon task) when there are at least as many
    /// live networks as threads; otherwise one after the other, each with its minibatch
    /// parts in parallel. Both give the same bits ([`crate::fused::step_parts`]).
    #[allow(clippy::type_complexity)]
    fn fused_epoch_loop(
        &mut self,
        epoch: usize,
        (theta, m1, m2, steps): (&mut [Vec<f32>], &mut [Vec<f32>], &mut [Vec<f32>], &mut [u64]),
        workspaces: &mut [std::sync::Mutex<Vec<Workspace>>],
    ) -> Result<Vec<TrainEpochResult>> {
        use rayon::prelude::*;
        let dims = match &self.fused {
            Some(f) => f.dims,
            None => return Err(ModelError::InvalidConfig("no fused state".into())),
        };
        let m = self.model.num_networks();
        let mut iters = self.epoch_iters(epoch)?;
        let lrs: Vec<f64> = self.model.specs().iter().map(|s| s.lr).collect();
        let settings = AdamSettings::of(&self.config);
        let n = dims.hidden;
        let threads = rayon::current_num_threads();
        let sizes = dims.param_sizes();

        let mut tally = EpochTally::new(m);
        let mut batch_index = 0usize;
        loop {
            if !self.active.iter().any(|&a| a) {
                break;
            }
            let Some(batches) = next_batches(&mut iters)? else {
                break;
            };
            let (b, t, i) = (batches[0].batch_size, batches[0].seq_len, batches[0].input_size);
            let mut classes = Vec::with_capacity(m);
            for batch in &batches {
                if batch.input_shape() != [b, t, i] || i != dims.input {
                    return Err(ModelError::UnsupportedTask(format!(
                        "batches of one step differ in shape: {:?} vs {:?}",
                        batch.input_shape(),
                        [b, t, dims.input]
                    )));
                }
                classes.push(fused_classes(batch, dims.classes)?);
            }
            let mask = self.dropout_values(epoch, batch_index, b);
            let live = self.active.iter().filter(|&&a| a).count();
            let parallel_nets = live >= threads && threads > 1;
            let np = dims.num_params();
            let finish = |k: usize,
                          r: crate::fused::BatchLoss,
                          grad: &[f32],
                          theta: &mut Vec<f32>,
                          m1: &mut Vec<f32>,
                          m2: &mut Vec<f32>,
                          steps: &mut u64|
             -> FusedOutcome {
                if !r.loss.is_finite() {
                    return FusedOutcome::LossNotFinite;
                }
                let grad_ok =
                    adam_step_flat(&settings, lrs[k], steps, theta, grad, m1, m2, &sizes).is_some();
                FusedOutcome::Trained { loss: r.loss, correct: r.correct, grad_ok }
            };
            let mask_of = |k: usize| mask.as_ref().map(|v| &v[k * b * n..(k + 1) * b * n]);
            let outcomes: Vec<FusedOutcome> = if parallel_nets {
                let pool: &[std::sync::Mutex<Vec<Workspace>>] = workspaces;
                theta
                    .par_iter_mut()
                    .zip(m1.par_iter_mut())
                    .zip(m2.par_iter_mut())
                    .zip(steps.par_iter_mut())
                    .enumerate()
                    .map(|(k, (((th, a), v), st))| {
                        if !self.active[k] {
                            return FusedOutcome::Skipped;
                        }
                        // uncontended: a thread runs one network at a time, and nothing
                        // below re-enters the pool
                        let slot = rayon::current_thread_index().unwrap_or(threads);
                        let mut guard = pool[slot.min(pool.len() - 1)]
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        let ws = &mut *guard;
                        let r = crate::fused::step_parts(
                            &dims,
                            th,
                            ws,
                            &batches[k].inputs,
                            (b, t),
                            classes[k],
                            mask_of(k),
                            true,
                            false,
                        );
                        finish(k, r, &ws[0].grad[..np], th, a, v, st)
                    })
                    .collect()
            } else {
                let mut out = Vec::with_capacity(m);
                let ws = workspaces[0].get_mut().unwrap_or_else(std::sync::PoisonError::into_inner);
                for k in 0..m {
                    if !self.active[k] {
                        out.push(FusedOutcome::Skipped);
                        continue;
                    }
                    let r = crate::fused::step_parts(
                        &dims,
                        &theta[k],
                        ws,
                        &batches[k].inputs,
                        (b, t),
                        classes[k],
                        mask_of(k),
                        true,
                        threads > 1,
                    );
                    out.push(finish(
                        k,
                        r,
                        &ws[0].grad[..np],
                        &mut theta[k],
                        &mut m1[k],
                        &mut m2[k],
                        &mut steps[k],
                    ));
                }
                out
            };
            let mut any_live = false;
            for (k, o) in outcomes.into_iter().enumerate() {
                match o {
                    FusedOutcome::Skipped => {}
                    FusedOutcome::LossNotFinite => {
                        self.active[k] = false;
                        tally.diverged[k] = Some(Divergence { epoch, batch: batch_index });
                    }
                    FusedOutcome::Trained { loss, correct: hits, grad_ok } => {
                        any_live = true;
                        if !grad_ok {
                            self.active[k] = false;
                            tally.diverged[k] = Some(Divergence { epoch, batch: batch_index });
                        }
                        tally.add(k, f64::from(loss), b, hits as f64);
                    }
                }
            }
            if !any_live {
                break;
            }
            batch_index += 1;
        }
        // The fused path serves the classification head only.
        Ok(tally.results(true))
    }

    /// [`Self::evaluate`] on the fused path: every (network, part of a batch) pair is one
    /// rayon task on a per-thread workspace; sums are reduced in a fixed order.
    fn evaluate_fused(&self, f: &FusedState, split: Split) -> Result<Vec<EvalResult>> {
        use rayon::prelude::*;
        let m = self.model.num_networks();
        let d = f.dims;
        let vars: Vec<Tensor> = self.model.vars().iter().map(|v| v.as_tensor().clone()).collect();
        let theta = pull_flat(&vars, m)?;
        let n = self.task.num_examples(split);
        let iter =
            BatchIter::new(self.task, split, (0..n).collect(), self.config.eval_batch_size, false)?;
        let threads = rayon::current_num_threads();
        let pool: Vec<std::sync::Mutex<Workspace>> =
            (0..=threads).map(|_| std::sync::Mutex::new(Workspace::default())).collect();
        let live: Vec<usize> = (0..m).filter(|&k| self.active[k]).collect();
        let mut loss_sum = vec![0.0f64; m];
        let mut correct = vec![0usize; m];
        let mut seen = 0usize;
        for batch in iter {
            let batch = batch?;
            let (b, t) = (batch.batch_size, batch.seq_len);
            if batch.input_size != d.input {
                return Err(ModelError::UnsupportedTask(format!(
                    "batch input size {} vs the model's {}",
                    batch.input_size, d.input
                )));
            }
            let classes = fused_classes(&batch, d.classes)?;
            let row = t * d.input;
            let chunk = crate::fused::ROWS_PER_PART;
            let jobs: Vec<(usize, usize)> =
                live.iter().flat_map(|&k| (0..b).step_by(chunk).map(move |r0| (k, r0))).collect();
            let results: Vec<(f64, usize)> = jobs
                .par_iter()
                .map(|&(k, r0)| {
                    let r1 = (r0 + chunk).min(b);
                    let slot = rayon::current_thread_index().unwrap_or(threads).min(threads);
                    let mut ws =
                        pool[slot].lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    crate::fused::eval(
                        &d,
                        &theta[k],
                        &mut ws,
                        &batch.inputs[r0 * row..r1 * row],
                        (r1 - r0, t),
                        &classes[r0..r1],
                    )
                })
                .collect();
            let mut batch_loss = vec![0.0f64; m];
            for (&(k, _), (l, c)) in jobs.iter().zip(results) {
                batch_loss[k] += l;
                correct[k] += c;
            }
            for &k in &live {
                // as candle: the batch mean (f32) weighted by the batch size
                loss_sum[k] += f64::from((batch_loss[k] / b as f64) as f32) * b as f64;
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
        Ok((0..m)
            .map(|k| {
                if self.active[k] {
                    EvalResult {
                        loss: loss_sum[k] / seen as f64,
                        accuracy: Some(correct[k] as f64 / seen as f64),
                    }
                } else {
                    EvalResult { loss: f64::NAN, accuracy: None }
                }
            })
            .collect())
    }

    /// Loss and accuracy of every network on `split` (in order, no dropout, no graph).
    /// Networks that diverged get `NaN`.
    pub fn evaluate(&self, split: Split) -> Result<Vec<EvalResult>> {
        if let Some(f) = &self.fused {
            return self.evaluate_fused(f, split);
        }
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
