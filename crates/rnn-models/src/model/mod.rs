//! A population of `M` same-shaped networks as one batched candle model.
//!
//! Every parameter is one tensor `[M, ...]` whose slice `m` is network `m`'s PyTorch-shaped
//! parameter (`weight_ih_l0` `[G N, I]`, ...). Inputs are `[M, B, T, I]` (each network its own
//! batch); one step of the recurrence is a batched matmul `[M, B, N] x [M, N, G N]`, so the `M`
//! networks never mix: network `m`'s outputs, losses and gradients depend only on slice `m`.
//!
//! Cell equations (row-vector form of METHOD.md section 2; `s` = logistic):
//!
//! - rnn: `h' = tanh(x W^T + b_ih + h U^T + b_hh)`
//! - gru: `a = x W^T + b_ih`, `u = h U^T + b_hh`, `r = s(a_r + u_r)`, `z = s(a_z + u_z)`,
//!   `n = tanh(a_n + r * u_n)`, `h' = (1 - z) * n + z * h`
//! - lstm: `y = x W^T + b_ih + h U^T + b_hh` split `[i, f, g, o]`,
//!   `c' = s(y_f) c + s(y_i) tanh(y_g)`, `h' = s(y_o) tanh(c')`
//! - asrnn: `h' = h + eps * tanh(h (W - W^T - gamma I)^T + x V^T + b)`
//! - cornn: `z' = z + dt (tanh(y W_y^T + z W_z^T + x V^T + b) - gamma y - eps z)`,
//!   `y' = y + dt z'`; the layer output is `y`.
//!
//! Layer `l > 0` takes layer `l - 1`'s output sequence as input; the readout sees the top
//! layer's output (last step or every step, by [`Head`]).
//!
//! Files: `shape.rs` ([`ModelShape`], [`Head`], the parameter list), `cells.rs` (one layer
//! of each cell kind over a sequence); this file holds the batched model: construction,
//! values per network, the forward through the layers, the readout and the loss.

mod cells;
mod shape;

use candle_core::{D, DType, Device, Tensor, Var};

pub use shape::{Head, ModelShape, ParamRole, ParamSpec};

use le_engine::rnn::CellConstants;

use crate::config::NetSpec;
use crate::error::{ModelError, Result};
use crate::init::init_network_values;

/// `M` networks of one [`ModelShape`], stacked.
pub struct PopulationModel {
    shape: ModelShape,
    specs: Vec<NetSpec>,
    constants: Vec<CellConstants>,
    param_specs: Vec<ParamSpec>,
    params: Vec<Var>,
    dtype: DType,
    device: Device,
}

impl std::fmt::Debug for PopulationModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PopulationModel")
            .field("shape", &self.shape)
            .field("networks", &self.specs.len())
            .field("dtype", &self.dtype)
            .finish()
    }
}

/// Network values on the host: per parameter (canonical order) the flat values.
pub type NetworkValues = Vec<Vec<f64>>;

impl PopulationModel {
    /// Initialises every network from its spec's seed and init scheme
    /// (see [`crate::init`]). All specs must share arch, hidden size, layers and bias.
    pub fn new(
        shape: ModelShape,
        specs: &[NetSpec],
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let values =
            specs.iter().map(|s| init_network_values(&shape, s)).collect::<Result<Vec<_>>>()?;
        Self::from_values(shape, specs, values, dtype, device)
    }

