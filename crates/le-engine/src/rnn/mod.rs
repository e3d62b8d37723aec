//! Recurrent networks: the five cells of `METHOD.md` §2 as plain arrays, their forward step and
//! their tangent map, and spectra of whole populations.
//!
//! * [`Network`]: one stacked network (1-3 or more layers) of one [`CellKind`], loaded from
//!   safetensors with PyTorch parameter names ([`Network::load`], format in
//!   `docs/checkpoint-format.md`) or built from arrays ([`Network::from_layers`]).
//! * The tangent step `Z = J Q` never forms `J` and never forms `diag(v) U`: per layer it is one
//!   GEMM of the recurrent weights with the layer's rows of `Q` for **all B sequences at once**
//!   (`U [Q_1 .. Q_B]`), one GEMM of the input weights with the previous layer's new output
//!   rows (stacked layers: the Jacobian is block lower-triangular), then elementwise work with
//!   the gate values of the forward step (see `cells/` for every cell's formulas).
//! * [`population_spectra`]: `M` networks of one kind and size, driven by inputs `[B, T, I]`
//!   (shared, or one set per network), returning spectra `[M][B]` with per-network mean, std and
//!   status; networks run in parallel (rayon), `f32` state with `f64` log sums by default.
//! * [`SequenceMap`]: one network on one input sequence as a [`crate::DiscreteMap`] — the
//!   one-sequence-at-a-time twin of the batched path, run by the generic engine.

mod activation;
pub(crate) mod cells;
mod load;
mod sequence_map;
pub(crate) mod spectra;

pub use crate::backend::cpu::{network_spectra, population_spectra};
pub use load::LoadOptions;
pub use sequence_map::SequenceMap;
pub use spectra::{InputSet, PopulationSpectra, REFERENCE_WARMUP, RnnSpectrumConfig, WarmupMode};

use crate::error::{LeError, Result};
use crate::scalar::Real;

/// The recurrent cells (PyTorch gate order and names where PyTorch has the cell). The one
/// definition of the cell vocabulary: checkpoints (`arch` metadata), configs and the CLI name
/// cells by [`CellKind::name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum CellKind {
    /// `h' = tanh(W x + b_ih + U h + b_hh)`.
    Rnn,
    /// PyTorch GRU, gates `[r; z; n]`, `n = tanh(W_n x + b_in + r * (U_n h + b_hn))`.
    Gru,
    /// PyTorch LSTM, gates `[i; f; g; o]`, state `(h, c)`.
    Lstm,
    /// Antisymmetric RNN (Chang et al. 2019): `h' = h + eps tanh((W - W^T - gamma I) h + V x + b)`.
    Asrnn,
    /// Coupled oscillatory RNN (Rusch & Mishra 2021), state `(y, z)`.
    Cornn,
}

impl CellKind {
    /// Every cell kind.
    pub const ALL: [CellKind; 5] =
        [CellKind::Rnn, CellKind::Gru, CellKind::Lstm, CellKind::Asrnn, CellKind::Cornn];

    /// Whether the tangent step folds the gate derivatives into row-scaled weights, one
    /// sequence at a time (LSTM, GRU; `cells::BatchState::combined_parts`).
    pub(crate) fn has_combined_tangent(self) -> bool {
        matches!(self, CellKind::Lstm | CellKind::Gru)
    }

    /// Number of gate blocks of the pre-activation (`G` in `[G N, N]`).
    pub fn gates(self) -> usize {
        match self {
            CellKind::Rnn | CellKind::Asrnn | CellKind::Cornn => 1,
            CellKind::Gru => 3,
            CellKind::Lstm => 4,
        }
    }

    /// Forward state size per layer in units of `N` (LSTM `(h, c)` and CoRNN `(y, z)`: 2).
    pub fn state_blocks(self) -> usize {
        match self {
            CellKind::Lstm | CellKind::Cornn => 2,
            _ => 1,
        }
    }

    /// Tangent state size per layer in units of `N`: the forward state, except `N` for the
    /// LSTM with `h` only (`c` frozen).
    pub fn tangent_blocks(self, lstm: LstmState) -> usize {
        if self == CellKind::Lstm && lstm == LstmState::HOnly { 1 } else { self.state_blocks() }
    }

    /// The lowercase name used in metadata (`rnn`, `gru`, ...).
    pub fn name(self) -> &'static str {
        match self {
            CellKind::Rnn => "rnn",
            CellKind::Gru => "gru",
            CellKind::Lstm => "lstm",
            CellKind::Asrnn => "asrnn",
            CellKind::Cornn => "cornn",
        }
    }

    /// Parse a metadata / CLI name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "rnn" | "tanh" | "rnn_tanh" | "vanilla" => CellKind::Rnn,
            "gru" => CellKind::Gru,
            "lstm" => CellKind::Lstm,
            "asrnn" | "antisymmetric" => CellKind::Asrnn,
            "cornn" => CellKind::Cornn,
            _ => return None,
        })
    }
}

