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

use super::tiles_zmm::Zmm;

/// Panel width these kernels are written for.
pub(crate) const NB: usize = 8;

/// `W[r + NB j] = sum_{i < m} V[r][i] C[j][i]` for `j < n2` (`W` is `NB x n2`, leading
/// dimension `NB`); `V[r]` starts at `v + r ldv`, `C[j]` at `c + j ldc`.
///
/// # Safety
/// AVX-512F available; `v`, `c`, `w` valid for the given extents.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn vt_c<T: Zmm>(
    m: usize,
    n2: usize,
    v: *const T,
    ldv: usize,
    c: *const T,
    ldc: usize,
    w: *mut T,
) {
    let mut j = 0;
    while j + 2 <= n2 {
        // W columns j and j + 1 are the 16 consecutive entries from w + j NB.
        vt_2cols(m, v, ldv, c.add(j * ldc), c.add((j + 1) * ldc), w.add(j * NB));
        j += 2;
    }
    if j < n2 {
        let c0 = c.add(j * ldc);
        let mut acc0 = [T::zero(); NB];
        let mut i = 0;
        while i + T::L <= m {
            let x0 = T::load(c0.add(i), T::L);
            for r in 0..NB {
                acc0[r] = T::fmadd(T::load(v.add(r * ldv + i), T::L), x0, acc0[r]);
            }
            i += T::L;
        }
        if i < m {
            let n = m - i;
            let x0 = T::load(c0.add(i), n);
            for r in 0..NB {
                acc0[r] = T::fmadd(T::load(v.add(r * ldv + i), n), x0, acc0[r]);
            }
        }
        // One transposing reduction (the upper half of the tree sums zeros).
        let mut all = [T::zero(); 16];
        all[..NB].copy_from_slice(&acc0);
        let mut sums = [*w; 16];
        T::store_sums16(&all, sums.as_mut_ptr());
        for r in 0..NB {
            *w.add(j * NB + r) = sums[r];
        }
    }
}

