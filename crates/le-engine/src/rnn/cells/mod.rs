//! Batched forward step and tangent step of every cell, for `B` sequences of one network.
//!
//! Layouts (all column-major, one column per sequence or per tangent vector):
//! * forward state of layer `l`: `S x B` with `S = N` (RNN, GRU, ASRNN), `2N` (LSTM `[h; c]`,
//!   CoRNN `[y; z]`); the layer's output (next layer's input) is the first `N` rows;
//! * gate pre-activations: `G N x B` (`G` gate blocks stacked as in PyTorch);
//! * tangent blocks: `Dt x (B k)` with `Dt = L * St` (per layer `St` rows: `[h]`, `[h; c]`,
//!   `[y; z]`), sequence `b` owning columns `b k .. (b + 1) k`. This per-layer layout is
//!   internal: the public state order is PyTorch's (`Network::step_state`), and `Q_0` is
//!   mapped into this layout by the permutation (`Network::initial_tangent_basis`).
//!
//! The tangent step computes `Z = J Q` without forming `J` (`P = U_rec Q_rec + W_in dIn`,
//! `dIn` = the previous layer's new output perturbation, zero for layer 0). RNN, ASRNN and
//! CoRNN form `P` with one GEMM per weight matrix over all `B k` columns, then work
//! elementwise. GRU and LSTM never form the per-gate `P` blocks: the gate derivatives are
//! folded into row-scaled copies of the weights (`O(N^2)` per sequence), so that one
//! `N x N x k` (GRU) or `2N x N x k` (LSTM) GEMM per weight matrix and sequence replaces the
//! `3N` or `4N` rows of products (`combined.rs`). Each cell's file states its formulas.
//!
//! # Files
//!
//! * `rnn.rs`, `gru.rs`, `lstm.rs`, `asrnn.rs`, `cornn.rs`: one cell each, its forward step
//!   for one sequence, its tangent (a column of `J Q`, or for GRU/LSTM the per-unit
//!   coefficients, row-scaled weights and explicit Jacobian columns);
//! * `batch.rs`: [`BatchState`], `B` sequences of one network stepped together;
//! * `combined.rs`: [`CombinedStep`], the LSTM/GRU tangent step of one sequence;
//! * this file: [`matmul`] and the dispatch over [`CellKind`].

mod asrnn;
mod batch;
mod combined;
mod cornn;
mod gru;
mod lstm;
mod rnn;

pub(crate) use batch::BatchState;
pub(crate) use combined::CombinedStep;

use super::{CellConstants, CellKind};
use crate::scalar::Real;

/// `dst (m x n, col-major, ld_dst) (+)= lhs (m x kk, row-major, ld_lhs) * rhs (kk x n,
/// col-major, column stride ld_rhs)`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul<T: Real>(
    m: usize,
    n: usize,
    kk: usize,
    lhs: &[T],
    ld_lhs: usize,
    rhs: &[T],
    ld_rhs: usize,
    dst: &mut [T],
    ld_dst: usize,
    accumulate: bool,
    par: gemm::Parallelism,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(ld_lhs >= kk && lhs.len() >= (m - 1) * ld_lhs + kk, "lhs too small");
    assert!(ld_rhs >= kk && rhs.len() >= (n - 1) * ld_rhs + kk, "rhs too small");
    assert!(ld_dst >= m && dst.len() >= (n - 1) * ld_dst + m, "dst too small");
    if kk == 0 {
        if !accumulate {
            for c in 0..n {
                dst[c * ld_dst..c * ld_dst + m].fill(T::zero());
            }
        }
        return;
    }
    // SAFETY: the asserts above bound every element the strides reach.
    unsafe {
        gemm::gemm(
            m,
            n,
            kk,
            dst.as_mut_ptr(),
            ld_dst as isize,
            1,
            accumulate,
            lhs.as_ptr(),
            1,
            ld_lhs as isize,
            rhs.as_ptr(),
            ld_rhs as isize,
            1,
            T::one(),
            T::one(),
            false,
            false,
            false,
            par,
        );
    }
}

/// `x += y` elementwise.
#[inline(always)]
fn add_into<T: Real>(x: &mut [T], y: &[T]) {
    for (a, &b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

/// One sequence's forward step of a `kind` cell (`pi`, `pr`: input and recurrent
/// pre-activations with biases; `old`, `new`: the layer state before and after; `gates`,
/// `aux`: what the tangent step reads, see [`BatchState`]).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn forward_sequence<T: Real>(
    kind: CellKind,
    pi: &mut [T],
    pr: &[T],
    old: &[T],
    new: &mut [T],
    gates: &mut [T],
    aux: &mut [T],
    n: usize,
    consts: &CellConstants,
) {
    match kind {
        CellKind::Rnn => rnn::forward(pi, pr, new, aux, n),
        CellKind::Gru => gru::forward(pi, pr, old, new, gates, aux, n),
        CellKind::Lstm => lstm::forward(pi, pr, old, new, gates, aux, n),
        CellKind::Asrnn => asrnn::forward(pi, pr, old, new, aux, n, consts),
        CellKind::Cornn => cornn::forward(pi, pr, old, new, aux, n, consts),
    }
}

/// One tangent column `zc` of a one-gate cell (RNN, ASRNN, CoRNN) from `p = U dh (+ W dIn)`,
/// the column `qc` of `Q` and the cached `aux`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn tangent_column<T: Real>(
    kind: CellKind,
    zc: &mut [T],
    qc: &[T],
    p: &[T],
    aux: &[T],
    n: usize,
    consts: &CellConstants,
) {
    match kind {
        CellKind::Rnn => rnn::tangent_column(zc, p, aux, n),
        CellKind::Asrnn => asrnn::tangent_column(zc, qc, p, aux, n, consts),
        CellKind::Cornn => cornn::tangent_column(zc, qc, p, aux, n, consts),
        CellKind::Gru | CellKind::Lstm => {
            unreachable!("multi-gate cells take the combined tangent path")
        }
    }
}