    /// Builds the population from explicit per-network values (`values[m][param]`, flat, in
    /// [`ModelShape::param_specs`] order).
    pub fn from_values(
        shape: ModelShape,
        specs: &[NetSpec],
        values: Vec<NetworkValues>,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        shape.validate()?;
        if specs.is_empty() {
            return Err(ModelError::PopulationMismatch(
                "a population needs at least one network".into(),
            ));
        }
        if !matches!(dtype, DType::F32 | DType::F64) {
            return Err(ModelError::InvalidConfig(format!(
                "dtype must be f32 or f64, got {dtype:?}"
            )));
        }
        for s in specs {
            s.validate()?;
            let own = ModelShape::of(s, shape.input_size, shape.head);
            if own != shape {
                return Err(ModelError::PopulationMismatch(format!(
                    "network {:?} has shape {own:?}, the population {shape:?}",
                    s.id
                )));
            }
        }
        if values.len() != specs.len() {
            return Err(ModelError::PopulationMismatch(format!(
                "{} value sets for {} networks",
                values.len(),
                specs.len()
            )));
        }
        let param_specs = shape.param_specs();
        let m = specs.len();
        let mut params = Vec::with_capacity(param_specs.len());
        for (k, ps) in param_specs.iter().enumerate() {
            let mut flat = Vec::with_capacity(m * ps.numel());
            for (net, v) in values.iter().enumerate() {
                let p = v.get(k).ok_or_else(|| {
                    ModelError::PopulationMismatch(format!(
                        "network {net} lacks parameter {}",
                        ps.name
                    ))
                })?;
                if p.len() != ps.numel() {
                    return Err(ModelError::PopulationMismatch(format!(
                        "network {net}: parameter {} has {} values, expected {} ({:?})",
                        ps.name,
                        p.len(),
                        ps.numel(),
                        ps.shape
                    )));
                }
                flat.extend_from_slice(p);
            }
            let mut dims = vec![m];
            dims.extend_from_slice(&ps.shape);
            let t = Tensor::from_vec(flat, dims, device)?.to_dtype(dtype)?;
            params.push(Var::from_tensor(&t)?);
        }
        Ok(Self {
            shape,
            specs: specs.to_vec(),
            constants: specs.iter().map(NetSpec::resolved_constants).collect(),
            param_specs,
            params,
            dtype,
            device: device.clone(),
        })
    }

    /// The shared shape.
    pub fn shape(&self) -> &ModelShape {
        &self.shape
    }
    /// The networks' specs.
    pub fn specs(&self) -> &[NetSpec] {
        &self.specs
    }
    /// `M`.
    pub fn num_networks(&self) -> usize {
        self.specs.len()
    }
    /// Parameter names and per-network shapes, canonical order.
    pub fn param_specs(&self) -> &[ParamSpec] {
        &self.param_specs
    }
    /// The trainable variables, `[M, ...]` each, canonical order.
    pub fn vars(&self) -> &[Var] {
        &self.params
    }
    /// Compute dtype.
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    /// Device.
    pub fn device(&self) -> &Device {
        &self.device
    }
    /// The variables as tensors that record gradients.
    pub fn tracked_params(&self) -> Vec<Tensor> {
        self.params.iter().map(|v| v.as_tensor().clone()).collect()
    }
    /// The variables as detached tensors (forward without a graph).
    pub fn detached_params(&self) -> Vec<Tensor> {
        self.params.iter().map(Var::as_detached_tensor).collect()
    }

    /// Network `m`'s values as `f64`, per parameter in canonical order.
    pub fn network_values(&self, m: usize) -> Result<NetworkValues> {
        self.network_values_as::<f64>(m)
    }

    /// Network `m`'s values as `f32` (what checkpoints store).
    pub fn network_values_f32(&self, m: usize) -> Result<Vec<Vec<f32>>> {
        self.network_values_as::<f32>(m)
    }

    /// Network `m`'s values converted to `T`, per parameter in canonical order.
    fn network_values_as<T: candle_core::WithDType>(&self, m: usize) -> Result<Vec<Vec<T>>> {
        self.check_index(m)?;
        self.params
            .iter()
            .map(|v| Ok(v.as_tensor().get(m)?.flatten_all()?.to_dtype(T::DTYPE)?.to_vec1::<T>()?))
            .collect()
    }

    fn check_index(&self, m: usize) -> Result<()> {
        if m >= self.num_networks() {
            return Err(ModelError::InvalidConfig(format!(
                "network index {m} out of range for a population of {}",
                self.num_networks()
            )));
        }
        Ok(())
    }

    /// A per-network scalar as a tensor `[M, 1, 1]` in the compute dtype.
    fn per_net(&self, f: impl Fn(&CellConstants) -> f64) -> Result<Tensor> {
        let v: Vec<f64> = self.constants.iter().map(f).collect();
        Ok(Tensor::from_vec(v, (self.num_networks(), 1, 1), &self.device)?.to_dtype(self.dtype)?)
    }

