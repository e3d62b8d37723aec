//! Network specifications and training configuration.

use le_engine::rnn::{CellConstants, CellKind};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// The cell kind of a checkpoint name (`rnn`, `gru`, `lstm`, `asrnn`, `cornn`, exactly as
/// [`CellKind::name`] writes it; no aliases).
pub fn cell_kind_from_name(name: &str) -> Result<CellKind> {
    CellKind::ALL
        .into_iter()
        .find(|a| a.name() == name)
        .ok_or_else(|| ModelError::InvalidConfig(format!("unknown arch {name:?}")))
}

/// The sizes that set how much memory training a population takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrainingFootprint {
    /// Cell kind.
    pub arch: CellKind,
    /// Hidden size `N`.
    pub hidden_size: usize,
    /// Stacked layers.
    pub num_layers: usize,
    /// Input size `I` per step.
    pub input_size: usize,
    /// Classes of the readout.
    pub num_classes: usize,
    /// Steps per sequence `T`.
    pub seq_len: usize,
    /// Mini-batch size (the larger of training and evaluation batches).
    pub batch_size: usize,
    /// Networks trained together as one population.
    pub networks: usize,
}

impl TrainingFootprint {
    /// Estimated peak bytes of training the population, in checked arithmetic (`None` on
    /// overflow): per network the parameters with gradients and two Adam moments (`4 P`), and
    /// the activations autograd keeps for the backward pass (`3 B T (G + 2) N` per layer),
    /// all `f32`.
    pub fn bytes(&self) -> Option<u64> {
        let g = self.arch.gates() as u64;
        let n = self.hidden_size as u64;
        let i = self.input_size as u64;
        let layers = self.num_layers as u64;
        let gn = g.checked_mul(n)?;
        let first = gn.checked_mul(i.checked_add(n)?.checked_add(2)?)?;
        let rest = gn
            .checked_mul(n.checked_mul(2)?.checked_add(2)?)?
            .checked_mul(layers.saturating_sub(1))?;
        let readout = n.checked_add(1)?.checked_mul(self.num_classes as u64)?;
        let params = first.checked_add(rest)?.checked_add(readout)?;
        let activations = [3, self.batch_size as u64, self.seq_len as u64, g + 2, n, layers]
            .into_iter()
            .try_fold(1u64, u64::checked_mul)?;
        let per_net = params.checked_mul(4)?.checked_add(activations)?;
        per_net.checked_mul(self.networks as u64)?.checked_mul(4)
    }
}

/// The configured cell constants of ASRNN and CoRNN; `None` takes the published default
/// ([`NetSpec::resolved_constants`] fills them in).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ConstantOverrides {
    /// ASRNN step `eps` (default 0.01); CoRNN damping `eps` (default 4.7).
    pub eps: Option<f64>,
    /// ASRNN diagonal shift `gamma` (default: the sweep's `p`, as the published code);
    /// CoRNN stiffness `gamma` (default 2.7).
    pub gamma: Option<f64>,
    /// CoRNN time step `dt` (default 0.042).
    pub dt: Option<f64>,
}

/// How the weights are drawn (seeded by [`NetSpec::seed`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InitScheme {
    /// The published sweep: every cell parameter (input and recurrent weights and the biases,
    /// as `param.uniform_(-p, p)` over the layer's parameters) ~ `U(-p, p)` with
    /// `p = NetSpec::p`. The readout keeps PyTorch's `nn.Linear` init.
    UniformP,
    /// PyTorch's default: every cell parameter ~ `U(-1/sqrt(N), 1/sqrt(N))` (as
    /// `nn.RNN`/`nn.GRU`/`nn.LSTM`), readout as `nn.Linear` (`U(-1/sqrt(N), 1/sqrt(N))`).
    PytorchDefault,
    /// Each `N x N` recurrent block (per gate) a random orthogonal matrix (QR of a Gaussian
    /// matrix, sign-fixed so `diag(R) > 0`); everything else as [`InitScheme::PytorchDefault`].
    OrthogonalRecurrent,
}

