//! One SIMD register of `f32` or `f64` ([`Reg`]), the abstraction the register-tiled QR kernels
//! (`tiles_update.rs`, `tiles_apply_q.rs`) are written over: [`Z`] (AVX-512, 32 registers of
//! 16 `f32` / 8 `f64`) and [`Y`] (AVX2 + FMA, 16 registers of 8 `f32` / 4 `f64`). The kernels
//! are `#[inline(always)]` and generic over `Reg`; the dispatchers (`dispatch_simd!` in
//! `mod.rs`) compile each for its instruction set, and where the register file is smaller
//! ([`Reg::WIDE`] false) the kernels use narrower tiles.
#![allow(unsafe_op_in_unsafe_fn, clippy::too_many_arguments, clippy::needless_range_loop)]

use std::arch::x86_64::*;
use std::marker::PhantomData;

/// One SIMD register of scalars [`Reg::T`], with the handful of operations the tiled kernels
/// use. Loads and stores of `n < L` lanes touch only those lanes (masked).
pub(crate) trait Reg: Copy {
    /// The scalar (`f32` or `f64`).
    type T: Copy + PartialOrd;
    /// The register.
    type V: Copy;
    /// Lanes per register.
    const L: usize;
    /// 32 registers (AVX-512): the wide tiles fit; otherwise (16, AVX2) the narrow ones.
    const WIDE: bool;
    const ZERO: Self::T;
    const ONE: Self::T;
    unsafe fn zero() -> Self::V;
    unsafe fn splat(x: Self::T) -> Self::V;
    unsafe fn load(p: *const Self::T, n: usize) -> Self::V;
    unsafe fn store(p: *mut Self::T, v: Self::V, n: usize);
    unsafe fn fmadd(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    unsafe fn fnmadd(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// `w[l] = sum(acc[l])` for `l < 8`: eight horizontal sums by a transposing tree of
    /// shuffles and adds.
    unsafe fn store_sums8(acc: &[Self::V; 8], w: *mut Self::T);
    /// `w[l] = sum(acc[l])` for `l < 16` (about 2 operations per sum instead of about 8).
    /// `inline(always)` like every kernel piece: a default method is compiled outside the
    /// callers' `target_feature` context, so out of line it would call each intrinsic as a
    /// function.
    #[inline(always)]
    unsafe fn store_sums16(acc: &[Self::V; 16], w: *mut Self::T) {
        let lo: [Self::V; 8] = std::array::from_fn(|l| acc[l]);
        let hi: [Self::V; 8] = std::array::from_fn(|l| acc[8 + l]);
        Self::store_sums8(&lo, w);
        Self::store_sums8(&hi, w.add(8));
    }
}

/// AVX-512 registers of `T`.
#[derive(Clone, Copy)]
pub(crate) struct Z<T>(PhantomData<T>);

/// AVX2 + FMA registers of `T`.
#[derive(Clone, Copy)]
pub(crate) struct Y<T>(PhantomData<T>);

impl Reg for Z<f64> {
    type T = f64;
    type V = __m512d;
    const L: usize = 8;
    const WIDE: bool = true;
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
    unsafe fn store_sums8(acc: &[__m512d; 8], w: *mut f64) {
        // An 8-way tree. Output lane 2j + t holds the sum of its input 4t + j, so the inputs
        // are fed in the order that makes lane l hold acc[l].
        let order = [0, 2, 4, 6, 1, 3, 5, 7];
        let mut u = [_mm512_setzero_pd(); 4];
        for (i, ui) in u.iter_mut().enumerate() {
            let (a, b) = (acc[order[2 * i]], acc[order[2 * i + 1]]);
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
        _mm512_storeu_pd(w, y);
    }
}

impl Reg for Z<f32> {
    type T = f32;
    type V = __m512;
    const L: usize = 16;
    const WIDE: bool = true;
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
    unsafe fn store_sums8(acc: &[__m512; 8], w: *mut f32) {
        let mut all = [_mm512_setzero_ps(); 16];
        all[..8].copy_from_slice(acc);
        let mut sums = [0.0f32; 16];
        Self::store_sums16(&all, sums.as_mut_ptr());
        std::ptr::copy_nonoverlapping(sums.as_ptr(), w, 8);
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

/// Lane mask of the first `n` lanes (`n < 8`) for AVX2's masked loads and stores of `f32`.
#[inline(always)]
unsafe fn mask_ps(n: usize) -> __m256i {
    _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
}

/// Lane mask of the first `n` lanes (`n < 4`) for `f64`.
#[inline(always)]
unsafe fn mask_pd(n: usize) -> __m256i {
    _mm256_cmpgt_epi64(_mm256_set1_epi64x(n as i64), _mm256_setr_epi64x(0, 1, 2, 3))
}

impl Reg for Y<f64> {
    type T = f64;
    type V = __m256d;
    const L: usize = 4;
    const WIDE: bool = false;
    const ZERO: f64 = 0.0;
    const ONE: f64 = 1.0;
    #[inline(always)]
    unsafe fn zero() -> __m256d {
        _mm256_setzero_pd()
    }
    #[inline(always)]
    unsafe fn splat(x: f64) -> __m256d {
        _mm256_set1_pd(x)
    }
    #[inline(always)]
    unsafe fn load(p: *const f64, n: usize) -> __m256d {
        if n >= 4 { _mm256_loadu_pd(p) } else { _mm256_maskload_pd(p, mask_pd(n)) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f64, v: __m256d, n: usize) {
        if n >= 4 {
            _mm256_storeu_pd(p, v);
        } else {
            _mm256_maskstore_pd(p, mask_pd(n), v);
        }
    }
    #[inline(always)]
    unsafe fn fmadd(a: __m256d, b: __m256d, c: __m256d) -> __m256d {
        _mm256_fmadd_pd(a, b, c)
    }
    #[inline(always)]
    unsafe fn fnmadd(a: __m256d, b: __m256d, c: __m256d) -> __m256d {
        _mm256_fnmadd_pd(a, b, c)
    }
    #[inline(always)]
    unsafe fn store_sums8(acc: &[__m256d; 8], w: *mut f64) {
        for half in 0..2 {
            let a = &acc[4 * half..4 * half + 4];
            // [a0_01, a1_01, a0_23, a1_23] and the same for a2, a3.
            let s01 = _mm256_hadd_pd(a[0], a[1]);
            let s23 = _mm256_hadd_pd(a[2], a[3]);
            let lo = _mm256_permute2f128_pd::<0x20>(s01, s23);
            let hi = _mm256_permute2f128_pd::<0x31>(s01, s23);
            _mm256_storeu_pd(w.add(4 * half), _mm256_add_pd(lo, hi));
        }
    }
}

impl Reg for Y<f32> {
    type T = f32;
    type V = __m256;
    const L: usize = 8;
    const WIDE: bool = false;
    const ZERO: f32 = 0.0;
    const ONE: f32 = 1.0;
    #[inline(always)]
    unsafe fn zero() -> __m256 {
        _mm256_setzero_ps()
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> __m256 {
        _mm256_set1_ps(x)
    }
    #[inline(always)]
    unsafe fn load(p: *const f32, n: usize) -> __m256 {
        if n >= 8 { _mm256_loadu_ps(p) } else { _mm256_maskload_ps(p, mask_ps(n)) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m256, n: usize) {
        if n >= 8 {
            _mm256_storeu_ps(p, v);
        } else {
            _mm256_maskstore_ps(p, mask_ps(n), v);
        }
    }
    #[inline(always)]
    unsafe fn fmadd(a: __m256, b: __m256, c: __m256) -> __m256 {
        _mm256_fmadd_ps(a, b, c)
    }
    #[inline(always)]
    unsafe fn fnmadd(a: __m256, b: __m256, c: __m256) -> __m256 {
        _mm256_fnmadd_ps(a, b, c)
    }
    #[inline(always)]
    unsafe fn store_sums8(acc: &[__m256; 8], w: *mut f32) {
        // Per 128-bit half: hadd(hadd(a0, a1), hadd(a2, a3)) holds the half-sums of a0..a3.
        let s01 = _mm256_hadd_ps(acc[0], acc[1]);
        let s23 = _mm256_hadd_ps(acc[2], acc[3]);
        let s45 = _mm256_hadd_ps(acc[4], acc[5]);
        let s67 = _mm256_hadd_ps(acc[6], acc[7]);
        let s0123 = _mm256_hadd_ps(s01, s23);
        let s4567 = _mm256_hadd_ps(s45, s67);
        let lo = _mm256_permute2f128_ps::<0x20>(s0123, s4567);
        let hi = _mm256_permute2f128_ps::<0x31>(s0123, s4567);
        _mm256_storeu_ps(w, _mm256_add_ps(lo, hi));
    }
}
