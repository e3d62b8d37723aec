//! Householder reduced QR of a tall `D x k` block, written for the Benettin method.
//!
//! Given `Z` (`D x k`, `k <= D`, column-major, leading dimension `D`), compute `Z = Q R` with
//! `Q` (`D x k`) orthonormal and `R` (`k x k`) upper triangular with `diag(R) >= 0`, overwrite
//! `Z` by `Q`, and return only `ln R_ii` (R itself is never stored anywhere else).
//!
//! # Algorithm
//!
//! Reflectors `H_c = I - tau_c v_c v_c^T` (`v_c[c] = 1`, `v_c[..c] = 0`) are computed as in
//! LAPACK's `dlarfg` (`beta = -sign(alpha) ||x||`, so no cancellation), with an overflow- and
//! underflow-safe norm. The columns are processed in panels of [`PANEL_WIDTH`]: inside a panel
//! each column first receives the panel's earlier reflectors (left-looking), then every column
//! to the right of the panel receives all the panel's reflectors while it sits in L1 cache
//! (right-looking between panels). This performs exactly the flops of unblocked Householder,
//! `2 D k^2 - 2 k^3 / 3`, but reads the trailing matrix once per panel instead of once per
//! reflector. `Q = H_0 ... H_{k-1} [I_k; 0]` is then formed in place by backward accumulation
//! (LAPACK `dorg2r`, blocked the same way), another `2 D k^2 - 2 k^3 / 3` flops. Finally the
//! signs are fixed: if `R_cc < 0`, column `c` of `Q` and row `c` of `R` change sign, so the
//! factorisation is the unique one with a non-negative diagonal.
//!
//! The inner kernels (dot product and `axpy` over one column) are compiled three times —
//! AVX-512, AVX2+FMA and baseline x86-64 — and chosen at run time, so binaries stay portable
//! (no `target-cpu=native`). All scratch lives in a caller-owned [`QrWorkspace`]: nothing is
//! allocated per call.

use crate::scalar::Real;

/// Number of columns per panel (see the module docs). 16 columns of a `D = 128` block are
/// 16 KiB in `f64`, which stays in L1 while the trailing columns stream past.
pub const PANEL_WIDTH: usize = 16;

/// Reusable scratch for [`orthonormalize_in_place`] on blocks of one shape.
#[derive(Debug, Clone)]
pub struct QrWorkspace<T: Real> {
    d: usize,
    k: usize,
    tau: Vec<T>,
    sign: Vec<T>,
    /// `PANEL_WIDTH` reflectors of length `d`, contiguous (reflector `j` of the panel starting at
    /// column `p` uses rows `p + j .. d`, entry `p + j` is the implicit 1).
    panel: Vec<T>,
}

impl<T: Real> QrWorkspace<T> {
    /// Scratch for blocks of `d` rows and `k` columns (`k <= d`).
    pub fn new(d: usize, k: usize) -> Self {
        assert!(k <= d, "QR of a D x k block needs k <= D (got D = {d}, k = {k})");
        Self {
            d,
            k,
            tau: vec![T::zero(); k],
            sign: vec![T::one(); k],
            panel: vec![T::zero(); PANEL_WIDTH * d],
        }
    }

    /// Number of scalars of type `T` this workspace holds (for memory budgeting).
    pub fn scratch_len(d: usize, k: usize) -> usize {
        2 * k + PANEL_WIDTH * d
    }

    /// Rows of the blocks this workspace serves.
    pub fn rows(&self) -> usize {
        self.d
    }

    /// Columns of the blocks this workspace serves.
    pub fn cols(&self) -> usize {
        self.k
    }
}

/// Useful flops of one reduced Householder factorisation of a `d x k` block
/// (`2 d k^2 - 2 k^3 / 3`, the count used in LAPACK working notes). Forming `Q` costs as much
/// again.
pub fn qr_flops(d: usize, k: usize) -> f64 {
    let (d, k) = (d as f64, k as f64);
    2.0 * d * k * k - 2.0 * k * k * k / 3.0
}

