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
//! underflow-safe norm. Columns are processed in panels of `nb` ([`DEFAULT_PANEL_WIDTH`]), as in
//! LAPACK `dgeqrf`: inside a panel each column first receives the panel's earlier reflectors
//! (left-looking, level-2 work on a `D x nb` slab that stays in cache); the panel's reflectors
//! are then aggregated into the compact WY form `H_p ... H_{p+nb-1} = I - V T V^T` (`dlarft`)
//! and applied to the whole trailing block with two GEMMs, `W = V^T C`, `W = T^T W`,
//! `C -= V W` (the `gemm` crate, register-blocked and SIMD-dispatched). Most flops thus run at
//! GEMM speed. `Q = H_0 ... H_{k-1} [I_k; 0]` is then formed in place by backward accumulation
//! (LAPACK `dorgqr`: the same block reflectors, kept from the factorisation, applied with GEMMs;
//! `dorg2r` inside each panel). Finally the signs are fixed: if `R_cc < 0`, column `c` of `Q`
//! and row `c` of `R` change sign, so the factorisation is the unique one with a non-negative
//! diagonal.
//!
//! **AVX-512 path** (panel width 8, the default): the trailing updates use the register-tiled
//! kernels of `crate::qr_tiles` with `Y = V op(T)` precomputed per panel (`C -= Y (V^T C)`),
//! and the blocking has two levels: [`OUTER_PANELS`] panels form an outer block; inside it each
//! panel updates only the block's own columns, and the columns right of the block receive all
//! of the block's panels one 16-column chunk at a time (the chunk stays in L1 instead of
//! streaming the whole trailing matrix through L2 once per panel; the arithmetic per column is
//! unchanged). A panel itself is factored left-looking in compact WY form
//! (`col -= V T^T (V^T col)`, `T` built as the reflectors appear), and the panel's columns of
//! `Q` are `e_j - Y V[j, :]^T` in one tiled update instead of `dorg2r`. Reflector slots are
//! 64-byte aligned and the kernels start at a 64-byte-aligned row (the slots are zero above the
//! panel), so full-width loads never straddle cache lines when `D` is a multiple of 16 (f32)
//! or 8 (f64) and the block itself is aligned (the RNN population path allocates it so).
//!
//! Flops: `2 D k^2 - 2 k^3 / 3` for the factorisation and as much again for `Q` (plus
//! `O(D k nb)` for the `T` factors).
//!
//! The level-2 kernels (dot product and `axpy` over one column) are compiled three times —
//! AVX-512, AVX2+FMA and baseline x86-64 — and chosen at run time, so binaries stay portable
//! (no `target-cpu=native`). All scratch lives in a caller-owned [`QrWorkspace`]: nothing is
//! allocated per call by this module (the `gemm` crate keeps its packing buffers in
//! thread-local storage).

use aelle_support::simd::{Level, level};

use crate::linalg::AlignedBuf;
use crate::scalar::Real;

/// Default number of columns per panel (see the module docs), chosen with `orchestrator bench
/// --panel-widths` (the README records the sweep). [`QrWorkspace::with_panel_width`] overrides it.
pub const DEFAULT_PANEL_WIDTH: usize = 8;

/// Largest panel width a workspace accepts.
pub const MAX_PANEL_WIDTH: usize = 64;

/// Reusable scratch for [`orthonormalize_in_place`] on blocks of one shape.
#[derive(Debug, Clone)]
pub struct QrWorkspace<T: Real> {
    d: usize,
    k: usize,
    /// Panel width `nb`.
    nb: usize,
    tau: Vec<T>,
    sign: Vec<T>,
    /// [`OUTER_PANELS`] slots of `nb` reflectors of length `d`, contiguous (reflector `j` of
    /// the panel starting at column `p` uses rows `p + j .. d`, entry `p + j` is the implicit 1,
    /// rows `p .. p + j` are zero so the panel is the `(d - p) x nb` matrix `V` of the compact
    /// WY form); slot `s` holds panel `s` of the current outer block.
    panel: AlignedBuf<T>,
    /// The `nb x nb` upper-triangular factors `T` of every panel (`H_p ... H_{pe-1} =
    /// I - V T V^T`), kept from the factorisation for forming `Q`.
    t_factors: Vec<T>,
    /// `nb x k` scratch for `W = V^T C`.
    w: Vec<T>,
    /// `Y = V op(T)` of the panels in `panel` (same layout), for the tiled updates.
    panel_y: AlignedBuf<T>,
}

impl<T: Real> QrWorkspace<T> {
    /// Scratch for blocks of `d` rows and `k` columns (`k <= d`).
    pub fn new(d: usize, k: usize) -> Self {
        Self::with_panel_width(d, k, DEFAULT_PANEL_WIDTH)
    }

