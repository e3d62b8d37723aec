//! The autoencoder + predictor network: parameters, forward pass, staged-alpha training with
//! early stopping (see the module doc of [`super`]).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{AutoencoderConfig, AutoencoderShape, LossNorm, TrainingEpoch, TrainingHistory};
use crate::error::{AelleError, Result};
use crate::matrix::Matrix;

pub(super) const PARAMETER_NAMES: [&str; 10] = [
    "fc_e1.weight",
    "fc_e1.bias",
    "fc_e2.weight",
    "fc_e2.bias",
    "fc_d1.weight",
    "fc_d1.bias",
    "fc_d2.weight",
    "fc_d2.bias",
    "prediction.weight",
    "prediction.bias",
];

/// Shapes of the parameters in `PARAMETER_NAMES` order, PyTorch layout `[out, in]`.
pub(super) fn parameter_shapes(s: &AutoencoderShape) -> [(usize, usize); 10] {
    let (l, h, d) = (s.input_length, s.hidden_width, s.latent_dim);
    [(h, l), (h, 1), (d, h), (d, 1), (h, d), (h, 1), (l, h), (l, 1), (1, d), (1, 1)]
}

/// The trained network: parameters plus the target standardisation.
#[derive(Debug, Clone)]
pub struct AutoencoderPredictor {
    pub(super) shape: AutoencoderShape,
    /// In `PARAMETER_NAMES` order; weights `[out, in]`, biases `[out]`.
    pub(super) params: Vec<Var>,
    pub(super) target_mean: f64,
    pub(super) target_scale: f64,
}

pub(super) struct Forward {
    pub(super) reconstruction: Tensor,
    /// Read only by the test that checks the host inference path against this one.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(super) latent: Tensor,
    pub(super) prediction: Tensor,
}

pub(super) fn norm_loss(diff: &Tensor, norm: LossNorm) -> candle_core::Result<Tensor> {
    match norm {
        LossNorm::L1 => diff.abs()?.mean_all(),
        LossNorm::L2 => diff.sqr()?.mean_all(),
    }
}

pub(super) fn matrix_to_tensor(x: &Matrix, rows: &[usize]) -> candle_core::Result<Tensor> {
    let mut data = Vec::with_capacity(rows.len() * x.cols());
    for &i in rows {
        data.extend(x.row(i).iter().map(|&v| v as f32));
    }
    Tensor::from_vec(data, (rows.len(), x.cols()), &Device::Cpu)
}

pub(super) fn dropout_mask(
    rng: &mut ChaCha8Rng,
    rows: usize,
    cols: usize,
    p: f64,
) -> candle_core::Result<Tensor> {
    let keep_scale = (1.0 / (1.0 - p)) as f32;
    let data: Vec<f32> =
        (0..rows * cols).map(|_| if rng.random::<f64>() >= p { keep_scale } else { 0.0 }).collect();
    Tensor::from_vec(data, (rows, cols), &Device::Cpu)
}

impl AutoencoderPredictor {
    /// Parameters drawn from `rng` with PyTorch's `nn.Linear` rule.
    pub(super) fn initialise(shape: AutoencoderShape, rng: &mut ChaCha8Rng) -> Result<Self> {
        let shapes = parameter_shapes(&shape);
        let mut params = Vec::with_capacity(10);
        for (k, &(out, inp)) in shapes.iter().enumerate() {
            // Weight k (even) and its bias (odd) share the fan-in of the weight.
            let fan_in = if k % 2 == 0 { inp } else { shapes[k - 1].1 };
            let bound = 1.0 / (fan_in as f64).sqrt();
            let data: Vec<f32> =
                (0..out * inp).map(|_| rng.random_range(-bound..bound) as f32).collect();
            let tensor = if k % 2 == 0 {
                Tensor::from_vec(data, (out, inp), &Device::Cpu)?
            } else {
                Tensor::from_vec(data, out, &Device::Cpu)?
            };
            params.push(Var::from_tensor(&tensor)?);
        }
        Ok(Self { shape, params, target_mean: 0.0, target_scale: 1.0 })
    }

    /// The parameter-shape sizes.
    pub fn shape(&self) -> AutoencoderShape {
        self.shape
    }

    pub(super) fn linear(&self, x: &Tensor, k: usize) -> candle_core::Result<Tensor> {
        let w = self.params[2 * k].as_tensor();
        let b = self.params[2 * k + 1].as_tensor();
        x.matmul(&w.t()?)?.broadcast_add(b)
    }

