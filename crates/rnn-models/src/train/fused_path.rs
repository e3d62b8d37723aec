//! Training and evaluation on the fused CPU path ([`crate::fused`]): LSTM and GRU
//! populations with the last-step classification head, `F32`, CPU. The parameters and Adam
//! moments live in flat per-network `f32` vectors for the epoch; batches, dropout masks,
//! loss, optimiser ([`adam_step_flat`]) and divergence rules are those of the candle path.

use std::sync::{Mutex, PoisonError};

use candle_core::{DType, Device, Tensor};
use datasets::{Batch, BatchIter, Split, Targets};
use le_engine::rnn::CellKind;

use super::{Divergence, EpochTally, EvalResult, PopulationTrainer, TrainEpochResult};
use crate::error::{ModelError, Result};
use crate::fused::{BatchLoss, FusedCell, FusedDims, Workspace, step_parts};
use crate::model::{Head, PopulationModel};
use crate::optim::{AdamSettings, adam_step_flat};

/// The population's flat training state for an epoch, per network: parameters, first and
/// second moments, step count.
type FlatState<'s> = (&'s mut [Vec<f32>], &'s mut [Vec<f32>], &'s mut [Vec<f32>], &'s mut [u64]);

/// The fused path's shape and per-network working buffers (kept between epochs).
#[derive(Debug)]
pub(super) struct FusedState {
    dims: FusedDims,
    /// Per rayon thread (plus one for callers outside the pool): the workspaces of the
    /// minibatch parts of the network it trains ([`crate::fused::step_parts`]). Nothing in them lives
    /// beyond one step, so a thread reuses its buffers (warm in its cache) for every network.
    workspaces: Vec<Mutex<Vec<Workspace>>>,
}

