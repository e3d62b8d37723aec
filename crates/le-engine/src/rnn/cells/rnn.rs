//! The Elman RNN cell, `h' = tanh(W x + b_ih + U h + b_hh)`.
//!
//! Tangent: `dh' = (1 - h'^2) * P` with `P = U dh (+ W dIn)`; the forward step caches
//! `1 - h'^2` in `aux`.

use super::add_into;
use crate::rnn::activation::tanh_in_place;
use crate::scalar::Real;

/// One sequence's forward step: `pi` = input pre-activation, `pr` = recurrent one (`N` rows
/// each); writes the new state and `aux = 1 - h'^2`.
#[inline(always)]
pub(super) fn forward<T: Real>(pi: &mut [T], pr: &[T], new: &mut [T], aux: &mut [T], n: usize) {
    add_into(&mut pi[..n], &pr[..n]);
    tanh_in_place(&mut pi[..n]);
    for j in 0..n {
        let h = pi[j];
        new[j] = h;
        aux[j] = T::one() - h * h;
    }
}

/// One tangent column: `zc = aux * p`.
#[inline(always)]
pub(super) fn tangent_column<T: Real>(zc: &mut [T], p: &[T], aux: &[T], n: usize) {
    for j in 0..n {
        zc[j] = aux[j] * p[j];
    }
}
