//! Run-time choice of the instruction set for the dispatched kernels of `le-engine` (QR,
//! activations, factored Q) and `rnn-models` (fused training).
//!
//! [`level`] detects the widest level this CPU offers once and caches it. The environment
//! variable `LE_ENGINE_SIMD=baseline|avx2|avx512` caps it (read once, at the first call), so
//! any x86 machine can run and measure the lower paths; on other architectures the level is
//! always [`Level::Baseline`] (the portable code).

use std::sync::atomic::{AtomicU8, Ordering};

/// An instruction-set level of the dispatched kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// AVX-512F + AVX-512VL + FMA.
    #[cfg(target_arch = "x86_64")]
    Avx512,
    /// AVX2 + FMA.
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
    /// Portable code (whatever the compiler's target baseline gives).
    Baseline,
}

const UNSET: u8 = u8::MAX;
static LEVEL: AtomicU8 = AtomicU8::new(UNSET);

/// The best instruction set of this CPU, capped by `LE_ENGINE_SIMD` (cached).
pub fn level() -> Level {
    let cached = LEVEL.load(Ordering::Relaxed);
    let code = if cached == UNSET {
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

/// Name of the chosen instruction set, for benchmark reports: `avx512`, `avx2+fma`, `baseline`.
pub fn level_name() -> &'static str {
    match level() {
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => "avx512",
        #[cfg(target_arch = "x86_64")]
        Level::Avx2Fma => "avx2+fma",
        Level::Baseline => "baseline",
    }
}

/// For tests of AVX-512-only kernels: whether they can run here; if not, says so on stderr
/// (`SKIP <test>: ...`), so that a pass on another CPU is not mistaken for a check.
#[allow(clippy::print_stderr)] // for tests: the skip must be visible in the test output
pub fn avx512_or_skip(test: &str) -> bool {
    #[cfg(target_arch = "x86_64")]
    let ok = level() == Level::Avx512;
    #[cfg(not(target_arch = "x86_64"))]
    let ok = false;
    if !ok {
        eprintln!("SKIP {test}: needs AVX-512 (this CPU or LE_ENGINE_SIMD: {})", level_name());
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_is_cached_and_named() {
        let first = level();
        assert_eq!(level(), first);
        assert!(["avx512", "avx2+fma", "baseline"].contains(&level_name()));
    }
}
