//! AVX-512 register-tiled kernels for the trailing update of one block's blocked Householder QR
//! (`crate::linalg::qr`), replacing two small GEMM calls per panel when the panel is `NB = 8` wide:
//!
//! * `W = V^T C`: for two columns of `C` at a time, 8 x 2 vector accumulators over the rows
//!   (each row chunk of `C` is loaded once and meets all 8 reflectors), reduced at the end;
//! * `C -= V W`: the 8 x 2 entries of `W` broadcast in registers, each row chunk of `C` loaded
//!   and stored once per panel.
//!
//! The generic GEMM handles these shapes (inner or outer dimension 8) far from its peak; here
//! every FMA operand is in a register or a single streaming load. Row counts that are not a
//! multiple of the vector width use masked loads and stores.
#![allow(unsafe_op_in_unsafe_fn, clippy::too_many_arguments, clippy::needless_range_loop)]
//!
//! Also the vectorised `ln` of the tiled path's `|R_cc|` ([`ln_in_place`]).

use std::arch::x86_64::*;

use super::tiles_reg::Reg;

/// Panel width these kernels are written for.
pub(crate) const NB: usize = 8;

/// `W[r + NB j] = sum_{i < m} V[r][i] C[j][i]` for `j < n2` (`W` is `NB x n2`, leading
/// dimension `NB`); `V[r]` starts at `v + r ldv`, `C[j]` at `c + j ldc`.
///
/// # Safety
/// AVX-512F available; `v`, `c`, `w` valid for the given extents.
#[inline(always)]
pub(crate) unsafe fn vt_c<R: Reg>(
    m: usize,
    n2: usize,
    v: *const R::T,
    ldv: usize,
    c: *const R::T,
    ldc: usize,
    w: *mut R::T,
) {
    let mut j = 0;
    // Column pairs where 16 accumulators fit (AVX-512), single columns otherwise.
    while R::WIDE && j + 2 <= n2 {
        // W columns j and j + 1 are the 16 consecutive entries from w + j NB.
        vt_2cols::<R>(m, v, ldv, c.add(j * ldc), c.add((j + 1) * ldc), w.add(j * NB));
        j += 2;
    }
    while j < n2 {
        vt_1col::<R>(m, v, ldv, c.add(j * ldc), w.add(j * NB));
        j += 1;
    }
}

/// `w[r] = V[:, r]^T x0` for `r < NB` (rows `0..m`): `NB` accumulators, one transposing
/// reduction.
///
/// # Safety
/// As [`vt_2cols`] (`w`: `NB` entries).
#[inline(always)]
unsafe fn vt_1col<R: Reg>(m: usize, v: *const R::T, ldv: usize, c0: *const R::T, w: *mut R::T) {
    let mut acc0 = [R::zero(); NB];
    let mut i = 0;
    while i + R::L <= m {
        let x0 = R::load(c0.add(i), R::L);
        for r in 0..NB {
            acc0[r] = R::fmadd(R::load(v.add(r * ldv + i), R::L), x0, acc0[r]);
        }
        i += R::L;
    }
    if i < m {
        let n = m - i;
        let x0 = R::load(c0.add(i), n);
        for r in 0..NB {
            acc0[r] = R::fmadd(R::load(v.add(r * ldv + i), n), x0, acc0[r]);
        }
    }
    R::store_sums8(&acc0, w);
}