/// Orthonormalise the `d x k` column-major block `a` in place: on return `a = Q` with
/// `Z = Q R`, `diag(R) >= 0`, and `log_diag[i] = ln R_ii` (natural log, `-inf` when a column
/// is linearly dependent on the previous ones, NaN/inf propagate from non-finite input).
///
/// Shapes: `a.len() == d * k`, `log_diag.len() == k`; `ws` must have been built for `(d, k)`.
pub fn orthonormalize_in_place<T: Real>(
    a: &mut [T],
    log_diag: &mut [f64],
    ws: &mut QrWorkspace<T>,
) {
    householder_factor(a, log_diag, ws);
    form_q_in_place(a, ws);
}

/// First half of [`orthonormalize_in_place`]: the Householder factorisation. On return the upper
/// triangle of `a` holds `R` (before the sign fix), the strict lower triangle the reflectors,
/// `log_diag[i] = ln |R_ii|`.
pub fn householder_factor<T: Real>(a: &mut [T], log_diag: &mut [f64], ws: &mut QrWorkspace<T>) {
    check_shapes(a, log_diag.len(), ws);
    match simd::level() {
        #[cfg(target_arch = "x86_64")]
        simd::Level::Avx512 => unsafe { simd::factor_avx512(a, log_diag, ws) },
        #[cfg(target_arch = "x86_64")]
        simd::Level::Avx2Fma => unsafe { simd::factor_avx2(a, log_diag, ws) },
        simd::Level::Baseline => factor_impl::<T, false>(a, log_diag, ws),
    }
}

/// Second half of [`orthonormalize_in_place`]: overwrite the factored block with the explicit
/// `Q` (sign-fixed so that `diag(R) >= 0`). Must follow [`householder_factor`] with the same
/// workspace.
pub fn form_q_in_place<T: Real>(a: &mut [T], ws: &mut QrWorkspace<T>) {
    check_shapes(a, ws.k, ws);
    match simd::level() {
        #[cfg(target_arch = "x86_64")]
        simd::Level::Avx512 => unsafe { simd::form_q_avx512(a, ws) },
        #[cfg(target_arch = "x86_64")]
        simd::Level::Avx2Fma => unsafe { simd::form_q_avx2(a, ws) },
        simd::Level::Baseline => form_q_impl::<T, false>(a, ws),
    }
}

fn check_shapes<T: Real>(a: &[T], k: usize, ws: &QrWorkspace<T>) {
    assert_eq!(k, ws.k, "log_diag has {k} entries, the workspace is for k = {}", ws.k);
    assert_eq!(a.len(), ws.d * ws.k, "block has {} entries, expected D * k = {} * {}", a.len(), ws.d, ws.k);
}

/// Run-time choice of the instruction set for the column kernels.
pub(crate) mod simd {
    use super::*;
    use std::sync::atomic::{AtomicU8, Ordering};

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Level {
        #[cfg(target_arch = "x86_64")]
        Avx512,
        #[cfg(target_arch = "x86_64")]
        Avx2Fma,
        Baseline,
    }

    static LEVEL: AtomicU8 = AtomicU8::new(u8::MAX);

    /// The best instruction set of this CPU (cached). `LE_ENGINE_SIMD=baseline|avx2|avx512`
    /// caps it, for testing the portable paths.
    pub fn level() -> Level {
        let cached = LEVEL.load(Ordering::Relaxed);
        let code = if cached == u8::MAX {
            let code = detect();
            LEVEL.store(code, Ordering::Relaxed);
            code
        } else {
            cached
        };
        match code {
            #[cfg(target_arch = "x86_64")]
            2 => Level::Avx512,
            #[cfg(target_arch = "x86_64")]
            1 => Level::Avx2Fma,
            _ => Level::Baseline,
        }
    }