    /// Top-layer outputs at every step: `T` tensors `[M, B, N]` (`h`, or `y` for CoRNN), from
    /// zero initial state. `x` is `[M, B, T, I]`; `params` are [`Self::tracked_params`] (to
    /// train) or [`Self::detached_params`].
    pub fn forward_hidden(&self, params: &[Tensor], x: &Tensor) -> Result<Vec<Tensor>> {
        let (m, b, t, i) = x.dims4()?;
        if m != self.num_networks() || i != self.shape.input_size || t == 0 || b == 0 {
            return Err(ModelError::InvalidConfig(format!(
                "inputs must be [M={}, B>0, T>0, I={}], got {:?}",
                self.num_networks(),
                self.shape.input_size,
                x.dims()
            )));
        }
        if params.len() != self.param_specs.len() {
            return Err(ModelError::InvalidConfig(format!(
                "{} parameter tensors given, the model has {}",
                params.len(),
                self.param_specs.len()
            )));
        }
        let per_layer = self.shape.tensors_per_layer();
        // Split the (untracked) input into contiguous steps once. Every later per-step
        // slice is of an untracked tensor or a separate tensor: narrowing a tracked tensor
        // per step would make each step's backward allocate the whole sequence (O(T^2)).
        let x = x.to_dtype(self.dtype)?;
        // With biases, layer 0's input gets a column of ones so that its input bias rides in
        // the input matmul (its gradient then comes out of the GEMM, not a per-step
        // broadcast-add and reduction).
        let x = if self.shape.bias {
            Tensor::cat(&[&x, &x.ones_like()?.narrow(3, 0, 1)?], 3)?
        } else {
            x
        };
        let mut layer_input = (0..t)
            .map(|s| x.narrow(2, s, 1)?.squeeze(2)?.contiguous())
            .collect::<candle_core::Result<Vec<_>>>()?;
        for l in 0..self.shape.num_layers {
            let p = &params[l * per_layer..(l + 1) * per_layer];
            layer_input = self.layer_forward(p, &layer_input, l == 0 && self.shape.bias)?;
        }
        Ok(layer_input)
    }

    /// The readout input: `[M, B, N]` (last step) or `[M, B T, N]` (per step, batch-major).
    pub fn readout_input(&self, hidden: &[Tensor]) -> Result<Tensor> {
        let last = hidden
            .last()
            .ok_or_else(|| ModelError::InvalidConfig("empty hidden sequence".into()))?;
        if self.shape.head.is_per_step() {
            let (m, b, n) = last.dims3()?;
            Ok(Tensor::stack(hidden, 2)?.reshape((m, b * hidden.len(), n))?)
        } else {
            Ok(last.clone())
        }
    }

    /// Readout `z W_fc^T + b_fc`: `[M, R, N]` -> `[M, R, C]`. `dropout_mask` (same shape as
    /// `z`, entries 0 or `1/(1-q)`) multiplies `z` first.
    pub fn readout(
        &self,
        params: &[Tensor],
        z: &Tensor,
        dropout_mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let k = params.len();
        if k != self.param_specs.len() {
            return Err(ModelError::InvalidConfig(format!(
                "{k} parameter tensors given, the model has {}",
                self.param_specs.len()
            )));
        }
        let z = match dropout_mask {
            Some(mask) => (z * mask.to_dtype(self.dtype)?)?,
            None => z.clone(),
        };
        let w_t = params[k - 2].t()?.contiguous()?;
        Ok(z.matmul(&w_t)?.broadcast_add(&params[k - 1].unsqueeze(1)?)?)
    }

    /// Forward to the head's outputs `[M, R, C]` (see [`Self::readout_input`] for `R`).
    pub fn forward(
        &self,
        params: &[Tensor],
        x: &Tensor,
        dropout_mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let hidden = self.forward_hidden(params, x)?;
        let z = self.readout_input(&hidden)?;
        self.readout(params, &z, dropout_mask)
    }

    /// Per-network losses `[M]` (mean over the batch, and steps for per-step heads) and, for
    /// classification, per-network correct counts `[M]` (f32).
    ///
    /// `targets`: classes `u32` `[M, R]`, or values `[M, R, O]`.
    pub fn loss(&self, outputs: &Tensor, targets: &Tensor) -> Result<(Tensor, Option<Tensor>)> {
        if self.shape.head.is_classification() {
            let logp = candle_nn::ops::log_softmax(outputs, D::Minus1)?;
            let picked = logp.gather(&targets.unsqueeze(2)?, 2)?.squeeze(2)?;
            let loss = picked.mean(1)?.neg()?;
            let pred = outputs.argmax_keepdim(D::Minus1)?.squeeze(2)?;
            let correct = pred.eq(targets)?.to_dtype(DType::F32)?.sum(1)?;
            Ok((loss, Some(correct)))
        } else {
            let diff = (outputs - targets.to_dtype(self.dtype)?)?;
            Ok((diff.sqr()?.flatten_from(1)?.mean(1)?, None))
        }
    }
}