/// `C[j][i] -= sum_r V[r][i] W[r + NB j]` for `i < m`, `j < n2`.
///
/// # Safety
/// As [`vt_c`].
#[inline(always)]
pub(crate) unsafe fn c_minus_v_w<R: Reg>(
    m: usize,
    n2: usize,
    v: *const R::T,
    ldv: usize,
    c: *mut R::T,
    ldc: usize,
    w: *const R::T,
) {
    let mut j = 0;
    // Column pairs: on AVX-512 the 16 broadcast entries of W and 8 row chunks fit, all NB
    // reflectors in one sweep of four chunks at a time; on AVX2 (16 registers) two sweeps of
    // NB / 2 reflectors, two chunks at a time (per chunk pair and sweep 4 loads of C and
    // NB / 2 of V for 2 NB FMAs in four chains).
    while j + 2 <= n2 {
        let (c0, c1) = (c.add(j * ldc), c.add((j + 1) * ldc));
        let (w0, w1) = (w.add(j * NB), w.add((j + 1) * NB));
        if R::WIDE {
            c_minus_v_w_pair::<R, NB, 4>(m, v, ldv, c0, c1, w0, w1);
        } else {
            const H: usize = NB / 2;
            c_minus_v_w_pair::<R, H, 2>(m, v, ldv, c0, c1, w0, w1);
            c_minus_v_w_pair::<R, H, 2>(m, v.add(H * ldv), ldv, c0, c1, w0.add(H), w1.add(H));
        }
        j += 2;
    }
    while j < n2 {
        let c0 = c.add(j * ldc);
        let mut w0 = [R::zero(); NB];
        for r in 0..NB {
            w0[r] = R::splat(*w.add(j * NB + r));
        }
        let mut i = 0;
        while i < m {
            let n = (m - i).min(R::L);
            let mut x0 = R::load(c0.add(i), n);
            for r in 0..NB {
                x0 = R::fnmadd(R::load(v.add(r * ldv + i), n), w0[r], x0);
            }
            R::store(c0.add(i), x0, n);
            i += R::L;
        }
        j += 1;
    }
}

/// `C[j][i] -= sum_{r < H} V[r][i] W_j[r]` for the two columns `c0`, `c1` (`W_0`, `W_1`: `H`
/// entries at `w0`, `w1`), rows `0..m`: the `2 H` entries of `W` broadcast in registers,
/// `Q` row chunks of both columns at a time (`2 Q` independent FMA chains), then single full
/// chunks, then one masked tail.
///
/// # Safety
/// As [`c_minus_v_w`].
#[inline(always)]
unsafe fn c_minus_v_w_pair<R: Reg, const H: usize, const Q: usize>(
    m: usize,
    v: *const R::T,
    ldv: usize,
    c0: *mut R::T,
    c1: *mut R::T,
    w0: *const R::T,
    w1: *const R::T,
) {
    let w0: [R::V; H] = std::array::from_fn(|r| R::splat(*w0.add(r)));
    let w1: [R::V; H] = std::array::from_fn(|r| R::splat(*w1.add(r)));
    let mut i = 0;
    while i + Q * R::L <= m {
        let mut x0: [R::V; Q] = std::array::from_fn(|q| R::load(c0.add(i + q * R::L), R::L));
        let mut x1: [R::V; Q] = std::array::from_fn(|q| R::load(c1.add(i + q * R::L), R::L));
        for r in 0..H {
            for q in 0..Q {
                let vr = R::load(v.add(r * ldv + i + q * R::L), R::L);
                x0[q] = R::fnmadd(vr, w0[r], x0[q]);
                x1[q] = R::fnmadd(vr, w1[r], x1[q]);
            }
        }
        for q in 0..Q {
            R::store(c0.add(i + q * R::L), x0[q], R::L);
            R::store(c1.add(i + q * R::L), x1[q], R::L);
        }
        i += Q * R::L;
    }
    while i < m {
        let n = (m - i).min(R::L);
        let mut x0 = R::load(c0.add(i), n);
        let mut x1 = R::load(c1.add(i), n);
        for r in 0..H {
            let vr = R::load(v.add(r * ldv + i), n);
            x0 = R::fnmadd(vr, w0[r], x0);
            x1 = R::fnmadd(vr, w1[r], x1);
        }
        R::store(c0.add(i), x0, n);
        R::store(c1.add(i), x1, n);
        i += R::L;
    }
}