    pub(super) fn forward(
        &self,
        x: &Tensor,
        masks: Option<(&Tensor, &Tensor)>,
    ) -> candle_core::Result<Forward> {
        let mut h = self.linear(x, 0)?.tanh()?;
        if let Some((m1, _)) = masks {
            h = h.mul(m1)?;
        }
        let latent = self.linear(&h, 1)?;
        let mut g = self.linear(&latent, 2)?.tanh()?;
        if let Some((_, m2)) = masks {
            g = g.mul(m2)?;
        }
        let reconstruction = self.linear(&g, 3)?;
        let prediction = self.linear(&latent, 4)?.squeeze(1)?;
        Ok(Forward { reconstruction, latent, prediction })
    }

    pub(super) fn check_input(&self, x: &Matrix) -> Result<()> {
        if x.cols() != self.shape.input_length {
            return Err(AelleError::ShapeMismatch {
                context: "autoencoder input feature length",
                expected: self.shape.input_length,
                got: x.cols(),
            });
        }
        if let Some((index, value)) = x.first_non_finite() {
            return Err(AelleError::NonFinite { context: "autoencoder input", index, value });
        }
        Ok(())
    }

    #[cfg(test)]
    pub(super) fn forward_matrix(&self, x: &Matrix) -> Result<Forward> {
        self.check_input(x)?;
        let all: Vec<usize> = (0..x.rows()).collect();
        Ok(self.forward(&matrix_to_tensor(x, &all)?, None)?)
    }

    /// Inference forward pass in `f64` on the host, one row at a time: the result for a row
    /// never depends on which other rows are in the batch (a batched f32 GEMM may round
    /// differently for different batch sizes). Returns `(latent [n, d], reconstruction [n, L],
    /// standardised prediction [n])`. The candle path used in training is its fast twin;
    /// they agree to f32 rounding (tested).
    pub(super) fn host_forward(&self, x: &Matrix) -> Result<(Matrix, Matrix, Vec<f64>)> {
        use rayon::prelude::*;
        self.check_input(x)?;
        let weights: Vec<Vec<f64>> =
            self.snapshot()?.into_iter().map(|w| w.into_iter().map(f64::from).collect()).collect();
        let s = self.shape;
        // y = W v + b with W [out, in] row-major.
        let affine = |k: usize, v: &[f64], out: usize| -> Vec<f64> {
            let (w, b) = (&weights[2 * k], &weights[2 * k + 1]);
            (0..out)
                .map(|o| {
                    b[o] + w[o * v.len()..(o + 1) * v.len()]
                        .iter()
                        .zip(v)
                        .map(|(a, c)| a * c)
                        .sum::<f64>()
                })
                .collect()
        };
        let per_row: Vec<(Vec<f64>, Vec<f64>, f64)> = (0..x.rows())
            .into_par_iter()
            .map(|i| {
                let h: Vec<f64> =
                    affine(0, x.row(i), s.hidden_width).into_iter().map(f64::tanh).collect();
                let z = affine(1, &h, s.latent_dim);
                let g: Vec<f64> =
                    affine(2, &z, s.hidden_width).into_iter().map(f64::tanh).collect();
                let r = affine(3, &g, s.input_length);
                let p = affine(4, &z, 1)[0];
                (z, r, p)
            })
            .collect();
        let mut latent = Vec::with_capacity(x.rows() * s.latent_dim);
        let mut recon = Vec::with_capacity(x.rows() * s.input_length);
        let mut pred = Vec::with_capacity(x.rows());
        for (z, r, p) in per_row {
            latent.extend(z);
            recon.extend(r);
            pred.push(p);
        }
        Ok((
            Matrix::new(x.rows(), s.latent_dim, latent)?,
            Matrix::new(x.rows(), s.input_length, recon)?,
            pred,
        ))
    }

    /// Latent codes `[n, d]` of standardised feature rows `x` (`[n, L]`), dropout off.
    pub fn encode(&self, x: &Matrix) -> Result<Matrix> {
        Ok(self.host_forward(x)?.0)
    }

    /// Reconstructions `[n, L]` of standardised feature rows, dropout off.
    pub fn reconstruct(&self, x: &Matrix) -> Result<Matrix> {
        Ok(self.host_forward(x)?.1)
    }

    /// Predicted final loss (original units) for each standardised feature row `[n, L]`.
    pub fn predict_final_loss(&self, x: &Matrix) -> Result<Vec<f64>> {
        let p = self.host_forward(x)?.2;
        Ok(p.into_iter().map(|v| self.target_mean + self.target_scale * v).collect())
    }

    pub(super) fn snapshot(&self) -> Result<Vec<Vec<f32>>> {
        self.params.iter().map(|v| Ok(v.as_tensor().flatten_all()?.to_vec1::<f32>()?)).collect()
    }

    pub(super) fn restore(&self, snapshot: &[Vec<f32>]) -> Result<()> {
        for (var, data) in self.params.iter().zip(snapshot) {
            let t = Tensor::from_vec(data.clone(), var.shape(), &Device::Cpu)?;
            var.set(&t)?;
        }
        Ok(())
    }

