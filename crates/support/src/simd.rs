//! Run-time choice of the instruction set for the dispatched kernels of `le-engine` (QR,
//! activations, factored Q) and `rnn-models` (fused training).
//!
//! [`level`] detects the widest level this CPU offers once and caches it. The environment
//! variable `LE_ENGINE_SIMD=baseline|avx2|avx512` caps it (read once, at the first call), so
//! any x86 machine can run and measure the lower paths; on other architectures the level is
//! always [`Level::Baseline`] (the portable code).
//!
//! [`with_level`] runs a closure with another supported level in force, so that one test can
//! check every level the machine has ([`supported`]) in one process.

use std::sync::Mutex;
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
/// Serialises [`with_level`] calls.
static FORCED: Mutex<()> = Mutex::new(());

impl Level {
    fn code(self) -> u8 {
        match self {
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => 2,
            #[cfg(target_arch = "x86_64")]
            Level::Avx2Fma => 1,
            Level::Baseline => 0,
        }
    }

    /// The level's name in reports and in `LE_ENGINE_SIMD` terms: `avx512`, `avx2+fma`,
    /// `baseline`.
    pub fn name(self) -> &'static str {
        match self {
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => "avx512",
            #[cfg(target_arch = "x86_64")]
            Level::Avx2Fma => "avx2+fma",
            Level::Baseline => "baseline",
        }
    }
}

/// A level [`with_level`] was asked for that this CPU does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsupported(pub Level);

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SIMD level {} is not supported by this CPU", self.0.name())
    }
}

impl std::error::Error for Unsupported {}

/// Every level this CPU can run, widest first, whatever `LE_ENGINE_SIMD` says (the baseline
/// always).
pub fn supported() -> Vec<Level> {
    let found = detect_cpu();
    let mut out = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        if found >= 2 {
            out.push(Level::Avx512);
        }
        if found >= 1 {
            out.push(Level::Avx2Fma);
        }
    }
    let _ = found;
    out.push(Level::Baseline);
    out
}

/// Run `f` with `level` in force for every dispatched kernel of the process (all threads),
/// then restore the previous level (also when `f` panics). Calls are serialised by a global
/// lock, so two callers never interleave their levels; code running at the same time outside
/// `with_level` sees the forced level too (it is one of the supported levels, so its results
/// are as valid). For tests that check each level of [`supported`].
pub fn with_level<R>(level: Level, f: impl FnOnce() -> R) -> Result<R, Unsupported> {
    if !supported().contains(&level) {
        return Err(Unsupported(level));
    }
    let _lock = FORCED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    struct Restore(u8);
    impl Drop for Restore {
        fn drop(&mut self) {
            LEVEL.store(self.0, Ordering::Relaxed);
        }
    }
    let _restore = Restore(level_code());
    LEVEL.store(level.code(), Ordering::Relaxed);
    Ok(f())
}

/// Keeps every [`with_level`] out while it lives (the level stays what it is): for a test that
/// compares two runs bit for bit in a test binary where other tests force levels.
#[must_use = "the level is held only while the guard lives"]
pub fn hold() -> std::sync::MutexGuard<'static, ()> {
    FORCED.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn level_code() -> u8 {
    let cached = LEVEL.load(Ordering::Relaxed);
    if cached == UNSET {
        let code = detect();
        LEVEL.store(code, Ordering::Relaxed);
        code
    } else {
        cached
    }
}

/// The best instruction set of this CPU, capped by `LE_ENGINE_SIMD` (cached).
#[inline]
pub fn level() -> Level {
    match level_code() {
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
    detect_cpu().min(cap)
}

/// The widest level of this CPU (2 AVX-512, 1 AVX2 + FMA, 0 baseline), uncapped.
fn detect_cpu() -> u8 {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("fma")
        {
            2
        } else if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            1
        } else {
            0
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        0
    }
}

/// Name of the chosen instruction set, for benchmark reports: `avx512`, `avx2+fma`, `baseline`.
pub fn level_name() -> &'static str {
    level().name()
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

    #[test]
    fn with_level_forces_and_restores() {
        let before = level();
        for l in supported() {
            let inside = with_level(l, level).expect("a supported level");
            assert_eq!(inside, l);
            assert_eq!(level(), before);
        }
        assert_eq!(*supported().last().expect("never empty"), Level::Baseline);
        // Restored after a panic too.
        let r = std::panic::catch_unwind(|| {
            with_level(Level::Baseline, || panic!("inside")).expect("baseline is supported")
        });
        assert!(r.is_err());
        assert_eq!(level(), before);
    }
}