/// `Y[:, r] = sum_mm coef(r, mm) V[:, mm]` for the `NB` columns of one panel (`Y = V op(T)`),
/// rows `0..m`, in one pass: each row chunk of the `nb <= NB` reflectors is loaded once and
/// all `NB` columns of `Y` are formed in registers. `coef(r, mm)` is `T[r, mm]` (`T^T`,
/// `mm >= r`) when `transpose`, else `T[mm, r]` (`mm <= r`), with `T` column-major, leading
/// dimension `ldt`; columns `r >= nb` of `Y` are set to zero.
///
/// # Safety
/// AVX-512F available; `v` (`nb` columns, stride `ldv`), `y` (`NB` columns, stride `ldy`) and
/// `t` (`nb x nb`, leading dimension `ldt`) valid for the extents.
#[inline(always)]
pub(crate) unsafe fn y_from_v<R: Reg>(
    m: usize,
    nb: usize,
    v: *const R::T,
    ldv: usize,
    y: *mut R::T,
    ldy: usize,
    t: *const R::T,
    ldt: usize,
    transpose: bool,
) {
    if transpose {
        y_from_v_impl::<R, true>(m, nb.min(NB), v, ldv, y, ldy, t, ldt);
    } else {
        y_from_v_impl::<R, false>(m, nb.min(NB), v, ldv, y, ldy, t, ldt);
    }
}

/// [`y_from_v`] for one orientation of `T`: the reflector loop is outermost and fully
/// unrolled, so the `NB` columns of `Y` are `NB` independent accumulator chains (the zero
/// triangle of `op(T)` is skipped at compile time).
#[inline(always)]
unsafe fn y_from_v_impl<R: Reg, const TRANSPOSE: bool>(
    m: usize,
    nb: usize,
    v: *const R::T,
    ldv: usize,
    y: *mut R::T,
    ldy: usize,
    t: *const R::T,
    ldt: usize,
) {
    let mut i = 0;
    while i < m {
        let n = (m - i).min(R::L);
        let mut acc = [R::zero(); NB];
        for mm in 0..NB {
            if mm >= nb {
                break;
            }
            let vv = R::load(v.add(mm * ldv + i), n);
            for r in 0..NB {
                // coef(r, mm): T[r, mm] (mm >= r) or T[mm, r] (mm <= r), zero otherwise;
                // columns r >= nb of Y stay exactly zero.
                if r >= nb {
                    continue;
                }
                if TRANSPOSE && mm >= r {
                    acc[r] = R::fmadd(R::splat(*t.add(r + mm * ldt)), vv, acc[r]);
                } else if !TRANSPOSE && mm <= r {
                    acc[r] = R::fmadd(R::splat(*t.add(mm + r * ldt)), vv, acc[r]);
                }
            }
        }
        for (r, a) in acc.iter().enumerate() {
            R::store(y.add(r * ldy + i), *a, n);
        }
        i += R::L;
    }
}

/// `w[r] = V[:, r]^T x0` and `w[NB + r] = V[:, r]^T x1` for `r < NB` (rows `0..m`): the
/// column-pair kernel of [`vt_c`], for two vectors that need not share a stride.
///
/// # Safety
/// AVX-512F available; `v` (`NB` columns, stride `ldv`), `x0`, `x1` (`m` entries) and `w`
/// (16 entries) valid.
#[inline(always)]
pub(crate) unsafe fn vt_2cols<R: Reg>(
    m: usize,
    v: *const R::T,
    ldv: usize,
    c0: *const R::T,
    c1: *const R::T,
    w: *mut R::T,
) {
    if !R::WIDE {
        // 16 accumulators do not fit beside the operands in 16 registers: one column at a
        // time (faster on AVX2 in `examples/rnn_profile` than two sweeps of NB / 2 reflectors
        // over a pair).
        vt_1col::<R>(m, v, ldv, c0, w);
        vt_1col::<R>(m, v, ldv, c1, w.add(NB));
        return;
    }
    let mut acc0 = [R::zero(); NB];
    let mut acc1 = [R::zero(); NB];
    let mut i = 0;
    // Full vectors (no masks, no per-load branch), then one masked tail.
    while i + R::L <= m {
        let x0 = R::load(c0.add(i), R::L);
        let x1 = R::load(c1.add(i), R::L);
        for r in 0..NB {
            let vr = R::load(v.add(r * ldv + i), R::L);
            acc0[r] = R::fmadd(vr, x0, acc0[r]);
            acc1[r] = R::fmadd(vr, x1, acc1[r]);
        }
        i += R::L;
    }
    if i < m {
        let n = m - i;
        let x0 = R::load(c0.add(i), n);
        let x1 = R::load(c1.add(i), n);
        for r in 0..NB {
            let vr = R::load(v.add(r * ldv + i), n);
            acc0[r] = R::fmadd(vr, x0, acc0[r]);
            acc1[r] = R::fmadd(vr, x1, acc1[r]);
        }
    }
    let mut all = [R::zero(); 16];
    all[..NB].copy_from_slice(&acc0);
    all[NB..].copy_from_slice(&acc1);
    R::store_sums16(&all, w);
}