/// One network of a sweep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetSpec {
    /// Folder name under `<out>/nets/`; must be a plain file name (`[A-Za-z0-9._-]+`).
    pub id: String,
    /// Cell kind.
    pub arch: CellKind,
    /// Hidden size `N`.
    pub hidden_size: usize,
    /// Stacked layers, 1 to 3.
    pub num_layers: usize,
    /// Whether the cell has biases.
    pub bias: bool,
    /// Initialisation scheme.
    pub init: InitScheme,
    /// Sweep parameter `p` (init scale of [`InitScheme::UniformP`], ASRNN `gamma` default).
    pub p: f64,
    /// Learning rate.
    pub lr: f64,
    /// Seed of the weights, the data order and the dropout masks.
    pub seed: u64,
    /// ASRNN / CoRNN constants.
    #[serde(default)]
    pub constants: ConstantOverrides,
}

impl NetSpec {
    /// A network with the published defaults: 1 layer, biases, `UniformP` init.
    pub fn new(
        id: impl Into<String>,
        arch: CellKind,
        hidden_size: usize,
        p: f64,
        lr: f64,
        seed: u64,
    ) -> Self {
        Self {
            id: id.into(),
            arch,
            hidden_size,
            num_layers: 1,
            bias: true,
            init: InitScheme::UniformP,
            p,
            lr,
            seed,
            constants: ConstantOverrides::default(),
        }
    }

    /// The cell constants with defaults filled in (unused ones are 0).
    pub fn resolved_constants(&self) -> CellConstants {
        let c = self.constants;
        match self.arch {
            CellKind::Asrnn => CellConstants {
                eps: c.eps.unwrap_or(0.01),
                gamma: c.gamma.unwrap_or(self.p),
                dt: 0.0,
            },
            CellKind::Cornn => CellConstants {
                eps: c.eps.unwrap_or(4.7),
                gamma: c.gamma.unwrap_or(2.7),
                dt: c.dt.unwrap_or(0.042),
            },
            CellKind::Rnn | CellKind::Gru | CellKind::Lstm => {
                CellConstants { eps: 0.0, gamma: 0.0, dt: 0.0 }
            }
        }
    }

    /// Checks sizes, finiteness and the id.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(ModelError::InvalidConfig(format!("network {:?}: {m}", self.id)));
        if self.id.is_empty()
            || self.id.starts_with('.')
            || !self.id.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return bad(
                "id must be a non-empty plain name of [A-Za-z0-9._-] not starting with '.'".into(),
            );
        }
        if self.hidden_size == 0 {
            return bad("hidden_size must be at least 1".into());
        }
        if !(1..=3).contains(&self.num_layers) {
            return bad(format!("num_layers must be 1, 2 or 3, got {}", self.num_layers));
        }
        if !self.p.is_finite() || (self.init == InitScheme::UniformP && self.p < 0.0) {
            return bad(format!("p must be finite (and >= 0 for UniformP), got {}", self.p));
        }
        if !self.lr.is_finite() || self.lr < 0.0 {
            return bad(format!("lr must be finite and >= 0, got {}", self.lr));
        }
        let r = self.resolved_constants();
        if !(r.eps.is_finite() && r.gamma.is_finite() && r.dt.is_finite()) {
            return bad("cell constants must be finite".into());
        }
        Ok(())
    }
}

/// Optimiser (PyTorch semantics).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// `torch.optim.Adam`; `weight_decay` is an L2 term added to the gradient.
    Adam,
    /// `torch.optim.AdamW`; decoupled weight decay `theta *= 1 - lr * weight_decay`.
    AdamW,
}

/// Which implementation trains a population (results agree to float rounding).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrainBackend {
    /// The fused path where it is supported ([`crate::fused`]: LSTM or GRU, last-step
    /// classification head, `F32`, CPU), candle otherwise.
    #[default]
    Auto,
    /// Always candle autograd.
    Candle,
    /// The fused path; a population it does not support is an error
    /// ([`ModelError::InvalidConfig`]).
    Fused,
}

/// Training hyperparameters shared by every network of a sweep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Training epochs (checkpoints 0..=epochs are written).
    pub epochs: usize,
    /// Minibatch size.
    pub batch_size: usize,
    /// Optimiser.
    pub optimizer: OptimizerKind,
    /// Adam `betas`.
    pub betas: (f64, f64),
    /// Adam `eps`.
    pub adam_eps: f64,
    /// Weight decay (L2 for Adam, decoupled for AdamW).
    pub weight_decay: f64,
    /// Clip each network's total gradient norm to this (`clip_grad_norm_`), if set.
    pub grad_clip: Option<f64>,
    /// Dropout probability on the readout input (training only), in `[0, 1)`.
    pub readout_dropout: f64,
    /// Batch size of evaluation passes.
    pub eval_batch_size: usize,
    /// Most networks trained together as one batched model.
    pub max_population: usize,
    /// Also evaluate the (unshuffled) train split at epoch 0.
    pub eval_train_at_epoch0: bool,
    /// Training implementation (default [`TrainBackend::Auto`]; not part of the
    /// [`crate::Recipe`], since it changes results only by float rounding).
    #[serde(default)]
    pub backend: TrainBackend,
}