impl std::fmt::Display for CellKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Which state the LSTM tangent map acts on. Named `full` / `h-only` in configs and on the
/// command line (`h_only` is accepted too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum LstmState {
    /// The full `(h, c)` state: `2N` exponents per layer (default; the dynamics' true spectrum).
    #[default]
    Full,
    /// `h` only with `c` frozen inside each step (`dh'/dh`, `N x N`): what the published
    /// reference code computes. Not the spectrum of the full dynamics.
    #[serde(alias = "h_only")]
    HOnly,
}

impl LstmState {
    /// The label of reports (`spectrum --json`): `full`, `h_only`.
    pub fn label(self) -> &'static str {
        match self {
            LstmState::Full => "full",
            LstmState::HOnly => "h_only",
        }
    }
}

/// Cell constants of ASRNN and CoRNN (unused by the other cells).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CellConstants {
    /// ASRNN step size / CoRNN damping.
    pub eps: f64,
    /// ASRNN diffusion / CoRNN stiffness.
    pub gamma: f64,
    /// CoRNN time step.
    pub dt: f64,
}

/// Parameters of one layer, row-major, in precision `T`.
///
/// Shapes (`G` = [`CellKind::gates`], `I` = input size of this layer, `N` = hidden size):
/// `w_in [G N, I]`, `b_in [G N]`; `w_rec [G N, R]` with `R = N` (the recurrent matrix acting on
/// `h`; for ASRNN the assembled `M = W - W^T - gamma I`) or `R = 2N` for CoRNN (`[W_y  W_z]`
/// acting on `(y, z)`); `b_rec [G N]` (`b_hh`; zero for ASRNN and CoRNN).
#[derive(Debug, Clone)]
pub struct Layer<T: Real> {
    /// Input size of this layer (`I` for layer 0, `N` above).
    pub input: usize,
    /// Input weights `[G N, I]`.
    pub w_in: Vec<T>,
    /// Input bias `[G N]`.
    pub b_in: Vec<T>,
    /// Recurrent weights `[G N, R]`.
    pub w_rec: Vec<T>,
    /// Recurrent bias `[G N]`.
    pub b_rec: Vec<T>,
}

/// A stacked recurrent network of one cell kind.
#[derive(Debug, Clone)]
pub struct Network<T: Real> {
    /// The cell of every layer.
    pub kind: CellKind,
    /// Hidden size `N`.
    pub hidden: usize,
    /// Input size of the first layer.
    pub input: usize,
    /// Whether the loaded weights had biases (biases are stored as zeros otherwise).
    pub bias: bool,
    /// ASRNN / CoRNN constants.
    pub constants: CellConstants,
    /// The layers, input first.
    pub layers: Vec<Layer<T>>,
}

impl<T: Real> Network<T> {
    /// Build a network from layers, checking every shape. For ASRNN, `w_rec` must already be
    /// `M = W - W^T - gamma I`; use [`Network::asrnn_recurrent`] to assemble it.
    pub fn from_layers(
        kind: CellKind,
        hidden: usize,
        input: usize,
        bias: bool,
        constants: CellConstants,
        layers: Vec<Layer<T>>,
    ) -> Result<Self> {
        let bad = |message: String| LeError::InvalidConfig { field: "network", message };
        if hidden == 0 || input == 0 || layers.is_empty() {
            return Err(bad(format!(
                "hidden size, input size and layer count must be >= 1 (got {hidden}, {input}, {})",
                layers.len()
            )));
        }
        let g = kind.gates();
        let r = if kind == CellKind::Cornn { 2 * hidden } else { hidden };
        for (l, layer) in layers.iter().enumerate() {
            let want_in = if l == 0 { input } else { hidden };
            let checks = [
                ("input size", layer.input, want_in),
                ("w_in", layer.w_in.len(), g * hidden * want_in),
                ("b_in", layer.b_in.len(), g * hidden),
                ("w_rec", layer.w_rec.len(), g * hidden * r),
                ("b_rec", layer.b_rec.len(), g * hidden),
            ];
            for (name, got, want) in checks {
                if got != want {
                    return Err(bad(format!(
                        "layer {l}: {name} has {got} entries, expected {want}"
                    )));
                }
            }
        }
        Ok(Self { kind, hidden, input, bias, constants, layers })
    }