impl FusedState {
    /// No workspaces yet (they are made on first use).
    pub(super) fn new(dims: FusedDims) -> Self {
        Self { dims, workspaces: Vec::new() }
    }
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

/// Whether a population of `arch` with `head`, in `dtype` on `device`, trains on the fused CPU
/// path under [`crate::TrainBackend::Auto`] (LSTM and GRU, last-step classification, F32, CPU);
/// everything else trains on candle.
pub fn fused_path_applies(arch: CellKind, head: Head, dtype: DType, device: &Device) -> bool {
    matches!(arch, CellKind::Lstm | CellKind::Gru)
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

/// The fused path's dims if it supports `model`: LSTM or GRU, last-step classification,
/// `F32`, CPU.
pub(super) fn fused_dims(model: &PopulationModel) -> Option<FusedDims> {
    let s = model.shape();
    if !fused_path_applies(s.arch, s.head, model.dtype(), model.device()) {
        return None;
    }
    let cell = match s.arch {
        CellKind::Lstm => FusedCell::Lstm,
        CellKind::Gru => FusedCell::Gru,
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

/// What every network's fused step of one minibatch shares.
struct FusedBatch<'a> {
    dims: FusedDims,
    batches: &'a [Batch],
    classes: Vec<&'a [u32]>,
    /// Readout dropout masks `[M, B, N]` (flat), if any.
    mask: Option<Vec<f32>>,
    /// `(B, T)`.
    bt: (usize, usize),
    settings: AdamSettings,
    lrs: &'a [f64],
    sizes: &'a [usize],
}

impl FusedBatch<'_> {
    /// Forward, backward and Adam step of network `k` with its minibatch parts through
    /// `ws` (in parallel with `parallel_parts`).
    #[allow(clippy::too_many_arguments)]
    fn train_network(
        &self,
        k: usize,
        ws: &mut Vec<Workspace>,
        parallel_parts: bool,
        theta: &mut [f32],
        m1: &mut [f32],
        m2: &mut [f32],
        steps: &mut u64,
    ) -> FusedOutcome {
        let (b, t) = self.bt;
        let n = self.dims.hidden;
        let mask = self.mask.as_ref().map(|v| &v[k * b * n..(k + 1) * b * n]);
        let inputs = &self.batches[k].inputs;
        let r: BatchLoss = step_parts(
            &self.dims,
            theta,
            ws,
            inputs,
            (b, t),
            self.classes[k],
            mask,
            true,
            parallel_parts,
        );
        if !r.loss.is_finite() {
            return FusedOutcome::LossNotFinite;
        }
        let np = self.dims.num_params();
        let grad = &ws[0].grad[..np];
        let grad_ok =
            adam_step_flat(&self.settings, self.lrs[k], steps, theta, grad, m1, m2, self.sizes)
                .is_some();
        FusedOutcome::Trained { loss: r.loss, correct: r.correct, grad_ok }
    }
}

impl PopulationTrainer<'_> {
    /// [`Self::train_epoch`] on the fused path: the parameters and Adam state are copied out
    /// of the candle tensors once, trained on flat slices for the whole epoch, and written
    /// back at its end (also after an error), so checkpoints, optimiser state and
    /// [`Self::evaluate`] see what the candle path would leave.
    pub(super) fn train_epoch_fused(&mut self, epoch: usize) -> Result<Vec<TrainEpochResult>> {
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
    /// steps)`.
    fn fused_epoch_loop(
        &mut self,
        epoch: usize,
        (theta, m1, m2, steps): FlatState<'_>,
        workspaces: &mut [Mutex<Vec<Workspace>>],
    ) -> Result<Vec<TrainEpochResult>> {
        let dims = match &self.fused {
            Some(f) => f.dims,
            None => return Err(ModelError::InvalidConfig("no fused state".into())),
        };
        let m = self.model.num_networks();
        let mut iters = self.epoch_iters(epoch)?;
        let lrs = self.learning_rates();
        let settings = AdamSettings::of(&self.config);
        let sizes = dims.param_sizes();
        let mut tally = EpochTally::new(m);
        let mut batch_index = 0usize;
        while let Some(batches) = self.next_live_batches(&mut iters)? {
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
            let batch = FusedBatch {
                dims,
                batches: &batches,
                classes,
                mask: self.dropout_values(epoch, batch_index, b),
                bt: (b, t),
                settings,
                lrs: &lrs,
                sizes: &sizes,
            };
            let outcomes = self.fused_batch_outcomes(
                &batch,
                (&mut *theta, &mut *m1, &mut *m2, &mut *steps),
                workspaces,
            );
            let at = Divergence { epoch, batch: batch_index };
            if !self.record_outcomes(outcomes, &mut tally, at, b) {
                break;
            }
            batch_index += 1;
        }
        // The fused path serves the classification head only.
        Ok(tally.results(true))
    }

    /// Every network's step on one minibatch. Networks run in parallel (one per rayon task,
    /// each thread on its own workspaces) when there are at least as many live networks as
    /// threads; otherwise one after the other, each with its minibatch parts in parallel.
    /// Both give the same bits ([`crate::fused::step_parts`]).
    fn fused_batch_outcomes(
        &self,
        batch: &FusedBatch<'_>,
        (theta, m1, m2, steps): FlatState<'_>,
        workspaces: &mut [Mutex<Vec<Workspace>>],
    ) -> Vec<FusedOutcome> {
        use rayon::prelude::*;
        let threads = rayon::current_num_threads();
        let active: &[bool] = &self.active;
        let live = active.iter().filter(|&&a| a).count();
        if live >= threads && threads > 1 {
            let pool: &[Mutex<Vec<Workspace>>] = workspaces;
            theta
                .par_iter_mut()
                .zip(m1.par_iter_mut())
                .zip(m2.par_iter_mut())
                .zip(steps.par_iter_mut())
                .enumerate()
                .map(|(k, (((th, a), v), st))| {
                    if !active[k] {
                        return FusedOutcome::Skipped;
                    }
                    // uncontended: a thread runs one network at a time, and nothing
                    // below re-enters the pool
                    let slot = rayon::current_thread_index().unwrap_or(threads);
                    let mut guard = pool[slot.min(pool.len() - 1)]
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    batch.train_network(k, &mut guard, false, th, a, v, st)
                })
                .collect()
        } else {
            let ws = workspaces[0].get_mut().unwrap_or_else(PoisonError::into_inner);
            (0..theta.len())
                .map(|k| {
                    if !active[k] {
                        return FusedOutcome::Skipped;
                    }
                    batch.train_network(
                        k,
                        ws,
                        threads > 1,
                        &mut theta[k],
                        &mut m1[k],
                        &mut m2[k],
                        &mut steps[k],
                    )
                })
                .collect()
        }
    }

    /// Adds the networks' outcomes of one minibatch to `tally` and switches off the ones
    /// that diverged (at `at`); whether any network trained.
    fn record_outcomes(
        &mut self,
        outcomes: Vec<FusedOutcome>,
        tally: &mut EpochTally,
        at: Divergence,
        b: usize,
    ) -> bool {
        let mut any_live = false;
        for (k, o) in outcomes.into_iter().enumerate() {
            match o {
                FusedOutcome::Skipped => {}
                FusedOutcome::LossNotFinite => {
                    self.active[k] = false;
                    tally.diverged[k] = Some(at);
                }
                FusedOutcome::Trained { loss, correct: hits, grad_ok } => {
                    any_live = true;
                    if !grad_ok {
                        self.active[k] = false;
                        tally.diverged[k] = Some(at);
                    }
                    tally.add(k, f64::from(loss), b, hits as f64);
                }
            }
        }
        any_live
    }

    /// [`Self::evaluate`] on the fused path: every (network, part of a batch) pair is one
    /// rayon task on a per-thread workspace; sums are reduced in a fixed order.
    pub(super) fn evaluate_fused(&self, f: &FusedState, split: Split) -> Result<Vec<EvalResult>> {
        use rayon::prelude::*;
        let m = self.model.num_networks();
        let d = f.dims;
        let vars: Vec<Tensor> = self.model.vars().iter().map(|v| v.as_tensor().clone()).collect();
        let theta = pull_flat(&vars, m)?;
        let n = self.task.num_examples(split);
        let iter =
            BatchIter::new(self.task, split, (0..n).collect(), self.config.eval_batch_size, false)?;
        let threads = rayon::current_num_threads();
        let pool: Vec<Mutex<Workspace>> =
            (0..=threads).map(|_| Mutex::new(Workspace::default())).collect();
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
                    let mut ws = pool[slot].lock().unwrap_or_else(PoisonError::into_inner);
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
        self.check_evaluated(split, seen)?;
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
}
