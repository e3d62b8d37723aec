//! The coupled oscillatory RNN (Rusch & Mishra 2021), state `(y, z)`:
//! `z' = z + dt (tanh(pre) - gamma y - eps z)`, `y' = y + dt z'`, with `pre` from the input and the
//! recurrent weights acting on `[y; z]`.
//!
//! Tangent: `dz' = dz + dt((1 - tanh^2 pre) * P - gamma dy - eps dz)`, `dy' = dy + dt dz'`;
//! the forward step caches `1 - tanh^2 pre` in `aux`.

use super::add_into;
use crate::rnn::CellConstants;
use crate::rnn::activation::tanh_in_place;
use crate::scalar::Real;

/// One sequence's forward step (see [`super::rnn::forward`] for the arguments; `old`, `new`
/// are `[y; z]`).
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
    let (dt, gamma, eps) =
        (T::from_f64(consts.dt), T::from_f64(consts.gamma), T::from_f64(consts.eps));
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

/// One tangent column (`qc`, `zc` are `[dy; dz]`).
#[inline(always)]
pub(super) fn tangent_column<T: Real>(
    zc: &mut [T],
    qc: &[T],
    p: &[T],
    aux: &[T],
    n: usize,
    consts: &CellConstants,
) {
    let (dt, gamma, eps) =
        (T::from_f64(consts.dt), T::from_f64(consts.gamma), T::from_f64(consts.eps));
    for j in 0..n {
        let (dy, dzo) = (qc[j], qc[n + j]);
        let dz = dzo + dt * (aux[j] * p[j] - gamma * dy - eps * dzo);
        zc[n + j] = dz;
        zc[j] = dy + dt * dz;
    }
}
