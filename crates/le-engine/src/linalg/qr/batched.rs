//! Householder QR of up to [`LANES`] blocks at once, SIMD across the blocks.
//!
//! The Benettin step of a network orthonormalises one `D x k` block per driving sequence, and
//! all blocks have the same shape. Instead of factoring them one after the other (where short
//! columns, horizontal reductions and small GEMMs keep the kernel far from peak), this module
//! interleaves `LANES = 16` blocks element by element — `A[i][j][lane]`, lanes innermost — and
//! runs the *same* blocked Householder algorithm as [`crate::linalg::qr`] on all of them in lockstep:
//! every arithmetic operation becomes a vertical SIMD operation over 16 independent
//! factorisations (one AVX-512 register in `f32`), with no reductions across lanes and no
//! shuffles. Lanes never interact, so a lane holding NaN (a diverged sequence) or padding cannot
//! disturb the others.
//!
//! Algorithm per lane (identical to [`crate::linalg::qr`]): panels of `nb` columns, left-looking inside
//! the panel (`dlarfg` reflectors with `beta = -sign(alpha) ||x||`), compact WY
//! `I - V T V^T` (`dlarft`) applied to the trailing columns as `C -= V (T^T (V^T C))`, explicit
//! `Q` by backward accumulation (`dorgqr`), sign fix so `diag(R) >= 0`. The trailing-update
//! products are register-tiled (several reflectors x several columns per pass over the rows),
//! so most flops are FMAs on data already in registers.
//!
//! Input and output are ordinary column-major blocks (`blocks[b * D * k ..]`); packing into
//! and out of the interleaved layout costs `O(D k)` per block against `O(D k^2)` for the QR.
//!
//! This file is a little over 600 lines on purpose: it is one algorithm (the lockstep
//! factorisation, its tiles and its `Q` formation share the interleaved layout and its index
//! arithmetic) and reads best whole; only the AVX-512 register kernels live apart
//! (`batched/avx512_f32.rs`).

// Index arithmetic over (row, column, lane) is the clearest way to write these kernels.
#![allow(clippy::needless_range_loop, clippy::too_many_arguments)]

use crate::linalg::primitives::fmadd as fma;
use crate::scalar::Real;
use aelle_support::simd::{Level, level};

/// Blocks factored together (one AVX-512 register of `f32`).
pub const LANES: usize = 16;

/// Panel width of the batched kernel.
pub const BATCHED_PANEL_WIDTH: usize = 8;

type Lanes<T> = [T; LANES];

/// Scratch for [`orthonormalize_blocks`] on blocks of one shape (`d x k`, `k <= d`).
#[derive(Debug, Clone)]
pub struct BatchedQrWorkspace<T: Real> {
    d: usize,
    k: usize,
    nb: usize,
    /// Interleaved blocks `[d][k][LANES]`.
    a: Vec<T>,
    /// Panel reflectors `[d][nb][LANES]` (explicit 1 on the diagonal, 0 above).
    vp: Vec<T>,
    /// `T` factors of every panel `[panel][nb][nb][LANES]` (row-major `nb x nb`).
    tf: Vec<T>,
    /// `W = V^T C`, `[nb][k][LANES]`.
    w: Vec<T>,
    tau: Vec<T>,
    sign: Vec<T>,
    beta: Vec<T>,
}

impl<T: Real> BatchedQrWorkspace<T> {
    /// Scratch for `d x k` blocks.
    pub fn new(d: usize, k: usize) -> Self {
        assert!(k <= d, "QR of a D x k block needs k <= D (got D = {d}, k = {k})");
        let nb = BATCHED_PANEL_WIDTH;
        let np = k.div_ceil(nb).max(1);
        Self {
            d,
            k,
            nb,
            a: vec![T::zero(); d * k * LANES],
            vp: vec![T::zero(); d * nb * LANES],
            tf: vec![T::zero(); np * nb * nb * LANES],
            w: vec![T::zero(); nb * k * LANES],
            tau: vec![T::zero(); k * LANES],
            sign: vec![T::one(); k * LANES],
            beta: vec![T::zero(); k * LANES],
        }
    }
}

