//! Adam / AdamW over a population, each network with its own learning rate, step count,
//! gradient-norm clip and moments (PyTorch semantics, `amsgrad = False`).
//!
//! For network `m` with gradient `g` (after clipping, and `+ wd * theta` for Adam):
//! `m1 = b1 m1 + (1 - b1) g`, `m2 = b2 m2 + (1 - b2) g^2`,
//! `theta -= (lr / (1 - b1^t)) * m1 / (sqrt(m2) / sqrt(1 - b2^t) + eps)`;
//! AdamW first scales `theta *= 1 - lr * wd`. Clipping (`clip_grad_norm_`): with the total
//! norm `|g|` over all of network `m`'s parameters, `g *= min(1, max_norm / (|g| + 1e-6))`.
//! Inactive networks (diverged) keep their parameters and moments unchanged.
//!
//! One set of rules, two executors: [`PopulationAdam::step`] on candle tensors `[M, ...]`
//! (any dtype and device; the candle training path) and [`adam_step_flat`] on one network's
//! flat `f32` slices (the fused path). Both take their settings ([`AdamSettings`]) and their
//! per-network f64 coefficients (clip factor, step size, bias corrections, decay) from the
//! same functions, and perform the same f32 operations in the same order.

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};

use crate::config::{OptimizerKind, TrainConfig};
use crate::error::{ModelError, Result};

/// One network's optimiser state: first moments, second moments (flat per parameter, in
/// canonical order) and its step count.
pub type NetworkAdamState = (Vec<Vec<f32>>, Vec<Vec<f32>>, u64);

/// Optimiser state of a population.
#[derive(Debug)]
pub struct PopulationAdam {
    settings: AdamSettings,
    /// First moments, one per parameter, `[M, ...]`.
    pub(crate) m1: Vec<Tensor>,
    /// Second moments.
    pub(crate) m2: Vec<Tensor>,
    /// Steps taken per network.
    pub(crate) steps: Vec<u64>,
}

/// `values` as a tensor `[M, 1, ..., 1]` (rank `rank`) in `dtype`.
fn per_net(values: &[f64], rank: usize, dtype: DType, device: &Device) -> Result<Tensor> {
    let mut dims = vec![values.len()];
    dims.resize(rank, 1);
    Ok(Tensor::from_vec(values.to_vec(), dims, device)?.to_dtype(dtype)?)
}

