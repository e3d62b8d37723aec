//! A hand-written fused CPU training path for LSTM and GRU populations (f32, no candle in
//! the loop).
//!
//! [`crate::PopulationTrainer`] uses it automatically ([`crate::TrainBackend::Auto`]) when
//! the population is supported: LSTM or GRU cells (1-3 layers, with or without biases), the
//! last-step classification head (softmax cross-entropy, mean over the batch), `F32` on the
//! CPU. Everything else trains on candle. Readout dropout, gradient-norm clipping, Adam /
//! AdamW with weight decay, per-network learning rates and per-network divergence are all
//! supported and behave as on candle (the dropout masks are the same numbers).
//!
//! Per network and minibatch (`B` rows, `T` steps, PyTorch gate orders `i, f, g, o` and
//! `r, z, n`, `G` = 4 or 3 gate blocks):
//!
//! - forward: the input projection of all `T` steps is one GEMM per layer
//!   (`[T B, I] x [I, G N]`, biases pre-filled: LSTM `b_ih + b_hh`, GRU `b_ih`), then per
//!   step one GEMM `h_{t-1} U^T` (LSTM: accumulated into the step's gate rows; GRU: into a
//!   scratch pre-filled with `b_hh`, since `r` multiplies `U_n h + b_hn`) and one elementwise
//!   pass that turns the gate pre-activations into activations **in place** (they are the
//!   backward's cache) and writes `c_t`, `tanh(c_t)`, `h_t` (GRU: `U_n h + b_hn`, `h_t`);
//! - readout `z = h_T (* dropout mask)`, logits `z W^T + b`, log-softmax, loss and its
//!   gradient `(softmax - onehot) / B`;
//! - backward (BPTT): per step one elementwise pass that overwrites the cached activations
//!   with the gradients w.r.t. the gate pre-activations (GRU: w.r.t. the input projection,
//!   and w.r.t. `U h + b_hh` into a second buffer), and one GEMM `dG_t U` for `dh_{t-1}`;
//!   after the loop the weight gradients are three GEMMs over the whole sequence
//!   (`dW_ih = dG^T X`, `dW_hh = dU_{1..}^T H_{..T-1}`, and `dX = dG W_ih` for the layer
//!   below) and column sums for the biases;
//! - Adam / AdamW on the flat parameter vector ([`crate::optim::adam_step_flat`], the same
//!   f32 operations as [`crate::PopulationAdam`]).
//!
//! A minibatch is cut into fixed parts of [`ROWS_PER_PART`] rows ([`step_parts`]), each with
//! its own [`Workspace`] (allocated on first use and reused for every step: the forward and
//! backward allocate nothing); the parts' gradients are summed in part order. The trainer runs the
//! networks in parallel with rayon when there are at least as many live networks as threads
//! (one network per task, its parts one after the other, single-threaded GEMMs, one reused
//! set of workspaces per thread), otherwise one network at a time with its parts in parallel.
//! Both orders give the same bits, so a network's numbers depend neither on the population it
//! trains in nor on the thread count.
//!
//! `exp`, `sigmoid` and `tanh` are branch-free polynomial versions
//! ([`aelle_support::fastmath`]; relative error below 1e-6, tested) so that the elementwise
//! loops vectorise; on x86-64 the loops are compiled for AVX-512, for AVX2 + FMA and for the
//! baseline and chosen at run time (`simd_dispatch!`; Rust never contracts `a * b + c` into
//! an FMA, so all three give the same bits).
//!
//! Files: `gemm.rs` (the GEMM wrapper, column sums), `workspace.rs` (the working buffers),
//! `lstm.rs` and `gru.rs` (each cell's step kernels and its recurrence over a layer, forward
//! and backward), `bptt.rs` (one network's forward, loss and backward as named steps); this
//! file holds the shapes, the parameter layout and the entry points.

mod bptt;
mod gemm;
mod gru;
mod lstm;
mod workspace;

use ::gemm::Parallelism;

pub use workspace::Workspace;

use bptt::step_rows;

/// The cells the fused path implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FusedCell {
    /// PyTorch `nn.LSTM`, gate rows `[i; f; g; o]`.
    Lstm,
    /// PyTorch `nn.GRU`, gate rows `[r; z; n]`, `n = tanh(a_n + r (U_n h + b_hn))`.
    Gru,
}

/// The shape of the fused networks of a population.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FusedDims {
    /// Cell kind.
    pub cell: FusedCell,
    /// Input features `I`.
    pub input: usize,
    /// Hidden size `N`.
    pub hidden: usize,
    /// Stacked layers.
    pub layers: usize,
    /// Whether the cells have `bias_ih`, `bias_hh`.
    pub bias: bool,
    /// Classes `C` of the last-step readout.
    pub classes: usize,
}

