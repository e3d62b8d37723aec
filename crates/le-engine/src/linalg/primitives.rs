//! Level-1 kernels of the Householder QR: `fmadd`, `dot`, `axpy`, generic over the scalar
//! and over whether the caller was compiled with FMA (`const FMA: bool`), always inlined so
//! that each `#[target_feature]` copy of the QR vectorises them for its instruction set.

use crate::scalar::Real;

/// `a * b + c`, fused when the caller was compiled with FMA.
#[inline(always)]
pub(crate) fn fmadd<T: Real, const FMA: bool>(a: T, b: T, c: T) -> T {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

const LANES: usize = 8;

/// `sum_i x_i y_i`: four independent 8-wide partial sums (vectorise to one register each and
/// hide the FMA latency), then 8-wide chunks, then a short scalar tail.
#[inline(always)]
pub(crate) fn dot<T: Real, const FMA: bool>(x: &[T], y: &[T]) -> T {
    let n = x.len().min(y.len());
    let (x, y) = (&x[..n], &y[..n]);
    let mut acc = [[T::zero(); LANES]; 4];
    let mut i = 0;
    while i + 4 * LANES <= n {
        for (u, accu) in acc.iter_mut().enumerate() {
            let xs = &x[i + u * LANES..i + (u + 1) * LANES];
            let ys = &y[i + u * LANES..i + (u + 1) * LANES];
            for l in 0..LANES {
                accu[l] = fmadd::<T, FMA>(xs[l], ys[l], accu[l]);
            }
        }
        i += 4 * LANES;
    }
    while i + LANES <= n {
        let xs = &x[i..i + LANES];
        let ys = &y[i..i + LANES];
        for l in 0..LANES {
            acc[0][l] = fmadd::<T, FMA>(xs[l], ys[l], acc[0][l]);
        }
        i += LANES;
    }
    let mut tail = T::zero();
    while i < n {
        tail = fmadd::<T, FMA>(x[i], y[i], tail);
        i += 1;
    }
    let mut s = [T::zero(); LANES];
    for l in 0..LANES {
        s[l] = (acc[0][l] + acc[1][l]) + (acc[2][l] + acc[3][l]);
    }
    ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7])) + tail
}

/// `y += alpha x`.
#[inline(always)]
pub(crate) fn axpy<T: Real, const FMA: bool>(alpha: T, x: &[T], y: &mut [T]) {
    let n = x.len().min(y.len());
    for (yi, &xi) in y[..n].iter_mut().zip(&x[..n]) {
        *yi = fmadd::<T, FMA>(alpha, xi, *yi);
    }
}