impl PopulationAdam {
    /// Zero moments for `vars` (each `[M, ...]`).
    pub fn new(vars: &[Var], config: &TrainConfig) -> Result<Self> {
        let m = vars.first().map(|v| v.dims()[0]).unwrap_or(0);
        let zeros = vars
            .iter()
            .map(|v| v.as_tensor().zeros_like())
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self {
            settings: AdamSettings::of(config),
            m1: zeros.clone(),
            m2: zeros,
            steps: vec![0; m],
        })
    }

    /// Replaces the state of network `net` (moments flat per parameter, and its step count).
    pub fn set_network_state(
        &mut self,
        net: usize,
        m1: &[Vec<f64>],
        m2: &[Vec<f64>],
        steps: u64,
    ) -> Result<()> {
        if net >= self.steps.len() || m1.len() != self.m1.len() || m2.len() != self.m2.len() {
            return Err(ModelError::InvalidConfig(format!(
                "optimiser state for network {net}: {} / {} moment tensors, expected {}",
                m1.len(),
                m2.len(),
                self.m1.len()
            )));
        }
        for (store, src) in [(&mut self.m1, m1), (&mut self.m2, m2)] {
            for (t, v) in store.iter_mut().zip(src) {
                let per: usize = t.dims()[1..].iter().product();
                if v.len() != per {
                    return Err(ModelError::InvalidConfig(format!(
                        "optimiser moment has {} values, expected {per}",
                        v.len()
                    )));
                }
                let mut host = t.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
                host[net * per..(net + 1) * per].copy_from_slice(v);
                *t = Tensor::from_vec(host, t.dims(), t.device())?.to_dtype(t.dtype())?;
            }
        }
        self.steps[net] = steps;
        Ok(())
    }

    /// Network `net`'s moments (flat `f32` per parameter) and step count.
    pub fn network_state(&self, net: usize) -> Result<NetworkAdamState> {
        let take = |ts: &[Tensor]| -> Result<Vec<Vec<f32>>> {
            ts.iter()
                .map(|t| Ok(t.get(net)?.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?))
                .collect()
        };
        let steps = *self.steps.get(net).ok_or_else(|| {
            ModelError::InvalidConfig(format!("no network {net} in the optimiser"))
        })?;
        Ok((take(&self.m1)?, take(&self.m2)?, steps))
    }

    /// One step for every active network. `lrs[m]` per network. A network whose gradient norm
    /// is not finite is switched off in `active` (diverged) and not updated. Returns the
    /// per-network gradient norms before clipping (`NaN` for inactive networks).
    pub fn step(
        &mut self,
        vars: &[Var],
        grads: &GradStore,
        lrs: &[f64],
        active: &mut [bool],
    ) -> Result<Vec<f64>> {
        let m = self.steps.len();
        if vars.is_empty() || lrs.len() != m || active.len() != m || vars.len() != self.m1.len() {
            return Err(ModelError::InvalidConfig(
                "optimiser step: population size mismatch".into(),
            ));
        }
        let device = vars[0].device().clone();
        let dtype = vars[0].dtype();
        let mask_u8 =
            Tensor::from_vec(active.iter().map(|&a| u8::from(a)).collect::<Vec<_>>(), m, &device)?;
        // Masked gradients: non-finite garbage of inactive networks is dropped, not multiplied.
        let mut gs = Vec::with_capacity(vars.len());
        let mut sq = vec![0.0f64; m];
        for v in vars {
            let g = match grads.get(v.as_tensor()) {
                Some(g) => g.clone(),
                None => v.as_tensor().zeros_like()?,
            };
            let mut dims = vec![m];
            dims.resize(g.rank(), 1);
            let mask = mask_u8.reshape(dims)?.broadcast_as(g.shape())?;
            let g = mask.where_cond(&g, &g.zeros_like()?)?;
            let s = g.sqr()?.flatten_from(1)?.sum(1)?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
            for (acc, x) in sq.iter_mut().zip(s) {
                *acc += x;
            }
            gs.push(g);
        }
        let norms: Vec<f64> = sq
            .iter()
            .zip(active.iter())
            .map(|(s, &a)| if a { s.sqrt() } else { f64::NAN })
            .collect();
        let mut mask_u8 = mask_u8;
        if norms.iter().zip(active.iter()).any(|(n, &a)| a && !n.is_finite()) {
            for (a, n) in active.iter_mut().zip(&norms) {
                *a = *a && n.is_finite();
            }
            mask_u8 = Tensor::from_vec(
                active.iter().map(|&a| u8::from(a)).collect::<Vec<_>>(),
                m,
                &device,
            )?;
            for g in &mut gs {
                let mut dims = vec![m];
                dims.resize(g.rank(), 1);
                let mask = mask_u8.reshape(dims)?.broadcast_as(g.shape())?;
                *g = mask.where_cond(g, &g.zeros_like()?)?;
            }
        }
        let active: &[bool] = active;
        let s = &self.settings;
        let clip: Vec<f64> = norms
            .iter()
            .map(|&nrm| if nrm.is_finite() { s.clip_factor(nrm) } else { 1.0 })
            .collect();
        for (st, &a) in self.steps.iter_mut().zip(active.iter()) {
            if a {
                *st += 1;
            }
        }
        let (b1, b2) = s.betas;
        let step_size: Vec<f64> = (0..m)
            .map(|k| if active[k] { s.step_size(lrs[k], self.steps[k]) } else { 0.0 })
            .collect();
        let bc2_sqrt: Vec<f64> =
            (0..m).map(|k| if active[k] { s.bc2_sqrt(self.steps[k]) } else { 1.0 }).collect();
        let decay: Vec<f64> =
            (0..m).map(|k| if active[k] { s.decay(lrs[k]) } else { 1.0 }).collect();
        for (k, (v, g)) in vars.iter().zip(gs).enumerate() {
            let rank = g.rank();
            let mask = {
                let mut dims = vec![m];
                dims.resize(rank, 1);
                mask_u8.reshape(dims)?.broadcast_as(g.shape())?
            };
            let theta = v.as_tensor().detach();
            let mut g = g.broadcast_mul(&per_net(&clip, rank, dtype, &device)?)?;
            if s.l2() {
                g = (g + theta.affine(s.weight_decay, 0.0)?)?;
            }
            let m1 = ((&self.m1[k] * b1)? + (&g * (1.0 - b1))?)?;
            let m2 = ((&self.m2[k] * b2)? + (g.sqr()? * (1.0 - b2))?)?;
            let denom =
                (m2.sqrt()?.broadcast_div(&per_net(&bc2_sqrt, rank, dtype, &device)?)? + s.eps)?;
            let mut base = theta.clone();
            if s.decoupled() {
                base = base.broadcast_mul(&per_net(&decay, rank, dtype, &device)?)?;
            }
            let update = (m1.broadcast_mul(&per_net(&step_size, rank, dtype, &device)?)? / denom)?;
            let new_theta = mask.where_cond(&(base - update)?, &theta)?;
            self.m1[k] = mask.where_cond(&m1, &self.m1[k])?;
            self.m2[k] = mask.where_cond(&m2, &self.m2[k])?;
            v.set(&new_theta)?;
        }
        Ok(norms)
    }
}

/// The optimiser settings of a training run (from [`TrainConfig`]), shared by both
/// executors.
#[derive(Clone, Copy, Debug)]
pub struct AdamSettings {
    /// Adam or AdamW.
    pub kind: OptimizerKind,
    /// `(beta1, beta2)`.
    pub betas: (f64, f64),
    /// `eps`.
    pub eps: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// Gradient-norm clip.
    pub grad_clip: Option<f64>,
}

impl AdamSettings {
    /// The settings of `config`.
    pub fn of(config: &TrainConfig) -> Self {
        Self {
            kind: config.optimizer,
            betas: config.betas,
            eps: config.adam_eps,
            weight_decay: config.weight_decay,
            grad_clip: config.grad_clip,
        }
    }

