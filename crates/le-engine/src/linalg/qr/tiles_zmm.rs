//! One AVX-512 register of `f32` or `f64` ([`Zmm`]), the abstraction the register-tiled QR
//! kernels (`tiles_update.rs`, `tiles_apply_q.rs`) are written over.
#![allow(unsafe_op_in_unsafe_fn, clippy::too_many_arguments, clippy::needless_range_loop)]

use std::arch::x86_64::*;

/// One SIMD register of `f32` (16 lanes) or `f64` (8 lanes), AVX-512.
pub(crate) trait Zmm: Copy + PartialOrd {
    type V: Copy;
    const L: usize;
    const ZERO: Self;
    const ONE: Self;
    unsafe fn zero() -> Self::V;
    unsafe fn splat(x: Self) -> Self::V;
    unsafe fn load(p: *const Self, n: usize) -> Self::V;
    unsafe fn store(p: *mut Self, v: Self::V, n: usize);
    unsafe fn fmadd(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    unsafe fn fnmadd(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    /// `w[l] = sum(acc[l])` for `l < 16`: sixteen horizontal sums by a transposing tree
    /// of shuffles and adds (about 2 operations per sum instead of about 8).
    unsafe fn store_sums16(acc: &[Self::V; 16], w: *mut Self);
}

impl Zmm for f64 {
    type V = __m512d;
    const L: usize = 8;
    const ZERO: f64 = 0.0;
    const ONE: f64 = 1.0;
    #[inline(always)]
    unsafe fn zero() -> __m512d {
        _mm512_setzero_pd()
    }
    #[inline(always)]
    unsafe fn splat(x: f64) -> __m512d {
        _mm512_set1_pd(x)
    }
    #[inline(always)]
    unsafe fn load(p: *const f64, n: usize) -> __m512d {
        if n >= 8 { _mm512_loadu_pd(p) } else { _mm512_maskz_loadu_pd(((1u32 << n) - 1) as u8, p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f64, v: __m512d, n: usize) {
        if n >= 8 {
            _mm512_storeu_pd(p, v);
        } else {
            _mm512_mask_storeu_pd(p, ((1u32 << n) - 1) as u8, v);
        }
    }
    #[inline(always)]
    unsafe fn fmadd(a: __m512d, b: __m512d, c: __m512d) -> __m512d {
        _mm512_fmadd_pd(a, b, c)
    }
    #[inline(always)]
    unsafe fn fnmadd(a: __m512d, b: __m512d, c: __m512d) -> __m512d {
        _mm512_fnmadd_pd(a, b, c)
    }
    #[inline(always)]
    unsafe fn add(a: __m512d, b: __m512d) -> __m512d {
        _mm512_add_pd(a, b)
    }
    #[inline(always)]
    unsafe fn store_sums16(acc: &[__m512d; 16], w: *mut f64) {
        // Two 8-way trees. Output lane 2j + t of a tree holds the sum of its input 4t + j,
        // so the inputs are fed in the order that makes lane l hold acc[l].
        for half in 0..2 {
            let v = |l: usize| acc[half * 8 + l];
            let order = [0, 2, 4, 6, 1, 3, 5, 7];
            let mut u = [_mm512_setzero_pd(); 4];
            for (i, ui) in u.iter_mut().enumerate() {
                let (a, b) = (v(order[2 * i]), v(order[2 * i + 1]));
                *ui = _mm512_add_pd(
                    _mm512_shuffle_f64x2::<0x44>(a, b),
                    _mm512_shuffle_f64x2::<0xEE>(a, b),
                );
            }
            let mut x = [_mm512_setzero_pd(); 2];
            for (i, xi) in x.iter_mut().enumerate() {
                let (c, d) = (u[2 * i], u[2 * i + 1]);
                *xi = _mm512_add_pd(
                    _mm512_shuffle_f64x2::<0x88>(c, d),
                    _mm512_shuffle_f64x2::<0xDD>(c, d),
                );
            }
            let y = _mm512_add_pd(
                _mm512_shuffle_pd::<0x00>(x[0], x[1]),
                _mm512_shuffle_pd::<0xFF>(x[0], x[1]),
            );
            _mm512_storeu_pd(w.add(half * 8), y);
        }
    }
}

impl Zmm for f32 {
    type V = __m512;
    const L: usize = 16;
    const ZERO: f32 = 0.0;
    const ONE: f32 = 1.0;
    #[inline(always)]
    unsafe fn zero() -> __m512 {
        _mm512_setzero_ps()
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> __m512 {
        _mm512_set1_ps(x)
    }
    #[inline(always)]
    unsafe fn load(p: *const f32, n: usize) -> __m512 {
        if n >= 16 {
            _mm512_loadu_ps(p)
        } else {
            _mm512_maskz_loadu_ps(((1u32 << n) - 1) as u16, p)
        }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m512, n: usize) {
        if n >= 16 {
            _mm512_storeu_ps(p, v);
        } else {
            _mm512_mask_storeu_ps(p, ((1u32 << n) - 1) as u16, v);
        }
    }
    #[inline(always)]
    unsafe fn fmadd(a: __m512, b: __m512, c: __m512) -> __m512 {
        _mm512_fmadd_ps(a, b, c)
    }
    #[inline(always)]
    unsafe fn fnmadd(a: __m512, b: __m512, c: __m512) -> __m512 {
        _mm512_fnmadd_ps(a, b, c)
    }
    #[inline(always)]
    unsafe fn add(a: __m512, b: __m512) -> __m512 {
        _mm512_add_ps(a, b)
    }
    #[inline(always)]
    unsafe fn store_sums16(acc: &[__m512; 16], w: *mut f32) {
        // Output lane 4j + t holds the sum of input 4t + j: feed the inputs transposed.
        let order = [0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15];
        let mut u = [_mm512_setzero_ps(); 8];
        for (i, ui) in u.iter_mut().enumerate() {
            let (a, b) = (acc[order[2 * i]], acc[order[2 * i + 1]]);
            *ui = _mm512_add_ps(
                _mm512_shuffle_f32x4::<0x44>(a, b),
                _mm512_shuffle_f32x4::<0xEE>(a, b),
            );
        }
        let mut v = [_mm512_setzero_ps(); 4];
        for (i, vi) in v.iter_mut().enumerate() {
            let (c, d) = (u[2 * i], u[2 * i + 1]);
            *vi = _mm512_add_ps(
                _mm512_shuffle_f32x4::<0x88>(c, d),
                _mm512_shuffle_f32x4::<0xDD>(c, d),
            );
        }
        let mut x = [_mm512_setzero_ps(); 2];
        for (i, xi) in x.iter_mut().enumerate() {
            let (e, f) = (v[2 * i], v[2 * i + 1]);
            *xi = _mm512_add_ps(_mm512_shuffle_ps::<0x44>(e, f), _mm512_shuffle_ps::<0xEE>(e, f));
        }
        let y = _mm512_add_ps(
            _mm512_shuffle_ps::<0x88>(x[0], x[1]),
            _mm512_shuffle_ps::<0xDD>(x[0], x[1]),
        );
        _mm512_storeu_ps(w, y);
    }
}
