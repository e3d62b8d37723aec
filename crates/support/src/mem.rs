//! How much memory this machine has, and the one rule every size check of the workspace uses:
//! a request whose estimate exceeds it is refused before anything is allocated.
//!
//! The limit is the smaller of the physical memory (`MemTotal` in `/proc/meminfo`) and the
//! cgroup limit (`/sys/fs/cgroup/memory.max`, cgroup v2), or `AELLE_MEMORY_BYTES` when set
//! (tests use it to check the refusal on any machine). Where none is readable (not Linux),
//! 16 GiB is assumed.

/// Bytes assumed when the machine's memory cannot be read.
pub const FALLBACK_BYTES: u64 = 16 << 30;

/// The memory a single process of this workspace may plan to use, in bytes (see the module
/// doc for where it comes from).
pub fn memory_limit_bytes() -> u64 {
    if let Some(v) = std::env::var("AELLE_MEMORY_BYTES").ok().and_then(|s| s.trim().parse().ok()) {
        return v;
    }
    let physical = std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb.saturating_mul(1024))
    });
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    match (physical, cgroup) {
        (Some(p), Some(c)) => p.min(c),
        (Some(p), None) => p,
        (None, Some(c)) => c,
        (None, None) => FALLBACK_BYTES,
    }
}

/// `bytes` as a short human-readable size (`1.5 GiB`, `12 MiB`, `900 B`).
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{v:.1} {}", UNITS[unit]) }
}

/// A size that does not fit: what needed it, the estimate (`None` when the arithmetic
/// overflowed 64 bits) and the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooLarge {
    /// What the memory is for.
    pub what: String,
    /// The estimate in bytes; `None` when it overflows `u64`.
    pub needed: Option<u64>,
    /// [`memory_limit_bytes`] at the time of the check.
    pub limit: u64,
}

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let needed = match self.needed {
            Some(b) => format!("about {}", format_bytes(b)),
            None => "more than 16 EiB (the size overflows 64 bits)".into(),
        };
        write!(
            f,
            "{} needs {needed}, more than this machine's memory ({})",
            self.what,
            format_bytes(self.limit)
        )
    }
}

impl std::error::Error for TooLarge {}

/// `Ok(bytes)` when `needed` (an estimate computed with checked arithmetic, `None` on
/// overflow) fits in [`memory_limit_bytes`]; otherwise the [`TooLarge`] naming `what`.
pub fn check_fits(what: impl Into<String>, needed: Option<u64>) -> Result<u64, TooLarge> {
    let limit = memory_limit_bytes();
    match needed {
        Some(b) if b <= limit => Ok(b),
        _ => Err(TooLarge { what: what.into(), needed, limit }),
    }
}

/// The product of `factors` in `u64`, `None` on overflow.
pub fn checked_product(factors: &[u64]) -> Option<u64> {
    factors.iter().try_fold(1u64, |acc, &f| acc.checked_mul(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_overflows() {
        assert_eq!(format_bytes(900), "900 B");
        assert_eq!(format_bytes(3 << 30), "3.0 GiB");
        assert_eq!(checked_product(&[u64::MAX, 2]), None);
        assert_eq!(checked_product(&[3, 4, 5]), Some(60));
        assert!(memory_limit_bytes() > 0);
        let e = check_fits("x", None).unwrap_err();
        assert!(e.to_string().contains("overflows"), "{e}");
        let e = check_fits("inputs", Some(u64::MAX)).unwrap_err();
        assert!(e.to_string().starts_with("inputs needs about"), "{e}");
    }
}