/// Offsets of one layer's parameters in a network's flat parameter vector.
#[derive(Clone, Copy, Debug)]
struct LayerOffsets {
    w_ih: usize,
    w_hh: usize,
    /// `bias_ih` (`bias_hh` follows at `+ G N`), if the cells have biases.
    bias: Option<usize>,
    input: usize,
}

impl FusedDims {
    /// Gate blocks `G`: 4 (LSTM) or 3 (GRU).
    pub fn gates(&self) -> usize {
        match self.cell {
            FusedCell::Lstm => 4,
            FusedCell::Gru => 3,
        }
    }

    fn layer_input(&self, l: usize) -> usize {
        if l == 0 { self.input } else { self.hidden }
    }

    fn layer(&self, l: usize) -> LayerOffsets {
        let g = self.gates() * self.hidden;
        let mut off = 0;
        for k in 0..l {
            off += g * self.layer_input(k) + g * self.hidden + if self.bias { 2 * g } else { 0 };
        }
        let input = self.layer_input(l);
        let w_hh = off + g * input;
        LayerOffsets { w_ih: off, w_hh, bias: self.bias.then_some(w_hh + g * self.hidden), input }
    }

    /// Offset of `fc.weight` (`fc.bias` follows at `+ C N`).
    fn fc(&self) -> usize {
        let last = self.layer(self.layers - 1);
        let g = self.gates() * self.hidden;
        last.w_hh + g * self.hidden + if self.bias { 2 * g } else { 0 }
    }

    /// Values in a network's flat parameter vector (canonical order of
    /// [`crate::ModelShape::param_specs`]).
    pub fn num_params(&self) -> usize {
        self.fc() + self.classes * self.hidden + self.classes
    }

    /// Sizes of the parameter tensors in the flat vector, canonical order.
    pub fn param_sizes(&self) -> Vec<usize> {
        let g = self.gates() * self.hidden;
        let mut out = Vec::new();
        for l in 0..self.layers {
            out.push(g * self.layer_input(l));
            out.push(g * self.hidden);
            if self.bias {
                out.extend([g, g]);
            }
        }
        out.extend([self.classes * self.hidden, self.classes]);
        out
    }
}

/// Loss and correct count of one network on one minibatch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchLoss {
    /// Mean cross-entropy over the batch (nats), as f32 like candle's.
    pub loss: f32,
    /// Rows whose argmax is the target.
    pub correct: usize,
}

/// Forward over a minibatch, loss and (with `grad`) the gradient of the loss w.r.t. every
/// parameter into `ws.grad` (flat, canonical order).
///
/// `params`: the network's flat parameters; `x`: inputs `[B, T, I]` (batch-major, as
/// [`datasets::Batch::inputs`]); `targets`: `B` classes (`< C`, checked by the caller);
/// `mask`: readout dropout mask `[B, N]` (entries 0 or `1 / (1 - q)`); `par`: the GEMMs'
/// threading.
#[allow(clippy::too_many_arguments)]
pub fn step(
    d: &FusedDims,
    params: &[f32],
    ws: &mut Workspace,
    x: &[f32],
    (b, t): (usize, usize),
    targets: &[u32],
    mask: Option<&[f32]>,
    grad: bool,
    par: Parallelism,
) -> BatchLoss {
    let (loss_sum, correct) = step_rows(d, params, ws, x, (b, t), targets, mask, grad, b, par);
    BatchLoss { loss: loss_sum / b as f32, correct }
}

/// Rows per part in [`step_parts`].
pub const ROWS_PER_PART: usize = 64;

/// [`step`] with the minibatch's rows cut into `ceil(B / ROWS_PER_PART)` fixed parts
/// (each with its own workspace, `workspaces` grows to that), whose gradients are summed in
/// part order into `workspaces[0].grad`. With `parallel` the parts run in parallel on the
/// rayon pool, otherwise one after the other; both give the same bits, so a network's
/// numbers do not depend on the thread count or on the population it trains in. GEMMs are
/// single-threaded.
#[allow(clippy::too_many_arguments)]
pub fn step_parts(
    d: &FusedDims,
    params: &[f32],
    workspaces: &mut Vec<Workspace>,
    x: &[f32],
    (b, t): (usize, usize),
    targets: &[u32],
    mask: Option<&[f32]>,
    grad: bool,
    parallel: bool,
) -> BatchLoss {
    use rayon::prelude::*;
    let parts = b.div_ceil(ROWS_PER_PART).max(1);
    if workspaces.len() < parts {
        workspaces.resize_with(parts, Workspace::default);
    }
    let (n, row) = (d.hidden, t * d.input);
    assert_eq!(x.len(), b * row, "inputs must be [B, T, I]");
    assert_eq!(targets.len(), b, "one target per row");
    let run = |p: usize, ws: &mut Workspace| {
        let (r0, r1) = (p * b / parts, (p + 1) * b / parts);
        step_rows(
            d,
            params,
            ws,
            &x[r0 * row..r1 * row],
            (r1 - r0, t),
            &targets[r0..r1],
            mask.map(|m| &m[r0 * n..r1 * n]),
            grad,
            b,
            Parallelism::None,
        )
    };
    let results: Vec<(f32, usize)> = if parallel && parts > 1 {
        workspaces[..parts].par_iter_mut().enumerate().map(|(p, ws)| run(p, ws)).collect()
    } else {
        workspaces[..parts].iter_mut().enumerate().map(|(p, ws)| run(p, ws)).collect()
    };
    if grad {
        let np = d.num_params();
        let (first, others) = workspaces.split_at_mut(1);
        let total = &mut first[0].grad[..np];
        for ws in &others[..parts - 1] {
            for (a, g) in total.iter_mut().zip(&ws.grad[..np]) {
                *a += g;
            }
        }
    }
    let loss_sum = results.iter().fold(0.0f32, |acc, r| acc + r.0);
    BatchLoss { loss: loss_sum / b as f32, correct: results.iter().map(|r| r.1).sum() }
}