/// `x[i] = ln x[i]` for `x[i] >= 0`, eight lanes at a time: `x = m 2^e` with `m` in
/// `[sqrt(1/2), sqrt(2))` (`getmant`/`getexp`), `ln m = 2 atanh(s)`, `s = (m - 1) / (m + 1)`,
/// `|s| <= 0.1716`, by its odd series to `s^23` (the next term is below `1e-18` relative), plus
/// `e ln 2` in two parts. Agrees with libm's `ln` to a few ulp. Lanes that are zero,
/// subnormal, infinite or NaN fall back to `f64::ln` (same special values as before).
///
/// # Safety
/// AVX-512F available.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn ln_in_place(x: &mut [f64]) {
    const LN2_HI: f64 = 0.693_147_180_369_123_8;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    // 2 / (2 j + 1) for the series 2 s (1 + s^2 / 3 + s^4 / 5 + ...).
    let coef: [f64; 12] = std::array::from_fn(|j| 2.0 / (2 * j + 1) as f64);
    let mut i = 0;
    while i < x.len() {
        let n = (x.len() - i).min(8);
        let mask = ((1u32 << n) - 1) as u8;
        let p = x.as_mut_ptr().add(i);
        let v = _mm512_maskz_loadu_pd(mask, p);
        // Lanes needing the scalar path: not (MIN_POSITIVE <= v < inf).
        let ok = _mm512_mask_cmp_pd_mask::<_CMP_GE_OQ>(mask, v, _mm512_set1_pd(f64::MIN_POSITIVE))
            & _mm512_cmp_pd_mask::<_CMP_LT_OQ>(v, _mm512_set1_pd(f64::INFINITY));
        let mut e = _mm512_getexp_pd(v);
        let mut m = _mm512_getmant_pd::<_MM_MANT_NORM_1_2, _MM_MANT_SIGN_SRC>(v);
        let big = _mm512_cmp_pd_mask::<_CMP_GT_OQ>(m, _mm512_set1_pd(std::f64::consts::SQRT_2));
        m = _mm512_mask_mul_pd(m, big, m, _mm512_set1_pd(0.5));
        e = _mm512_mask_add_pd(e, big, e, _mm512_set1_pd(1.0));
        let one = _mm512_set1_pd(1.0);
        let s = _mm512_div_pd(_mm512_sub_pd(m, one), _mm512_add_pd(m, one));
        let s2 = _mm512_mul_pd(s, s);
        let mut poly = _mm512_set1_pd(coef[11]);
        for j in (0..11).rev() {
            poly = _mm512_fmadd_pd(poly, s2, _mm512_set1_pd(coef[j]));
        }
        // ln x = e ln2_hi + (s poly + e ln2_lo)
        let lnm = _mm512_fmadd_pd(e, _mm512_set1_pd(LN2_LO), _mm512_mul_pd(s, poly));
        let r = _mm512_fmadd_pd(e, _mm512_set1_pd(LN2_HI), lnm);
        _mm512_mask_storeu_pd(p, ok, r);
        let bad = mask & !ok;
        if bad != 0 {
            for l in 0..n {
                if bad & (1 << l) != 0 {
                    *p.add(l) = (*p.add(l)).ln();
                }
            }
        }
        i += 8;
    }
}

