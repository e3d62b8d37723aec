//! The PyTorch GRU cell: gates `[r; z; n]`, `n = tanh(W_n x + b_in + r * (U_n h + b_hn))`,
//! `h' = (1 - z) n + z h`.
//!
//! Tangent (`da = W_in dIn`, `du = U dh` kept apart because `r` multiplies only `u_n`):
//! `dr = r(1-r)(da_r + du_r)`, `dz = z(1-z)(da_z + du_z)`,
//! `dn = (1 - n^2)(da_n + dr * u_n + r * du_n)`, `dh' = (1-z) dn + (h - n) dz + z dh`. The
//! combined tangent step (`combined.rs`) folds this, with the per-unit coefficients of
//! [`GruCoefs`], into `dh' = (c_r U_r + c_z U_z + c_rn U_n) dh + (c_r W_r + c_z W_z + c_n W_n)
//! dIn + z dh`: one `N x N x k` GEMM per weight matrix.

use super::add_into;
use super::combined::{combine3_elementwise, combine3_scalar};
use crate::rnn::activation::{sigmoid_in_place, tanh_in_place};
use crate::scalar::Real;

/// One sequence's forward step: `pi`, `pr` are the `3N` input and recurrent pre-activations;
/// caches the gates `r, z, n` in `gates` and `u_n = U_n h + b_hn` in `aux`.
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

/// Unit `j`'s row of the row-scaled weights of the combined tangent step, for the first
/// `count` of `mats` (recurrent weights with `c_rn`, then a stacked layer's input weights with
/// `c_n`, which `r` does not gate); `coef[j] = z` scales the carried-over `dh`.
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
) {
    let GruCoefs { c_r, c_z, c_rn, c_n, zg } = GruCoefs::at(gates, aux, old, n, j);
    coef[j] = zg;
    for (l_in, (m, w)) in mats.into_iter().take(count).enumerate() {
        let u = |g: usize| &w[(g * n + j) * n..(g * n + j + 1) * n];
        let cn = if l_in == 0 { c_rn } else { c_n };
        combine3_scalar(&mut m[j * n..(j + 1) * n], [c_r, c_z, cn], u(0), u(1), u(2));
    }
}

/// The Jacobian `J_b` (`n x n`, column-major, leading dimension `st`) of a one-layer GRU, from
/// the same coefficients and sums as [`scaled_rows`] (`rec_cm`: the recurrent weights per gate
/// in column-major order, `cv`: scratch of `4 n`), plus the carried diagonal `J[j, j] += z_j`.
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
) {
    let u = |g: usize, i: usize| &rec_cm[(g * n + i) * n..(g * n + i + 1) * n];
    for j in 0..n {
        let GruCoefs { c_r, c_z, c_rn, zg, .. } = GruCoefs::at(gates, aux, old, n, j);
        for (c, v) in [c_r, c_z, c_rn, zg].into_iter().enumerate() {
            cv[c * n + j] = v;
        }
    }
    let c = |i: usize| &cv[i * n..(i + 1) * n];
    for i in 0..n {
        let col = &mut jb[i * st..(i + 1) * st];
        combine3_elementwise(&mut col[..n], [c(0), c(1), c(2)], [u(0, i), u(1, i), u(2, i)]);
        col[i] += cv[3 * n + i];
    }
}
