//! Elementwise `tanh` and logistic sigmoid over slices for the cells' forward step.
//!
//! For `f32` on CPUs with AVX-512 (the default setting), sixteen lanes at a time with the
//! Cephes single-precision formulas: `exp(x) = 2^n exp(r)`, `r = x - n ln 2` (`ln 2` in two
//! parts), `exp(r)` by its degree-6 minimax polynomial, `2^n` by `vscalefps`;
//! `tanh(x) = x + x^3 P(x^2)` for `|x| < 0.625` and `sign(x) (1 - 2 / (exp(2|x|) + 1))`
//! beyond; `sigmoid(x) = 1 / (1 + exp(-x))`. Agreement with the scalar libm versions is
//! tested to a few ulp (`tests` below). Everything else (`f64`, other CPUs) uses the scalar
//! formulas, so `f64` results are unchanged.

use crate::scalar::Real;

/// `x = tanh(x)` elementwise.
#[inline]
pub(crate) fn tanh_in_place<T: Real>(x: &mut [T]) {
    #[cfg(target_arch = "x86_64")]
    if crate::qr::simd::level() == crate::qr::simd::Level::Avx512
        && let Some(x32) = as_f32(x)
    {
        // SAFETY: AVX-512F detected at run time.
        unsafe { avx512::tanh_f32(x32) };
        return;
    }
    for v in x {
        *v = v.tanh();
    }
}

/// `x = 1 / (1 + exp(-x))` elementwise.
#[inline]
pub(crate) fn sigmoid_in_place<T: Real>(x: &mut [T]) {
    #[cfg(target_arch = "x86_64")]
    if crate::qr::simd::level() == crate::qr::simd::Level::Avx512
        && let Some(x32) = as_f32(x)
    {
        // SAFETY: AVX-512F detected at run time.
        unsafe { avx512::sigmoid_f32(x32) };
        return;
    }
    for v in x {
        *v = T::one() / (T::one() + (-*v).exp());
    }
}

/// The slice as `f32` when `T` is `f32`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn as_f32<T: Real>(x: &mut [T]) -> Option<&mut [f32]> {
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() {
        // SAFETY: T is f32 (same type, so same size, alignment and validity).
        Some(unsafe { std::slice::from_raw_parts_mut(x.as_mut_ptr().cast::<f32>(), x.len()) })
    } else {
        None
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    #![allow(unsafe_op_in_unsafe_fn)]
    use std::arch::x86_64::*;

    /// `exp(x)` lane-wise (NaN in, NaN out; overflow to `inf`, underflow through subnormals
    /// to zero as in libm).
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn exp_ps(x: __m512) -> __m512 {
        // Beyond these, exp(x) is inf (> 88.73) or rounds to zero (< -103.97) in f32.
        let xc = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-104.0)), _mm512_set1_ps(89.0));
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm512_mul_ps(xc, _mm512_set1_ps(std::f32::consts::LOG2_E)),
        );
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693_359_4), xc);
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.121_944_4e-4), r);
        let mut p = _mm512_set1_ps(1.987_569_1e-4);
        for c in [1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 0.5] {
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
        }
        let e = _mm512_add_ps(_mm512_fmadd_ps(_mm512_mul_ps(p, r), r, r), _mm512_set1_ps(1.0));
        let out = _mm512_scalef_ps(e, n);
        // NaN lanes: max/min above replaced them; put them back.
        let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(x, x);
        _mm512_mask_mov_ps(out, nan, x)
    }

    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn tanh_ps(x: __m512) -> __m512 {
        let sign = _mm512_set1_epi32(i32::MIN);
        let a = _mm512_castsi512_ps(_mm512_andnot_si512(sign, _mm512_castps_si512(x)));
        // |x| < 0.625: x + x z P(z), z = x^2.
        let z = _mm512_mul_ps(x, x);
        let mut p = _mm512_set1_ps(-5.704_988_7e-3);
        for c in [2.063_909e-2, -5.373_971_6e-2, 1.333_144_2e-1, -3.333_328e-1] {
            p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(c));
        }
        let small = _mm512_fmadd_ps(_mm512_mul_ps(x, z), p, x);
        // Otherwise sign(x) (1 - 2 / (exp(2|x|) + 1)).
        let e = exp_ps(_mm512_add_ps(a, a));
        let big = _mm512_sub_ps(
            _mm512_set1_ps(1.0),
            _mm512_div_ps(_mm512_set1_ps(2.0), _mm512_add_ps(e, _mm512_set1_ps(1.0))),
        );
        let big = _mm512_castsi512_ps(_mm512_or_si512(
            _mm512_castps_si512(big),
            _mm512_and_si512(sign, _mm512_castps_si512(x)),
        ));
        let is_small = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(a, _mm512_set1_ps(0.625));
        let out = _mm512_mask_mov_ps(big, is_small, small);
        let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(x, x);
        _mm512_mask_mov_ps(out, nan, x)
    }

    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn sigmoid_ps(x: __m512) -> __m512 {
        let one = _mm512_set1_ps(1.0);
        let e = exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), x));
        _mm512_div_ps(one, _mm512_add_ps(one, e))
    }

    /// Apply `f` to `x` sixteen lanes at a time (masked tail).
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn map(x: &mut [f32], f: unsafe fn(__m512) -> __m512) {
        let mut i = 0;
        while i < x.len() {
            let n = (x.len() - i).min(16);
            let mask = ((1u32 << n) - 1) as u16;
            let p = x.as_mut_ptr().add(i);
            _mm512_mask_storeu_ps(p, mask, f(_mm512_maskz_loadu_ps(mask, p)));
            i += 16;
        }
    }

    /// # Safety
    /// AVX-512F available.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn tanh_f32(x: &mut [f32]) {
        map(x, |v| unsafe { tanh_ps(v) })
    }

    /// # Safety
    /// AVX-512F available.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn sigmoid_f32(x: &mut [f32]) {
        map(x, |v| unsafe { sigmoid_ps(v) })
    }
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