/// `C[j][i] -= sum_r V[r][i] W[r + NB j]` for `i < m`, `j < n2`.
///
/// # Safety
/// As [`vt_c`].
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn c_minus_v_w<T: Zmm>(
    m: usize,
    n2: usize,
    v: *const T,
    ldv: usize,
    c: *mut T,
    ldc: usize,
    w: *const T,
) {
    let mut j = 0;
    while j + 2 <= n2 {
        let (c0, c1) = (c.add(j * ldc), c.add((j + 1) * ldc));
        let mut w0 = [T::zero(); NB];
        let mut w1 = [T::zero(); NB];
        for r in 0..NB {
            w0[r] = T::splat(*w.add(j * NB + r));
            w1[r] = T::splat(*w.add((j + 1) * NB + r));
        }
        let mut i = 0;
        // Four row chunks at a time: eight independent FMA chains hide the FMA latency.
        while i + 4 * T::L <= m {
            let mut x0 = [T::zero(); 4];
            let mut x1 = [T::zero(); 4];
            for q in 0..4 {
                x0[q] = T::load(c0.add(i + q * T::L), T::L);
                x1[q] = T::load(c1.add(i + q * T::L), T::L);
            }
            for r in 0..NB {
                for q in 0..4 {
                    let vr = T::load(v.add(r * ldv + i + q * T::L), T::L);
                    x0[q] = T::fnmadd(vr, w0[r], x0[q]);
                    x1[q] = T::fnmadd(vr, w1[r], x1[q]);
                }
            }
            for q in 0..4 {
                T::store(c0.add(i + q * T::L), x0[q], T::L);
                T::store(c1.add(i + q * T::L), x1[q], T::L);
            }
            i += 4 * T::L;
        }
        while i + T::L <= m {
            let mut x0 = T::load(c0.add(i), T::L);
            let mut x1 = T::load(c1.add(i), T::L);
            for r in 0..NB {
                let vr = T::load(v.add(r * ldv + i), T::L);
                x0 = T::fnmadd(vr, w0[r], x0);
                x1 = T::fnmadd(vr, w1[r], x1);
            }
            T::store(c0.add(i), x0, T::L);
            T::store(c1.add(i), x1, T::L);
            i += T::L;
        }
        if i < m {
            let n = m - i;
            let mut x0 = T::load(c0.add(i), n);
            let mut x1 = T::load(c1.add(i), n);
            for r in 0..NB {
                let vr = T::load(v.add(r * ldv + i), n);
                x0 = T::fnmadd(vr, w0[r], x0);
                x1 = T::fnmadd(vr, w1[r], x1);
            }
            T::store(c0.add(i), x0, n);
            T::store(c1.add(i), x1, n);
        }
        j += 2;
    }
    if j < n2 {
        let c0 = c.add(j * ldc);
        let mut w0 = [T::zero(); NB];
        for r in 0..NB {
            w0[r] = T::splat(*w.add(j * NB + r));
        }
        let mut i = 0;
        while i < m {
            let n = (m - i).min(T::L);
            let mut x0 = T::load(c0.add(i), n);
            for r in 0..NB {
                x0 = T::fnmadd(T::load(v.add(r * ldv + i), n), w0[r], x0);
            }
            T::store(c0.add(i), x0, n);
            i += T::L;
        }
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
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn y_from_v<T: Zmm>(
    m: usize,
    nb: usize,
    v: *const T,
    ldv: usize,
    y: *mut T,
    ldy: usize,
    t: *const T,
    ldt: usize,
    transpose: bool,
) {
    if transpose {
        y_from_v_impl::<T, true>(m, nb.min(NB), v, ldv, y, ldy, t, ldt);
    } else {
        y_from_v_impl::<T, false>(m, nb.min(NB), v, ldv, y, ldy, t, ldt);
    }
}

/// [`y_from_v`] for one orientation of `T`: the reflector loop is outermost and fully
/// unrolled, so the `NB` columns of `Y` are `NB` independent accumulator chains (the zero
/// triangle of `op(T)` is skipped at compile time).
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn y_from_v_impl<T: Zmm, const TRANSPOSE: bool>(
    m: usize,
    nb: usize,
    v: *const T,
    ldv: usize,
    y: *mut T,
    ldy: usize,
    t: *const T,
    ldt: usize,
) {
    let mut i = 0;
    while i < m {
        let n = (m - i).min(T::L);
        let mut acc = [T::zero(); NB];
        for mm in 0..NB {
            if mm >= nb {
                break;
            }
            let vv = T::load(v.add(mm * ldv + i), n);
            for r in 0..NB {
                // coef(r, mm): T[r, mm] (mm >= r) or T[mm, r] (mm <= r), zero otherwise;
                // columns r >= nb of Y stay exactly zero.
                if r >= nb {
                    continue;
                }
                if TRANSPOSE && mm >= r {
                    acc[r] = T::fmadd(T::splat(*t.add(r + mm * ldt)), vv, acc[r]);
                } else if !TRANSPOSE && mm <= r {
                    acc[r] = T::fmadd(T::splat(*t.add(mm + r * ldt)), vv, acc[r]);
                }
            }
        }
        for (r, a) in acc.iter().enumerate() {
            T::store(y.add(r * ldy + i), *a, n);
        }
        i += T::L;
    }
}

/// `w[r] = V[:, r]^T x0` and `w[NB + r] = V[:, r]^T x1` for `r < NB` (rows `0..m`): the
/// column-pair kernel of [`vt_c`], for two vectors that need not share a stride.
///
/// # Safety
/// AVX-512F available; `v` (`NB` columns, stride `ldv`), `x0`, `x1` (`m` entries) and `w`
/// (16 entries) valid.
#[target_feature(enable = "avx512f")]
#[inline]
pub(crate) unsafe fn vt_2cols<T: Zmm>(
    m: usize,
    v: *const T,
    ldv: usize,
    c0: *const T,
    c1: *const T,
    w: *mut T,
) {
    let mut acc0 = [T::zero(); NB];
    let mut acc1 = [T::zero(); NB];
    let mut i = 0;
    // Full vectors (no masks, no per-load branch), then one masked tail.
    while i + T::L <= m {
        let x0 = T::load(c0.add(i), T::L);
        let x1 = T::load(c1.add(i), T::L);
        for r in 0..NB {
            let vr = T::load(v.add(r * ldv + i), T::L);
            acc0[r] = T::fmadd(vr, x0, acc0[r]);
            acc1[r] = T::fmadd(vr, x1, acc1[r]);
        }
        i += T::L;
    }
    if i < m {
        let n = m - i;
        let x0 = T::load(c0.add(i), n);
        let x1 = T::load(c1.add(i), n);
        for r in 0..NB {
            let vr = T::load(v.add(r * ldv + i), n);
            acc0[r] = T::fmadd(vr, x0, acc0[r]);
            acc1[r] = T::fmadd(vr, x1, acc1[r]);
        }
    }
    let mut all = [T::zero(); 16];
    all[..NB].copy_from_slice(&acc0);
    all[NB..].copy_from_slice(&acc1);
    T::store_sums16(&all, w);
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

dispatch_on_real!(
    /// [`vt_c`] on the QR's element type.
    vt_c_dispatch => vt_c(m: usize, n2: usize, v: *const T, ldv: usize, c: *const T, ldc: usize, w: *mut T)
);
dispatch_on_real!(
    /// [`c_minus_v_w`] on the QR's element type.
    c_minus_v_w_dispatch => c_minus_v_w(m: usize, n2: usize, v: *const T, ldv: usize, c: *mut T, ldc: usize, w: *const T)
);
dispatch_on_real!(
    /// [`vt_2cols`] on the QR's element type.
    vt_2cols_dispatch => vt_2cols(m: usize, v: *const T, ldv: usize, c0: *const T, c1: *const T, w: *mut T)
);
dispatch_on_real!(
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
    #[test]
    fn vector_ln_matches_libm() {
        if !aelle_support::simd::avx512_or_skip("vector_ln_matches_libm") {
            return;
        }
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
        // SAFETY: AVX-512F checked above.
        unsafe { super::ln_in_place(&mut got) };
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
        assert!(worst <= 4.0, "vector ln is {worst} ulp off libm");
    }
}