/// Orthonormalise `n = blocks.len() / (d k)` (at most [`LANES`]) column-major `d x k` blocks in
/// place, exactly as [`crate::linalg::qr::orthonormalize_in_place`] does for one: on return each block
/// is its `Q` (`diag(R) >= 0`) and `log_diag[b * k + i] = ln R_ii` of block `b`.
pub fn orthonormalize_blocks<T: Real>(
    blocks: &mut [T],
    log_diag: &mut [f64],
    ws: &mut BatchedQrWorkspace<T>,
) {
    let (d, k) = (ws.d, ws.k);
    assert!(d * k > 0 && blocks.len().is_multiple_of(d * k), "blocks must be n x D x k");
    let n = blocks.len() / (d * k);
    assert!(n <= LANES, "at most {LANES} blocks per call (got {n})");
    assert_eq!(log_diag.len(), n * k, "log_diag must hold n * k values");
    match level() {
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => unsafe { batched_avx512(blocks, n, log_diag, ws) },
        #[cfg(target_arch = "x86_64")]
        Level::Avx2Fma => unsafe { batched_avx2(blocks, n, log_diag, ws) },
        Level::Baseline => batched_impl::<T, false>(blocks, n, log_diag, ws),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
unsafe fn batched_avx512<T: Real>(
    b: &mut [T],
    n: usize,
    l: &mut [f64],
    ws: &mut BatchedQrWorkspace<T>,
) {
    batched_impl::<T, true>(b, n, l, ws);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn batched_avx2<T: Real>(
    b: &mut [T],
    n: usize,
    l: &mut [f64],
    ws: &mut BatchedQrWorkspace<T>,
) {
    batched_impl::<T, true>(b, n, l, ws);
}

#[inline(always)]
fn lanes<T>(s: &[T], at: usize) -> &Lanes<T> {
    s[at..at + LANES].try_into().expect("LANES elements")
}

#[inline(always)]
fn lanes_mut<T>(s: &mut [T], at: usize) -> &mut Lanes<T> {
    (&mut s[at..at + LANES]).try_into().expect("LANES elements")
}

#[inline(always)]
fn batched_impl<T: Real, const FMA: bool>(
    blocks: &mut [T],
    n: usize,
    log_diag: &mut [f64],
    ws: &mut BatchedQrWorkspace<T>,
) {
    let (d, k) = (ws.d, ws.k);
    // pack: a[(i k + j) L + lane] = block[lane][j d + i]; padding lanes get [I; 0] (full
    // rank). Through an L1-resident 16 x 16 tile: each block is read in contiguous runs and
    // every line of `a` is written whole (16 scattered scalar streams thrash the cache).
    let mut tile = [[T::zero(); LANES]; LANES];
    for j in 0..k {
        for i0 in (0..d).step_by(LANES) {
            let h = LANES.min(d - i0);
            for (lane, row) in tile.iter_mut().enumerate() {
                if lane < n {
                    let at = lane * d * k + j * d + i0;
                    row[..h].copy_from_slice(&blocks[at..at + h]);
                } else {
                    for (ii, x) in row[..h].iter_mut().enumerate() {
                        *x = if i0 + ii == j { T::one() } else { T::zero() };
                    }
                }
            }
            for ii in 0..h {
                let dst = lanes_mut(&mut ws.a, ((i0 + ii) * k + j) * LANES);
                for (lane, x) in dst.iter_mut().enumerate() {
                    *x = tile[lane][ii];
                }
            }
        }
    }
    factor::<T, FMA>(ws);
    for lane in 0..n {
        for c in 0..k {
            log_diag[lane * k + c] = ws.beta[c * LANES + lane].as_f64().abs().ln();
        }
    }
    form_q::<T, FMA>(ws);
    // unpack, fused with the sign fix (diag(R) >= 0), through the same tile
    for j in 0..k {
        let sign = *lanes(&ws.sign, j * LANES);
        for i0 in (0..d).step_by(LANES) {
            let h = LANES.min(d - i0);
            for ii in 0..h {
                let src = lanes(&ws.a, ((i0 + ii) * k + j) * LANES);
                for lane in 0..LANES {
                    tile[lane][ii] = src[lane] * sign[lane];
                }
            }
            for (lane, row) in tile.iter().enumerate().take(n) {
                let at = lane * d * k + j * d + i0;
                blocks[at..at + h].copy_from_slice(&row[..h]);
            }
        }
    }
}

/// `x[c..] -= tau (v^T x) v` for reflector `v` (panel column `r`, rows `r0..d`) applied to
/// column `c` of `a`, all lanes.
#[inline(always)]
fn apply_panel_reflector<T: Real, const FMA: bool>(
    a: &mut [T],
    vp: &[T],
    tau: &Lanes<T>,
    k: usize,
    nb: usize,
    r: usize,
    row0: usize,
    d: usize,
    c: usize,
) {
    #[cfg(target_arch = "x86_64")]
    if use_avx512_f32::<T>() {
        let (vp, tau) = (as_f32(vp).expect("f32"), as_f32(&tau[..]).expect("f32"));
        let a = as_f32_mut(a).expect("f32");
        // SAFETY: AVX-512 checked by use_avx512_f32; shapes asserted inside.
        unsafe { avx512_f32::apply_reflector(a, vp, tau, k, r, row0, d, c) };
        return;
    }
    let mut s = [T::zero(); LANES];
    for i in row0..d {
        let v = lanes(vp, (i * nb + r) * LANES);
        let x = lanes(a, (i * k + c) * LANES);
        for l in 0..LANES {
            s[l] = fma::<T, FMA>(v[l], x[l], s[l]);
        }
    }
    for l in 0..LANES {
        s[l] = -(s[l] * tau[l]);
    }
    for i in row0..d {
        let v = *lanes(vp, (i * nb + r) * LANES);
        let x = lanes_mut(a, (i * k + c) * LANES);
        for l in 0..LANES {
            x[l] = fma::<T, FMA>(s[l], v[l], x[l]);
        }
    }
}

#[inline(always)]
fn factor<T: Real, const FMA: bool>(ws: &mut BatchedQrWorkspace<T>) {
    let (d, k, nb) = (ws.d, ws.k, ws.nb);
    let tiny = T::min_positive_value() / T::epsilon();
    let huge = T::max_value() * T::epsilon();
    let mut p = 0;
    while p < k {
        let pe = (p + nb).min(k);
        let w = pe - p;
        for c in p..pe {
            // earlier reflectors of this panel
            for r in p..c {
                let tau = *lanes(&ws.tau, r * LANES);
                apply_panel_reflector::<T, FMA>(&mut ws.a, &ws.vp, &tau, k, nb, r - p, r, d, c);
            }
            // reflector of column c
            let mut ssq = [T::zero(); LANES];
            for i in c + 1..d {
                let x = lanes(&ws.a, (i * k + c) * LANES);
                for l in 0..LANES {
                    ssq[l] = fma::<T, FMA>(x[l], x[l], ssq[l]);
                }
            }
            let alpha = *lanes(&ws.a, (c * k + c) * LANES);
            let mut tau = [T::zero(); LANES];
            let mut inv = [T::zero(); LANES];
            let mut beta = [T::zero(); LANES];
            for l in 0..LANES {
                let mut s = ssq[l];
                let mut scale = T::one();
                if s != T::zero() && !(s > tiny && s < huge) {
                    // rescue lane: scaled sum of squares (LAPACK dnrm2 idea)
                    let mut m = T::zero();
                    for i in c + 1..d {
                        m = m.max(ws.a[(i * k + c) * LANES + l].abs());
                    }
                    if m > T::zero() && m.is_finite() {
                        s = T::zero();
                        for i in c + 1..d {
                            let t = ws.a[(i * k + c) * LANES + l] / m;
                            s += t * t;
                        }
                        scale = m;
                    }
                }
                if s == T::zero() {
                    beta[l] = alpha[l];
                    continue; // tau = 0, inv = 0: H = I
                }
                let norm = alpha[l].hypot(scale * s.sqrt());
                let b = if alpha[l] >= T::zero() { -norm } else { norm };
                beta[l] = b;
                tau[l] = (b - alpha[l]) / b;
                inv[l] = T::one() / (alpha[l] - b);
            }
            for i in c + 1..d {
                let x = lanes_mut(&mut ws.a, (i * k + c) * LANES);
                for l in 0..LANES {
                    x[l] *= inv[l];
                }
            }
            *lanes_mut(&mut ws.a, (c * k + c) * LANES) = beta;
            *lanes_mut(&mut ws.tau, c * LANES) = tau;
            *lanes_mut(&mut ws.beta, c * LANES) = beta;
            let mut sign = [T::one(); LANES];
            for l in 0..LANES {
                if beta[l] < T::zero() {
                    sign[l] = -T::one();
                }
            }
            *lanes_mut(&mut ws.sign, c * LANES) = sign;
            // panel copy of v_c (rows p..d): 0 above c, 1 at c, v below
            let r = c - p;
            for i in p..c {
                *lanes_mut(&mut ws.vp, (i * nb + r) * LANES) = [T::zero(); LANES];
            }
            *lanes_mut(&mut ws.vp, (c * nb + r) * LANES) = [T::one(); LANES];
            for i in c + 1..d {
                let v = *lanes(&ws.a, (i * k + c) * LANES);
                *lanes_mut(&mut ws.vp, (i * nb + r) * LANES) = v;
            }
        }
        zero_unused_panel_columns(ws, p, w);
        let pi = p / nb;
        build_t::<T, FMA>(ws, p, w, pi);
        if pe < k {
            block_update::<T, FMA>(ws, p, pe, pi, true);
        }
        p = pe;
    }
}

/// A last panel narrower than `nb` leaves reflector slots `w..nb` unused: make them zero columns
/// so the fixed-width kernels add nothing for them.
fn zero_unused_panel_columns<T: Real>(ws: &mut BatchedQrWorkspace<T>, p: usize, w: usize) {
    let (d, nb) = (ws.d, ws.nb);
    if w == nb {
        return;
    }
    for i in p..d {
        ws.vp[(i * nb + w) * LANES..(i + 1) * nb * LANES].fill(T::zero());
    }
}

/// `T` factor (`dlarft`, forward, columnwise) of the panel at `p` of width `w`, all lanes.
#[inline(always)]
fn build_t<T: Real, const FMA: bool>(
    ws: &mut BatchedQrWorkspace<T>,
    p: usize,
    w: usize,
    pi: usize,
) {
    let (d, nb) = (ws.d, ws.nb);
    let base = pi * nb * nb * LANES;
    ws.tf[base..base + nb * nb * LANES].fill(T::zero());
    for j in 0..w {
        let tau = *lanes(&ws.tau, (p + j) * LANES);
        // tmp[i] = -tau_j V[:, i]^T v_j over rows p + j .. d, i < j
        let mut tmp = [[T::zero(); LANES]; 64];
        for i in 0..j {
            let mut s = [T::zero(); LANES];
            for row in p + j..d {
                let vi = lanes(&ws.vp, (row * nb + i) * LANES);
                let vj = lanes(&ws.vp, (row * nb + j) * LANES);
                for l in 0..LANES {
                    s[l] = fma::<T, FMA>(vi[l], vj[l], s[l]);
                }
            }
            for l in 0..LANES {
                tmp[i][l] = -(tau[l] * s[l]);
            }
        }
        // T[0..j, j] = T[0..j, 0..j] tmp
        for i in 0..j {
            let mut s = [T::zero(); LANES];
            for (m, tm) in tmp.iter().enumerate().take(j).skip(i) {
                let t = lanes(&ws.tf, base + (i * nb + m) * LANES);
                for l in 0..LANES {
                    s[l] = fma::<T, FMA>(t[l], tm[l], s[l]);
                }
            }
            *lanes_mut(&mut ws.tf, base + (i * nb + j) * LANES) = s;
        }
        *lanes_mut(&mut ws.tf, base + (j * nb + j) * LANES) = tau;
        for i in j + 1..nb {
            *lanes_mut(&mut ws.tf, base + (i * nb + j) * LANES) = [T::zero(); LANES];
        }
    }
}

/// `W[r][j..j + JT] = sum_i V[i][r] C[i][j..j + JT]` for all `NB` panel reflectors (reflectors
/// beyond the panel's width are zero columns of `V`), accumulators in registers.
#[inline(always)]
fn vt_c_tile<T: Real, const FMA: bool, const JT: usize>(
    ws: &mut BatchedQrWorkspace<T>,
    p: usize,
    col: usize,
    wcol: usize,
) {
    const NB: usize = BATCHED_PANEL_WIDTH;
    let (d, k) = (ws.d, ws.k);
    #[cfg(target_arch = "x86_64")]
    if use_avx512_f32::<T>() {
        let (vp, a) = (as_f32(&ws.vp).expect("f32"), as_f32(&ws.a).expect("f32"));
        let w = as_f32_mut(&mut ws.w).expect("f32");
        // SAFETY: AVX-512 checked by use_avx512_f32; shapes asserted inside.
        unsafe { avx512_f32::vt_c_tile::<JT>(vp, a, w, p, d, k, col, wcol) };
        return;
    }
    let mut acc = [[[T::zero(); LANES]; JT]; NB];
    for i in p..d {
        let vrow: &[T; NB * LANES] =
            ws.vp[i * NB * LANES..(i + 1) * NB * LANES].try_into().expect("row");
        let xrow: &[T] = &ws.a[(i * k + col) * LANES..(i * k + col + JT) * LANES];
        for r in 0..NB {
            for jj in 0..JT {
                for l in 0..LANES {
                    acc[r][jj][l] =
                        fma::<T, FMA>(vrow[r * LANES + l], xrow[jj * LANES + l], acc[r][jj][l]);
                }
            }
        }
    }
    for (r, accr) in acc.iter().enumerate() {
        for (jj, accrj) in accr.iter().enumerate() {
            *lanes_mut(&mut ws.w, (r * k + wcol + jj) * LANES) = *accrj;
        }
    }
}

/// `C[i][j..j + JT] -= sum_r V[i][r] W[r][j..j + JT]`, the `W` tile in registers.
#[inline(always)]
fn c_minus_vw_tile<T: Real, const FMA: bool, const JT: usize>(
    ws: &mut BatchedQrWorkspace<T>,
    p: usize,
    col: usize,
    wcol: usize,
) {
    const NB: usize = BATCHED_PANEL_WIDTH;
    let (d, k) = (ws.d, ws.k);
    #[cfg(target_arch = "x86_64")]
    if use_avx512_f32::<T>() {
        let (vp, w) = (as_f32(&ws.vp).expect("f32"), as_f32(&ws.w).expect("f32"));
        let a = as_f32_mut(&mut ws.a).expect("f32");
        // SAFETY: AVX-512 checked by use_avx512_f32; shapes asserted inside.
        unsafe { avx512_f32::c_minus_vw_tile::<JT>(vp, a, w, p, d, k, col, wcol) };
        return;
    }
    let mut wt = [[[T::zero(); LANES]; JT]; NB];
    for (r, wr) in wt.iter_mut().enumerate() {
        for (jj, wrj) in wr.iter_mut().enumerate() {
            *wrj = *lanes(&ws.w, (r * k + wcol + jj) * LANES);
            for v in wrj.iter_mut() {
                *v = -*v;
            }
        }
    }
    for i in p..d {
        let vrow: &[T; NB * LANES] =
            ws.vp[i * NB * LANES..(i + 1) * NB * LANES].try_into().expect("row");
        let xrow: &mut [T] = &mut ws.a[(i * k + col) * LANES..(i * k + col + JT) * LANES];
        for jj in 0..JT {
            let mut x = [T::zero(); LANES];
            x.copy_from_slice(&xrow[jj * LANES..(jj + 1) * LANES]);
            for r in 0..NB {
                for l in 0..LANES {
                    x[l] = fma::<T, FMA>(vrow[r * LANES + l], wt[r][jj][l], x[l]);
                }
            }
            xrow[jj * LANES..(jj + 1) * LANES].copy_from_slice(&x);
        }
    }
}

/// `C -= V op(T) V^T C` on columns `c0..k`, rows `p..d`, all lanes; `op(T) = T^T` for the
/// factorisation (`transpose_t`), `T` when forming `Q`. Reflector columns of `V` beyond the
/// panel's width and the matching rows/columns of `T` are zero, so every loop over reflectors
/// has the constant trip count `nb` (fully unrolled, accumulators in registers).
#[inline(always)]
fn block_update<T: Real, const FMA: bool>(
    ws: &mut BatchedQrWorkspace<T>,
    p: usize,
    c0: usize,
    pi: usize,
    transpose_t: bool,
) {
    const NB: usize = BATCHED_PANEL_WIDTH;
    const JT: usize = 2;
    let k = ws.k;
    let n2 = k - c0;
    // W = V^T C
    let mut j = 0;
    while j + JT <= n2 {
        vt_c_tile::<T, FMA, JT>(ws, p, c0 + j, j);
        j += JT;
    }
    while j < n2 {
        vt_c_tile::<T, FMA, 1>(ws, p, c0 + j, j);
        j += 1;
    }
    // W = op(T) W, per column, in place
    let base = pi * NB * NB * LANES;
    let tf: &[T; NB * NB * LANES] =
        ws.tf[base..base + NB * NB * LANES].try_into().expect("T factor");
    for jj in 0..n2 {
        let mut col = [[T::zero(); LANES]; NB];
        for (r, c) in col.iter_mut().enumerate() {
            *c = *lanes(&ws.w, (r * k + jj) * LANES);
        }
        let mut out = [[T::zero(); LANES]; NB];
        for (r, o) in out.iter_mut().enumerate() {
            for (m, cm) in col.iter().enumerate() {
                // op(T)[r][m]: T^T -> T[m][r] (m <= r); T -> T[r][m] (m >= r); zeros elsewhere
                let at = if transpose_t { (m * NB + r) * LANES } else { (r * NB + m) * LANES };
                for l in 0..LANES {
                    o[l] = fma::<T, FMA>(tf[at + l], cm[l], o[l]);
                }
            }
        }
        for (r, o) in out.iter().enumerate() {
            *lanes_mut(&mut ws.w, (r * k + jj) * LANES) = *o;
        }
    }
    // C -= V W
    let mut j = 0;
    while j + JT <= n2 {
        c_minus_vw_tile::<T, FMA, JT>(ws, p, c0 + j, j);
        j += JT;
    }
    while j < n2 {
        c_minus_vw_tile::<T, FMA, 1>(ws, p, c0 + j, j);
        j += 1;
    }
}

#[inline(always)]
fn form_q<T: Real, const FMA: bool>(ws: &mut BatchedQrWorkspace<T>) {
    let (d, k, nb) = (ws.d, ws.k, ws.nb);
    let np = k.div_ceil(nb);
    for pi in (0..np).rev() {
        let p = pi * nb;
        let pe = (p + nb).min(k);
        let w = pe - p;
        // save the panel's reflectors
        for c in p..pe {
            let r = c - p;
            for i in p..c {
                *lanes_mut(&mut ws.vp, (i * nb + r) * LANES) = [T::zero(); LANES];
            }
            *lanes_mut(&mut ws.vp, (c * nb + r) * LANES) = [T::one(); LANES];
            for i in c + 1..d {
                let v = *lanes(&ws.a, (i * k + c) * LANES);
                *lanes_mut(&mut ws.vp, (i * nb + r) * LANES) = v;
            }
        }
        zero_unused_panel_columns(ws, p, w);
        // columns right of the panel hold H_pe ... H_{k-1} [I; 0] (zero above row pe)
        if pe < k {
            block_update::<T, FMA>(ws, p, pe, pi, false);
        }
        // inside the panel: dorg2r
        for i in (p..pe).rev() {
            let tau = *lanes(&ws.tau, i * LANES);
            for j in i + 1..pe {
                apply_panel_reflector::<T, FMA>(&mut ws.a, &ws.vp, &tau, k, nb, i - p, i, d, j);
            }
            for row in 0..i {
                *lanes_mut(&mut ws.a, (row * k + i) * LANES) = [T::zero(); LANES];
            }
            let mut diag = [T::zero(); LANES];
            for l in 0..LANES {
                diag[l] = T::one() - tau[l];
            }
            *lanes_mut(&mut ws.a, (i * k + i) * LANES) = diag;
            for row in i + 1..d {
                let x = lanes_mut(&mut ws.a, (row * k + i) * LANES);
                for l in 0..LANES {
                    x[l] = -(tau[l] * x[l]);
                }
            }
        }
    }
}

/// AVX-512 `f32` versions of the hot kernels (16 lanes = one `zmm` register). The generic code
/// above leaves the large accumulator tiles in memory; there every tile lives in registers.
#[cfg(target_arch = "x86_64")]
mod avx512_f32;

/// Reinterpret a slice of `T` as `f32` when `T` is `f32`.
#[inline(always)]
fn as_f32<T: Real>(s: &[T]) -> Option<&[f32]> {
    (std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>())
        // SAFETY: T is f32 (same size, alignment and bit validity).
        .then(|| unsafe { std::slice::from_raw_parts(s.as_ptr() as *const f32, s.len()) })
}

#[inline(always)]
fn as_f32_mut<T: Real>(s: &mut [T]) -> Option<&mut [f32]> {
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() {
        // SAFETY: T is f32 (same size, alignment and bit validity).
        Some(unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr() as *mut f32, s.len()) })
    } else {
        None
    }
}

/// Whether [`orthonormalize_blocks`] beats one-block-at-a-time QR for `d x k` blocks of `T` on
/// this machine. Measured with `orchestrator bench` (2-core AVX-512 Xeon, f32, k = D, after the
/// one-block kernel's two-level aligned blocking): the interleaved kernel wins at D = 16 (0.8 vs
/// 1.8 us per block) and D = 32 (3.5 vs 4.4 us), ties at D = 48 and loses from D = 64 on (19.6
/// vs 14.2 us; 122 vs 65 us at D = 128); its generic (non-AVX-512 or f64) fallback always
/// loses.
pub fn simd_interleaved_pays<T: Real>(d: usize) -> bool {
    use_avx512_f32::<T>() && d <= 32
}

/// Whether the AVX-512 `f32` kernels apply.
#[inline(always)]
fn use_avx512_f32<T: Real>() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() && level() == Level::Avx512
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}
