//! Batched forward step and tangent step of every cell, for `B` sequences of one network.
//!
//! Layouts (all column-major, one column per sequence or per tangent vector):
//! * forward state of layer `l`: `S x B` with `S = N` (RNN, GRU, ASRNN), `2N` (LSTM `[h; c]`,
//!   CoRNN `[y; z]`); the layer's output (next layer's input) is the first `N` rows;
//! * gate pre-activations: `G N x B` (`G` gate blocks stacked as in PyTorch);
//! * tangent blocks: `Dt x (B k)` with `Dt = L * St` (per layer `St` rows: `[h]`, `[h; c]`,
//!   `[y; z]`), sequence `b` owning columns `b k .. (b + 1) k`.
//!
//! Tangent formulas (`P = U_rec Q_rec + W_in dIn`; `s(x)` logistic; `dIn` = previous layer's
//! new output perturbation, zero for layer 0). RNN, ASRNN and CoRNN form `P` with one GEMM per
//! weight matrix over all `B k` columns. GRU and LSTM never form the per-gate `P` blocks: the
//! gate derivatives are folded into row-scaled copies of the weights (`O(N^2)` per sequence),
//! so that one `N x N x k` (GRU) or `2N x N x k` (LSTM) GEMM per weight matrix and sequence
//! replaces the `3N` or `4N` rows of products (see `BatchState::tangent_combined`); the
//! formulas below are what it computes:
//! * RNN: `dh' = (1 - h'^2) * P`.
//! * GRU (`da = W_in dIn`, `du = U Q_h` kept apart because `r` multiplies only `u_n`):
//!   `dr = r(1-r)(da_r + du_r)`, `dz = z(1-z)(da_z + du_z)`,
//!   `dn = (1 - n^2)(da_n + dr * u_n + r * du_n)`, `dh' = (1-z) dn + (h - n) dz + z dh`.
//! * LSTM: `dc' = f(1-f) c P_f + i(1-i) g P_i + i(1-g^2) P_g + f dc` (last term only for the full
//!   state), `dh' = o(1-o) tanh(c') P_o + o (1 - tanh^2 c') dc'`.
//! * ASRNN: `dh' = dh + eps (1 - tanh^2 pre) * P`.
//! * CoRNN: `dz' = dz + dt((1 - tanh^2 pre) * P - gamma dy - eps dz)`, `dy' = dy + dt dz'`.

use super::activation::{sigmoid_in_place, tanh_in_place};
use super::{CellKind, LstmState, Network};
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
                match net.kind {
                    CellKind::Rnn => {
                        add_into(&mut pi[..n], &pr[..n]);
                        tanh_in_place(&mut pi[..n]);
                        for j in 0..n {
                            let h = pi[j];
                            new[j] = h;
                            aux[j] = T::one() - h * h;
                        }
                    }
                    CellKind::Gru => {
                        add_into(&mut pi[..2 * n], &pr[..2 * n]);
                        sigmoid_in_place(&mut pi[..2 * n]);
                        for j in 0..n {
                            pi[2 * n + j] += pi[j] * pr[2 * n + j];
                        }
                        tanh_in_place(&mut pi[2 * n..3 * n]);
                        for j in 0..n {
                            let (r, z, nn) = (pi[j], pi[n + j], pi[2 * n + j]);
                            let un = pr[2 * n + j];
                            new[j] = (T::one() - z) * nn + z * old[j];
                            gates[j] = r;
                            gates[n + j] = z;
                            gates[2 * n + j] = nn;
                            aux[j] = un;
                        }
                    }
                    CellKind::Lstm => {
                        add_into(pi, pr);
                        sigmoid_in_place(&mut pi[..2 * n]);
                        tanh_in_place(&mut pi[2 * n..3 * n]);
                        sigmoid_in_place(&mut pi[3 * n..4 * n]);
                        for j in 0..n {
                            aux[j] = pi[n + j] * old[n + j] + pi[j] * pi[2 * n + j];
                        }
                        tanh_in_place(aux);
                        for j in 0..n {
                            let (ig, fg, gg, og) = (pi[j], pi[n + j], pi[2 * n + j], pi[3 * n + j]);
                            let c = fg * old[n + j] + ig * gg;
                            let tc = aux[j];
                            new[j] = og * tc;
                            new[n + j] = c;
                            gates[j] = ig;
                            gates[n + j] = fg;
                            gates[2 * n + j] = gg;
                            gates[3 * n + j] = og;
                            aux[j] = tc;
                        }
                    }
                    CellKind::Asrnn => {
                        let eps = T::from_f64(consts.eps);
                        add_into(&mut pi[..n], &pr[..n]);
                        tanh_in_place(&mut pi[..n]);
                        for j in 0..n {
                            let a = pi[j];
                            new[j] = old[j] + eps * a;
                            aux[j] = T::one() - a * a;
                        }
                    }
                    CellKind::Cornn => {
                        let (dt, gamma, eps) = (
                            T::from_f64(consts.dt),
                            T::from_f64(consts.gamma),
                            T::from_f64(consts.eps),
                        );
                        add_into(&mut pi[..n], &pr[..n]);
                        tanh_in_place(&mut pi[..n]);
                        for j in 0..n {
                            let a = pi[j];
                            let (y, z) = (old[j], old[n + j]);
                            let z2 = z + dt * (a - gamma * y - eps * z);
                            new[n + j] = z2;
                            new[j] = y + dt * z2;
                            aux[j] = T::one() - a * a;
                        }
                    }
                }
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
                match net.kind {
                    CellKind::Rnn => {
                        for j in 0..n {
                            zc[j] = aux[j] * p[j];
                        }
                    }
                    CellKind::Asrnn => {
                        let eps = T::from_f64(consts.eps);
                        for j in 0..n {
                            zc[j] = qc[j] + eps * aux[j] * p[j];
                        }
                    }
                    CellKind::Cornn => {
                        let (dt, gamma, eps) = (
                            T::from_f64(consts.dt),
                            T::from_f64(consts.gamma),
                            T::from_f64(consts.eps),
                        );
                        for j in 0..n {
                            let (dy, dzo) = (qc[j], qc[n + j]);
                            let dz = dzo + dt * (aux[j] * p[j] - gamma * dy - eps * dzo);
                            zc[n + j] = dz;
                            zc[j] = dy + dt * dz;
                        }
                    }
                    CellKind::Gru | CellKind::Lstm => {
                        unreachable!("multi-gate cells take the combined tangent path")
                    }
                }
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

