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
//! - Adam / AdamW on the flat parameter vector with the same f32 operations as
//!   [`crate::PopulationAdam`].
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
//! `exp`, `sigmoid` and `tanh` are branch-free polynomial versions ([`fast_exp`],
//! [`fast_sigmoid`], [`fast_tanh`]; relative error below 1e-6, tested) so that the
//! elementwise loops vectorise; on x86-64 the loops are compiled for AVX-512, for AVX2 + FMA
//! and for the baseline and chosen at run time (Rust never contracts `a * b + c` into an FMA,
//! so all three give the same bits).

use gemm::Parallelism;
// The widest kernel set this CPU runs: le-engine's run-time detection, shared.
use le_engine::{SimdLevel as Simd, simd_level as simd};

use crate::config::OptimizerKind;

// ---------------------------------------------------------------------------------------
// Fast, vectorisable f32 elementary functions (one implementation, in le-engine).

pub use le_engine::fastmath::{fast_exp, fast_sigmoid, fast_tanh};

// ---------------------------------------------------------------------------------------
// GEMM.

/// Row-major `dst[m x n] (+)= A[m x k] B[k x n]` with `A(r, c) = a[r * a_rs + c * a_cs]`,
/// `B(r, c) = b[r * b_rs + c * b_cs]`, `dst(r, c) = dst[r * ld + c]`; `acc` adds to `dst`.
#[allow(clippy::too_many_arguments)]
fn mm(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    ld: usize,
    acc: bool,
    (a, a_rs, a_cs): (&[f32], usize, usize),
    (b, b_rs, b_cs): (&[f32], usize, usize),
    par: Parallelism,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(ld >= n && dst.len() > (m - 1) * ld + (n - 1), "gemm: dst too small");
    if k == 0 {
        if !acc {
            for r in 0..m {
                dst[r * ld..r * ld + n].fill(0.0);
            }
        }
        return;
    }
    assert!(a.len() > (m - 1) * a_rs + (k - 1) * a_cs, "gemm: lhs too small");
    assert!(b.len() > (k - 1) * b_rs + (n - 1) * b_cs, "gemm: rhs too small");
    // SAFETY: the asserts above bound every element the strides reach; dst does not alias
    // a or b (a `&mut` and two `&` borrows).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            ld as isize,
            acc,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

// ---------------------------------------------------------------------------------------
// Shapes and parameter layout.

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

// ---------------------------------------------------------------------------------------
// Working buffers.

#[derive(Debug, Default)]
struct LayerBuffers {
    /// `[T, B, G N]`: pre-activations -> activations (forward) -> gradient w.r.t. the
    /// pre-activations (LSTM) or w.r.t. the input projection `a` (GRU) (backward).
    gates: Vec<f32>,
    /// `[T, B, N]`: LSTM `c`; GRU `u_n = U_n h + b_hn`.
    c: Vec<f32>,
    /// LSTM `tanh(c)`, `[T, B, N]`.
    tc: Vec<f32>,
    /// `[T, B, N]`.
    h: Vec<f32>,
    /// GRU: `u = U h + b_hh` of the step (forward scratch), then its gradient `[T, B, 3N]`.
    du: Vec<f32>,
}

/// One network's working buffers, allocated on first use and reused for every step.
#[derive(Debug, Default)]
pub struct Workspace {
    /// Inputs, time-major `[T, B, I]`.
    x: Vec<f32>,
    layers: Vec<LayerBuffers>,
    /// Gradient w.r.t. the current layer's outputs from the layer above, `[T, B, N]`.
    d_out: Vec<f32>,
    /// Gradient w.r.t. the current layer's inputs, `[T, B, N]`.
    d_in: Vec<f32>,
    /// `dh_t`, `[B, N]`.
    dh: Vec<f32>,
    /// LSTM: `dc` carried to the previous step; GRU: `dh z`, the direct part of
    /// `dh_{t-1}`; `[B, N]`.
    dc: Vec<f32>,
    /// Zero state, `[B, N]`.
    zeros: Vec<f32>,
    /// Readout input `[B, N]`.
    z: Vec<f32>,
    /// Logits, then their gradient, `[B, C]`.
    logits: Vec<f32>,
    /// Gradient of the loss w.r.t. the parameters (flat, canonical order).
    pub grad: Vec<f32>,
}

fn fit(v: &mut Vec<f32>, len: usize) {
    if v.len() < len {
        v.resize(len, 0.0);
    }
}

impl Workspace {
    fn prepare(&mut self, d: &FusedDims, b: usize, t: usize) {
        let n = d.hidden;
        fit(&mut self.x, t * b * d.input);
        self.layers.resize_with(d.layers, LayerBuffers::default);
        let g = d.gates() * n;
        for lb in &mut self.layers {
            fit(&mut lb.gates, t * b * g);
            fit(&mut lb.c, t * b * n);
            fit(&mut lb.h, t * b * n);
            match d.cell {
                FusedCell::Lstm => fit(&mut lb.tc, t * b * n),
                FusedCell::Gru => fit(&mut lb.du, t * b * g),
            }
        }
        if d.layers > 1 {
            fit(&mut self.d_out, t * b * n);
            fit(&mut self.d_in, t * b * n);
        }
        fit(&mut self.dh, b * n);
        fit(&mut self.dc, b * n);
        fit(&mut self.zeros, b * n);
        fit(&mut self.z, b * n);
        fit(&mut self.logits, b * d.classes);
        fit(&mut self.grad, d.num_params());
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

// ---------------------------------------------------------------------------------------
// Elementwise kernels (compiled twice on x86-64: baseline and AVX2 + FMA).

#[inline(always)]
fn cell_forward_impl(
    g: &mut [f32],
    c_prev: &[f32],
    c: &mut [f32],
    tc: &mut [f32],
    h: &mut [f32],
    n: usize,
) {
    for ((((g, cp), c), tc), h) in g
        .chunks_exact_mut(4 * n)
        .zip(c_prev.chunks_exact(n))
        .zip(c.chunks_exact_mut(n))
        .zip(tc.chunks_exact_mut(n))
        .zip(h.chunks_exact_mut(n))
    {
        let (gi, rest) = g.split_at_mut(n);
        let (gf, rest) = rest.split_at_mut(n);
        let (gg, go) = rest.split_at_mut(n);
        lstm_forward_row(gi, gf, gg, go, cp, c, tc, h);
    }
}

/// One row of [`cell_forward_impl`], in short passes over separate slice arguments (so
/// LLVM knows they do not overlap, see [`lstm_backward_row`]).
#[inline(always)]
// indexed loops over equal-length slices are what vectorises here
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
fn lstm_forward_row(
    gi: &mut [f32],
    gf: &mut [f32],
    gg: &mut [f32],
    go: &mut [f32],
    cp: &[f32],
    c: &mut [f32],
    tc: &mut [f32],
    h: &mut [f32],
) {
    let n = gi.len();
    let (gf, gg, go, cp, c, tc, h) = (
        &mut gf[..n],
        &mut gg[..n],
        &mut go[..n],
        &cp[..n],
        &mut c[..n],
        &mut tc[..n],
        &mut h[..n],
    );
    for j in 0..n {
        gi[j] = fast_sigmoid(gi[j]);
        gf[j] = fast_sigmoid(gf[j]);
        go[j] = fast_sigmoid(go[j]);
    }
    for j in 0..n {
        gg[j] = fast_tanh(gg[j]);
    }
    for j in 0..n {
        c[j] = gf[j] * cp[j] + gi[j] * gg[j];
    }
    for j in 0..n {
        tc[j] = fast_tanh(c[j]);
    }
    for j in 0..n {
        h[j] = go[j] * tc[j];
    }
}

#[inline(always)]
fn cell_backward_impl(
    g: &mut [f32],
    c_prev: &[f32],
    tc: &[f32],
    dh: &[f32],
    dc: &mut [f32],
    n: usize,
) {
    for ((((g, cp), tc), dh), dc) in g
        .chunks_exact_mut(4 * n)
        .zip(c_prev.chunks_exact(n))
        .zip(tc.chunks_exact(n))
        .zip(dh.chunks_exact(n))
        .zip(dc.chunks_exact_mut(n))
    {
        let (gi, rest) = g.split_at_mut(n);
        let (gf, rest) = rest.split_at_mut(n);
        let (gg, go) = rest.split_at_mut(n);
        lstm_backward_row(gi, gf, gg, go, cp, tc, dh, dc);
    }
}

/// One row of [`cell_backward_impl`]. The gate blocks arrive as separate slice arguments
/// so that LLVM knows they do not overlap (sliced out of one row inside the caller, or
/// passed in an array, the loop did not vectorise).
#[inline(always)]
// indexed loops over equal-length slices are what vectorises here
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
fn lstm_backward_row(
    gi: &mut [f32],
    gf: &mut [f32],
    gg: &mut [f32],
    go: &mut [f32],
    cp: &[f32],
    tc: &[f32],
    dh: &[f32],
    dc: &mut [f32],
) {
    let n = gi.len();
    let (gf, gg, go, cp, tc, dh, dc) =
        (&mut gf[..n], &mut gg[..n], &mut go[..n], &cp[..n], &tc[..n], &dh[..n], &mut dc[..n]);
    for j in 0..n {
        let (i, f, gv, o, t, d) = (gi[j], gf[j], gg[j], go[j], tc[j], dh[j]);
        let dcv = dc[j] + d * o * (1.0 - t * t);
        gi[j] = dcv * gv * (i * (1.0 - i));
        gf[j] = dcv * cp[j] * (f * (1.0 - f));
        gg[j] = dcv * i * (1.0 - gv * gv);
        go[j] = d * t * (o * (1.0 - o));
        dc[j] = dcv * f;
    }
}

/// GRU step forward for `B` rows: `g` holds the input projections `a = x W^T + b_ih`
/// (rows `[r; z; n]`) and becomes `[r; z; n]`; `u = h U^T + b_hh`; writes `u_n` and `h`.
#[inline(always)]
fn gru_forward_impl(
    g: &mut [f32],
    u: &[f32],
    un: &mut [f32],
    h_prev: &[f32],
    h: &mut [f32],
    n: usize,
) {
    for ((((g, u), un), hp), h) in g
        .chunks_exact_mut(3 * n)
        .zip(u.chunks_exact(3 * n))
        .zip(un.chunks_exact_mut(n))
        .zip(h_prev.chunks_exact(n))
        .zip(h.chunks_exact_mut(n))
    {
        let (gr, rest) = g.split_at_mut(n);
        let (gz, gn) = rest.split_at_mut(n);
        let (ur, rest) = u.split_at(n);
        let (uz, u_n) = rest.split_at(n);
        gru_forward_row(gr, gz, gn, ur, uz, u_n, un, hp, h);
    }
}

/// One row of [`gru_forward_impl`] (separate slices, short passes; see
/// [`lstm_forward_row`]).
#[inline(always)]
// indexed loops over equal-length slices are what vectorises here
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
fn gru_forward_row(
    gr: &mut [f32],
    gz: &mut [f32],
    gn: &mut [f32],
    ur: &[f32],
    uz: &[f32],
    u_n: &[f32],
    un: &mut [f32],
    hp: &[f32],
    h: &mut [f32],
) {
    let n = gr.len();
    let (gz, gn, ur, uz, u_n, un, hp, h) = (
        &mut gz[..n],
        &mut gn[..n],
        &ur[..n],
        &uz[..n],
        &u_n[..n],
        &mut un[..n],
        &hp[..n],
        &mut h[..n],
    );
    for j in 0..n {
        gr[j] = fast_sigmoid(gr[j] + ur[j]);
        gz[j] = fast_sigmoid(gz[j] + uz[j]);
    }
    un.copy_from_slice(u_n);
    for j in 0..n {
        gn[j] = fast_tanh(gn[j] + gr[j] * u_n[j]);
    }
    for j in 0..n {
        h[j] = gn[j] + gz[j] * (hp[j] - gn[j]);
    }
}

/// GRU step backward: `g` (`[r; z; n]`) becomes the gradient w.r.t. `a`; writes the
/// gradient w.r.t. `u` into `du` and `dh z` into `dhz`.
#[inline(always)]
fn gru_backward_impl(
    g: &mut [f32],
    un: &[f32],
    h_prev: &[f32],
    dh: &[f32],
    du: &mut [f32],
    dhz: &mut [f32],
    n: usize,
) {
    for (((((g, un), hp), dh), du), dhz) in g
        .chunks_exact_mut(3 * n)
        .zip(un.chunks_exact(n))
        .zip(h_prev.chunks_exact(n))
        .zip(dh.chunks_exact(n))
        .zip(du.chunks_exact_mut(3 * n))
        .zip(dhz.chunks_exact_mut(n))
    {
        let (gr, rest) = g.split_at_mut(n);
        let (gz, gn) = rest.split_at_mut(n);
        let (dur, rest) = du.split_at_mut(n);
        let (duz, dun) = rest.split_at_mut(n);
        gru_backward_row(gr, gz, gn, dur, duz, dun, un, hp, dh, dhz);
    }
}

/// One row of [`gru_backward_impl`] (separate slices, see [`lstm_backward_row`]).
#[inline(always)]
// indexed loops over equal-length slices are what vectorises here
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
fn gru_backward_row(
    gr: &mut [f32],
    gz: &mut [f32],
    gn: &mut [f32],
    dur: &mut [f32],
    duz: &mut [f32],
    dun: &mut [f32],
    un: &[f32],
    hp: &[f32],
    dh: &[f32],
    dhz: &mut [f32],
) {
    let n = gr.len();
    let (gz, gn, dur, duz, dun, un, hp, dh, dhz) = (
        &mut gz[..n],
        &mut gn[..n],
        &mut dur[..n],
        &mut duz[..n],
        &mut dun[..n],
        &un[..n],
        &hp[..n],
        &dh[..n],
        &mut dhz[..n],
    );
    for j in 0..n {
        let (r, z, nv, u, h, d) = (gr[j], gz[j], gn[j], un[j], hp[j], dh[j]);
        let dn = d * (1.0 - z);
        let dzv = d * (h - nv);
        let dpn = dn * (1.0 - nv * nv);
        let dr = dpn * u * (r * (1.0 - r));
        let dz = dzv * (z * (1.0 - z));
        gr[j] = dr;
        gz[j] = dz;
        gn[j] = dpn;
        dur[j] = dr;
        duz[j] = dz;
        dun[j] = dpn * r;
        dhz[j] = d * z;
    }
}

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

/// The elementwise kernels compiled for one set of x86-64 target features.
#[cfg(target_arch = "x86_64")]
macro_rules! kernels_for {
    ($name:ident, $features:literal) => {
        mod $name {
            use super::AdamScalars;

            #[target_feature(enable = $features)]
            pub(super) fn cell_forward(
                g: &mut [f32],
                c_prev: &[f32],
                c: &mut [f32],
                tc: &mut [f32],
                h: &mut [f32],
                n: usize,
            ) {
                super::cell_forward_impl(g, c_prev, c, tc, h, n)
            }

            #[target_feature(enable = $features)]
            pub(super) fn cell_backward(
                g: &mut [f32],
                c_prev: &[f32],
                tc: &[f32],
                dh: &[f32],
                dc: &mut [f32],
                n: usize,
            ) {
                super::cell_backward_impl(g, c_prev, tc, dh, dc, n)
            }

            #[target_feature(enable = $features)]
            pub(super) fn gru_forward(
                g: &mut [f32],
                u: &[f32],
                un: &mut [f32],
                h_prev: &[f32],
                h: &mut [f32],
                n: usize,
            ) {
                super::gru_forward_impl(g, u, un, h_prev, h, n)
            }

            #[target_feature(enable = $features)]
            pub(super) fn gru_backward(
                g: &mut [f32],
                un: &[f32],
                h_prev: &[f32],
                dh: &[f32],
                du: &mut [f32],
                dhz: &mut [f32],
                n: usize,
            ) {
                super::gru_backward_impl(g, un, h_prev, dh, du, dhz, n)
            }

            #[target_feature(enable = $features)]
            pub(super) fn adam(
                theta: &mut [f32],
                g: &[f32],
                m1: &mut [f32],
                m2: &mut [f32],
                k: &AdamScalars,
            ) {
                super::adam_impl(theta, g, m1, m2, k)
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
kernels_for!(avx2, "avx2,fma");
#[cfg(target_arch = "x86_64")]
kernels_for!(avx512, "avx512f,avx2,fma");

fn cell_forward(
    g: &mut [f32],
    c_prev: &[f32],
    c: &mut [f32],
    tc: &mut [f32],
    h: &mut [f32],
    n: usize,
) {
    match simd() {
        // SAFETY (both): the CPU has the features the function is compiled for.
        #[cfg(target_arch = "x86_64")]
        Simd::Avx512 => unsafe { avx512::cell_forward(g, c_prev, c, tc, h, n) },
        #[cfg(target_arch = "x86_64")]
        Simd::Avx2Fma => unsafe { avx2::cell_forward(g, c_prev, c, tc, h, n) },
        Simd::Baseline => cell_forward_impl(g, c_prev, c, tc, h, n),
    }
}

fn cell_backward(g: &mut [f32], c_prev: &[f32], tc: &[f32], dh: &[f32], dc: &mut [f32], n: usize) {
    match simd() {
        // SAFETY (both): the CPU has the features the function is compiled for.
        #[cfg(target_arch = "x86_64")]
        Simd::Avx512 => unsafe { avx512::cell_backward(g, c_prev, tc, dh, dc, n) },
        #[cfg(target_arch = "x86_64")]
        Simd::Avx2Fma => unsafe { avx2::cell_backward(g, c_prev, tc, dh, dc, n) },
        Simd::Baseline => cell_backward_impl(g, c_prev, tc, dh, dc, n),
    }
}

fn gru_forward(g: &mut [f32], u: &[f32], un: &mut [f32], h_prev: &[f32], h: &mut [f32], n: usize) {
    match simd() {
        // SAFETY (both): the CPU has the features the function is compiled for.
        #[cfg(target_arch = "x86_64")]
        Simd::Avx512 => unsafe { avx512::gru_forward(g, u, un, h_prev, h, n) },
        #[cfg(target_arch = "x86_64")]
        Simd::Avx2Fma => unsafe { avx2::gru_forward(g, u, un, h_prev, h, n) },
        Simd::Baseline => gru_forward_impl(g, u, un, h_prev, h, n),
    }
}

#[allow(clippy::too_many_arguments)]
fn gru_backward(
    g: &mut [f32],
    un: &[f32],
    h_prev: &[f32],
    dh: &[f32],
    du: &mut [f32],
    dhz: &mut [f32],
    n: usize,
) {
    match simd() {
        // SAFETY (both): the CPU has the features the function is compiled for.
        #[cfg(target_arch = "x86_64")]
        Simd::Avx512 => unsafe { avx512::gru_backward(g, un, h_prev, dh, du, dhz, n) },
        #[cfg(target_arch = "x86_64")]
        Simd::Avx2Fma => unsafe { avx2::gru_backward(g, un, h_prev, dh, du, dhz, n) },
        Simd::Baseline => gru_backward_impl(g, un, h_prev, dh, du, dhz, n),
    }
}

fn adam_kernel(theta: &mut [f32], g: &[f32], m1: &mut [f32], m2: &mut [f32], k: &AdamScalars) {
    match simd() {
        // SAFETY (both): the CPU has the features the function is compiled for.
        #[cfg(target_arch = "x86_64")]
        Simd::Avx512 => unsafe { avx512::adam(theta, g, m1, m2, k) },
        #[cfg(target_arch = "x86_64")]
        Simd::Avx2Fma => unsafe { avx2::adam(theta, g, m1, m2, k) },
        Simd::Baseline => adam_impl(theta, g, m1, m2, k),
    }
}

/// Column sums of `rows x cols` row-major `src` into `dst[..cols]` (overwritten).
fn column_sums(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    let dst = &mut dst[..cols];
    dst.fill(0.0);
    for row in src[..rows * cols].chunks_exact(cols) {
        for (d, s) in dst.iter_mut().zip(row) {
            *d += s;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Forward and backward of one network.

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

/// The forward / backward of `b` rows of a minibatch of `rows` rows: returns the sum of
/// the rows' losses and their correct count; the gradient is that of (sum of these rows'
/// losses) / `rows`.
#[allow(clippy::too_many_arguments)]
fn step_rows(
    d: &FusedDims,
    params: &[f32],
    ws: &mut Workspace,
    x: &[f32],
    (b, t): (usize, usize),
    targets: &[u32],
    mask: Option<&[f32]>,
    grad: bool,
    rows: usize,
    par: Parallelism,
) -> (f32, usize) {
    let (n, c_out, i0) = (d.hidden, d.classes, d.input);
    let g = d.gates() * n;
    assert!(b > 0 && t > 0, "empty minibatch");
    assert_eq!(x.len(), b * t * i0, "inputs must be [B, T, I]");
    assert_eq!(targets.len(), b, "one target per row");
    assert_eq!(params.len(), d.num_params(), "parameter count");
    ws.prepare(d, b, t);
    // time-major inputs
    for (r, seq) in x.chunks_exact(t * i0).enumerate() {
        for (s, row) in seq.chunks_exact(i0).enumerate() {
            let at = (s * b + r) * i0;
            ws.x[at..at + i0].copy_from_slice(row);
        }
    }
    let zeros = &ws.zeros[..b * n];
    // ---- forward
    for l in 0..d.layers {
        let off = d.layer(l);
        let (below, rest) = ws.layers.split_at_mut(l);
        let lb = &mut rest[0];
        let input: &[f32] = if l == 0 { &ws.x[..t * b * i0] } else { &below[l - 1].h[..t * b * n] };
        let gates = &mut lb.gates[..t * b * g];
        let w_ih = &params[off.w_ih..off.w_ih + g * off.input];
        let w_hh = &params[off.w_hh..off.w_hh + g * n];
        let biases = off.bias.map(|bo| (&params[bo..bo + g], &params[bo + g..bo + 2 * g]));
        if let Some((b_ih, b_hh)) = biases {
            // LSTM: both biases ride with the input projection; GRU: only b_ih
            let row = &mut gates[..g];
            match d.cell {
                FusedCell::Lstm => {
                    for ((r, x), y) in row.iter_mut().zip(b_ih).zip(b_hh) {
                        *r = x + y;
                    }
                }
                FusedCell::Gru => row.copy_from_slice(b_ih),
            }
            let (first, others) = gates.split_at_mut(g);
            for chunk in others.chunks_exact_mut(g) {
                chunk.copy_from_slice(first);
            }
        }
        // all steps' input projection: [T B, I] x W_ih^T
        mm(
            (t * b, g, off.input),
            gates,
            g,
            biases.is_some(),
            (input, off.input, 1),
            (w_ih, 1, off.input),
            par,
        );
        for s in 0..t {
            let g_s = &mut gates[s * b * g..(s + 1) * b * g];
            match d.cell {
                FusedCell::Lstm => {
                    let (done, now) = lb.c.split_at_mut(s * b * n);
                    let c_prev = if s == 0 { zeros } else { &done[(s - 1) * b * n..] };
                    if s > 0 {
                        let h_prev = &lb.h[(s - 1) * b * n..s * b * n];
                        mm((b, g, n), g_s, g, true, (h_prev, n, 1), (w_hh, 1, n), par);
                    }
                    let (tc, h) = (
                        &mut lb.tc[s * b * n..(s + 1) * b * n],
                        &mut lb.h[s * b * n..(s + 1) * b * n],
                    );
                    cell_forward(g_s, &c_prev[..b * n], &mut now[..b * n], tc, h, n);
                }
                FusedCell::Gru => {
                    let (done, now) = lb.h.split_at_mut(s * b * n);
                    let h_prev = if s == 0 { zeros } else { &done[(s - 1) * b * n..] };
                    let u = &mut lb.du[s * b * g..(s + 1) * b * g];
                    match biases {
                        Some((_, b_hh)) => {
                            for row in u.chunks_exact_mut(g) {
                                row.copy_from_slice(b_hh);
                            }
                        }
                        None => u.fill(0.0),
                    }
                    if s > 0 {
                        mm((b, g, n), u, g, true, (&h_prev[..b * n], n, 1), (w_hh, 1, n), par);
                    }
                    let un = &mut lb.c[s * b * n..(s + 1) * b * n];
                    gru_forward(g_s, u, un, &h_prev[..b * n], &mut now[..b * n], n);
                }
            }
        }
    }
    // ---- readout and loss
    let top = &ws.layers[d.layers - 1];
    let h_last = &top.h[(t - 1) * b * n..t * b * n];
    let z = &mut ws.z[..b * n];
    match mask {
        Some(mk) => {
            for ((z, h), m) in z.iter_mut().zip(h_last).zip(&mk[..b * n]) {
                *z = h * m;
            }
        }
        None => z.copy_from_slice(h_last),
    }
    let fc = d.fc();
    let (w_fc, b_fc) =
        (&params[fc..fc + c_out * n], &params[fc + c_out * n..fc + c_out * n + c_out]);
    let logits = &mut ws.logits[..b * c_out];
    for row in logits.chunks_exact_mut(c_out) {
        row.copy_from_slice(b_fc);
    }
    mm((b, c_out, n), logits, c_out, true, (z, n, 1), (w_fc, 1, n), Parallelism::None);
    let mut loss_sum = 0.0f32;
    let mut correct = 0usize;
    let inv_rows = 1.0 / rows as f32;
    for (row, &y) in logits.chunks_exact_mut(c_out).zip(targets) {
        // first maximum, as candle's argmax
        let (mut best, mut arg) = (row[0], 0usize);
        for (k, &v) in row.iter().enumerate().skip(1) {
            if v > best {
                best = v;
                arg = k;
            }
        }
        correct += usize::from(arg == y as usize);
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f32 = row.iter().map(|&v| (v - max).exp()).sum();
        let lse = sum.ln();
        loss_sum += lse - (row[y as usize] - max);
        if grad {
            for (k, v) in row.iter_mut().enumerate() {
                let p = (*v - max).exp() / sum;
                *v = (p - if k == y as usize { 1.0 } else { 0.0 }) * inv_rows;
            }
        }
    }
    let out = (loss_sum, correct);
    if !grad {
        return out;
    }
    // ---- backward: readout
    let Workspace { x: xs, layers, d_out, d_in, dh, dc, z, logits, grad: gr, .. } = ws;
    let (z, dl) = (&z[..b * n], &logits[..b * c_out]);
    {
        let (_, fc_grad) = gr.split_at_mut(fc);
        let (gw, gb) = fc_grad.split_at_mut(c_out * n);
        mm((c_out, n, b), gw, n, false, (dl, 1, c_out), (z, n, 1), Parallelism::None);
        column_sums(dl, b, c_out, gb);
    }
    let dh = &mut dh[..b * n];
    mm((b, n, c_out), dh, n, false, (dl, c_out, 1), (w_fc, n, 1), Parallelism::None);
    if let Some(mk) = mask {
        for (d, m) in dh.iter_mut().zip(&mk[..b * n]) {
            *d *= m;
        }
    }
    // ---- backward: layers, top down
    let dc = &mut dc[..b * n];
    for l in (0..d.layers).rev() {
        let off = d.layer(l);
        let top = l + 1 == d.layers;
        let (below, rest) = layers.split_at_mut(l);
        let lb = &mut rest[0];
        let w_hh = &params[off.w_hh..off.w_hh + g * n];
        let w_ih = &params[off.w_ih..off.w_ih + g * off.input];
        let gates = &mut lb.gates[..t * b * g];
        dc.fill(0.0);
        match d.cell {
            FusedCell::Lstm => {
                for s in (0..t).rev() {
                    if s + 1 < t {
                        // dh_s = (external gradient) + dG_{s+1} U
                        let ext = !top;
                        if ext {
                            dh.copy_from_slice(&d_out[s * b * n..(s + 1) * b * n]);
                        }
                        let g_next = &gates[(s + 1) * b * g..(s + 2) * b * g];
                        mm((b, n, g), dh, n, ext, (g_next, g, 1), (w_hh, n, 1), par);
                    } else if !top {
                        dh.copy_from_slice(&d_out[s * b * n..(s + 1) * b * n]);
                    }
                    let c_prev = if s == 0 { zeros } else { &lb.c[(s - 1) * b * n..s * b * n] };
                    let g_s = &mut gates[s * b * g..(s + 1) * b * g];
                    cell_backward(g_s, c_prev, &lb.tc[s * b * n..(s + 1) * b * n], dh, dc, n);
                }
            }
            FusedCell::Gru => {
                let du = &mut lb.du[..t * b * g];
                for s in (0..t).rev() {
                    if s + 1 < t {
                        // dh_s = (external gradient) + dh_{s+1} z_{s+1} + dU_{s+1} U
                        dh.copy_from_slice(dc);
                        if !top {
                            for (x, e) in dh.iter_mut().zip(&d_out[s * b * n..(s + 1) * b * n]) {
                                *x += e;
                            }
                        }
                        let du_next = &du[(s + 1) * b * g..(s + 2) * b * g];
                        mm((b, n, g), dh, n, true, (du_next, g, 1), (w_hh, n, 1), par);
                    } else if !top {
                        dh.copy_from_slice(&d_out[s * b * n..(s + 1) * b * n]);
                    }
                    let h_prev = if s == 0 { zeros } else { &lb.h[(s - 1) * b * n..s * b * n] };
                    let g_s = &mut gates[s * b * g..(s + 1) * b * g];
                    let un = &lb.c[s * b * n..(s + 1) * b * n];
                    gru_backward(g_s, un, h_prev, dh, &mut du[s * b * g..(s + 1) * b * g], dc, n);
                }
            }
        }
        // weight gradients over the whole sequence; LSTM: dU = dA = dG
        let du_all: &[f32] = match d.cell {
            FusedCell::Lstm => gates,
            FusedCell::Gru => &lb.du[..t * b * g],
        };
        let input: &[f32] = if l == 0 { &xs[..t * b * i0] } else { &below[l - 1].h[..t * b * n] };
        let gw_ih = &mut gr[off.w_ih..off.w_ih + g * off.input];
        mm(
            (g, off.input, t * b),
            gw_ih,
            off.input,
            false,
            (gates, 1, g),
            (input, off.input, 1),
            par,
        );
        let gw_hh = &mut gr[off.w_hh..off.w_hh + g * n];
        mm((g, n, (t - 1) * b), gw_hh, n, false, (&du_all[b * g..], 1, g), (&lb.h[..], n, 1), par);
        if let Some(bo) = off.bias {
            let (gb_ih, gb_hh) = gr[bo..bo + 2 * g].split_at_mut(g);
            column_sums(gates, t * b, g, gb_ih);
            match d.cell {
                FusedCell::Lstm => gb_hh.copy_from_slice(gb_ih),
                FusedCell::Gru => column_sums(du_all, t * b, g, gb_hh),
            }
        }
        if l > 0 {
            let below_grad = &mut d_in[..t * b * n];
            mm((t * b, n, g), below_grad, n, false, (gates, g, 1), (w_ih, n, 1), par);
            std::mem::swap(d_out, d_in);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Adam.

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

/// The optimiser settings (see [`crate::PopulationAdam`]).
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

/// One Adam / AdamW step of one network on flat slices, exactly as
/// [`crate::PopulationAdam::step`] does it for an active network: gradient norm (before
/// clipping), `None` (and nothing changed) if it is not finite; otherwise clip, count the
/// step, update moments and parameters.
///
/// As on candle, the squared norm is summed in f32 per parameter tensor (`sizes`, see
/// [`FusedDims::param_sizes`]) and in f64 across them, so a gradient whose f32 sum of squares
/// overflows counts as diverged on both paths.
#[allow(clippy::too_many_arguments)]
pub fn adam_step(
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
    let clip = match s.grad_clip {
        Some(max) => (max / (norm + 1e-6)).min(1.0),
        None => 1.0,
    };
    *steps += 1;
    let (b1, b2) = s.betas;
    let k = AdamScalars {
        clip: clip as f32,
        l2: s.kind == OptimizerKind::Adam && s.weight_decay != 0.0,
        wd: s.weight_decay as f32,
        b1: b1 as f32,
        one_minus_b1: (1.0 - b1) as f32,
        b2: b2 as f32,
        one_minus_b2: (1.0 - b2) as f32,
        bc2_sqrt: (1.0 - b2.powi(*steps as i32)).sqrt() as f32,
        eps: s.eps as f32,
        decoupled: s.kind == OptimizerKind::AdamW && s.weight_decay != 0.0,
        decay: (1.0 - lr * s.weight_decay) as f32,
        step_size: (lr / (1.0 - b1.powi(*steps as i32))) as f32,
    };
    adam_kernel(theta, grad, m1, m2, &k);
    Some(norm)
}

#[cfg(test)]
mod tests {
    use super::*;

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
            (FusedCell::Lstm, crate::Arch::Lstm, 1, true),
            (FusedCell::Lstm, crate::Arch::Lstm, 2, false),
            (FusedCell::Lstm, crate::Arch::Lstm, 3, true),
            (FusedCell::Gru, crate::Arch::Gru, 2, true),
            (FusedCell::Gru, crate::Arch::Gru, 3, false),
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
