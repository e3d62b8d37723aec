//! [`BatchState`]: the forward state, the cached gate values and the scratch of `B`
//! sequences of one network, with the batched forward step and the tangent step `Z = J Q`
//! (one GEMM per weight matrix over all `B k` columns for RNN, ASRNN and CoRNN; the combined
//! per-sequence step for LSTM and GRU).

use super::combined::CombinedStep;
use super::{forward_sequence, matmul, tangent_column};
use crate::rnn::{CellKind, LstmState, Network};
use crate::scalar::Real;

/// Forward state, cached gate values and scratch for `B` sequences of one network.
pub(crate) struct BatchState<T: Real> {
    batch: usize,
    /// Forward layer state size `S`.
    s: usize,
    states: Vec<Vec<T>>,
    old: Vec<Vec<T>>,
    /// Per layer `G N x B`: gate activations (GRU `r, z, n`; LSTM `i, f, g, o`).
    gates: Vec<Vec<T>>,
    /// Per layer `N x B`: RNN/ASRNN/CoRNN `1 - tanh^2(pre)`; GRU `u_n`; LSTM `tanh(c')`.
    aux: Vec<Vec<T>>,
    pre_in: Vec<T>,
    pre_rec: Vec<T>,
    /// Tangent scratch `G N x (B k)`.
    p_rec: Vec<T>,
    /// Per-sequence scratch of the combined LSTM/GRU tangent (row-scaled weights and `X`).
    seq_scratch: Vec<Vec<T>>,
    pub(crate) par: gemm::Parallelism,
}

impl<T: Real> BatchState<T> {
    /// Zero state for `batch` sequences.
    pub(crate) fn new(net: &Network<T>, batch: usize) -> Self {
        let (n, g, l) = (net.hidden, net.kind.gates(), net.layers.len());
        let s = net.layer_state();
        Self {
            batch,
            s,
            states: vec![vec![T::zero(); s * batch]; l],
            old: vec![vec![T::zero(); s * batch]; l],
            gates: vec![vec![T::zero(); g * n * batch]; l],
            aux: vec![vec![T::zero(); n * batch]; l],
            pre_in: vec![T::zero(); g * n * batch],
            pre_rec: vec![T::zero(); g * n * batch],
            p_rec: Vec::new(),
            seq_scratch: Vec::new(),
            par: gemm::Parallelism::None,
        }
    }

    /// Column stride of a layer's state (`S`).
    pub(crate) fn layer_stride(&self) -> usize {
        self.s
    }

    /// Layer `l`'s state, `S x B` (output = first `N` rows of each column).
    pub(crate) fn layer_output(&self, l: usize) -> &[T] {
        &self.states[l]
    }

    /// All layers' states of sequence `b`, concatenated (`D = L S`).
    pub(crate) fn sequence_state(&self, b: usize, out: &mut [T]) {
        for (l, st) in self.states.iter().enumerate() {
            out[l * self.s..(l + 1) * self.s].copy_from_slice(&st[b * self.s..(b + 1) * self.s]);
        }
    }

    /// Set the states of sequence `b` from a concatenated `D`-vector.
    pub(crate) fn set_sequence_state(&mut self, b: usize, x: &[T]) {
        let s = self.s;
        for (l, st) in self.states.iter_mut().enumerate() {
            st[b * s..(b + 1) * s].copy_from_slice(&x[l * s..(l + 1) * s]);
        }
    }

    /// Whether every state entry of sequence `b` is finite.
    pub(crate) fn sequence_is_finite(&self, b: usize) -> bool {
        self.states.iter().all(|st| st[b * self.s..(b + 1) * self.s].iter().all(|v| v.is_finite()))
    }