impl Default for TrainConfig {
    /// The published sequential-MNIST setting: Adam, lr per network, batch 128, 10 epochs.
    fn default() -> Self {
        Self {
            epochs: 10,
            batch_size: 128,
            optimizer: OptimizerKind::Adam,
            betas: (0.9, 0.999),
            adam_eps: 1e-8,
            weight_decay: 0.0,
            grad_clip: None,
            readout_dropout: 0.0,
            eval_batch_size: 1000,
            max_population: 16,
            eval_train_at_epoch0: true,
            backend: TrainBackend::Auto,
        }
    }
}

impl TrainConfig {
    /// Checks ranges.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(ModelError::InvalidConfig(format!("train config: {m}")));
        if self.batch_size == 0 || self.eval_batch_size == 0 || self.max_population == 0 {
            return bad("batch_size, eval_batch_size and max_population must be at least 1");
        }
        let (b1, b2) = self.betas;
        if !((0.0..1.0).contains(&b1) && (0.0..1.0).contains(&b2)) {
            return bad("betas must lie in [0, 1)");
        }
        if !(self.adam_eps > 0.0 && self.adam_eps.is_finite()) {
            return bad("adam_eps must be positive");
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return bad("weight_decay must be >= 0");
        }
        if let Some(c) = self.grad_clip
            && !(c > 0.0 && c.is_finite())
        {
            return bad("grad_clip must be positive");
        }
        if !(0.0..1.0).contains(&self.readout_dropout) {
            return bad("readout_dropout must lie in [0, 1)");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arch_names_round_trip() {
        for a in CellKind::ALL {
            assert_eq!(cell_kind_from_name(a.name()).unwrap(), a);
        }
        assert!(cell_kind_from_name("transformer").is_err());
    }

    #[test]
    fn validation_rejects_bad_specs_and_configs() {
        let ok = NetSpec::new("net-1", CellKind::Lstm, 8, 0.5, 0.01, 0);
        ok.validate().unwrap();
        for bad in [
            NetSpec { id: String::new(), ..ok.clone() },
            NetSpec { id: "a/b".into(), ..ok.clone() },
            NetSpec { id: "..".into(), ..ok.clone() },
            NetSpec { hidden_size: 0, ..ok.clone() },
            NetSpec { num_layers: 0, ..ok.clone() },
            NetSpec { num_layers: 4, ..ok.clone() },
            NetSpec { p: f64::NAN, ..ok.clone() },
            NetSpec { p: -1.0, ..ok.clone() },
            NetSpec { lr: -0.1, ..ok.clone() },
            NetSpec { lr: f64::INFINITY, ..ok.clone() },
        ] {
            assert!(matches!(bad.validate(), Err(ModelError::InvalidConfig(_))), "{bad:?}");
        }
        TrainConfig::default().validate().unwrap();
        for bad in [
            TrainConfig { batch_size: 0, ..TrainConfig::default() },
            TrainConfig { betas: (1.0, 0.999), ..TrainConfig::default() },
            TrainConfig { adam_eps: 0.0, ..TrainConfig::default() },
            TrainConfig { grad_clip: Some(-1.0), ..TrainConfig::default() },
            TrainConfig { readout_dropout: 1.0, ..TrainConfig::default() },
            TrainConfig { weight_decay: f64::NAN, ..TrainConfig::default() },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn constants_default_as_published() {
        let a = NetSpec::new("a", CellKind::Asrnn, 8, 0.7, 0.01, 0).resolved_constants();
        assert_eq!((a.eps, a.gamma), (0.01, 0.7));
        let c = NetSpec::new("c", CellKind::Cornn, 8, 0.7, 0.01, 0).resolved_constants();
        assert_eq!((c.dt, c.gamma, c.eps), (0.042, 2.7, 4.7));
    }
}
