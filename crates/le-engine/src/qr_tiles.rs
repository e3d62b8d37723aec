//! AVX-512 register-tiled kernels for the trailing update of one block's blocked Householder QR
//! (`crate::qr`), replacing two small GEMM calls per panel when the panel is `NB = 8` wide:
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

use std::arch::x86_64::*;

/// Panel width these kernels are written for.
pub(crate) const NB: usize = 8;

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
            _mm512_storeu_pd(p, v)
        } else {
            _mm512_mask_storeu_pd(p, ((1u32 << n) - 1) as u8, v)
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
            _mm512_storeu_ps(p, v)
        } else {
            _mm512_mask_storeu_ps(p, ((1u32 << n) - 1) as u16, v)
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
        y_from_v_impl::<T, true>(m, nb.min(NB), v, ldv, y, ldy, t, ldt)
    } else {
        y_from_v_impl::<T, false>(m, nb.min(NB), v, ldv, y, ldy, t, ldt)
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

/// `J <- J Q` in place for a square `d x d` block `J` (column-major, leading dimension `d`) and
/// the orthonormal `Q` of a previous [`crate::qr::householder_factor`] of another `d x d`
/// block `a`, kept in factored form: `Q = H_0 ... H_{d-1} S` with the reflectors below the
/// diagonal of `a`, the panels' compact-WY factors `H_p ... H_{p+NB-1} = I - V_s T_s V_s^T`
/// in `tf` (`NB x NB` each, column-major, zero below the diagonal), and `S = diag(sign)`.
/// `a` must have been prepared by [`unit_panel_triangles`] (each panel's upper triangle and
/// diagonal inside its own `NB` columns hold the zeros and ones of `V`), so that every entry
/// the kernel reads from a reflector column is the reflector's.
///
/// `J Q` acts on each row of `J` separately, so the block is processed in stripes of three
/// registers of rows (48 rows in f32, 24 in f64; the last stripe two, masked) that stay in L1
/// while every panel is applied: `W = J_stripe V_s` (the stripe's columns times broadcast
/// reflector entries, `3 x NB` accumulators, no horizontal reductions), `W <- W T_s` in
/// registers, `J_stripe -= W V_s^T` (same form), and finally the columns with `sign < 0`
/// change sign. Flops: about `2 d^3`, all in broadcast-FMA form, replacing both the
/// formation of `Q` and the `J Q` product of the explicit path.
///
/// # Safety
/// AVX-512F available; `j` and `a` valid for `d * d` entries, `tf` for `ceil(d / NB) NB^2`,
/// `sign` for `d`, `zeros` for `d` entries that are all zero.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn apply_q_right<T: Zmm>(
    d: usize,
    j: *mut T,
    a: *const T,
    tf: *const T,
    sign: *const T,
    zeros: *const T,
) {
    let mut r0 = 0;
    while r0 < d {
        let left = d - r0;
        // Three registers of rows while they are full, then one stripe of up to two.
        let regs = if left >= 3 * T::L { 3 } else { 2 };
        let ns: [usize; 3] = std::array::from_fn(|q| left.saturating_sub(q * T::L).min(T::L));
        let js = j.add(r0);
        let mut p = 0;
        while p < d {
            let t = tf.add((p / NB) * NB * NB);
            if regs == 3 {
                apply_panel_stripe::<T, 3, true>(d, js, ns, a, p, t, zeros);
            } else if ns[1] == T::L {
                apply_panel_stripe::<T, 2, true>(d, js, ns, a, p, t, zeros);
            } else {
                apply_panel_stripe::<T, 2, false>(d, js, ns, a, p, t, zeros);
            }
            p += NB;
        }
        for c in 0..d {
            if *sign.add(c) < T::ZERO {
                let col = js.add(c * d);
                for (q, &n) in ns.iter().enumerate().take(regs) {
                    let x = T::load(col.add(q * T::L), n);
                    T::store(col.add(q * T::L), T::fnmadd(x, T::splat(T::ONE), T::zero()), n);
                }
            }
        }
        r0 += regs * T::L;
    }
}

