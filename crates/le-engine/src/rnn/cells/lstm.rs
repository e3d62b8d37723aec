//! The PyTorch LSTM cell: gates `[i; f; g; o]`, state `(h, c)`,
//! `c' = f c + i g`, `h' = o tanh(c')`.
//!
//! Tangent (`P_x = U_x dh (+ W_x dIn)` per gate, `s(x)` logistic):
//! `dc' = f(1-f) c P_f + i(1-i) g P_i + i(1-g^2) P_g + f dc` (last term only for the full
//! state), `dh' = o(1-o) tanh(c') P_o + o (1 - tanh^2 c') dc'`. The combined tangent step
//! (`combined.rs`) never forms the `P_x`: with the per-unit coefficients of [`LstmCoefs`] it
//! builds the row-scaled weights `[a_i U_i + a_f U_f + a_g U_g; a_o U_o]` (rows for `dc'` and
//! `dh'`) and multiplies them with `Q_h` in one `2N x N x k` GEMM.

use super::add_into;
use super::combined::{
    combine3_elementwise, combine3_scalar, combine4_elementwise, combine4_scalar,
};
use crate::rnn::activation::{sigmoid_in_place, tanh_in_place};
use crate::scalar::Real;

/// One sequence's forward step: `pi`, `pr` are the `4N` input and recurrent pre-activations,
/// `old`, `new` the states `[h; c]`; caches the gates in `gates` and `tanh(c')` in `aux`.
#[inline(always)]
pub(super) fn forward<T: Real>(
    pi: &mut [T],
    pr: &[T],
    old: &[T],
    new: &mut [T],
    gates: &mut [T],
    aux: &mut [T],
    n: usize,
) {
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

/// Unit `j`'s rows of the row-scaled weights of the combined tangent step, for the first
/// `count` of `mats` (recurrent weights, then a stacked layer's input weights): row `j` is
/// `a_o U_o + b (a_i U_i + a_f U_f + a_g U_g)` (for `dh'`), row `n + j` (full state) is
/// `a_i U_i + a_f U_f + a_g U_g` (for `dc'`); `coef[j] = b f`, `coef[n + j] = f` scale the
/// carried-over `dc`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn scaled_rows<T: Real>(
    mats: [(&mut [T], &[T]); 2],
    count: usize,
    gates: &[T],
    aux: &[T],
    old: &[T],
    coef: &mut [T],
    n: usize,
    j: usize,
    full: bool,
) {
    let LstmCoefs { a_i, a_f, a_g, a_o, bco, fg } = LstmCoefs::at(gates, aux, old, n, j);
    coef[j] = bco * fg;
    coef[n + j] = fg;
    // dc' = C Q_h + f dc with C = a_i U_i + a_f U_f + a_g U_g;
    // dh' = a_o U_o Q_h + b dc' = (a_o U_o + b C) Q_h + b f dc.
    let ca = [bco * a_i, bco * a_f, bco * a_g];
    for (m, w) in mats.into_iter().take(count) {
        let u = |g: usize| &w[(g * n + j) * n..(g * n + j + 1) * n];
        combine4_scalar(&mut m[j * n..(j + 1) * n], ca, a_o, [u(0), u(1), u(2)], u(3));
        if full {
            let row = &mut m[(n + j) * n..(n + j + 1) * n];
            combine3_scalar(row, [a_i, a_f, a_g], u(0), u(1), u(2));
        }
    }
}

/// The Jacobian `J_b` (`st x st`, column-major) of a one-layer LSTM, from the same
/// coefficients and sums as [`scaled_rows`] (`rec_cm`: the recurrent weights per gate in
/// column-major order, `cv`: scratch of `9 n`), plus the carried-over diagonals of the full
/// state `J[:, n + j] = b_j f_j e_j + f_j e_{n + j}`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn jacobian<T: Real>(
    jb: &mut [T],
    cv: &mut [T],
    gates: &[T],
    aux: &[T],
    old: &[T],
    rec_cm: &[T],
    n: usize,
    st: usize,
    full: bool,
) {
    let u = |g: usize, i: usize| &rec_cm[(g * n + i) * n..(g * n + i + 1) * n];
    for j in 0..n {
        let LstmCoefs { a_i, a_f, a_g, a_o, bco, fg } = LstmCoefs::at(gates, aux, old, n, j);
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
        if full {
            combine3_elementwise(&mut crows[..n], [c(4), c(5), c(6)], [u0, u1, u2]);
        }
    }
    if full {
        for j in 0..n {
            let col = &mut jb[(n + j) * st..(n + j + 1) * st];
            col.fill(T::zero());
            col[j] = cv[7 * n + j];
            col[n + j] = cv[8 * n + j];
        }
    }
}
