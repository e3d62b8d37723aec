//! The float-comparison rule of the workspace's tests, written once.
//!
//! `got` is close to `want` when `|got - want| <= abs + rel * |want|` (the rule of
//! `numpy.isclose`, with `want` the reference value). Equal values are close (so `inf` equals
//! `inf`); a finite value is never close to a non-finite one; NaN is close to NaN only when
//! [`Tol::nan_equal`] is set. Messages name the quantity, the index, both values and the
//! tolerance.

/// An absolute plus relative tolerance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tol {
    /// Absolute part.
    pub abs: f64,
    /// Relative part, times `|want|`.
    pub rel: f64,
    /// Whether NaN equals NaN (for results where "not a number" is the expected outcome).
    pub nan_equal: bool,
}

impl Tol {
    /// `|got - want| <= abs`.
    pub const fn abs(abs: f64) -> Self {
        Tol { abs, rel: 0.0, nan_equal: false }
    }

    /// `|got - want| <= abs + rel |want|`.
    pub const fn abs_rel(abs: f64, rel: f64) -> Self {
        Tol { abs, rel, nan_equal: false }
    }

    /// The same tolerance with NaN equal to NaN.
    pub const fn nan_equal(self) -> Self {
        Tol { nan_equal: true, ..self }
    }

    /// Whether `got` is close to `want`.
    pub fn accepts(&self, got: f64, want: f64) -> bool {
        if got.is_nan() || want.is_nan() {
            return self.nan_equal && got.is_nan() && want.is_nan();
        }
        if got == want {
            return true;
        }
        if !(got.is_finite() && want.is_finite()) {
            return false;
        }
        (got - want).abs() <= self.abs + self.rel * want.abs()
    }

    /// The bound `abs + rel |want|`.
    pub fn bound(&self, want: f64) -> f64 {
        self.abs + self.rel * want.abs()
    }
}

/// Asserts that `got` and `want` have the same length and are close entry by entry.
///
/// # Panics
/// With a message naming `what`, the first failing index, both values and the bound.
#[track_caller]
pub fn assert_close(what: &str, got: &[f64], want: &[f64], tol: Tol) {
    assert_eq!(got.len(), want.len(), "{what}: lengths {} vs {}", got.len(), want.len());
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            tol.accepts(g, w),
            "{what}[{i}]: {g} vs expected {w} (|diff| {} > tol {})",
            (g - w).abs(),
            tol.bound(w)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule() {
        let t = Tol::abs_rel(1e-3, 1e-2);
        assert!(t.accepts(1.0105, 1.0));
        assert!(!t.accepts(1.0115, 1.0));
        assert!(t.accepts(f64::INFINITY, f64::INFINITY));
        assert!(!t.accepts(f64::INFINITY, 1.0));
        assert!(!t.accepts(f64::NAN, f64::NAN));
        assert!(t.nan_equal().accepts(f64::NAN, f64::NAN));
        assert!(!t.nan_equal().accepts(f64::NAN, 1.0));
    }

    #[test]
    #[should_panic(expected = "x[1]")]
    fn names_the_failing_index() {
        assert_close("x", &[1.0, 2.0], &[1.0, 2.5], Tol::abs(1e-9));
    }
}
