//! Branch-free `f32` elementary functions (`exp`, logistic sigmoid, `tanh`) whose loops
//! vectorise: Cephes single-precision formulas (Cody–Waite reduction, degree-6 polynomial for
//! `exp`, `2^n` built from bits; an odd polynomial for small `|tanh|`), both branches of a
//! choice evaluated and one selected. Within 4 ulp of libm on `[-20, 20]` (step 1e-3),
//! `[-150, 150]` (step 0.5) and at the special values (`le-engine`'s `rnn::activation` tests),
//! relative error below 1e-6 (`rnn-models`' `fused` tests). Shared by le-engine's cell forward
//! step and rnn-models' fused training path.

const LOG2E: f32 = std::f32::consts::LOG2_E;
/// `1.5 * 2^23`: adding it rounds to an integer kept in the low mantissa bits.
const ROUND_MAGIC: f32 = 12_582_912.0;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;

/// `e^x` for f32, relative error below 1e-6 (Cephes `expf`: Cody–Waite reduction and a
/// degree-6 polynomial, `2^n` built from bits). Inputs are clamped to `[-87, 88]` (so
/// `fast_exp(-inf)` is `1.6e-38`, not 0, and `fast_exp(+inf)` is `1.65e38`); NaN stays NaN.
/// Branch-free, so loops over it vectorise.
#[inline(always)]
pub fn fast_exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let t = x * LOG2E + ROUND_MAGIC;
    let n = t.to_bits().wrapping_sub(ROUND_MAGIC.to_bits()) as i32;
    let nf = t - ROUND_MAGIC;
    let r = x - nf * LN2_HI - nf * LN2_LO;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    let scale = f32::from_bits((n.wrapping_add(127) as u32).wrapping_shl(23));
    e * scale
}

/// The logistic function `1 / (1 + e^-x)` (relative error below 1e-6).
#[inline(always)]
pub fn fast_sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + fast_exp(-x))
}

/// `tanh(x)`, relative error below 1e-6: an odd Taylor polynomial for `|x| < 0.3`,
/// `(1 - e^{-2|x|}) / (1 + e^{-2|x|})` with the sign of `x` otherwise (both evaluated, one
/// selected, so loops vectorise).
#[inline(always)]
pub fn fast_tanh(x: f32) -> f32 {
    let a = x.abs();
    let a2 = a * a;
    let mut p = -21_844.0 / 6_081_075.0_f32;
    p = p * a2 + 62.0 / 2835.0;
    p = p * a2 - 17.0 / 315.0;
    p = p * a2 + 2.0 / 15.0;
    p = p * a2 - 1.0 / 3.0;
    let small = a + a * a2 * p;
    let e = fast_exp(-2.0 * a);
    let large = (1.0 - e) / (1.0 + e);
    let r = if a < 0.3 { small } else { large };
    r.copysign(x)
}