    /// Scratch with an explicit panel width `nb` (`1 ..= MAX_PANEL_WIDTH`).
    pub fn with_panel_width(d: usize, k: usize, nb: usize) -> Self {
        assert!(k <= d, "QR of a D x k block needs k <= D (got D = {d}, k = {k})");
        assert!(
            (1..=MAX_PANEL_WIDTH).contains(&nb),
            "panel width must be in 1..={MAX_PANEL_WIDTH}"
        );
        // 64-byte-aligned slots: the tiled kernels' full-width loads never straddle cache lines.
        let slots = OUTER_PANELS * nb * d;
        Self {
            d,
            k,
            nb,
            tau: vec![T::zero(); k],
            sign: vec![T::one(); k],
            panel: AlignedBuf::zeroed(slots),
            t_factors: vec![T::zero(); k.div_ceil(nb).max(1) * nb * nb],
            w: vec![T::zero(); nb * k],
            panel_y: AlignedBuf::zeroed(slots),
        }
    }

    /// Panel width of this workspace.
    pub fn panel_width(&self) -> usize {
        self.nb
    }

    /// Number of scalars of type `T` this workspace holds (for memory budgeting).
    pub fn scratch_len(d: usize, k: usize, nb: usize) -> usize {
        2 * k + 2 * (OUTER_PANELS * nb * d + 16) + k.div_ceil(nb).max(1) * nb * nb + nb * k
    }

    /// Start of slot `slot` (panel `slot` of the current outer block) in `panel` and `panel_y`.
    #[inline(always)]
    fn slot_start(&self, slot: usize) -> usize {
        slot * self.nb * self.d
    }

    /// Whether this workspace's factorisation leaves `Q` in the form [`apply_factored_q_right`]
    /// reads (the AVX-512 tiled path with the default panel width).
    pub(crate) fn supports_factored_q(&self) -> bool {
        tiled_updates(self)
    }

