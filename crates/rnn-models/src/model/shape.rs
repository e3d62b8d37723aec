//! The shape of a population's networks: cell kind, sizes, readout head, and the list of
//! parameters (PyTorch names and shapes, canonical order) that checkpoints, initialisation
//! and both training paths share.

use datasets::OutputKind;

use le_engine::rnn::CellKind;

use crate::config::NetSpec;
use crate::error::{ModelError, Result};

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
    pub arch: CellKind,
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
                CellKind::Rnn | CellKind::Gru | CellKind::Lstm => {
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
                CellKind::Asrnn => {
                    push(
                        format!("rnn.weight_hh_l{l}"),
                        vec![n, n],
                        ParamRole::RecurrentWeight { blocks: 1 },
                    );
                    if self.bias {
                        push(format!("rnn.bias_l{l}"), vec![n], ParamRole::Bias);
                    }
                }
                CellKind::Cornn => {
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
    pub(super) fn tensors_per_layer(&self) -> usize {
        let b = usize::from(self.bias);
        match self.arch {
            CellKind::Rnn | CellKind::Gru | CellKind::Lstm => 2 + 2 * b,
            CellKind::Asrnn => 2 + b,
            CellKind::Cornn => 3 + b,
        }
    }

    pub(super) fn validate(&self) -> Result<()> {
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