/// [`ln_in_place`] on AVX2 + FMA, four lanes at a time: the same formula, with `m` and `e`
/// taken from the bits (`m` = the mantissa with the exponent of 1, `e` = the biased exponent
/// minus 1023, both exact) instead of `getmant`/`getexp`; a tail of fewer than four entries
/// runs in a padded copy.
///
/// # Safety
/// AVX2 and FMA available.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn ln_in_place_avx2(x: &mut [f64]) {
    const LN2_HI: f64 = 0.693_147_180_369_123_8;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    let coef: [f64; 12] = std::array::from_fn(|j| 2.0 / (2 * j + 1) as f64);
    let one = _mm256_set1_pd(1.0);
    let mant_mask = _mm256_set1_epi64x(0x000F_FFFF_FFFF_FFFF);
    let one_bits = _mm256_set1_epi64x(0x3FF0_0000_0000_0000);
    // 2^52 as bits: OR-ing a small integer into its mantissa gives 2^52 + that integer.
    let magic_bits = _mm256_set1_epi64x(0x4330_0000_0000_0000);
    let magic_bias = _mm256_set1_pd(4_503_599_627_370_496.0 + 1023.0);
    let ln4 = |v: __m256d| -> (__m256d, i32) {
        let ok = _mm256_and_pd(
            _mm256_cmp_pd::<_CMP_GE_OQ>(v, _mm256_set1_pd(f64::MIN_POSITIVE)),
            _mm256_cmp_pd::<_CMP_LT_OQ>(v, _mm256_set1_pd(f64::INFINITY)),
        );
        let bits = _mm256_castpd_si256(v);
        let mut m =
            _mm256_castsi256_pd(_mm256_or_si256(_mm256_and_si256(bits, mant_mask), one_bits));
        let ebits = _mm256_or_si256(_mm256_srli_epi64::<52>(bits), magic_bits);
        let mut e = _mm256_sub_pd(_mm256_castsi256_pd(ebits), magic_bias);
        let big = _mm256_cmp_pd::<_CMP_GT_OQ>(m, _mm256_set1_pd(std::f64::consts::SQRT_2));
        m = _mm256_blendv_pd(m, _mm256_mul_pd(m, _mm256_set1_pd(0.5)), big);
        e = _mm256_add_pd(e, _mm256_and_pd(big, one));
        let s = _mm256_div_pd(_mm256_sub_pd(m, one), _mm256_add_pd(m, one));
        let s2 = _mm256_mul_pd(s, s);
        let mut poly = _mm256_set1_pd(coef[11]);
        for j in (0..11).rev() {
            poly = _mm256_fmadd_pd(poly, s2, _mm256_set1_pd(coef[j]));
        }
        let lnm = _mm256_fmadd_pd(e, _mm256_set1_pd(LN2_LO), _mm256_mul_pd(s, poly));
        let r = _mm256_fmadd_pd(e, _mm256_set1_pd(LN2_HI), lnm);
        (_mm256_blendv_pd(v, r, ok), _mm256_movemask_pd(ok))
    };
    let mut chunks = x.chunks_exact_mut(4);
    for c in &mut chunks {
        let (r, ok) = ln4(_mm256_loadu_pd(c.as_ptr()));
        _mm256_storeu_pd(c.as_mut_ptr(), r);
        if ok != 0b1111 {
            for (l, v) in c.iter_mut().enumerate() {
                if ok & (1 << l) == 0 {
                    *v = v.ln();
                }
            }
        }
    }
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        let mut buf = [1.0f64; 4];
        buf[..tail.len()].copy_from_slice(tail);
        let (r, ok) = ln4(_mm256_loadu_pd(buf.as_ptr()));
        _mm256_storeu_pd(buf.as_mut_ptr(), r);
        for (l, v) in tail.iter_mut().enumerate() {
            *v = if ok & (1 << l) == 0 { v.ln() } else { buf[l] };
        }
    }
}