    /// Advance all `B` sequences by one step with the inputs at time `t` (`inputs [B, T, I]`
    /// row-major with `steps = T`), caching what the tangent step needs.
    pub(crate) fn forward(&mut self, net: &Network<T>, inputs: &[T], steps: usize, t: usize) {
        let (n, g, bsz, s) = (net.hidden, net.kind.gates(), self.batch, self.s);
        let gn = g * n;
        for (l, layer) in net.layers.iter().enumerate() {
            std::mem::swap(&mut self.old[l], &mut self.states[l]);
            // pre_in = W_in x + b_in
            if l == 0 {
                let i = net.input;
                matmul(
                    gn,
                    bsz,
                    i,
                    &layer.w_in,
                    i,
                    &inputs[t * i..],
                    steps * i,
                    &mut self.pre_in,
                    gn,
                    false,
                    self.par,
                );
            } else {
                let prev = &self.states[l - 1];
                matmul(gn, bsz, n, &layer.w_in, n, prev, s, &mut self.pre_in, gn, false, self.par);
            }
            // pre_rec = W_rec state_rec + b_rec (rec = h, or (y, z) for CoRNN)
            let r = if net.kind == CellKind::Cornn { 2 * n } else { n };
            matmul(
                gn,
                bsz,
                r,
                &layer.w_rec,
                r,
                &self.old[l],
                s,
                &mut self.pre_rec,
                gn,
                false,
                self.par,
            );
            for b in 0..bsz {
                let pi = &mut self.pre_in[b * gn..(b + 1) * gn];
                let pr = &mut self.pre_rec[b * gn..(b + 1) * gn];
                for (v, &bias) in pi.iter_mut().zip(&layer.b_in) {
                    *v += bias;
                }
                for (v, &bias) in pr.iter_mut().zip(&layer.b_rec) {
                    *v += bias;
                }
                let old = &self.old[l][b * s..(b + 1) * s];
                let new = &mut self.states[l][b * s..(b + 1) * s];
                let gates = &mut self.gates[l][b * gn..(b + 1) * gn];
                let aux = &mut self.aux[l][b * n..(b + 1) * n];
                let consts = &net.constants;
                forward_sequence(net.kind, pi, pr, old, new, gates, aux, n, consts);
            }
        }
    }

    /// `z = J q` for the step just taken by [`BatchState::forward`]: `q`, `z` are `Dt x (B k)`
    /// (column-major, leading dimension `Dt`), sequence `b` owning columns `b k .. (b + 1) k`.
    pub(crate) fn tangent(
        &mut self,
        net: &Network<T>,
        lstm: LstmState,
        q: &[T],
        z: &mut [T],
        k: usize,
    ) {
        if net.kind.has_combined_tangent() {
            self.tangent_combined(net, lstm, q, z, k);
        } else {
            self.tangent_single_block(net, q, z, k);
        }
    }

    /// Tangent step of the one-gate cells (RNN, ASRNN, CoRNN): `P = U_rec Q_rec (+ W_in dIn)`
    /// as one GEMM over all `B k` columns, then elementwise work.
    fn tangent_single_block(&mut self, net: &Network<T>, q: &[T], z: &mut [T], k: usize) {
        let (n, bsz) = (net.hidden, self.batch);
        let gn = n;
        let st = net.layer_state();
        let dt_rows = st * net.layers.len();
        let cols = bsz * k;
        if self.p_rec.len() < gn * cols {
            self.p_rec.resize(gn * cols, T::zero());
        }
        for (l, layer) in net.layers.iter().enumerate() {
            let off = l * st;
            let r = if net.kind == CellKind::Cornn { 2 * n } else { n };
            // P = U_rec Q_rec (all B k columns at once)
            matmul(
                gn,
                cols,
                r,
                &layer.w_rec,
                r,
                &q[off..],
                dt_rows,
                &mut self.p_rec,
                gn,
                false,
                self.par,
            );
            // + W_in dIn (rows of the previous layer's new output in z, written this step)
            if l > 0 {
                let zp = &z[(l - 1) * st..];
                matmul(
                    gn,
                    cols,
                    n,
                    &layer.w_in,
                    n,
                    zp,
                    dt_rows,
                    &mut self.p_rec,
                    gn,
                    true,
                    self.par,
                );
            }
            let consts = &net.constants;
            for c in 0..cols {
                let b = c / k;
                let p = &self.p_rec[c * gn..(c + 1) * gn];
                let qc = &q[c * dt_rows + off..c * dt_rows + off + st];
                let aux = &self.aux[l][b * n..(b + 1) * n];
                let zc = &mut z[c * dt_rows + off..c * dt_rows + off + st];
                tangent_column(net.kind, zc, qc, p, aux, n, consts);
            }
        }
    }

