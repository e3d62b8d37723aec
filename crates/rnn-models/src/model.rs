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

use candle_core::{D, DType, Device, Tensor, Var};
use datasets::OutputKind;

use crate::config::{Arch, NetSpec, ResolvedConstants};
use crate::error::{ModelError, Result};
use crate::init::init_network_values;

/// The readout and loss of a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Head {
    /// Classify from the last step (sequential MNIST): logits `[M, B, C]`, cross-entropy.
    LastStepClass {
        /// `C`.
        classes: usize,
    },
    /// Classify every step (next character): logits `[M, B T, C]`, mean cross-entropy over
    /// steps (nats; bits per character = loss / ln 2).
    PerStepClass {
        /// `C`.
        classes: usize,
    },
    /// Regress every step: outputs `[M, B T, O]`, mean squared error.
    PerStepValue {
        /// `O`.
        outputs: usize,
    },
    /// Regress from the last step: outputs `[M, B, O]`, mean squared error.
    LastStepValue {
        /// `O`.
        outputs: usize,
    },
}

impl Head {
    /// The head a task's output kind needs.
    pub fn for_output(kind: OutputKind) -> Self {
        match kind {
            OutputKind::ClassPerSequence { num_classes } => {
                Head::LastStepClass { classes: num_classes }
            }
            OutputKind::ClassPerStep { num_classes } => Head::PerStepClass { classes: num_classes },
            OutputKind::ValuePerStep { output_size } => Head::PerStepValue { outputs: output_size },
            OutputKind::ValuePerSequence { output_size } => {
                Head::LastStepValue { outputs: output_size }
            }
        }
    }
    /// Rows of `fc.weight` (`C` or `O`).
    pub fn readout_size(self) -> usize {
        match self {
            Head::LastStepClass { classes } | Head::PerStepClass { classes } => classes,
            Head::PerStepValue { outputs } | Head::LastStepValue { outputs } => outputs,
        }
    }
    /// Cross-entropy heads.
    pub fn is_classification(self) -> bool {
        matches!(self, Head::LastStepClass { .. } | Head::PerStepClass { .. })
    }
    /// Heads that read every step.
    pub fn is_per_step(self) -> bool {
        matches!(self, Head::PerStepClass { .. } | Head::PerStepValue { .. })
    }
    /// `"last_step_class"`, ... (checkpoint metadata `head`).
    pub fn name(self) -> &'static str {
        match self {
            Head::LastStepClass { .. } => "last_step_class",
            Head::PerStepClass { .. } => "per_step_class",
            Head::PerStepValue { .. } => "per_step_value",
            Head::LastStepValue { .. } => "last_step_value",
        }
    }
}

/// What a parameter is, for initialisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamRole {
    /// Input weight (`weight_ih_l*`).
    InputWeight,
    /// Recurrent weight made of `blocks` stacked `N x N` blocks.
    RecurrentWeight {
        /// Gate blocks (1, 3 or 4).
        blocks: usize,
    },
    /// A cell bias.
    Bias,
    /// `fc.weight`.
    ReadoutWeight,
    /// `fc.bias`.
    ReadoutBias,
}

/// One parameter of a network: its checkpoint name and per-network shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamSpec {
    /// Checkpoint name: `rnn.weight_ih_l0`, ..., `fc.weight`, `fc.bias`.
    pub name: String,
    /// Shape of one network's tensor (PyTorch layout).
    pub shape: Vec<usize>,
    /// Role.
    pub role: ParamRole,
}

impl ParamSpec {
    /// Number of values.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// The shape shared by every network of a population.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ModelShape {
    /// Cell kind.
    pub arch: Arch,
    /// Input features `I`.
    pub input_size: usize,
    /// Hidden size `N`.
    pub hidden_size: usize,
    /// Stacked layers.
    pub num_layers: usize,
    /// Whether the cells have biases.
    pub bias: bool,
    /// Readout.
    pub head: Head,
}

impl ModelShape {
    /// The shape of `spec` on a task with `input_size` features and `head`.
    pub fn of(spec: &NetSpec, input_size: usize, head: Head) -> Self {
        Self {
            arch: spec.arch,
            input_size,
            hidden_size: spec.hidden_size,
            num_layers: spec.num_layers,
            bias: spec.bias,
            head,
        }
    }

