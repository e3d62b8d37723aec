//! Elementwise `tanh` and logistic sigmoid over slices for the cells' forward step.
//!
//! `f32` uses the branch-free functions of [`aelle_support::fastmath`] (the same ones rnn-models'
//! fused trainer uses), in loops compiled for AVX-512, for AVX2 + FMA and for the baseline and
//! chosen at run time (Rust never contracts `a * b + c`, so all three give the same bits);
//! agreement with libm is tested to 4 ulp (`tests` below). `f64` uses the scalar libm
//! formulas, so `f64` results are unchanged.

use crate::scalar::Real;
use aelle_support::fastmath::{fast_sigmoid, fast_tanh};

/// `x = tanh(x)` elementwise.
#[inline]
pub(crate) fn tanh_in_place<T: Real>(x: &mut [T]) {
    if let Some(x32) = as_f32(x) {
        map_f32(x32, fast_tanh);
        return;
    }
    for v in x {
        *v = v.tanh();
    }
}

/// `x = 1 / (1 + exp(-x))` elementwise.
#[inline]
pub(crate) fn sigmoid_in_place<T: Real>(x: &mut [T]) {
    if let Some(x32) = as_f32(x) {
        map_f32(x32, fast_sigmoid);
        return;
    }
    for v in x {
        *v = T::one() / (T::one() + (-*v).exp());
    }
}

/// The slice as `f32` when `T` is `f32`.
#[inline(always)]
fn as_f32<T: Real>(x: &mut [T]) -> Option<&mut [f32]> {
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() {
        // SAFETY: T is f32 (same type, so same size, alignment and validity).
        Some(unsafe { std::slice::from_raw_parts_mut(x.as_mut_ptr().cast::<f32>(), x.len()) })
    } else {
        None
    }
}

/// `x[i] = f(x[i])`, the loop vectorised for the widest SIMD level the CPU has (`f` is a
/// generic parameter so that it is inlined into each compiled copy).
#[inline(always)]
fn map_f32<F: Fn(f32) -> f32 + Copy>(x: &mut [f32], f: F) {
    #[inline(always)]
    fn body<F: Fn(f32) -> f32>(x: &mut [f32], f: F) {
        for v in x {
            *v = f(*v);
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
        unsafe fn avx512<F: Fn(f32) -> f32>(x: &mut [f32], f: F) {
            body(x, f);
        }
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2<F: Fn(f32) -> f32>(x: &mut [f32], f: F) {
            body(x, f);
        }
        use aelle_support::simd::{Level, level};
        match level() {
            // SAFETY: the CPU supports these features (run-time detection in `level`).
            Level::Avx512 => return unsafe { avx512(x, f) },
            // SAFETY: as above.
            Level::Avx2Fma => return unsafe { avx2(x, f) },
            Level::Baseline => {}
        }
    }
    body(x, f);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in units in the last place between two finite `f32` of the same sign (or
    /// across zero, counted through it).
    fn ulps(a: f32, b: f32) -> u32 {
        let key = |x: f32| {
            let i = x.to_bits() as i32;
            if i < 0 { i32::MIN - i } else { i }
        };
        (key(a) as i64 - key(b) as i64).unsigned_abs() as u32
    }

    fn inputs() -> Vec<f32> {
        let mut xs: Vec<f32> = (-20_000..=20_000).map(|i| i as f32 * 1e-3).collect();
        xs.extend((-300..=300).map(|i| i as f32 * 0.5));
        xs.extend([1e-30, -1e-30, 1e-8, -1e-8, 0.0, -0.0, 0.625, -0.625, 0.624_999_9, 1e30, -1e30]);
        xs.extend([f32::INFINITY, f32::NEG_INFINITY, f32::NAN, f32::MAX, f32::MIN]);
        xs
    }

    fn check(name: &str, f: fn(&mut [f32]), want: fn(f32) -> f32) {
        let xs = inputs();
        let mut got = xs.clone();
        f(&mut got);
        let mut worst = (0u32, 0.0f32);
        for (&x, &g) in xs.iter().zip(&got) {
            let w = want(x);
            if w.is_nan() {
                assert!(g.is_nan(), "{name}({x}) = {g}, want NaN");
                continue;
            }
            // Tiny results (|w| < 1e-30, sigmoid's far tail) are compared absolutely.
            if w.abs() < 1e-30 {
                assert!((g - w).abs() < 1e-30, "{name}({x}) = {g:e}, want {w:e}");
                continue;
            }
            let u = ulps(g, w);
            if u > worst.0 {
                worst = (u, x);
            }
        }
        assert!(worst.0 <= 4, "{name}: {} ulp off libm at x = {}", worst.0, worst.1);
    }

    #[test]
    fn tanh_matches_libm() {
        check("tanh", tanh_in_place::<f32>, f32::tanh);
    }

    #[test]
    fn sigmoid_matches_libm() {
        check("sigmoid", sigmoid_in_place::<f32>, |x| 1.0 / (1.0 + (-x).exp()));
    }

    #[test]
    fn f64_is_the_scalar_formula() {
        let xs: Vec<f64> = (-50..=50).map(|i| i as f64 * 0.37).collect();
        let mut t = xs.clone();
        tanh_in_place(&mut t);
        let mut s = xs.clone();
        sigmoid_in_place(&mut s);
        for ((&x, &a), &b) in xs.iter().zip(&t).zip(&s) {
            assert_eq!(a, x.tanh());
            assert_eq!(b, 1.0 / (1.0 + (-x).exp()));
        }
    }
}
