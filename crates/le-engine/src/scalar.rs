//! The floating-point types the engine computes in.
//!
//! Everything numeric is generic over [`Real`], implemented for `f32` and `f64`. Logarithms of
//! the stretching factors are always accumulated in `f64`, whatever `T` is, so an `f32` run
//! loses precision only in the state and tangent vectors, never in the long sums.

use std::fmt::Debug;

/// A real floating-point scalar: `f32` or `f64`.
pub trait Real:
    num_traits::Float + num_traits::NumAssign + Send + Sync + Debug + Default + 'static
{
    /// Name used in messages and JSON (`"f32"`, `"f64"`).
    const NAME: &'static str;
    /// Lossy conversion from `f64` (rounds to nearest for `f32`).
    fn from_f64(x: f64) -> Self;
    /// Exact widening (or identity) to `f64`.
    fn as_f64(self) -> f64;
}

impl Real for f32 {
    const NAME: &'static str = "f32";
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    #[inline(always)]
    fn as_f64(self) -> f64 {
        self as f64
    }
}

impl Real for f64 {
    const NAME: &'static str = "f64";
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x
    }
    #[inline(always)]
    fn as_f64(self) -> f64 {
        self
    }
}