    /// Parameters in canonical order: per layer the cell's tensors (rnn/gru/lstm:
    /// `weight_ih`, `weight_hh`, `bias_ih`, `bias_hh`; asrnn: `weight_ih` (V), `weight_hh` (W),
    /// `bias`; cornn: `weight_ih` (V), `weight_hy`, `weight_hz`, `bias`), then `fc.weight`,
    /// `fc.bias`.
    pub fn param_specs(&self) -> Vec<ParamSpec> {
        let n = self.hidden_size;
        let g = self.arch.gates();
        let mut out = Vec::new();
        let mut push =
            |name: String, shape: Vec<usize>, role| out.push(ParamSpec { name, shape, role });
        for l in 0..self.num_layers {
            let i = if l == 0 { self.input_size } else { n };
            push(format!("rnn.weight_ih_l{l}"), vec![g * n, i], ParamRole::InputWeight);
            match self.arch {
                Arch::Rnn | Arch::Gru | Arch::Lstm => {
                    push(
                        format!("rnn.weight_hh_l{l}"),
                        vec![g * n, n],
                        ParamRole::RecurrentWeight { blocks: g },
                    );
                    if self.bias {
                        push(format!("rnn.bias_ih_l{l}"), vec![g * n], ParamRole::Bias);
                        push(format!("rnn.bias_hh_l{l}"), vec![g * n], ParamRole::Bias);
                    }
                }
                Arch::Asrnn => {
                    push(
                        format!("rnn.weight_hh_l{l}"),
                        vec![n, n],
                        ParamRole::RecurrentWeight { blocks: 1 },
                    );
                    if self.bias {
                        push(format!("rnn.bias_l{l}"), vec![n], ParamRole::Bias);
                    }
                }
                Arch::Cornn => {
                    push(
                        format!("rnn.weight_hy_l{l}"),
                        vec![n, n],
                        ParamRole::RecurrentWeight { blocks: 1 },
                    );
                    push(
                        format!("rnn.weight_hz_l{l}"),
                        vec![n, n],
                        ParamRole::RecurrentWeight { blocks: 1 },
                    );
                    if self.bias {
                        push(format!("rnn.bias_l{l}"), vec![n], ParamRole::Bias);
                    }
                }
            }
        }
        let c = self.head.readout_size();
        push("fc.weight".into(), vec![c, n], ParamRole::ReadoutWeight);
        push("fc.bias".into(), vec![c], ParamRole::ReadoutBias);
        out
    }

    /// Tensors per layer in [`ModelShape::param_specs`].
    fn tensors_per_layer(&self) -> usize {
        let b = usize::from(self.bias);
        match self.arch {
            Arch::Rnn | Arch::Gru | Arch::Lstm => 2 + 2 * b,
            Arch::Asrnn => 2 + b,
            Arch::Cornn => 3 + b,
        }
    }

    fn validate(&self) -> Result<()> {
        if self.input_size == 0 || self.hidden_size == 0 || self.head.readout_size() == 0 {
            return Err(ModelError::InvalidConfig(format!(
                "sizes must be positive: input {}, hidden {}, readout {}",
                self.input_size,
                self.hidden_size,
                self.head.readout_size()
            )));
        }
        if !(1..=3).contains(&self.num_layers) {
            return Err(ModelError::InvalidConfig(format!(
                "num_layers must be 1..=3, got {}",
                self.num_layers
            )));
        }
        Ok(())
    }
}

