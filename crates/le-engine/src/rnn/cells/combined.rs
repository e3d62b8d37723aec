//! The combined tangent step of the multi-gate cells (LSTM, GRU) for one sequence
//! ([`CombinedStep`]): the gate derivatives folded into row-scaled copies of the weights
//! (`lstm.rs`, `gru.rs` give the rows), one GEMM per weight matrix; and the same entries
//! written as the explicit Jacobian for the factored-`Q` path. The elementwise combinations
//! both use are at the end.

use super::{gru, lstm, matmul};
use crate::rnn::Network;
use crate::scalar::Real;

/// What the combined LSTM/GRU tangent step of one sequence reads (see
/// `BatchState::tangent_combined`).
pub(crate) struct CombinedStep<'a, T: Real> {
    pub(super) net: &'a Network<T>,
    pub(super) q: &'a [T],
    pub(super) gates_all: &'a [Vec<T>],
    pub(super) aux_all: &'a [Vec<T>],
    pub(super) old_all: &'a [Vec<T>],
    pub(super) n: usize,
    pub(super) s: usize,
    pub(super) gn: usize,
    pub(super) st: usize,
    pub(super) dt_rows: usize,
    pub(super) rows: usize,
    pub(super) k: usize,
    pub(super) lstm_cell: bool,
    pub(super) full: bool,
}

impl<T: Real> CombinedStep<'_, T> {
    /// Sequence `b`'s tangent columns `zb`, with AVX-512 or AVX2 + FMA code generation where
    /// the level allows (the row scalings and elementwise loops vectorise 16 or 8 lanes wide
    /// instead of 4).
    pub(crate) fn run(&self, b: usize, zb: &mut [T], scratch: &mut [T]) {
        #[cfg(target_arch = "x86_64")]
        match aelle_support::simd::level() {
            // SAFETY: the CPU supports AVX-512F/VL, AVX2 and FMA (run-time detection).
            aelle_support::simd::Level::Avx512 => {
                return unsafe { self.run_avx512(b, zb, scratch) };
            }
            // SAFETY: the CPU supports AVX2 and FMA.
            aelle_support::simd::Level::Avx2Fma => return unsafe { self.run_avx2(b, zb, scratch) },
            aelle_support::simd::Level::Baseline => {}
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
        {
            use aelle_support::simd::Level;
            match aelle_support::simd::level() {
                // SAFETY: the CPU supports AVX-512F/VL, AVX2 and FMA (run-time detection).
                Level::Avx512 => return unsafe { self.jacobian_avx512(b, jb, scratch, rec_cm) },
                // SAFETY: the CPU supports AVX2 and FMA.
                Level::Avx2Fma => return unsafe { self.jacobian_avx2(b, jb, scratch, rec_cm) },
                Level::Baseline => {}
            }
        }
        self.jacobian_generic(b, jb, scratch, rec_cm);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
    unsafe fn jacobian_avx512(&self, b: usize, jb: &mut [T], scratch: &mut [T], rec_cm: &[T]) {
        self.jacobian_generic(b, jb, scratch, rec_cm);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn jacobian_avx2(&self, b: usize, jb: &mut [T], scratch: &mut [T], rec_cm: &[T]) {
        self.jacobian_generic(b, jb, scratch, rec_cm);
    }

    #[inline(always)]
    fn jacobian_generic(&self, b: usize, jb: &mut [T], scratch: &mut [T], rec_cm: &[T]) {
        let (n, st, gn, s) = (self.n, self.st, self.gn, self.s);
        assert!(self.net.layers.len() == 1 && jb.len() >= st * st && scratch.len() >= 9 * n);
        let gates = &self.gates_all[0][b * gn..(b + 1) * gn];
        let aux = &self.aux_all[0][b * n..(b + 1) * n];
        let old = &self.old_all[0][b * s..(b + 1) * s];
        let (cv, _) = scratch.split_at_mut(9 * n);
        if self.lstm_cell {
            lstm::jacobian(jb, cv, gates, aux, old, rec_cm, n, st, self.full);
        } else {
            gru::jacobian(jb, cv, gates, aux, old, rec_cm, n, st);
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
    unsafe fn run_avx512(&self, b: usize, zb: &mut [T], scratch: &mut [T]) {
        self.run_generic(b, zb, scratch);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run_avx2(&self, b: usize, zb: &mut [T], scratch: &mut [T]) {
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
                    lstm::scaled_rows(mats, count, gates, aux, old, coef, n, j, full);
                } else {
                    gru::scaled_rows(mats, count, gates, aux, old, coef, n, j);
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

/// `dst = c[0] a[0] + c[1] a[1] + c[2] a[2] + e w`, elementwise.
#[inline(always)]
pub(super) fn combine4_scalar<T: Real>(dst: &mut [T], c: [T; 3], e: T, a: [&[T]; 3], w: &[T]) {
    let len = dst.len();
    let (a0, a1, a2, w) = (&a[0][..len], &a[1][..len], &a[2][..len], &w[..len]);
    for i in 0..len {
        dst[i] = c[0] * a0[i] + c[1] * a1[i] + c[2] * a2[i] + e * w[i];
    }
}

/// `dst = c[0] a + c[1] b + c[2] d`, elementwise.
#[inline(always)]
pub(super) fn combine3_scalar<T: Real>(dst: &mut [T], c: [T; 3], a: &[T], b: &[T], d: &[T]) {
    for (((o, &x), &y), &w) in dst.iter_mut().zip(a).zip(b).zip(d) {
        *o = c[0] * x + c[1] * y + c[2] * w;
    }
}

/// `dst[r] = c[0][r] u[0][r] + c[1][r] u[1][r] + c[2][r] u[2][r] + c[3][r] u[3][r]` (per-row
/// coefficient vectors, the same sum order as [`combine4_scalar`]).
#[inline(always)]
pub(super) fn combine4_elementwise<T: Real>(dst: &mut [T], c: [&[T]; 4], u: [&[T]; 4]) {
    let n = dst.len();
    let (c0, c1, c2, c3) = (&c[0][..n], &c[1][..n], &c[2][..n], &c[3][..n]);
    let (u0, u1, u2, u3) = (&u[0][..n], &u[1][..n], &u[2][..n], &u[3][..n]);
    for r in 0..n {
        dst[r] = c0[r] * u0[r] + c1[r] * u1[r] + c2[r] * u2[r] + c3[r] * u3[r];
    }
}

/// `dst[r] = c[0][r] u[0][r] + c[1][r] u[1][r] + c[2][r] u[2][r]` (per-row coefficients).
#[inline(always)]
pub(super) fn combine3_elementwise<T: Real>(dst: &mut [T], c: [&[T]; 3], u: [&[T]; 3]) {
    let n = dst.len();
    let (c0, c1, c2) = (&c[0][..n], &c[1][..n], &c[2][..n]);
    let (u0, u1, u2) = (&u[0][..n], &u[1][..n], &u[2][..n]);
    for r in 0..n {
        dst[r] = c0[r] * u0[r] + c1[r] * u1[r] + c2[r] * u2[r];
    }
}