/// Forward only: the summed loss (f64 over the parts' f32 sums) and the correct count of
/// the `B` rows of `x`, evaluated in parts of [`ROWS_PER_PART`] rows through `ws`.
pub fn eval(
    d: &FusedDims,
    params: &[f32],
    ws: &mut Workspace,
    x: &[f32],
    (b, t): (usize, usize),
    targets: &[u32],
) -> (f64, usize) {
    let row = t * d.input;
    assert_eq!(x.len(), b * row, "inputs must be [B, T, I]");
    assert_eq!(targets.len(), b, "one target per row");
    let mut loss = 0.0f64;
    let mut correct = 0;
    for r0 in (0..b).step_by(ROWS_PER_PART) {
        let r1 = (r0 + ROWS_PER_PART).min(b);
        let (l, c) = step_rows(
            d,
            params,
            ws,
            &x[r0 * row..r1 * row],
            (r1 - r0, t),
            &targets[r0..r1],
            None,
            false,
            b,
            Parallelism::None,
        );
        loss += f64::from(l);
        correct += c;
    }
    (loss, correct)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aelle_support::fastmath::{fast_exp, fast_sigmoid, fast_tanh};
    use le_engine::rnn::CellKind;

    fn rel(a: f32, b: f64) -> f64 {
        if b == 0.0 { f64::from(a).abs() } else { ((f64::from(a) - b) / b).abs() }
    }

    #[test]
    fn fast_functions_are_accurate() {
        let mut worst = [0.0f64; 3];
        let mut x = -80.0f32;
        while x <= 80.0 {
            for v in [x, x * 1e-3, x * 1e-6] {
                let xd = f64::from(v);
                worst[0] = worst[0].max(rel(fast_exp(v), xd.exp()));
                worst[1] = worst[1].max(rel(fast_sigmoid(v), 1.0 / (1.0 + (-xd).exp())));
                worst[2] = worst[2].max(rel(fast_tanh(v), xd.tanh()));
            }
            x += 0.00731;
        }
        assert!(worst.iter().all(|&w| w < 1e-6), "relative errors exp/sigmoid/tanh {worst:?}");
        assert_eq!(fast_tanh(0.0), 0.0);
        assert!(fast_exp(f32::NAN).is_nan() && fast_tanh(f32::NAN).is_nan());
        assert!(fast_sigmoid(f32::NAN).is_nan());
        assert_eq!(fast_tanh(f32::INFINITY), 1.0);
        assert_eq!(fast_tanh(f32::NEG_INFINITY), -1.0);
        assert_eq!(fast_sigmoid(f32::INFINITY), 1.0);
        assert!(fast_sigmoid(f32::NEG_INFINITY) < 1e-37);
    }

    #[test]
    fn layout_counts_every_parameter() {
        for (cell, arch, layers, bias) in [
            (FusedCell::Lstm, CellKind::Lstm, 1, true),
            (FusedCell::Lstm, CellKind::Lstm, 2, false),
            (FusedCell::Lstm, CellKind::Lstm, 3, true),
            (FusedCell::Gru, CellKind::Gru, 2, true),
            (FusedCell::Gru, CellKind::Gru, 3, false),
        ] {
            let d = FusedDims { cell, input: 5, hidden: 7, layers, bias, classes: 3 };
            let shape = crate::ModelShape {
                arch,
                input_size: 5,
                hidden_size: 7,
                num_layers: layers,
                bias,
                head: crate::Head::LastStepClass { classes: 3 },
            };
            let sizes: Vec<usize> =
                shape.param_specs().iter().map(crate::ParamSpec::numel).collect();
            assert_eq!(d.num_params(), sizes.iter().sum::<usize>());
            assert_eq!(d.param_sizes(), sizes);
        }
    }
}