/// `M` networks of one [`ModelShape`], stacked.
pub struct PopulationModel {
    shape: ModelShape,
    specs: Vec<NetSpec>,
    constants: Vec<ResolvedConstants>,
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
        self.check_index(m)?;
        self.params
            .iter()
            .map(|v| {
                Ok(v.as_tensor().get(m)?.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?)
            })
            .collect()
    }

    /// Network `m`'s values as `f32` (what checkpoints store).
    pub fn network_values_f32(&self, m: usize) -> Result<Vec<Vec<f32>>> {
        self.check_index(m)?;
        self.params
            .iter()
            .map(|v| {
                Ok(v.as_tensor().get(m)?.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?)
            })
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
    fn per_net(&self, f: impl Fn(&ResolvedConstants) -> f64) -> Result<Tensor> {
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

    /// One layer over the whole sequence: `T` inputs `[M, B, I_l]` -> `T` outputs `[M, B, N]`.
    /// With `ones_column`, each input ends in a column of ones (layer 0 with biases): the
    /// input bias is appended to the transposed input weight instead of added per step.
    fn layer_forward(&self, p: &[Tensor], xs: &[Tensor], ones_column: bool) -> Result<Vec<Tensor>> {
        let (m, b, _) = xs[0].dims3()?;
        let t = xs.len();
        let n = self.shape.hidden_size;
        let bias = self.shape.bias;
        // Input projection of step s: [M, B, I] x [M, I, N] (+ input bias), asrnn / cornn.
        let bias_index = if self.shape.arch == Arch::Cornn { 3 } else { 2 };
        let w_ih_t = if ones_column && matches!(self.shape.arch, Arch::Asrnn | Arch::Cornn) {
            Tensor::cat(&[&p[0].t()?, &p[bias_index].unsqueeze(1)?], 1)?.contiguous()?
        } else {
            p[0].t()?.contiguous()?
        };
        let project = |s: usize| -> Result<Tensor> {
            let a = xs[s].matmul(&w_ih_t)?;
            Ok(if bias && !ones_column {
                a.broadcast_add(&p[bias_index].unsqueeze(1)?)?
            } else {
                a
            })
        };
        let zeros = Tensor::zeros((m, b, n), self.dtype, &self.device)?;
        let mut out = Vec::with_capacity(t);
        match self.shape.arch {
            Arch::Rnn | Arch::Gru | Arch::Lstm => {
                // Gate blocks are split off the parameters once per forward: slicing a
                // per-step [M, B, G N] product instead would make every step's backward
                // allocate G full-size gradients.
                let g = self.shape.arch.gates();
                let block =
                    |t: &Tensor, k: usize| -> candle_core::Result<Tensor> { t.narrow(1, k * n, n) };
                let mut w = (0..g)
                    .map(|k| block(&p[0], k)?.t()?.contiguous())
                    .collect::<candle_core::Result<Vec<_>>>()?;
                let u = (0..g)
                    .map(|k| block(&p[1], k)?.t()?.contiguous())
                    .collect::<candle_core::Result<Vec<_>>>()?;
                // Per-gate biases [M, 1, N]: b_ih + b_hh, except GRU's n gate, whose b_hh
                // sits inside r * (U_n h + b_hn).
                let (b_in, b_hn) = if bias {
                    let mut b_in = Vec::with_capacity(g);
                    for k in 0..g {
                        let bi = block(&p[2], k)?;
                        let bh = block(&p[3], k)?;
                        b_in.push(
                            if self.shape.arch == Arch::Gru && k == 2 { bi } else { (bi + bh)? }
                                .unsqueeze(1)?,
                        );
                    }
                    let b_hn = if self.shape.arch == Arch::Gru {
                        Some(block(&p[3], 2)?.unsqueeze(1)?)
                    } else {
                        None
                    };
                    (Some(b_in), b_hn)
                } else {
                    (None, None)
                };
                // Layer 0: fold the per-gate input-side biases into W_k^T as an extra row.
                let b_in = match b_in {
                    Some(b_in) if ones_column => {
                        for (wk, bk) in w.iter_mut().zip(&b_in) {
                            *wk = Tensor::cat(&[&*wk, bk], 1)?.contiguous()?;
                        }
                        None
                    }
                    other => other,
                };
                let with_bias = |y: Tensor, k: usize| -> candle_core::Result<Tensor> {
                    match &b_in {
                        Some(b) => y.broadcast_add(&b[k]),
                        None => Ok(y),
                    }
                };
                let mut h = zeros.clone();
                let mut c = zeros;
                for x in xs {
                    // y_k = x W_k^T + h U_k^T + b_k
                    let pre = |k: usize| -> candle_core::Result<Tensor> {
                        with_bias((x.matmul(&w[k])? + h.matmul(&u[k])?)?, k)
                    };
                    h = match self.shape.arch {
                        Arch::Rnn => pre(0)?.tanh()?,
                        Arch::Gru => {
                            let r = candle_nn::ops::sigmoid(&pre(0)?)?;
                            let z = candle_nn::ops::sigmoid(&pre(1)?)?;
                            let mut u_n = h.matmul(&u[2])?;
                            if let Some(b_hn) = &b_hn {
                                u_n = u_n.broadcast_add(b_hn)?;
                            }
                            let nn = (with_bias(x.matmul(&w[2])?, 2)? + (r * u_n)?)?.tanh()?;
                            // (1 - z) n + z h = n + z (h - n)
                            (&nn + (z * (&h - &nn)?)?)?
                        }
                        _ => {
                            let ig = candle_nn::ops::sigmoid(&pre(0)?)?;
                            let fg = candle_nn::ops::sigmoid(&pre(1)?)?;
                            let gg = pre(2)?.tanh()?;
                            let og = candle_nn::ops::sigmoid(&pre(3)?)?;
                            c = ((fg * &c)? + (ig * gg)?)?;
                            (og * c.tanh()?)?
                        }
                    };
                    out.push(h.clone());
                }
            }
            Arch::Asrnn => {
                let w = &p[1];
                let gamma = self.per_net(|c| c.gamma)?;
                let eps = self.per_net(|c| c.eps)?;
                let eye = Tensor::eye(n, self.dtype, &self.device)?.unsqueeze(0)?;
                // (W - W^T - gamma I)^T = W^T - W - gamma I
                let a_t =
                    ((w.t()? - w)?.broadcast_sub(&eye.broadcast_mul(&gamma)?))?.contiguous()?;
                let mut h = zeros;
                for s in 0..t {
                    let pre = (project(s)? + h.matmul(&a_t)?)?;
                    h = (&h + pre.tanh()?.broadcast_mul(&eps)?)?;
                    out.push(h.clone());
                }
            }
            Arch::Cornn => {
                let wy_t = p[1].t()?.contiguous()?;
                let wz_t = p[2].t()?.contiguous()?;
                let dt = self.per_net(|c| c.dt)?;
                let gamma = self.per_net(|c| c.gamma)?;
                let eps = self.per_net(|c| c.eps)?;
                let mut y = zeros.clone();
                let mut z = zeros;
                for s in 0..t {
                    let pre = ((project(s)? + y.matmul(&wy_t)?)? + z.matmul(&wz_t)?)?;
                    let force =
                        ((pre.tanh()? - y.broadcast_mul(&gamma)?)? - z.broadcast_mul(&eps)?)?;
                    z = (&z + force.broadcast_mul(&dt)?)?;
                    y = (&y + z.broadcast_mul(&dt)?)?;
                    out.push(y.clone());
                }
            }
        }
        Ok(out)
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
