//! Run-time SIMD dispatch of the elementwise kernels, written once.
//!
//! [`simd_dispatch!`] turns an `#[inline(always)]` kernel into a function that runs the
//! kernel compiled for AVX-512 (`avx512f,avx2,fma`), for AVX2 + FMA or for the baseline,
//! whichever [`aelle_support::simd::level`] chooses (capped by `LE_ENGINE_SIMD`). Rust never
//! contracts `a * b + c` into an FMA, so all three give the same bits; the wider ones are
//! only faster.

/// `simd_dispatch! { /// docs
///     pub(crate) fn name(a: &mut [f32], n: usize) => kernel_impl; }`
/// defines `name`, which calls `kernel_impl(a, n)` compiled for the widest level available.
macro_rules! simd_dispatch {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) => $kernel:path;) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx2,fma")]
            #[allow(clippy::too_many_arguments)]
            fn avx512($($arg: $ty),*) {
                $kernel($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            #[allow(clippy::too_many_arguments)]
            fn avx2($($arg: $ty),*) {
                $kernel($($arg),*)
            }
            match aelle_support::simd::level() {
                // SAFETY (both): the CPU has the features the function is compiled for.
                #[cfg(target_arch = "x86_64")]
                aelle_support::simd::Level::Avx512 => unsafe { avx512($($arg),*) },
                #[cfg(target_arch = "x86_64")]
                aelle_support::simd::Level::Avx2Fma => unsafe { avx2($($arg),*) },
                aelle_support::simd::Level::Baseline => $kernel($($arg),*),
            }
        }
    };
}