    /// Trains on standardised feature rows `train_x` (`[n, L]`) with final losses `train_y`,
    /// early-stopping on `val_x`/`val_y`. Deterministic given `seed`.
    pub fn train(
        train_x: &Matrix,
        train_y: &[f64],
        val_x: &Matrix,
        val_y: &[f64],
        config: &AutoencoderConfig,
        seed: u64,
    ) -> Result<(Self, TrainingHistory)> {
        config.validate()?;
        for (x, y, what) in [(train_x, train_y, "training rows"), (val_x, val_y, "validation rows")]
        {
            if x.rows() != y.len() {
                return Err(AelleError::ShapeMismatch {
                    context: "autoencoder rows vs targets",
                    expected: x.rows(),
                    got: y.len(),
                });
            }
            if x.rows() == 0 {
                return Err(AelleError::TooFew { what, expected: 1, got: 0 });
            }
            if let Some(index) = y.iter().position(|v| !v.is_finite()) {
                return Err(AelleError::NonFinite {
                    context: "autoencoder targets",
                    index,
                    value: y[index],
                });
            }
        }
        let l = train_x.cols();
        if val_x.cols() != l {
            return Err(AelleError::ShapeMismatch {
                context: "validation feature length",
                expected: l,
                got: val_x.cols(),
            });
        }
        let shape = AutoencoderShape {
            input_length: l,
            hidden_width: config.hidden_width.unwrap_or((l / 4).max(1)),
            latent_dim: config.latent_dim,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut model = Self::initialise(shape, &mut rng)?;
        model.check_input(train_x)?;
        model.check_input(val_x)?;
        if config.standardize_target {
            let n = train_y.len() as f64;
            let mean = train_y.iter().sum::<f64>() / n;
            let sd = (train_y.iter().map(|y| (y - mean).powi(2)).sum::<f64>() / n).sqrt();
            model.target_mean = mean;
            model.target_scale = if sd < 1e-12 { 1.0 } else { sd };
        }
        let standardized = |y: &[f64]| -> Vec<f32> {
            y.iter().map(|v| ((v - model.target_mean) / model.target_scale) as f32).collect()
        };
        let train_t = standardized(train_y);
        let val_all: Vec<usize> = (0..val_x.rows()).collect();
        let val_tensor = matrix_to_tensor(val_x, &val_all)?;
        let val_target = Tensor::from_vec(standardized(val_y), val_y.len(), &Device::Cpu)?;

        let mut optimizer = AdamW::new(
            model.params.clone(),
            ParamsAdamW { lr: config.learning_rate, weight_decay: 0.0, ..ParamsAdamW::default() },
        )?;
        // `validate` guarantees a stage with epochs > 0.
        let last_stage_with_epochs =
            config.alpha_stages.iter().rposition(|s| s.epochs > 0).unwrap_or(0);
        let alpha_last = config.alpha_stages[last_stage_with_epochs].alpha;
        let total_epochs: usize = config.alpha_stages.iter().map(|s| s.epochs).sum();
        let mut order: Vec<usize> = (0..train_x.rows()).collect();
        let mut history = TrainingHistory {
            epochs: Vec::with_capacity(total_epochs),
            best_epoch: 0,
            best_validation_objective: f64::INFINITY,
            stopped_early: false,
        };
        let mut best: Option<Vec<Vec<f32>>> = None;
        let mut epochs_without_improvement = 0usize;
        let mut epoch = 0usize;
        'stages: for (stage_index, stage) in config.alpha_stages.iter().enumerate() {
            if stage_index == last_stage_with_epochs {
                // Patience counts from the start of the last stage, so it always gets a chance.
                epochs_without_improvement = 0;
            }
            for _ in 0..stage.epochs {
                order.shuffle(&mut rng);
                let (mut rec_sum, mut pred_sum) = (0.0, 0.0);
                for batch in order.chunks(config.batch_size) {
                    let b = batch.len();
                    let xb = matrix_to_tensor(train_x, batch)?;
                    let yb = Tensor::from_vec(
                        batch.iter().map(|&i| train_t[i]).collect::<Vec<f32>>(),
                        b,
                        &Device::Cpu,
                    )?;
                    let masks = if config.dropout > 0.0 {
                        Some((
                            dropout_mask(&mut rng, b, shape.hidden_width, config.dropout)?,
                            dropout_mask(&mut rng, b, shape.hidden_width, config.dropout)?,
                        ))
                    } else {
                        None
                    };
                    let f = model.forward(&xb, masks.as_ref().map(|(a, c)| (a, c)))?;
                    let rec = norm_loss(&(&f.reconstruction - &xb)?, config.reconstruction_norm)?;
                    let pred = norm_loss(&(&f.prediction - &yb)?, config.prediction_norm)?;
                    let loss = (&rec + (&pred * stage.alpha)?)?;
                    optimizer.backward_step(&loss)?;
                    rec_sum += f64::from(rec.to_scalar::<f32>()?) * b as f64;
                    pred_sum += f64::from(pred.to_scalar::<f32>()?) * b as f64;
                }
                let n = train_x.rows() as f64;
                let f = model.forward(&val_tensor, None)?;
                let vrec = f64::from(
                    norm_loss(&(&f.reconstruction - &val_tensor)?, config.reconstruction_norm)?
                        .to_scalar::<f32>()?,
                );
                let vpred = f64::from(
                    norm_loss(&(&f.prediction - &val_target)?, config.prediction_norm)?
                        .to_scalar::<f32>()?,
                );
                let objective = vrec + alpha_last * vpred;
                let record = TrainingEpoch {
                    epoch,
                    stage: stage_index,
                    alpha: stage.alpha,
                    train_reconstruction: rec_sum / n,
                    train_prediction: pred_sum / n,
                    validation_reconstruction: vrec,
                    validation_prediction: vpred,
                    validation_objective: objective,
                };
                for v in [record.train_reconstruction, record.train_prediction, objective] {
                    if !v.is_finite() {
                        return Err(AelleError::TrainingDiverged { epoch, value: v });
                    }
                }
                history.epochs.push(record);
                if objective < history.best_validation_objective {
                    history.best_validation_objective = objective;
                    history.best_epoch = epoch;
                    best = Some(model.snapshot()?);
                    epochs_without_improvement = 0;
                } else {
                    epochs_without_improvement += 1;
                }
                epoch += 1;
                if stage_index == last_stage_with_epochs
                    && config.patience.is_some_and(|p| epochs_without_improvement >= p)
                {
                    history.stopped_early = epoch < total_epochs;
                    break 'stages;
                }
            }
        }
        if let Some(snapshot) = best {
            model.restore(&snapshot)?;
        }
        Ok((model, history))
    }