    fn detect() -> u8 {
        let cap = match std::env::var("LE_ENGINE_SIMD").as_deref() {
            Ok("baseline") => 0,
            Ok("avx2") => 1,
            _ => 2,
        };
        #[cfg(target_arch = "x86_64")]
        {
            let found = if is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512vl")
                && is_x86_feature_detected!("fma")
            {
                2
            } else if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                1
            } else {
                0
            };
            found.min(cap)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = cap;
            0
        }
    }

    /// Name of the chosen instruction set, for benchmark reports.
    pub fn level_name() -> &'static str {
        match level() {
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => "avx512",
            #[cfg(target_arch = "x86_64")]
            Level::Avx2Fma => "avx2+fma",
            Level::Baseline => "baseline",
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
    pub unsafe fn factor_avx512<T: Real>(a: &mut [T], l: &mut [f64], ws: &mut QrWorkspace<T>) {
        factor_impl::<T, true>(a, l, ws)
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn factor_avx2<T: Real>(a: &mut [T], l: &mut [f64], ws: &mut QrWorkspace<T>) {
        factor_impl::<T, true>(a, l, ws)
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
    pub unsafe fn form_q_avx512<T: Real>(a: &mut [T], ws: &mut QrWorkspace<T>) {
        form_q_impl::<T, true>(a, ws)
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn form_q_avx2<T: Real>(a: &mut [T], ws: &mut QrWorkspace<T>) {
        form_q_impl::<T, true>(a, ws)
    }
}

pub use simd::level_name as simd_level_name;

/// `a * b + c`, fused when the caller was compiled with FMA.
#[inline(always)]
fn fmadd<T: Real, const FMA: bool>(a: T, b: T, c: T) -> T {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

const LANES: usize = 32;

/// `sum_i x_i y_i` with `LANES` independent partial sums (vectorises, hides FMA latency).
#[inline(always)]
pub(crate) fn dot<T: Real, const FMA: bool>(x: &[T], y: &[T]) -> T {
    let n = x.len().min(y.len());
    let (x, y) = (&x[..n], &y[..n]);
    let mut acc = [T::zero(); LANES];
    let xc = x.chunks_exact(LANES);
    let yc = y.chunks_exact(LANES);
    let (xr, yr) = (xc.remainder(), yc.remainder());
    for (xs, ys) in xc.zip(yc) {
        for l in 0..LANES {
            acc[l] = fmadd::<T, FMA>(xs[l], ys[l], acc[l]);
        }
    }
    let mut tail = T::zero();
    for (&a, &b) in xr.iter().zip(yr) {
        tail = fmadd::<T, FMA>(a, b, tail);
    }
    // pairwise reduction of the partial sums
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for l in 0..width {
            acc[l] = acc[l] + acc[l + width];
        }
    }
    acc[0] + tail
}

/// `y += alpha x`.
#[inline(always)]
pub(crate) fn axpy<T: Real, const FMA: bool>(alpha: T, x: &[T], y: &mut [T]) {
    let n = x.len().min(y.len());
    for (yi, &xi) in y[..n].iter_mut().zip(&x[..n]) {
        *yi = fmadd::<T, FMA>(alpha, xi, *yi);
    }
}

/// Apply `H = I - tau v v^T` to `x` (`v[0] = 1` stored explicitly, same length as `x`).
#[inline(always)]
fn apply_reflector<T: Real, const FMA: bool>(v: &[T], tau: T, x: &mut [T]) {
    if tau == T::zero() {
        return;
    }
    let s = tau * dot::<T, FMA>(v, x);
    axpy::<T, FMA>(-s, v, x);
}

/// Sum of squares of `x` without overflow or harmful underflow.
#[inline(always)]
fn sum_of_squares_scaled<T: Real, const FMA: bool>(x: &[T]) -> (T, T) {
    // Fast path: plain sum of squares, accepted when it is comfortably inside the range.
    let s = dot::<T, FMA>(x, x);
    let tiny = T::min_positive_value() / T::epsilon();
    let huge = T::max_value() * T::epsilon();
    if s.is_finite() && s > tiny && s < huge {
        return (T::one(), s);
    }
    // Slow path: scale by the largest magnitude (LAPACK dnrm2 idea). Returns (scale, ssq) with
    // sum x_i^2 = scale^2 * ssq.
    let mut scale = T::zero();
    for &v in x {
        let a = v.abs();
        if a > scale || a.is_nan() {
            scale = a;
        }
    }
    if scale == T::zero() || !scale.is_finite() {
        return (T::one(), if scale.is_finite() { T::zero() } else { scale * scale });
    }
    let inv = T::one() / scale;
    let mut ssq = T::zero();
    for &v in x {
        let t = v * inv;
        ssq = fmadd::<T, FMA>(t, t, ssq);
    }
    (scale, ssq)
}

/// Compute the reflector annihilating `x[1..]`: on return `x[0] = beta` (the new `R_cc`) and
/// `x[1..] = v[1..]`; returns `tau`.
#[inline(always)]
fn make_reflector<T: Real, const FMA: bool>(x: &mut [T]) -> T {
    let alpha = x[0];
    let (scale, ssq) = sum_of_squares_scaled::<T, FMA>(&x[1..]);
    if ssq == T::zero() {
        // Already upper triangular in this column: H = I, R_cc = alpha.
        return T::zero();
    }
    // ||x|| = hypot(alpha, scale * sqrt(ssq)), computed without overflow.
    let tail_norm = scale * ssq.sqrt();
    let norm = alpha.hypot(tail_norm);
    let beta = if alpha >= T::zero() { -norm } else { norm };
    let tau = (beta - alpha) / beta;
    let inv = T::one() / (alpha - beta);
    for v in &mut x[1..] {
        *v = *v * inv;
    }
    x[0] = beta;
    tau
}

#[inline(always)]
fn factor_impl<T: Real, const FMA: bool>(a: &mut [T], log_diag: &mut [f64], ws: &mut QrWorkspace<T>) {
    let (d, k) = (ws.d, ws.k);
    let mut p = 0;
    while p < k {
        let pe = (p + PANEL_WIDTH).min(k);
        // Panel: left-looking inside the panel.
        for c in p..pe {
            let col = &mut a[c * d..(c + 1) * d];
            for r in p..c {
                let v = &ws.panel[(r - p) * d + r..(r - p + 1) * d];
                apply_reflector::<T, FMA>(v, ws.tau[r], &mut col[r..]);
            }
            let tau = make_reflector::<T, FMA>(&mut col[c..]);
            ws.tau[c] = tau;
            let beta = col[c];
            log_diag[c] = beta.as_f64().abs().ln();
            ws.sign[c] = if beta < T::zero() { -T::one() } else { T::one() };
            let slot = &mut ws.panel[(c - p) * d..(c - p + 1) * d];
            slot[c] = T::one();
            slot[c + 1..].copy_from_slice(&col[c + 1..]);
        }
        // Trailing columns: each receives the whole panel while it is in cache.
        for j in pe..k {
            let col = &mut a[j * d..(j + 1) * d];
            for r in p..pe {
                let v = &ws.panel[(r - p) * d + r..(r - p + 1) * d];
                apply_reflector::<T, FMA>(v, ws.tau[r], &mut col[r..]);
            }
        }
        p = pe;
    }
}

#[inline(always)]
fn form_q_impl<T: Real, const FMA: bool>(a: &mut [T], ws: &mut QrWorkspace<T>) {
    let (d, k) = (ws.d, ws.k);
    if k == 0 {
        return;
    }
    // Panels from the last to the first.
    let npanels = k.div_ceil(PANEL_WIDTH);
    for pi in (0..npanels).rev() {
        let p = pi * PANEL_WIDTH;
        let pe = (p + PANEL_WIDTH).min(k);
        // Save the panel's reflectors before their columns are overwritten.
        for c in p..pe {
            let slot = &mut ws.panel[(c - p) * d..(c - p + 1) * d];
            slot[c] = T::one();
            slot[c + 1..].copy_from_slice(&a[c * d + c + 1..(c + 1) * d]);
        }
        // Columns right of the panel already hold H_pe ... H_{k-1} [I; 0]; apply
        // H_{pe-1}, ..., H_p (rows above p stay zero).
        for j in pe..k {
            let col = &mut a[j * d..(j + 1) * d];
            for r in (p..pe).rev() {
                let v = &ws.panel[(r - p) * d + r..(r - p + 1) * d];
                apply_reflector::<T, FMA>(v, ws.tau[r], &mut col[r..]);
            }
        }
        // Inside the panel: unblocked backward accumulation (dorg2r).
        for i in (p..pe).rev() {
            let tau = ws.tau[i];
            for j in i + 1..pe {
                let v = &ws.panel[(i - p) * d + i..(i - p + 1) * d];
                let col = &mut a[j * d + i..(j + 1) * d];
                apply_reflector::<T, FMA>(v, tau, col);
            }
            let col = &mut a[i * d..(i + 1) * d];
            for x in &mut col[..i] {
                *x = T::zero();
            }
            col[i] = T::one() - tau;
            for x in &mut col[i + 1..] {
                *x = -tau * *x;
            }
        }
    }
    // Sign fix: diag(R) >= 0.
    for c in 0..k {
        if ws.sign[c] < T::zero() {
            for x in &mut a[c * d..(c + 1) * d] {
                *x = -*x;
            }
        }
    }
}