    /// The compact-WY factors `T` of every panel (`nb x nb` each, column-major) and the signs
    /// of `diag(R)` from the last [`householder_factor`] on this workspace.
    pub(crate) fn factored_q_parts(&self) -> (&[T], &[T]) {
        (&self.t_factors, &self.sign)
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

/// The row `p0 <= p` where the tiled kernels start so that their loads are 64-byte aligned
/// (columns of `d` elements stay aligned when `d` is a multiple of a cache line's elements).
#[inline(always)]
fn aligned_row<T>(p: usize, d: usize) -> usize {
    let al = (64 / std::mem::size_of::<T>()).max(1);
    if d.is_multiple_of(al) { p - p % al } else { p }
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
    match level() {
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => unsafe { kernels::factor_avx512(a, log_diag, ws) },
        #[cfg(target_arch = "x86_64")]
        Level::Avx2Fma => unsafe { kernels::factor_avx2(a, log_diag, ws) },
        Level::Baseline => factor_impl::<T, false>(a, log_diag, ws),
    }
}

/// Second half of [`orthonormalize_in_place`]: overwrite the factored block with the explicit
/// `Q` (sign-fixed so that `diag(R) >= 0`). Must follow [`householder_factor`] with the same
/// workspace.
pub fn form_q_in_place<T: Real>(a: &mut [T], ws: &mut QrWorkspace<T>) {
    check_shapes(a, ws.k, ws);
    match level() {
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => unsafe { kernels::form_q_avx512(a, ws) },
        #[cfg(target_arch = "x86_64")]
        Level::Avx2Fma => unsafe { kernels::form_q_avx2(a, ws) },
        Level::Baseline => form_q_impl::<T, false>(a, ws),
    }
}

fn check_shapes<T: Real>(a: &[T], k: usize, ws: &QrWorkspace<T>) {
    assert_eq!(k, ws.k, "log_diag has {k} entries, the workspace is for k = {}", ws.k);
    assert_eq!(
        a.len(),
        ws.d * ws.k,
        "block has {} entries, expected D * k = {} * {}",
        a.len(),
        ws.d,
        ws.k
    );
}

/// [`householder_factor`] of the square `d x d` block `a` for [`apply_factored_q_right`]: on
/// return `a`'s strict lower triangle holds the reflectors and, inside each panel's own
/// columns, its upper triangle and diagonal hold `V`'s zeros and ones (so `R` is gone but for
/// `ln |R_ii|` in `log_diag`); `ws` holds the panels' `T` and the signs
/// ([`QrWorkspace::factored_q_parts`]).
pub(crate) fn factor_keeping_reflectors<T: Real>(
    a: &mut [T],
    log_diag: &mut [f64],
    ws: &mut QrWorkspace<T>,
) {
    householder_factor(a, log_diag, ws);
    let (d, nb) = (ws.d, ws.nb);
    assert_eq!(ws.k, d, "factored Q is for square blocks");
    let mut p = 0;
    while p < d {
        for r in 0..(d - p).min(nb) {
            let col = &mut a[(p + r) * d + p..(p + r) * d + p + r + 1];
            col[..r].fill(T::zero());
            col[r] = T::one();
        }
        p += nb;
    }
}

/// `j <- j Q` for square `d x d` blocks, `Q` in the factored form
/// [`factor_keeping_reflectors`] left in `a` (`tf`, `sign` from [`QrWorkspace::factored_q_parts`] of a workspace with
/// [`QrWorkspace::supports_factored_q`]); see `qr_tiles::apply_q_right`. `zeros` is
/// scratch of at least `d` zeros.
pub(crate) fn apply_factored_q_right<T: Real>(
    d: usize,
    j: &mut [T],
    a: &[T],
    tf: &[T],
    sign: &[T],
    zeros: &[T],
) {
    assert!(j.len() >= d * d && a.len() >= d * d && sign.len() >= d && zeros.len() >= d);
    assert!(tf.len() >= d.div_ceil(DEFAULT_PANEL_WIDTH) * DEFAULT_PANEL_WIDTH.pow(2));
    #[cfg(target_arch = "x86_64")]
    {
        assert!(level() == Level::Avx512, "factored Q needs AVX-512");
        // SAFETY: AVX-512 checked above; all extents asserted above.
        unsafe {
            crate::qr_tiles::apply_q_right_dispatch(
                d,
                j.as_mut_ptr(),
                a.as_ptr(),
                tf.as_ptr(),
                sign.as_ptr(),
                zeros.as_ptr(),
            );
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (tf, zeros);
        unreachable!("factored Q is x86_64-only");
    }
}

/// The column kernels compiled for each instruction set (chosen at run time by
/// [`aelle_support::simd::level`]).
mod kernels {
    use super::*;

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

/// `a * b + c`, fused when the caller was compiled with FMA.
#[inline(always)]
fn fmadd<T: Real, const FMA: bool>(a: T, b: T, c: T) -> T {
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
    let norm = if scale == T::one() {
        // fast path (ssq is comfortably inside the range): plain sqrt, unless alpha^2 overflows
        let n2 = alpha * alpha + ssq;
        if n2.is_finite() { n2.sqrt() } else { alpha.hypot(ssq.sqrt()) }
    } else {
        alpha.hypot(scale * ssq.sqrt())
    };
    let beta = if alpha >= T::zero() { -norm } else { norm };
    let tau = (beta - alpha) / beta;
    let inv = T::one() / (alpha - beta);
    for v in &mut x[1..] {
        *v *= inv;
    }
    x[0] = beta;
    tau
}

/// Trailing updates narrower than this many columns are applied column by column (the GEMM
/// call overhead does not pay off below it).
const GEMM_MIN_COLS: usize = 8;

/// `dst (m x n, col-major, leading dim ld_dst) = alpha_dst * dst + beta * lhs * rhs` with
/// arbitrary strides for `lhs` (`m x kk`) and `rhs` (`kk x n`), one thread.
///
/// # Safety
/// Every element reached through the given shapes and strides must be in bounds of the
/// respective slice; the callers below derive the strides from the block layout.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn gemm_strided<T: Real>(
    m: usize,
    n: usize,
    kk: usize,
    dst: *mut T,
    ld_dst: usize,
    read_dst: bool,
    lhs: *const T,
    lhs_rs: usize,
    lhs_cs: usize,
    rhs: *const T,
    rhs_rs: usize,
    rhs_cs: usize,
    beta: T,
) {
    unsafe {
        gemm::gemm(
            m,
            n,
            kk,
            dst,
            ld_dst as isize,
            1,
            read_dst,
            lhs,
            lhs_cs as isize,
            lhs_rs as isize,
            rhs,
            rhs_cs as isize,
            rhs_rs as isize,
            T::one(),
            beta,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// Build the upper-triangular `T` (`nb x nb`, col-major) of the panel whose reflectors sit in
/// panel slot `slot` (LAPACK `dlarft`, forward, columnwise): `T_jj = tau_j`,
/// `T[0..j, j] = -tau_j T[0..j, 0..j] V[:, 0..j]^T v_j`.
#[inline(always)]
fn build_t<T: Real, const FMA: bool>(
    ws: &mut QrWorkspace<T>,
    slot: usize,
    p: usize,
    pe: usize,
    t: &mut [T],
) {
    let d = ws.d;
    let nb = ws.nb;
    let vb = ws.slot_start(slot);
    let panel = &ws.panel[vb..vb + nb * d];
    let mut tmp = [T::zero(); MAX_PANEL_WIDTH];
    for j in 0..pe - p {
        let tau = ws.tau[p + j];
        let vj = &panel[j * d + p + j..(j + 1) * d];
        for (i, ti) in tmp.iter_mut().enumerate().take(j) {
            let vi = &panel[i * d + p + j..(i + 1) * d];
            *ti = -tau * dot::<T, FMA>(vi, vj);
        }
        for i in 0..j {
            let mut s = T::zero();
            for l in i..j {
                s = fmadd::<T, FMA>(t[i + l * nb], tmp[l], s);
            }
            t[i + j * nb] = s;
        }
        t[j + j * nb] = tau;
        for i in j + 1..nb {
            t[i + j * nb] = T::zero();
        }
    }
}

/// Whether the register-tiled AVX-512 trailing updates (and the two-level blocking built on
/// them) serve this workspace.
#[inline(always)]
fn tiled_updates<T: Real>(ws: &QrWorkspace<T>) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        ws.nb == crate::qr_tiles::NB && level() == Level::Avx512
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = ws;
        false
    }
}

/// `Y = V op(T)` (rows `p..d`) of the panel in slot `slot` into the same slot of `panel_y`:
/// column `r` of `Y` is a combination of the panel's reflectors, so the update
/// `C -= V op(T) V^T C` becomes `C -= Y (V^T C)` with no scalar triangular product.
/// `op(T) = T^T` applies `H_{pe-1} ... H_p` (factorisation), `op(T) = T` applies
/// `H_p ... H_{pe-1}` (forming `Q`).
#[inline(always)]
fn prepare_y<T: Real>(
    ws: &mut QrWorkspace<T>,
    t: &[T],
    slot: usize,
    p: usize,
    pe: usize,
    transpose_t: bool,
) {
    let (d, ldt) = (ws.d, ws.nb);
    let nb = pe - p;
    let base = ws.slot_start(slot);
    // From the aligned row p0: the slot's rows p0..p are zero, so are Y's.
    let p0 = aligned_row::<T>(p, d);
    #[cfg(target_arch = "x86_64")]
    {
        debug_assert_eq!(ldt, crate::qr_tiles::NB);
        assert!(base + ldt * d <= ws.panel_y.len() && base + nb * d <= ws.panel.len());
        assert!(t.len() >= ldt * ldt);
        // SAFETY: AVX-512 checked by the caller (`tiled_updates`); V = rows p0..d of the nb
        // reflectors of the slot, Y = rows p0..d of the NB columns of its Y slot, T = nb x nb
        // inside `t` (all bounds asserted above).
        unsafe {
            crate::qr_tiles::y_from_v_dispatch(
                d - p0,
                nb,
                ws.panel.as_ptr().add(base + p0),
                d,
                ws.panel_y.as_mut_ptr().add(base + p0),
                d,
                t.as_ptr(),
                ldt,
                transpose_t,
            );
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (ws, t, nb, base, p0, ldt, transpose_t);
        unreachable!("tiled updates are x86_64-only");
    }
}

/// `C -= Y (V^T C)` for `C = a[p.., c0..c1]` with the `NB`-wide panel in slot `slot` (its `Y`
/// from [`prepare_y`]), by the register-tiled kernels of [`crate::qr_tiles`].
#[inline(always)]
fn tiled_update<T: Real>(
    a: &mut [T],
    ws: &mut QrWorkspace<T>,
    slot: usize,
    p: usize,
    c0: usize,
    c1: usize,
) {
    #[cfg(target_arch = "x86_64")]
    {
        let d = ws.d;
        // Start at the 64-byte-aligned row p0 <= p: rows p0..p of the slots are zero, so
        // they add nothing to W and leave rows p0..p of C unchanged.
        let p = aligned_row::<T>(p, d);
        let (m, n2) = (d - p, c1 - c0);
        if n2 == 0 {
            return;
        }
        let base = ws.slot_start(slot);
        assert!(c1 <= ws.k && ws.w.len() >= crate::qr_tiles::NB * n2);
        // SAFETY: AVX-512 is checked by the caller (`tiled_updates`); V and Y are rows p..d of
        // the NB slots of `slot` (element (i, r) at base + p + i + r d), C is rows p..d of
        // columns c0..c1 of `a` (element (i, c) at (c0 + c) d + p + i), W is NB x n2 inside
        // ws.w (checked above).
        unsafe {
            crate::qr_tiles::vt_c_dispatch(
                m,
                n2,
                ws.panel.as_ptr().add(base + p),
                d,
                a.as_ptr().add(c0 * d + p),
                d,
                ws.w.as_mut_ptr(),
            );
            crate::qr_tiles::c_minus_v_w_dispatch(
                m,
                n2,
                ws.panel_y.as_ptr().add(base + p),
                d,
                a.as_mut_ptr().add(c0 * d + p),
                d,
                ws.w.as_ptr(),
            );
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (a, ws, slot, p, c0, c1);
        unreachable!("tiled updates are x86_64-only");
    }
}

/// `C -= V op(T) V^T C` for the trailing block `C = a[p.., c0..k]` with the panel `V` in slot 0
/// and its `T` in `t`, by two calls of the `gemm` crate and a scalar triangular product
/// (panel widths other than the tiled kernels' `NB`, and CPUs without AVX-512).
#[inline(always)]
fn gemm_update<T: Real, const FMA: bool>(
    a: &mut [T],
    ws: &mut QrWorkspace<T>,
    t: &[T],
    p: usize,
    pe: usize,
    c0: usize,
    transpose_t: bool,
) {
    let (d, k) = (ws.d, ws.k);
    let nb = pe - p;
    let m = d - p;
    let n2 = k - c0;
    let ldt = ws.nb;
    // W = V^T C  (nb x n2, leading dim nb)
    // SAFETY: V is rows p..d of the panel slots (element (i, j) at p + i + j d, j < nb <=
    // ws.nb), C is rows p..d of columns c0..k of `a` (element (i, c) at (c0 + c) d + p + i),
    // W is nb x n2 inside ws.w (len ws.nb * k).
    unsafe {
        gemm_strided(
            nb,
            n2,
            m,
            ws.w.as_mut_ptr(),
            nb,
            false,
            ws.panel.as_ptr().add(p),
            d,
            1,
            a.as_ptr().add(c0 * d + p),
            1,
            d,
            T::one(),
        )
    };
    // W = op(T) W, in place, column by column
    for c in 0..n2 {
        let w = &mut ws.w[c * nb..(c + 1) * nb];
        if transpose_t {
            // w'_j = sum_{i <= j} T[i, j] w_i, from the bottom up
            for j in (0..nb).rev() {
                let mut s = T::zero();
                for i in 0..=j {
                    s = fmadd::<T, FMA>(t[i + j * ldt], w[i], s);
                }
                w[j] = s;
            }
        } else {
            // w'_i = sum_{j >= i} T[i, j] w_j, from the top down
            for i in 0..nb {
                let mut s = T::zero();
                for j in i..nb {
                    s = fmadd::<T, FMA>(t[i + j * ldt], w[j], s);
                }
                w[i] = s;
            }
        }
    }
    // C -= V W
    // SAFETY: as above.
    unsafe {
        gemm_strided(
            m,
            n2,
            nb,
            a.as_mut_ptr().add(c0 * d + p),
            d,
            true,
            ws.panel.as_ptr().add(p),
            1,
            d,
            ws.w.as_ptr(),
            1,
            nb,
            -T::one(),
        );
    }
}

/// Inner panels per outer block of the two-level blocking (tiled path only): the block's
/// panels are applied to the columns right of the block one column chunk at a time, so each
/// chunk of `C` is read from and written to the L2 cache once per outer block instead of once
/// per panel, with exactly the same arithmetic per column.
pub const OUTER_PANELS: usize = 4;

/// Columns per chunk of the outer trailing update (a `D x CHUNK` slab stays in L1).
const CHUNK_COLS: usize = 16;

/// Apply panel `slot` of the current outer block (reflectors `p..pe`) to the columns `c0..c1`
/// of `a`: tiled kernels, or (one-level path) the `gemm` update or, for a narrow trailing
/// block, each reflector in turn (`reverse`: `H_{pe-1}` first, for forming `Q`).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn update_columns<T: Real, const FMA: bool>(
    a: &mut [T],
    ws: &mut QrWorkspace<T>,
    t: &[T],
    slot: usize,
    (p, pe): (usize, usize),
    (c0, c1): (usize, usize),
    tiled: bool,
    factor: bool,
) {
    if c1 <= c0 {
        return;
    }
    let d = ws.d;
    if tiled {
        tiled_update(a, ws, slot, p, c0, c1);
    } else if c1 == ws.k && c1 - c0 >= GEMM_MIN_COLS {
        gemm_update::<T, FMA>(a, ws, t, p, pe, c0, factor);
    } else {
        // Narrow trailing block: each column receives the panel while it is in cache.
        let base = ws.slot_start(slot);
        for j in c0..c1 {
            let col = &mut a[j * d..(j + 1) * d];
            let mut apply = |r: usize| {
                let v = &ws.panel[base + (r - p) * d + r..base + (r - p + 1) * d];
                apply_reflector::<T, FMA>(v, ws.tau[r], &mut col[r..]);
            };
            if factor {
                (p..pe).for_each(&mut apply);
            } else {
                (p..pe).rev().for_each(&mut apply);
            }
        }
    }
}

/// Factor the panel `p..pe` (at most `NB` columns) of the tiled path, left-looking in compact
/// WY form: column `c` receives the panel's earlier reflectors as
/// `col -= V T^T (V^T col)` (one tiled `V^T x` and one tiled `x -= V w`, instead of one dot and
/// one `axpy` per reflector), and `T` is built column by column as the reflectors appear
/// (`T[0..j, j] = -tau_j T[0..j, 0..j] V^T v_j`, LAPACK `dlarft`). Writes the reflectors to
/// slot `slot`, `tau`, signs and `ln |R_cc|`, and the panel's `T` to `t`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn panel_factor_tiled<T: Real, const FMA: bool>(
    a: &mut [T],
    log_diag: &mut [f64],
    ws: &mut QrWorkspace<T>,
    t: &mut [T],
    slot: usize,
    p: usize,
    pe: usize,
) {
    #[cfg(target_arch = "x86_64")]
    {
        use crate::qr_tiles::NB;
        let (d, nb) = (ws.d, ws.nb);
        debug_assert_eq!(nb, NB);
        let base = ws.slot_start(slot);
        // Aligned start row (the slot's rows above p are zero, see `tiled_update`).
        let p0 = aligned_row::<T>(p, d);
        let m = d - p0;
        // Reflector slots not yet written are zero (they enter the tiled products).
        ws.panel[base..base + nb * d].fill(T::zero());
        t[..nb * nb].fill(T::zero());
        // w = V^T col (first half: V^T of the newest reflector, for T), from one paired call
        // at the end of the previous column.
        let mut w = [T::zero(); 2 * NB];
        let mut w2 = [T::zero(); NB];
        for c in p..pe {
            let j = c - p;
            if j > 0 {
                // w2 = T^T (V^T col) on the first j reflectors (zero beyond).
                for i in 0..NB {
                    let mut acc = T::zero();
                    if i < j {
                        for l in 0..=i {
                            acc = fmadd::<T, FMA>(t[l + i * nb], w[NB + l], acc);
                        }
                    }
                    w2[i] = acc;
                }
                // SAFETY: AVX-512 checked by the caller; V = rows p0..d of the NB slots, x =
                // rows p0..d of column c, w2 has NB entries.
                unsafe {
                    crate::qr_tiles::c_minus_v_w_dispatch(
                        m,
                        1,
                        ws.panel.as_ptr().add(base + p0),
                        d,
                        a.as_mut_ptr().add(c * d + p0),
                        d,
                        w2.as_ptr(),
                    );
                }
            }
            let col = &mut a[c * d..(c + 1) * d];
            let tau = make_reflector::<T, FMA>(&mut col[c..]);
            ws.tau[c] = tau;
            let beta = col[c];
            // |R_cc| now; the logarithms of the whole block are taken at the end (`ln_all`).
            log_diag[c] = beta.as_f64().abs();
            ws.sign[c] = if beta < T::zero() { -T::one() } else { T::one() };
            let slot_v = &mut ws.panel[base + j * d..base + (j + 1) * d];
            slot_v[c] = T::one();
            slot_v[c + 1..].copy_from_slice(&col[c + 1..]);
            // One paired pass: V^T v_j (for T's column j) and V^T col_{c+1} (for the next
            // column's update, V now including v_j).
            let next = if c + 1 < pe { c + 1 } else { c };
            // SAFETY: AVX-512 checked by the caller; V = rows p0..d of the NB slots, x0 = rows
            // p0..d of slot j, x1 = rows p0..d of column `next` of `a`, w has 2 NB entries.
            unsafe {
                crate::qr_tiles::vt_2cols_dispatch(
                    m,
                    ws.panel.as_ptr().add(base + p0),
                    d,
                    ws.panel.as_ptr().add(base + j * d + p0),
                    a.as_ptr().add(next * d + p0),
                    w.as_mut_ptr(),
                );
            }
            for i in 0..j {
                let mut acc = T::zero();
                for l in i..j {
                    acc = fmadd::<T, FMA>(t[i + l * nb], w[l], acc);
                }
                t[i + j * nb] = -tau * acc;
            }
            t[j + j * nb] = tau;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (a, log_diag, ws, t, slot, p, pe);
        unreachable!("tiled updates are x86_64-only");
    }
}

/// The explicit columns `p..pe` of `Q` for the tiled path: with the columns right of the panel
/// already formed, `Q e_j = H_p ... H_{pe-1} e_j = e_j - Y V[j, :]^T` (`Y = V T` from
/// [`prepare_y`]), one tiled `C -= Y W` with `W = V[p..pe, :]^T` on identity columns instead
/// of LAPACK `dorg2r`'s reflector-by-reflector accumulation.
#[inline(always)]
fn panel_form_q_tiled<T: Real>(
    a: &mut [T],
    ws: &mut QrWorkspace<T>,
    slot: usize,
    p: usize,
    pe: usize,
) {
    #[cfg(target_arch = "x86_64")]
    {
        use crate::qr_tiles::NB;
        let d = ws.d;
        let base = ws.slot_start(slot);
        let npc = pe - p;
        let p0 = aligned_row::<T>(p, d);
        for jj in 0..npc {
            for r in 0..NB {
                ws.w[r + NB * jj] =
                    if r < npc { ws.panel[base + r * d + p + jj] } else { T::zero() };
            }
            let col = &mut a[(p + jj) * d..(p + jj + 1) * d];
            col.fill(T::zero());
            col[p + jj] = T::one();
        }
        // SAFETY: AVX-512 checked by the caller; Y = rows p..d of the NB slots (unused ones
        // zeroed by prepare_y), C = rows p..d of columns p..pe, W = NB x npc in ws.w.
        unsafe {
            crate::qr_tiles::c_minus_v_w_dispatch(
                d - p0,
                npc,
                ws.panel_y.as_ptr().add(base + p0),
                d,
                a.as_mut_ptr().add(p * d + p0),
                d,
                ws.w.as_ptr(),
            );
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (a, ws, slot, p, pe);
        unreachable!("tiled updates are x86_64-only");
    }
}

#[inline(always)]
fn factor_impl<T: Real, const FMA: bool>(
    a: &mut [T],
    log_diag: &mut [f64],
    ws: &mut QrWorkspace<T>,
) {
    let (d, k, nb) = (ws.d, ws.k, ws.nb);
    let tiled = tiled_updates(ws);
    let outer = if tiled { OUTER_PANELS } else { 1 };
    let mut t_factors = std::mem::take(&mut ws.t_factors);
    let mut p2 = 0;
    while p2 < k {
        let pe2 = (p2 + outer * nb).min(k);
        let mut p = p2;
        let mut slot = 0;
        while p < pe2 {
            let pe = (p + nb).min(pe2);
            let base = ws.slot_start(slot);
            let pi = p / nb;
            if tiled {
                let t = &mut t_factors[pi * nb * nb..(pi + 1) * nb * nb];
                panel_factor_tiled::<T, FMA>(a, log_diag, ws, t, slot, p, pe);
                prepare_y(ws, t, slot, p, pe, true);
                update_columns::<T, FMA>(a, ws, t, slot, (p, pe), (pe, pe2), true, true);
                p = pe;
                slot += 1;
                continue;
            }
            // Panel: left-looking inside the panel.
            for c in p..pe {
                let col = &mut a[c * d..(c + 1) * d];
                for r in p..c {
                    let v = &ws.panel[base + (r - p) * d + r..base + (r - p + 1) * d];
                    apply_reflector::<T, FMA>(v, ws.tau[r], &mut col[r..]);
                }
                let tau = make_reflector::<T, FMA>(&mut col[c..]);
                ws.tau[c] = tau;
                let beta = col[c];
                log_diag[c] = beta.as_f64().abs().ln();
                ws.sign[c] = if beta < T::zero() { -T::one() } else { T::one() };
                let slot_v = &mut ws.panel[base + (c - p) * d..base + (c - p + 1) * d];
                for x in &mut slot_v[p..c] {
                    *x = T::zero();
                }
                slot_v[c] = T::one();
                slot_v[c + 1..].copy_from_slice(&col[c + 1..]);
            }
            let t = &mut t_factors[pi * nb * nb..(pi + 1) * nb * nb];
            build_t::<T, FMA>(ws, slot, p, pe, t);
            update_columns::<T, FMA>(a, ws, t, slot, (p, pe), (pe, k), false, true);
            p = pe;
            slot += 1;
        }
        if tiled {
            // Columns right of the outer block, chunk by chunk, panels in order.
            let mut c0 = pe2;
            while c0 < k {
                let c1 = (c0 + CHUNK_COLS).min(k);
                for s in 0..slot {
                    let ps = p2 + s * nb;
                    tiled_update(a, ws, s, ps, c0, c1);
                }
                c0 = c1;
            }
        }
        p2 = pe2;
    }
    ws.t_factors = t_factors;
    if tiled {
        ln_all(log_diag);
    }
}

/// `ln` of the tiled path's `|R_cc|`, vectorised (see `qr_tiles::ln_in_place`).
#[inline(always)]
fn ln_all(x: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: only called on the tiled path, which requires AVX-512 (`tiled_updates`).
    unsafe {
        crate::qr_tiles::ln_in_place(x)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = x;
        unreachable!("tiled updates are x86_64-only");
    }
}

#[inline(always)]
fn form_q_impl<T: Real, const FMA: bool>(a: &mut [T], ws: &mut QrWorkspace<T>) {
    let (d, k, nb) = (ws.d, ws.k, ws.nb);
    if k == 0 {
        return;
    }
    let tiled = tiled_updates(ws);
    let outer = if tiled { OUTER_PANELS } else { 1 };
    let t_factors = std::mem::take(&mut ws.t_factors);
    // Outer blocks from the last to the first.
    let nouter = k.div_ceil(outer * nb);
    for ob in (0..nouter).rev() {
        let p2 = ob * outer * nb;
        let pe2 = (p2 + outer * nb).min(k);
        let npanels = (pe2 - p2).div_ceil(nb);
        // Save the block's reflectors before their columns are overwritten.
        for s in 0..npanels {
            let p = p2 + s * nb;
            let pe = (p + nb).min(pe2);
            let base = ws.slot_start(s);
            let p0 = aligned_row::<T>(p, d);
            for c in p..pe {
                let slot_v = &mut ws.panel[base + (c - p) * d..base + (c - p + 1) * d];
                for x in &mut slot_v[p0..c] {
                    *x = T::zero();
                }
                slot_v[c] = T::one();
                slot_v[c + 1..].copy_from_slice(&a[c * d + c + 1..(c + 1) * d]);
            }
            if tiled {
                let pi = p / nb;
                prepare_y(ws, &t_factors[pi * nb * nb..(pi + 1) * nb * nb], s, p, pe, false);
            }
        }
        // Columns right of the block already hold H_pe2 ... H_{k-1} [I; 0] (zero above row
        // pe2); apply the block's panels, last first.
        if tiled {
            let mut c0 = pe2;
            while c0 < k {
                let c1 = (c0 + CHUNK_COLS).min(k);
                for s in (0..npanels).rev() {
                    tiled_update(a, ws, s, p2 + s * nb, c0, c1);
                }
                c0 = c1;
            }
        }
        for s in (0..npanels).rev() {
            let p = p2 + s * nb;
            let pe = (p + nb).min(pe2);
            let pi = p / nb;
            let t = &t_factors[pi * nb * nb..(pi + 1) * nb * nb];
            // Columns of the block right of this panel (one-level path: all columns right).
            let right = if tiled { pe2 } else { k };
            update_columns::<T, FMA>(a, ws, t, s, (p, pe), (pe, right), tiled, false);
            if tiled {
                panel_form_q_tiled(a, ws, s, p, pe);
                continue;
            }
            // Inside the panel: unblocked backward accumulation (dorg2r).
            let base = ws.slot_start(s);
            for i in (p..pe).rev() {
                let tau = ws.tau[i];
                for j in i + 1..pe {
                    let v = &ws.panel[base + (i - p) * d + i..base + (i - p + 1) * d];
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
    }
    ws.t_factors = t_factors;
    // Sign fix: diag(R) >= 0.
    for c in 0..k {
        if ws.sign[c] < T::zero() {
            for x in &mut a[c * d..(c + 1) * d] {
                *x = -*x;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `J Q` with `Q` kept factored equals `J` times the explicit `Q` of the same
    /// factorisation (formed by `form_q_in_place`, multiplied in f64).
    fn factored_q_matches_explicit<T: Real>(tol: f64) {
        if !aelle_support::simd::avx512_or_skip("factored_q_matches_explicit") {
            return;
        }
        let mut u = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = || {
            u ^= u << 13;
            u ^= u >> 7;
            u ^= u << 17;
            (u >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        for d in [1usize, 5, 8, 13, 31, 32, 33, 64, 100, 128, 130] {
            let z: Vec<T> = (0..d * d).map(|_| T::from_f64(rnd())).collect();
            let jm: Vec<T> = (0..d * d).map(|_| T::from_f64(rnd())).collect();
            let mut ws = QrWorkspace::<T>::new(d, d);
            assert!(ws.supports_factored_q());
            let mut a = z.clone();
            let mut logs = vec![0.0; d];
            factor_keeping_reflectors(&mut a, &mut logs, &mut ws);
            let (tf, sign) = ws.factored_q_parts();
            let (tf, sign) = (tf.to_vec(), sign.to_vec());
            let mut got = jm.clone();
            apply_factored_q_right(d, &mut got, &a, &tf, &sign, &vec![T::zero(); d]);
            let mut q = a.clone();
            form_q_in_place(&mut q, &mut ws);
            let mut worst = 0.0f64;
            for c in 0..d {
                for r in 0..d {
                    let want: f64 =
                        (0..d).map(|i| jm[r + i * d].as_f64() * q[i + c * d].as_f64()).sum();
                    worst = worst.max((got[r + c * d].as_f64() - want).abs());
                }
            }
            assert!(worst <= tol * d as f64, "{} d = {d}: J Q off by {worst:e}", T::NAME);
        }
    }

    #[test]
    fn factored_q_matches_explicit_f64() {
        factored_q_matches_explicit::<f64>(1e-14);
    }

    #[test]
    fn factored_q_matches_explicit_f32() {
        factored_q_matches_explicit::<f32>(1e-6);
    }
}
