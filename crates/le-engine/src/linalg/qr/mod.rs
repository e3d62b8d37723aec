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
//! **Tiled path** (AVX-512 or AVX2 + FMA, panel width 8, the default): the trailing updates use the register-tiled
//! kernels of `tiles_update.rs` with `Y = V op(T)` precomputed per panel (`C -= Y (V^T C)`),
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
//!
//! # Files
//!
//! * `householder.rs`: the entry points ([`orthonormalize_in_place`], [`householder_factor`],
//!   [`form_q_in_place`]), the reflectors and the two drivers (factorisation, forming `Q`),
//!   each compiled for AVX-512, AVX2+FMA and the baseline.
//! * `update.rs`: the three trailing-update variants (tiled kernels, two `gemm`
//!   calls, reflector by reflector) and the compact-WY `T` and `Y = V op(T)` they use.
//! * `panel.rs`: factoring one panel and forming its columns of `Q` on the tiled path.
//! * `factored.rs`: keeping `Q` factored and applying it from the right (`J Q`).
//! * [`batched`]: the QR of up to 16 blocks at once, SIMD across the blocks.
//! * `tiles_reg.rs`, `tiles_update.rs`, `tiles_apply_q.rs`: the register-tiled kernels, written
//!   once over a register abstraction (`Reg`: AVX-512 `Z`, AVX2 `Y`, narrower tiles where
//!   only 16 registers exist) and compiled for each level (trailing-update products and
//!   vector `ln`; `J Q` with `Q` factored). The level is fixed per [`QrWorkspace`] when it is
//!   built ([`QrWorkspace::simd_level`]).

use aelle_support::simd::Level;

use crate::linalg::AlignedBuf;
use crate::scalar::Real;
use update::tiled_updates;

pub mod batched;
mod factored;
mod householder;
mod panel;
mod update;

/// `$name::<T: Real>(level, ..)`: the kernel `$kernel` (generic over [`tiles_reg::Reg`]) for
/// the QR's element type (f32 or f64), compiled for `level`'s instruction set (AVX-512 with
/// its 32 wide registers, or AVX2 + FMA); the QR is generic over [`crate::scalar::Real`], the
/// kernels over the register type.
#[cfg(target_arch = "x86_64")]
macro_rules! dispatch_simd {
    ($(#[$doc:meta])* $name:ident => $kernel:ident($($arg:ident: $ty:ty),* $(,)?)) => {
        $(#[$doc])*
        ///
        /// # Safety
        #[doc = concat!("As [`", stringify!($kernel), "`]; `level` is AVX-512 or AVX2 + FMA and this CPU has it.")]
        #[allow(clippy::too_many_arguments)]
        pub(crate) unsafe fn $name<T: crate::scalar::Real>(
            level: aelle_support::simd::Level,
            $($arg: $ty),*
        ) {
            use crate::linalg::qr::tiles_reg::{Y, Z};
            #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
            #[allow(clippy::too_many_arguments)]
            unsafe fn zmm<T: crate::scalar::Real>($($arg: $ty),*) {
                if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f64>() {
                    $kernel::<Z<f64>>($($arg as _),*)
                } else {
                    $kernel::<Z<f32>>($($arg as _),*)
                }
            }
            #[target_feature(enable = "avx2,fma")]
            #[allow(clippy::too_many_arguments)]
            unsafe fn ymm<T: crate::scalar::Real>($($arg: $ty),*) {
                if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f64>() {
                    $kernel::<Y<f64>>($($arg as _),*)
                } else {
                    $kernel::<Y<f32>>($($arg as _),*)
                }
            }
            match level {
                aelle_support::simd::Level::Avx512 => zmm::<T>($($arg),*),
                aelle_support::simd::Level::Avx2Fma => ymm::<T>($($arg),*),
                aelle_support::simd::Level::Baseline => {
                    unreachable!("the tiled QR kernels are not used at the baseline level")
                }
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
mod tiles_apply_q;
#[cfg(target_arch = "x86_64")]
mod tiles_reg;
#[cfg(target_arch = "x86_64")]
mod tiles_update;

pub(crate) use factored::{apply_factored_q_right, factor_keeping_reflectors};
pub use householder::{form_q_in_place, householder_factor, orthonormalize_in_place, qr_flops};

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
    /// The SIMD level of every kernel run on this workspace, fixed when it is built (so one
    /// factorisation, its `Q` and a factored-`Q` product never mix paths).
    simd: Level,
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
            simd: aelle_support::simd::level(),
        }
    }

    /// The same workspace with its kernels at `level` instead (one this CPU supports, see
    /// [`aelle_support::simd::supported`]), e.g. to check or measure one level.
    pub fn with_simd_level(
        mut self,
        level: Level,
    ) -> Result<Self, aelle_support::simd::Unsupported> {
        if !aelle_support::simd::supported().contains(&level) {
            return Err(aelle_support::simd::Unsupported(level));
        }
        self.simd = level;
        Ok(self)
    }

    /// The SIMD level this workspace's kernels run at ([`aelle_support::simd::level`] when it
    /// was built).
    pub fn simd_level(&self) -> Level {
        self.simd
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
    /// reads (the tiled path: AVX-512 or AVX2 + FMA, default panel width).
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

/// Inner panels per outer block of the two-level blocking (tiled path only): the block's
/// panels are applied to the columns right of the block one column chunk at a time, so each
/// chunk of `C` is read from and written to the L2 cache once per outer block instead of once
/// per panel, with exactly the same arithmetic per column.
pub const OUTER_PANELS: usize = 4;