    /// The same network in another precision (every weight and bias converted through `f64`:
    /// exact widening, or rounding to nearest).
    pub fn to_precision<U: Real>(&self) -> Network<U> {
        let cast = |v: &[T]| v.iter().map(|&x| U::from_f64(x.as_f64())).collect::<Vec<U>>();
        let layers = self
            .layers
            .iter()
            .map(|l| Layer {
                input: l.input,
                w_in: cast(&l.w_in),
                b_in: cast(&l.b_in),
                w_rec: cast(&l.w_rec),
                b_rec: cast(&l.b_rec),
            })
            .collect();
        Network {
            kind: self.kind,
            hidden: self.hidden,
            input: self.input,
            bias: self.bias,
            constants: self.constants,
            layers,
        }
    }

    /// `M = W - W^T - gamma I` (row-major `N x N`) of an ASRNN layer.
    pub fn asrnn_recurrent(w: &[T], n: usize, gamma: f64) -> Vec<T> {
        let mut m = vec![T::zero(); n * n];
        for i in 0..n {
            for j in 0..n {
                m[i * n + j] = w[i * n + j] - w[j * n + i];
            }
            m[i * n + i] -= T::from_f64(gamma);
        }
        m
    }

    /// Number of layers.
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Forward state size per layer (`N`, or `2N` for LSTM and CoRNN).
    pub fn layer_state(&self) -> usize {
        self.kind.state_blocks() * self.hidden
    }

    /// Size of the full forward state `D` (all layers).
    pub fn state_dim(&self) -> usize {
        self.layer_state() * self.layers.len()
    }

    /// Size of the tangent state (all layers): `D`, except `N` per layer for LSTM h-only.
    pub fn tangent_dim(&self, lstm: LstmState) -> usize {
        self.tangent_layer_state(lstm) * self.layers.len()
    }

    /// Tangent state size per layer.
    pub fn tangent_layer_state(&self, lstm: LstmState) -> usize {
        self.kind.tangent_blocks(lstm) * self.hidden
    }

    /// The permutation from PyTorch's state order to the per-layer layout the cells compute
    /// in, for a state of `blocks` blocks of `N` per layer: `perm[p]` is the internal index of
    /// coordinate `p`. PyTorch flattens the LSTM state `(h_n, c_n)` as
    /// `[h_l0, h_l1, .., c_l0, c_l1, ..]`; the cells keep `[h_l0; c_l0; h_l1; c_l1; ..]`. `None`
    /// where the two orders coincide: every state of one block per layer (RNN, GRU, ASRNN,
    /// LSTM h-only), one-layer networks, and CoRNN, which has no PyTorch convention and whose
    /// state order is `[y_l0; z_l0; y_l1; z_l1; ..]` in both.
    fn pytorch_order(&self, blocks: usize) -> Option<Vec<usize>> {
        let (n, l) = (self.hidden, self.layers.len());
        if self.kind != CellKind::Lstm || blocks != 2 || l < 2 {
            return None;
        }
        Some(
            (0..2 * l * n)
                .map(|p| {
                    let (block, rest) = (p / (l * n), p % (l * n));
                    (rest / n) * 2 * n + block * n + rest % n
                })
                .collect(),
        )
    }

    /// [`Network::pytorch_order`] of the tangent state.
    pub(crate) fn tangent_order(&self, lstm: LstmState) -> Option<Vec<usize>> {
        self.pytorch_order(self.kind.tangent_blocks(lstm))
    }

    /// [`Network::pytorch_order`] of the forward state.
    pub(crate) fn state_order(&self) -> Option<Vec<usize>> {
        self.pytorch_order(self.kind.state_blocks())
    }

    /// The initial tangent basis `Q_0` of sequence `member` (`Dt x k`, column-major) in the
    /// cells' layout: [`crate::engine::initial_basis`] (first `k` identity columns, or a
    /// seeded random orthonormal basis) read in PyTorch's state order and permuted,
    /// `Q_0^int = P Q_0` with `(P Q)[perm[p]] = Q[p]`. The exponents are those of the
    /// dynamics in PyTorch's coordinates (an orthogonal change of coordinates changes no
    /// singular value, and maps `Q_0` to `P Q_0`).
    pub(crate) fn initial_tangent_basis(
        &self,
        lstm: LstmState,
        k: usize,
        basis: crate::config::InitialBasis,
        member: u64,
    ) -> Vec<T> {
        let d = self.tangent_dim(lstm);
        let q = crate::engine::initial_basis::<T>(d, k, basis, member);
        match self.tangent_order(lstm) {
            Some(perm) => to_internal(&perm, &q),
            None => q,
        }
    }