    /// The gradient factor of `clip_grad_norm_` for a finite total norm `norm`.
    fn clip_factor(&self, norm: f64) -> f64 {
        match self.grad_clip {
            Some(max) => (max / (norm + 1e-6)).min(1.0),
            None => 1.0,
        }
    }

    /// `lr / (1 - b1^t)` after `steps` steps.
    fn step_size(&self, lr: f64, steps: u64) -> f64 {
        lr / (1.0 - self.betas.0.powi(steps as i32))
    }

    /// `sqrt(1 - b2^t)` after `steps` steps.
    fn bc2_sqrt(&self, steps: u64) -> f64 {
        (1.0 - self.betas.1.powi(steps as i32)).sqrt()
    }

    /// AdamW's parameter factor `1 - lr * wd`.
    fn decay(&self, lr: f64) -> f64 {
        1.0 - lr * self.weight_decay
    }

    /// Whether the weight decay is an L2 term added to the gradient (Adam).
    fn l2(&self) -> bool {
        self.kind == OptimizerKind::Adam && self.weight_decay != 0.0
    }

    /// Whether the weight decay is decoupled (AdamW).
    fn decoupled(&self) -> bool {
        self.kind == OptimizerKind::AdamW && self.weight_decay != 0.0
    }
}

/// Per-network, per-step scalars of the Adam update, in f32 as candle's tensor ops use them.
#[derive(Clone, Copy, Debug)]
struct AdamScalars {
    clip: f32,
    l2: bool,
    wd: f32,
    b1: f32,
    one_minus_b1: f32,
    b2: f32,
    one_minus_b2: f32,
    bc2_sqrt: f32,
    eps: f32,
    decoupled: bool,
    decay: f32,
    step_size: f32,
}

/// One Adam / AdamW step of one network on flat slices, exactly as
/// [`crate::PopulationAdam::step`] does it for an active network: gradient norm (before
/// clipping), `None` (and nothing changed) if it is not finite; otherwise clip, count the
/// step, update moments and parameters.
///
/// As on candle, the squared norm is summed in f32 per parameter tensor (`sizes`, see
/// [`crate::fused::FusedDims::param_sizes`]) and in f64 across them, so a gradient whose f32 sum of squares
/// overflows counts as diverged on both paths.
#[allow(clippy::too_many_arguments)]
pub fn adam_step_flat(
    s: &AdamSettings,
    lr: f64,
    steps: &mut u64,
    theta: &mut [f32],
    grad: &[f32],
    m1: &mut [f32],
    m2: &mut [f32],
    sizes: &[usize],
) -> Option<f64> {
    assert_eq!(sizes.iter().sum::<usize>(), grad.len(), "parameter sizes");
    let mut sq = 0.0f64;
    let mut at = 0;
    for &len in sizes {
        let part: f32 = grad[at..at + len].iter().map(|&g| g * g).sum();
        sq += f64::from(part);
        at += len;
    }
    let norm = sq.sqrt();
    if !norm.is_finite() {
        return None;
    }
    let clip = s.clip_factor(norm);
    *steps += 1;
    let (b1, b2) = s.betas;
    let k = AdamScalars {
        clip: clip as f32,
        l2: s.l2(),
        wd: s.weight_decay as f32,
        b1: b1 as f32,
        one_minus_b1: (1.0 - b1) as f32,
        b2: b2 as f32,
        one_minus_b2: (1.0 - b2) as f32,
        bc2_sqrt: s.bc2_sqrt(*steps) as f32,
        eps: s.eps as f32,
        decoupled: s.decoupled(),
        decay: s.decay(lr) as f32,
        step_size: s.step_size(lr, *steps) as f32,
    };
    adam_kernel(theta, grad, m1, m2, &k);
    Some(norm)
}

/// The elementwise Adam / AdamW update of one network (the operations of
/// [`PopulationAdam::step`], in f32).
#[inline(always)]
fn adam_impl(theta: &mut [f32], g: &[f32], m1: &mut [f32], m2: &mut [f32], k: &AdamScalars) {
    for (((th, &gj), a), v) in theta.iter_mut().zip(g).zip(m1.iter_mut()).zip(m2.iter_mut()) {
        let mut gj = gj * k.clip;
        if k.l2 {
            gj += *th * k.wd;
        }
        let a_new = *a * k.b1 + gj * k.one_minus_b1;
        let v_new = *v * k.b2 + (gj * gj) * k.one_minus_b2;
        let denom = v_new.sqrt() / k.bc2_sqrt + k.eps;
        let base = if k.decoupled { *th * k.decay } else { *th };
        *th = base - (a_new * k.step_size) / denom;
        *a = a_new;
        *v = v_new;
    }
}

simd_dispatch! {
    /// [`adam_impl`] at the widest SIMD level.
    fn adam_kernel(
        theta: &mut [f32],
        g: &[f32],
        m1: &mut [f32],
        m2: &mut [f32],
        k: &AdamScalars,
    ) => adam_impl;
}