    /// Tangent step of the multi-gate cells (LSTM, GRU), sequence by sequence, with the gate
    /// derivatives folded into row-scaled copies of the weights so that every gate block of
    /// the recurrent (and inter-layer) weights costs one row scaling (`O(N^2)`) instead of its
    /// own `N x N x k` product:
    ///
    /// * LSTM, `a_i = i(1-i) g`, `a_f = f(1-f) c`, `a_g = i(1-g^2)`, `a_o = o(1-o) tanh c'`,
    ///   `b = o(1 - tanh^2 c')`:
    ///   `X = [a_i U_i + a_f U_f + a_g U_g; a_o U_o] Q_h (+ same with W dIn)` (`2N x k`),
    ///   `dc' = X_top + f dc`, `dh' = X_bottom + b dc'`;
    /// * GRU, `c_n = (1-z)(1-n^2)`, `c_r = c_n u_n r(1-r)`, `c_rn = c_n r`,
    ///   `c_z = (h-n) z(1-z)`: `dh' = (c_r U_r + c_z U_z + c_rn U_n) Q_h
    ///   + (c_r W_r + c_z W_z + c_n W_n) dIn + z dh` (`N x k`).
    ///
    /// Half (LSTM) or a third (GRU) of the GEMM flops of one product per gate block; the row
    /// scalings are `diag(v) U` computed as `O(N^2)` scalings, never as dense products.
    /// Sequences run in parallel when the state was set up for all threads.
    fn tangent_combined(
        &mut self,
        net: &Network<T>,
        lstm: LstmState,
        q: &[T],
        z: &mut [T],
        k: usize,
    ) {
        let bsz = self.batch;
        let par = matches!(self.par, gemm::Parallelism::Rayon(_));
        let (ctx, seq_scratch) = self.combined_parts(net, lstm, q, k);
        let chunk = k * ctx.dt_rows;
        if par {
            use rayon::prelude::*;
            z[..bsz * chunk]
                .par_chunks_mut(chunk)
                .zip(seq_scratch.par_iter_mut())
                .enumerate()
                .for_each(|(b, (zb, sc))| ctx.run(b, zb, sc));
        } else {
            for (b, (zb, sc)) in
                z[..bsz * chunk].chunks_mut(chunk).zip(seq_scratch.iter_mut()).enumerate()
            {
                ctx.run(b, zb, sc);
            }
        }
    }

    /// The per-sequence tangent step of the combined path and one scratch buffer per sequence:
    /// `ctx.run(b, z_b, scratch_b)` writes sequence `b`'s `Dt x k` block `z_b = J_b q_b`, so a
    /// caller can orthonormalise each block right after it is written.
    pub(crate) fn combined_parts<'a>(
        &'a mut self,
        net: &'a Network<T>,
        lstm: LstmState,
        q: &'a [T],
        k: usize,
    ) -> (CombinedStep<'a, T>, &'a mut [Vec<T>]) {
        let (n, bsz, s) = (net.hidden, self.batch, self.s);
        let lstm_cell = net.kind == CellKind::Lstm;
        let gn = net.kind.gates() * n;
        let st = net.tangent_layer_state(lstm);
        let full = lstm_cell && lstm == LstmState::Full;
        let layers = net.layers.len();
        let dt_rows = st * layers;
        let rows = if lstm_cell { 2 * n } else { n };
        // m_rec (rows x n) | m_in (rows x n) | previous layer's output (n x k) | coefficients (2n)
        // (at least 9n: the coefficient vectors of `CombinedStep::jacobian`)
        let scratch_len = (2 * rows * n + n * k + 2 * n).max(9 * n);
        if self.seq_scratch.len() != bsz {
            self.seq_scratch = vec![Vec::new(); bsz];
        }
        for sc in &mut self.seq_scratch {
            if sc.len() < scratch_len {
                sc.resize(scratch_len, T::zero());
            }
        }
        let ctx = CombinedStep {
            net,
            q,
            gates_all: &self.gates,
            aux_all: &self.aux,
            old_all: &self.old,
            n,
            s,
            gn,
            st,
            dt_rows,
            rows,
            k,
            lstm_cell,
            full,
        };
        (ctx, &mut self.seq_scratch)
    }
}
