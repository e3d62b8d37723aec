//! The antisymmetric RNN (Chang et al. 2019), `h' = h + eps tanh((W - W^T - gamma I) h + V x
//! + b)` (`Network::asrnn_recurrent` builds the recurrent matrix `W - W^T - gamma I`).
//!
//! Tangent: `dh' = dh + eps (1 - tanh^2 pre) * P`; the forward step caches `1 - tanh^2 pre`
//! in `aux`.

use super::add_into;
use crate::rnn::CellConstants;
use crate::rnn::activation::tanh_in_place;
use crate::scalar::Real;

/// One sequence's forward step (see [`super::rnn::forward`] for the arguments).
#[inline(always)]
pub(super) fn forward<T: Real>(
    pi: &mut [T],
    pr: &[T],
    old: &[T],
    new: &mut [T],
    aux: &mut [T],
    n: usize,
    consts: &CellConstants,
) {
    let eps = T::from_f64(consts.eps);
    add_into(&mut pi[..n], &pr[..n]);
    tanh_in_place(&mut pi[..n]);
    for j in 0..n {
        let a = pi[j];
        new[j] = old[j] + eps * a;
        aux[j] = T::one() - a * a;
    }
}

/// One tangent column: `zc = qc + eps aux * p`.
#[inline(always)]
pub(super) fn tangent_column<T: Real>(
    zc: &mut [T],
    qc: &[T],
    p: &[T],
    aux: &[T],
    n: usize,
    consts: &CellConstants,
) {
    let eps = T::from_f64(consts.eps);
    for j in 0..n {
        zc[j] = qc[j] + eps * aux[j] * p[j];
    }
}