/// What the combined LSTM/GRU tangent step of one sequence reads (see
/// `BatchState::tangent_combined`).
pub(crate) struct CombinedStep<'a, T: Real> {
    net: &'a Network<T>,
    q: &'a [T],
    gates_all: &'a [Vec<T>],
    aux_all: &'a [Vec<T>],
    old_all: &'a [Vec<T>],
    n: usize,
    s: usize,
    gn: usize,
    st: usize,
    dt_rows: usize,
    rows: usize,
    k: usize,
    lstm_cell: bool,
    full: bool,
}

impl<T: Real> CombinedStep<'_, T> {
    /// Sequence `b`'s tangent columns `zb`, with AVX-512 code generation where the CPU has it
    /// (the row scalings and elementwise loops vectorise 16 lanes wide instead of 4).
    pub(crate) fn run(&self, b: usize, zb: &mut [T], scratch: &mut [T]) {
        #[cfg(target_arch = "x86_64")]
        if aelle_support::simd::level() == aelle_support::simd::Level::Avx512 {
            // SAFETY: the CPU supports AVX-512F/VL, AVX2 and FMA (checked just above).
            unsafe { self.run_avx512(b, zb, scratch) };
            return;
        }
        self.run_generic(b, zb, scratch);
    }

    /// The recurrent weights of a one-layer network per gate in column-major order
    /// (`out[(g n + i) n + j] = U_g[j, i]`), as [`CombinedStep::jacobian`] reads them.
    pub(crate) fn recurrent_columns(net: &Network<T>) -> Vec<T> {
        let (n, g) = (net.hidden, net.kind.gates());
        let w = &net.layers[0].w_rec;
        let mut out = vec![T::zero(); g * n * n];
        for gi in 0..g {
            for i in 0..n {
                for j in 0..n {
                    out[(gi * n + i) * n + j] = w[(gi * n + j) * n + i];
                }
            }
        }
        out
    }

    /// Sequence `b`'s Jacobian `J_b` (`st x st`, column-major) of a one-layer network,
    /// explicitly: the same entries [`CombinedStep::run`] multiplies `q` with (the row-scaled
    /// weight combinations in the columns of `h`, computed with the same expressions, and the
    /// carried-over diagonals: LSTM full `J[:, n + j] = b_j f_j e_j + f_j e_{n + j}`, GRU
    /// `J[j, j] += z_j`). `rec_cm` is [`CombinedStep::recurrent_columns`]; `scratch` is a
    /// sequence scratch buffer of [`BatchState::combined_parts`].
    pub(crate) fn jacobian(&self, b: usize, jb: &mut [T], scratch: &mut [T], rec_cm: &[T]) {
        #[cfg(target_arch = "x86_64")]
        if aelle_support::simd::level() == aelle_support::simd::Level::Avx512 {
            // SAFETY: the CPU supports AVX-512F/VL, AVX2 and FMA (checked just above).
            unsafe { self.jacobian_avx512(b, jb, scratch, rec_cm) };
            return;
        }
        self.jacobian_generic(b, jb, scratch, rec_cm);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
    unsafe fn jacobian_avx512(&self, b: usize, jb: &mut [T], scratch: &mut [T], rec_cm: &[T]) {
        self.jacobian_generic(b, jb, scratch, rec_cm);
    }

    #[inline(always)]
    fn jacobian_generic(&self, b: usize, jb: &mut [T], scratch: &mut [T], rec_cm: &[T]) {
        let (n, st, gn, s) = (self.n, self.st, self.gn, self.s);
        assert!(self.net.layers.len() == 1 && jb.len() >= st * st && scratch.len() >= 9 * n);
        let gates = &self.gates_all[0][b * gn..(b + 1) * gn];
        let aux = &self.aux_all[0][b * n..(b + 1) * n];
        let old = &self.old_all[0][b * s..(b + 1) * s];
        let u = |g: usize, i: usize| &rec_cm[(g * n + i) * n..(g * n + i + 1) * n];
        let (cv, _) = scratch.split_at_mut(9 * n);
        if self.lstm_cell {
            for j in 0..n {
                let LstmCoefs { a_i, a_f, a_g, a_o, bco, fg } =
                    LstmCoefs::at(gates, aux, old, n, j);
                let vals = [bco * a_i, bco * a_f, bco * a_g, a_o, a_i, a_f, a_g, bco * fg, fg];
                for (c, v) in vals.into_iter().enumerate() {
                    cv[c * n + j] = v;
                }
            }
            let c = |i: usize| &cv[i * n..(i + 1) * n];
            for i in 0..n {
                let col = &mut jb[i * st..(i + 1) * st];
                let (u0, u1, u2, u3) = (u(0, i), u(1, i), u(2, i), u(3, i));
                let (hrows, crows) = col.split_at_mut(n);
                combine4_elementwise(hrows, [c(0), c(1), c(2), c(3)], [u0, u1, u2, u3]);
                if self.full {
                    combine3_elementwise(&mut crows[..n], [c(4), c(5), c(6)], [u0, u1, u2]);
                }
            }
            if self.full {
                for j in 0..n {
                    let col = &mut jb[(n + j) * st..(n + j + 1) * st];
                    col.fill(T::zero());
                    col[j] = cv[7 * n + j];
                    col[n + j] = cv[8 * n + j];
                }
            }
        } else {
            for j in 0..n {
                let GruCoefs { c_r, c_z, c_rn, zg, .. } = GruCoefs::at(gates, aux, old, n, j);
                for (c, v) in [c_r, c_z, c_rn, zg].into_iter().enumerate() {
                    cv[c * n + j] = v;
                }
            }
            let c = |i: usize| &cv[i * n..(i + 1) * n];
            for i in 0..n {
                let col = &mut jb[i * st..(i + 1) * st];
                combine3_elementwise(
                    &mut col[..n],
                    [c(0), c(1), c(2)],
                    [u(0, i), u(1, i), u(2, i)],
                );
                col[i] += cv[3 * n + i];
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
    unsafe fn run_avx512(&self, b: usize, zb: &mut [T], scratch: &mut [T]) {
        self.run_generic(b, zb, scratch);
    }

    #[inline(always)]
    fn run_generic(&self, b: usize, zb: &mut [T], scratch: &mut [T]) {
        let CombinedStep {
            net,
            q,
            gates_all,
            aux_all,
            old_all,
            n,
            s,
            gn,
            st,
            dt_rows,
            rows,
            k,
            lstm_cell,
            full,
        } = *self;
        let qb = &q[b * k * dt_rows..(b + 1) * k * dt_rows];
        let (m_rec, rest) = scratch.split_at_mut(rows * n);
        let (m_in, rest) = rest.split_at_mut(rows * n);
        let (din, coef) = rest.split_at_mut(n * k);
        let none = gemm::Parallelism::None;
        for (l, layer) in net.layers.iter().enumerate() {
            let off = l * st;
            let gates = &gates_all[l][b * gn..(b + 1) * gn];
            let aux = &aux_all[l][b * n..(b + 1) * n];
            let old = &old_all[l][b * s..(b + 1) * s];
            let has_input = l > 0;
            // Row-scaled weights, in the row order of the layer's tangent state (`st` rows);
            // coef[..n] (h rows) and coef[n..2n] (LSTM c rows) scale the carried-over part.
            // The recurrent weights, and for a stacked layer the input weights, each give one
            // row-scaled matrix with the same coefficients (`c_n` instead of `c_rn` for the GRU's
            // input weights, which `r` does not gate).
            let count = if has_input { 2 } else { 1 };
            for j in 0..n {
                let mats: [(&mut [T], &[T]); 2] =
                    [(&mut *m_rec, &layer.w_rec), (&mut *m_in, &layer.w_in)];
                if lstm_cell {
                    let LstmCoefs { a_i, a_f, a_g, a_o, bco, fg } =
                        LstmCoefs::at(gates, aux, old, n, j);
                    coef[j] = bco * fg;
                    coef[n + j] = fg;
                    // dc' = C Q_h + f dc with C = a_i U_i + a_f U_f + a_g U_g;
                    // dh' = a_o U_o Q_h + b dc' = (a_o U_o + b C) Q_h + b f dc.
                    let ca = [bco * a_i, bco * a_f, bco * a_g];
                    for (m, w) in mats.into_iter().take(count) {
                        let u = |g: usize| &w[(g * n + j) * n..(g * n + j + 1) * n];
                        combine4_scalar(
                            &mut m[j * n..(j + 1) * n],
                            ca,
                            a_o,
                            [u(0), u(1), u(2)],
                            u(3),
                        );
                        if full {
                            let row = &mut m[(n + j) * n..(n + j + 1) * n];
                            combine3_scalar(row, [a_i, a_f, a_g], u(0), u(1), u(2));
                        }
                    }
                } else {
                    let GruCoefs { c_r, c_z, c_rn, c_n, zg } = GruCoefs::at(gates, aux, old, n, j);
                    coef[j] = zg;
                    for (l_in, (m, w)) in mats.into_iter().take(count).enumerate() {
                        let u = |g: usize| &w[(g * n + j) * n..(g * n + j + 1) * n];
                        let cn = if l_in == 0 { c_rn } else { c_n };
                        combine3_scalar(
                            &mut m[j * n..(j + 1) * n],
                            [c_r, c_z, cn],
                            u(0),
                            u(1),
                            u(2),
                        );
                    }
                }
            }
            // The carried-over part first (LSTM full: [b f dc; f dc], GRU: z dh; LSTM h-only:
            // none), then the GEMMs accumulate onto it in place.
            let carried = full || !lstm_cell;
            if carried {
                let carry_rows = if lstm_cell { n..2 * n } else { 0..n };
                for c in 0..k {
                    let col = c * dt_rows + off;
                    let qsrc = &qb[col + carry_rows.start..col + carry_rows.end];
                    let zc = &mut zb[col..col + st];
                    let (zh, rest) = zc.split_at_mut(n);
                    let (zh, hv, qs) = (&mut zh[..n], &coef[..n], &qsrc[..n]);
                    for j in 0..n {
                        zh[j] = hv[j] * qs[j];
                    }
                    if lstm_cell {
                        let (zcc, fv) = (&mut rest[..n], &coef[n..2 * n]);
                        for j in 0..n {
                            zcc[j] = fv[j] * qs[j];
                        }
                    }
                }
            }
            matmul(st, k, n, m_rec, n, &qb[off..], dt_rows, &mut zb[off..], dt_rows, carried, none);
            if has_input {
                // The previous layer's fresh output rows, copied out (they live in `zb` too).
                let prev = (l - 1) * st;
                for c in 0..k {
                    din[c * n..(c + 1) * n]
                        .copy_from_slice(&zb[c * dt_rows + prev..c * dt_rows + prev + n]);
                }
                matmul(st, k, n, m_in, n, din, n, &mut zb[off..], dt_rows, true, none);
            }
        }
    }
}

/// Per-unit coefficients of the LSTM Jacobian at unit `j` (gates `[i, f, g, o]` in `gates`,
/// `tanh(c')` in `aux`, the previous `c` at `old[n + j]`): `a_x` scales row `j` of `U_x` in
/// `dc'/dh` (`a_o` in `dh'/dh` directly), `bco = o (1 - tanh^2 c')` carries `dc'` into `dh'`,
/// `fg` is `dc'/dc`.
struct LstmCoefs<T> {
    a_i: T,
    a_f: T,
    a_g: T,
    a_o: T,
    bco: T,
    fg: T,
}

impl<T: Real> LstmCoefs<T> {
    #[inline(always)]
    fn at(gates: &[T], aux: &[T], old: &[T], n: usize, j: usize) -> Self {
        let (ig, fg, gg, og, tc) =
            (gates[j], gates[n + j], gates[2 * n + j], gates[3 * n + j], aux[j]);
        Self {
            a_i: ig * (T::one() - ig) * gg,
            a_f: fg * (T::one() - fg) * old[n + j],
            a_g: ig * (T::one() - gg * gg),
            a_o: og * (T::one() - og) * tc,
            bco: og * (T::one() - tc * tc),
            fg,
        }
    }
}

/// Per-unit coefficients of the GRU Jacobian at unit `j` (gates `[r, z, n]` in `gates`,
/// `U_n h + b_n` in `aux`, the previous `h` in `old`): `c_r`, `c_z`, `c_rn` scale row `j` of
/// `U_r`, `U_z`, `U_n` in `dh'/dh` (`c_n` the input weights' `W_n` row), `zg` is the carried
/// diagonal.
struct GruCoefs<T> {
    c_r: T,
    c_z: T,
    c_rn: T,
    c_n: T,
    zg: T,
}

impl<T: Real> GruCoefs<T> {
    #[inline(always)]
    fn at(gates: &[T], aux: &[T], old: &[T], n: usize, j: usize) -> Self {
        let (r, zg, nn, un) = (gates[j], gates[n + j], gates[2 * n + j], aux[j]);
        let c_n = (T::one() - zg) * (T::one() - nn * nn);
        Self {
            c_r: c_n * un * r * (T::one() - r),
            c_z: (old[j] - nn) * zg * (T::one() - zg),
            c_rn: c_n * r,
            c_n,
            zg,
        }
    }
}

/// `dst = c[0] a[0] + c[1] a[1] + c[2] a[2] + e w`, elementwise.
#[inline(always)]
fn combine4_scalar<T: Real>(dst: &mut [T], c: [T; 3], e: T, a: [&[T]; 3], w: &[T]) {
    let len = dst.len();
    let (a0, a1, a2, w) = (&a[0][..len], &a[1][..len], &a[2][..len], &w[..len]);
    for i in 0..len {
        dst[i] = c[0] * a0[i] + c[1] * a1[i] + c[2] * a2[i] + e * w[i];
    }
}

/// `dst = c[0] a + c[1] b + c[2] d`, elementwise.
#[inline(always)]
fn combine3_scalar<T: Real>(dst: &mut [T], c: [T; 3], a: &[T], b: &[T], d: &[T]) {
    for (((o, &x), &y), &w) in dst.iter_mut().zip(a).zip(b).zip(d) {
        *o = c[0] * x + c[1] * y + c[2] * w;
    }
}

/// `dst[r] = c[0][r] u[0][r] + c[1][r] u[1][r] + c[2][r] u[2][r] + c[3][r] u[3][r]` (per-row
/// coefficient vectors, the same sum order as [`combine4_scalar`]).
#[inline(always)]
fn combine4_elementwise<T: Real>(dst: &mut [T], c: [&[T]; 4], u: [&[T]; 4]) {
    let n = dst.len();
    let (c0, c1, c2, c3) = (&c[0][..n], &c[1][..n], &c[2][..n], &c[3][..n]);
    let (u0, u1, u2, u3) = (&u[0][..n], &u[1][..n], &u[2][..n], &u[3][..n]);
    for r in 0..n {
        dst[r] = c0[r] * u0[r] + c1[r] * u1[r] + c2[r] * u2[r] + c3[r] * u3[r];
    }
}

/// `dst[r] = c[0][r] u[0][r] + c[1][r] u[1][r] + c[2][r] u[2][r]` (per-row coefficients).
#[inline(always)]
fn combine3_elementwise<T: Real>(dst: &mut [T], c: [&[T]; 3], u: [&[T]; 3]) {
    let n = dst.len();
    let (c0, c1, c2) = (&c[0][..n], &c[1][..n], &c[2][..n]);
    let (u0, u1, u2) = (&u[0][..n], &u[1][..n], &u[2][..n]);
    for r in 0..n {
        dst[r] = c0[r] * u0[r] + c1[r] * u1[r] + c2[r] * u2[r];
    }
}