    /// One forward step of a single sequence: the full state `x` (`D` values) and the input
    /// `u` (`I`) give the next state. The state is in PyTorch's order: `[h_l0, h_l1, ..]`
    /// (RNN, GRU, ASRNN), `[h_l0, h_l1, .., c_l0, c_l1, ..]` (LSTM, `(h_n, c_n)` flattened),
    /// `[y_l0; z_l0; y_l1; z_l1; ..]` (CoRNN, no PyTorch convention).
    pub fn step_state(&self, x: &[T], u: &[T]) -> Result<Vec<T>> {
        self.check_point(x, u)?;
        let order = self.state_order();
        let x = match &order {
            Some(perm) => to_internal(perm, x),
            None => x.to_vec(),
        };
        let mut run = cells::BatchState::new(self, 1);
        run.set_sequence_state(0, &x);
        run.forward(self, u, 1, 0);
        let mut next = vec![T::zero(); self.state_dim()];
        run.sequence_state(0, &mut next);
        Ok(match &order {
            Some(perm) => to_pytorch(perm, &next),
            None => next,
        })
    }

    /// The explicit Jacobian `J[i][j] = d x'_i / d x_j` of [`Network::step_state`] at `(x, u)`
    /// on the tangent state (`Dt x Dt`, row-major, rows are outputs), in PyTorch's state order
    /// like `x` (built by applying the tangent map to the identity). For LSTM h-only it is
    /// `dh'/dh` with `c` frozen on `[h_l0, h_l1, ..]`.
    pub fn jacobian_at(&self, x: &[T], u: &[T], lstm: LstmState) -> Result<Vec<T>> {
        self.check_point(x, u)?;
        let d = self.tangent_dim(lstm);
        let x = match self.state_order() {
            Some(perm) => to_internal(&perm, x),
            None => x.to_vec(),
        };
        let mut run = cells::BatchState::new(self, 1);
        run.set_sequence_state(0, &x);
        run.forward(self, u, 1, 0);
        let mut eye = vec![T::zero(); d * d];
        for i in 0..d {
            eye[i * d + i] = T::one();
        }
        // column-major J_int: entry (i, j) at j d + i
        let mut jac = vec![T::zero(); d * d];
        run.tangent(self, lstm, &eye, &mut jac, d);
        let perm = self.tangent_order(lstm).unwrap_or_else(|| (0..d).collect());
        let mut out = vec![T::zero(); d * d];
        for (i, &pi) in perm.iter().enumerate() {
            for (j, &pj) in perm.iter().enumerate() {
                out[i * d + j] = jac[pj * d + pi];
            }
        }
        Ok(out)
    }

    fn check_point(&self, x: &[T], u: &[T]) -> Result<()> {
        if x.len() != self.state_dim() || u.len() != self.input {
            return Err(LeError::InvalidConfig {
                field: "state",
                message: format!(
                    "expected a state of {} and an input of {} values, got {} and {}",
                    self.state_dim(),
                    self.input,
                    x.len(),
                    u.len()
                ),
            });
        }
        Ok(())
    }

    /// Run the network from the zero state over `inputs` (`[B, T, I]` row-major) and return the
    /// top layer's output at every step (`h`, or `y` for CoRNN), `[B, T, N]` row-major.
    pub fn forward_top_hidden(&self, inputs: &[T], batch: usize, steps: usize) -> Result<Vec<T>> {
        spectra::check_inputs(inputs, batch, steps, self.input, "inputs")?;
        let n = self.hidden;
        let mut run = cells::BatchState::new(self, batch);
        let mut out = vec![T::zero(); batch * steps * n];
        for t in 0..steps {
            run.forward(self, inputs, steps, t);
            let top = run.layer_output(self.layers.len() - 1);
            for b in 0..batch {
                out[(b * steps + t) * n..(b * steps + t + 1) * n]
                    .copy_from_slice(&top[b * run.layer_stride()..b * run.layer_stride() + n]);
            }
        }
        Ok(out)
    }
}

/// Column-major blocks of `perm.len()` rows from PyTorch's order to the cells' layout:
/// row `p` of `v` becomes row `perm[p]`.
pub(crate) fn to_internal<T: Real>(perm: &[usize], v: &[T]) -> Vec<T> {
    let d = perm.len();
    let mut out = vec![T::zero(); v.len()];
    for (src, dst) in v.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        for (p, &i) in perm.iter().enumerate() {
            dst[i] = src[p];
        }
    }
    out
}

/// The inverse of [`to_internal`]: row `perm[p]` of `v` becomes row `p`.
pub(crate) fn to_pytorch<T: Real>(perm: &[usize], v: &[T]) -> Vec<T> {
    let d = perm.len();
    let mut out = vec![T::zero(); v.len()];
    for (src, dst) in v.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        for (p, &i) in perm.iter().enumerate() {
            dst[p] = src[i];
        }
    }
    out
}
