//! Training and evaluation on candle autograd (every cell kind, head, dtype and device).

use candle_core::{DType, Tensor};
use datasets::{Batch, BatchIter, Split, Targets};

use super::{Divergence, EpochTally, EvalResult, PopulationTrainer, TrainEpochResult};
use crate::error::{ModelError, Result};

impl PopulationTrainer<'_> {
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

    /// [`Self::train_epoch`] on candle: per minibatch one batched forward of the population,
    /// autograd, and [`crate::PopulationAdam::step`].
    pub(super) fn train_epoch_candle(&mut self, epoch: usize) -> Result<Vec<TrainEpochResult>> {
        let m = self.model.num_networks();
        let mut iters = self.epoch_iters(epoch)?;
        let lrs = self.learning_rates();
        let mut tally = EpochTally::new(m);
        let mut batch_index = 0usize;
        while let Some(batches) = self.next_live_batches(&mut iters)? {
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

    /// [`Self::evaluate`] on candle.
    pub(super) fn evaluate_candle(&self, split: Split) -> Result<Vec<EvalResult>> {
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
        self.check_evaluated(split, seen)?;
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