    pub(super) fn tensors_for_saving(&self) -> Result<HashMap<String, Tensor>> {
        let mut map = HashMap::new();
        for (name, var) in PARAMETER_NAMES.iter().zip(&self.params) {
            // Deep copy so the saved tensor never aliases a live variable.
            map.insert((*name).to_string(), var.as_tensor().copy()?);
        }
        map.insert(
            "target.mean_scale".to_string(),
            Tensor::from_vec(vec![self.target_mean, self.target_scale], 2, &Device::Cpu)?,
        );
        Ok(map)
    }

    pub(super) fn from_tensors(
        shape: AutoencoderShape,
        tensors: &HashMap<String, Tensor>,
        path: &Path,
    ) -> Result<Self> {
        let corrupt =
            |expected: String| AelleError::CorruptModel { path: path.to_path_buf(), expected };
        let mut params = Vec::with_capacity(10);
        for (k, (name, &(out, inp))) in
            PARAMETER_NAMES.iter().zip(parameter_shapes(&shape).iter()).enumerate()
        {
            let t =
                tensors.get(*name).ok_or_else(|| corrupt(format!("a tensor named `{name}`")))?;
            let want: Vec<usize> = if k % 2 == 0 { vec![out, inp] } else { vec![out] };
            if t.dims() != want.as_slice() || t.dtype() != DType::F32 {
                return Err(corrupt(format!(
                    "`{name}` as f32 of shape {want:?}, found {:?} {:?}",
                    t.dtype(),
                    t.dims()
                )));
            }
            params.push(Var::from_tensor(t)?);
        }
        let stats = tensors
            .get("target.mean_scale")
            .ok_or_else(|| corrupt("a tensor named `target.mean_scale`".into()))?;
        let stats: Vec<f64> = stats
            .to_dtype(DType::F64)?
            .flatten_all()?
            .to_vec1()
            .map_err(|_| corrupt("`target.mean_scale` as 2 f64 values".into()))?;
        if stats.len() != 2 || !stats.iter().all(|v| v.is_finite()) || stats[1] <= 0.0 {
            return Err(corrupt("`target.mean_scale` = [finite mean, positive scale]".into()));
        }
        Ok(Self { shape, params, target_mean: stats[0], target_scale: stats[1] })
    }
}

#[cfg(test)]
pub(super) fn tensor_to_matrix(t: &Tensor) -> Result<Matrix> {
    let (r, c) = t.dims2()?;
    let data: Vec<f32> = t.flatten_all()?.to_vec1()?;
    Matrix::new(r, c, data.into_iter().map(f64::from).collect())
}