dispatch_simd!(
    /// [`vt_c`] on the QR's element type.
    vt_c_dispatch => vt_c(m: usize, n2: usize, v: *const T, ldv: usize, c: *const T, ldc: usize, w: *mut T)
);
dispatch_simd!(
    /// [`c_minus_v_w`] on the QR's element type.
    c_minus_v_w_dispatch => c_minus_v_w(m: usize, n2: usize, v: *const T, ldv: usize, c: *mut T, ldc: usize, w: *const T)
);
dispatch_simd!(
    /// [`vt_2cols`] on the QR's element type.
    vt_2cols_dispatch => vt_2cols(m: usize, v: *const T, ldv: usize, c0: *const T, c1: *const T, w: *mut T)
);
dispatch_simd!(
    /// [`y_from_v`] on the QR's element type.
    y_from_v_dispatch => y_from_v(
        m: usize,
        nb: usize,
        v: *const T,
        ldv: usize,
        y: *mut T,
        ldy: usize,
        t: *const T,
        ldt: usize,
        transpose: bool,
    )
);

#[cfg(test)]
mod tests {
    /// The vectorised `ln` against `f64::ln` over many magnitudes (relative error in ulp of
    /// the result, absolute near `ln x = 0`) and on the special values.
    use aelle_support::simd::{Level, supported};

    /// Every vectorised `ln` this CPU can run (AVX-512, AVX2), each against libm.
    #[test]
    fn vector_ln_matches_libm() {
        let levels = supported();
        assert!(!levels.is_empty());
        for level in levels {
            match level {
                // SAFETY: the level is supported by this CPU.
                Level::Avx512 => check_ln("avx512", |x| unsafe { super::ln_in_place(x) }),
                // SAFETY: as above.
                Level::Avx2Fma => check_ln("avx2", |x| unsafe { super::ln_in_place_avx2(x) }),
                Level::Baseline => {}
            }
        }
    }

    fn check_ln(name: &str, ln: impl Fn(&mut [f64])) {
        let mut xs: Vec<f64> = Vec::new();
        let mut u = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            u ^= u << 13;
            u ^= u >> 7;
            u ^= u << 17;
            // Uniform exponent in [-300, 300], uniform mantissa.
            let e = (u % 601) as i32 - 300;
            let mant = 1.0 + ((u >> 11) as f64 / (1u64 << 53) as f64);
            xs.push(mant * 2f64.powi(e));
        }
        for &v in &[1.0, 2.0, 0.5, std::f64::consts::SQRT_2, 1.0 + 1e-15, 1.0 - 1e-15, 0.999, 1.001]
        {
            xs.push(v);
        }
        let specials =
            [0.0, f64::INFINITY, f64::NAN, f64::MIN_POSITIVE / 4.0, f64::MIN_POSITIVE, f64::MAX];
        xs.extend_from_slice(&specials);
        let want: Vec<f64> = xs.iter().map(|x| x.ln()).collect();
        let mut got = xs.clone();
        ln(&mut got);
        // Every tail length too.
        for len in 0..9 {
            let mut part = xs[xs.len() - len..].to_vec();
            ln(&mut part);
            for (g, x) in part.iter().zip(&xs[xs.len() - len..]) {
                assert!(
                    g.to_bits() == x.ln().to_bits()
                        || (g - x.ln()).abs() <= 4.0 * f64::EPSILON * x.ln().abs().max(1.0)
                        || (g.is_nan() && x.ln().is_nan()),
                    "{name}: tail ln({x:e}) = {g}"
                );
            }
        }
        let mut worst = 0.0f64;
        for ((x, w), g) in xs.iter().zip(&want).zip(&got) {
            if w.is_nan() {
                assert!(g.is_nan(), "ln({x:e}) = {g}, want NaN");
                continue;
            }
            if w.is_infinite() {
                assert_eq!(g, w, "ln({x:e})");
                continue;
            }
            let err = (g - w).abs() / (w.abs().max(1.0) * f64::EPSILON);
            worst = worst.max(err);
        }
        assert!(worst <= 4.0, "{name}: vector ln is {worst} ulp off libm");
    }
}