/// One panel of [`apply_q_right`] on one stripe of `R` registers of rows at `js` (leading
/// dimension `ld`; `ns[q]` rows in register `q`, all full when `FULL`, so no masks): the
/// reflectors `p .. p + NB` (fewer at the end: missing columns read `zeros`).
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn apply_panel_stripe<T: Zmm, const R: usize, const FULL: bool>(
    ld: usize,
    js: *mut T,
    ns: [usize; 3],
    a: *const T,
    p: usize,
    t: *const T,
    zeros: *const T,
) {
    let ns: [usize; R] = std::array::from_fn(|q| if FULL { T::L } else { ns[q] });
    let nbp = (ld - p).min(NB);
    let ncols = ld - p;
    // vc[r][i] = V[p + i, r].
    let mut vc = [zeros; NB];
    for (r, v) in vc.iter_mut().enumerate().take(nbp) {
        *v = a.add((p + r) * ld + p);
    }
    // Pass 1: W = J V (R x NB accumulators).
    let mut w = [[T::zero(); R]; NB];
    for i in 0..ncols {
        let col = js.add((p + i) * ld);
        let x: [T::V; R] = std::array::from_fn(|q| T::load(col.add(q * T::L), ns[q]));
        for r in 0..NB {
            let b = T::splat(*vc[r].add(i));
            for q in 0..R {
                w[r][q] = T::fmadd(x[q], b, w[r][q]);
            }
        }
    }
    // W <- W T (T upper triangular): column r from the top down, highest r first.
    for r in (0..NB).rev() {
        let mut acc = [T::zero(); R];
        for l in 0..=r {
            let b = T::splat(*t.add(l + r * NB));
            for q in 0..R {
                acc[q] = T::fmadd(w[l][q], b, acc[q]);
            }
        }
        w[r] = acc;
    }
    // Pass 2: J -= W V^T, one column at a time; the sum over the NB reflectors in two halves
    // when the stripe is two registers (four chains of NB / 2), in one otherwise.
    for i in 0..ncols {
        let col = js.add((p + i) * ld);
        let mut x: [T::V; R] = std::array::from_fn(|q| T::load(col.add(q * T::L), ns[q]));
        if R <= 2 {
            let mut y = [T::zero(); R];
            for r in 0..NB {
                let b = T::splat(*vc[r].add(i));
                let acc = if r % 2 == 0 { &mut x } else { &mut y };
                for q in 0..R {
                    acc[q] = T::fnmadd(w[r][q], b, acc[q]);
                }
            }
            for q in 0..R {
                x[q] = T::add(x[q], y[q]);
            }
        } else {
            for r in 0..NB {
                let b = T::splat(*vc[r].add(i));
                for q in 0..R {
                    x[q] = T::fnmadd(w[r][q], b, x[q]);
                }
            }
        }
        for q in 0..R {
            T::store(col.add(q * T::L), x[q], ns[q]);
        }
    }
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

/// `$name::<T: Real>(..)`: the kernel `$kernel` for the QR's element type (f32 or f64); the QR
/// is generic over [`crate::scalar::Real`], the kernels over the register type.
macro_rules! dispatch_on_real {
    ($(#[$doc:meta])* $name:ident => $kernel:ident($($arg:ident: $ty:ty),* $(,)?)) => {
        $(#[$doc])*
        ///
        /// # Safety
        #[doc = concat!("As [`", stringify!($kernel), "`].")]
        #[allow(clippy::too_many_arguments)]
        pub(crate) unsafe fn $name<T: crate::scalar::Real>($($arg: $ty),*) {
            if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f64>() {
                $kernel::<f64>($($arg as _),*)
            } else {
                $kernel::<f32>($($arg as _),*)
            }
        }
    };
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
dispatch_on_real!(
    /// [`apply_q_right`] on the QR's element type.
    apply_q_right_dispatch => apply_q_right(
        d: usize,
        j: *mut T,
        a: *const T,
        tf: *const T,
        sign: *const T,
        zeros: *const T,
    )
);
