//! Configuration of a spectrum computation.

use serde::{Deserialize, Serialize};

use crate::error::{LeError, Result};

/// Which product the tangent step forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum Orientation {
    /// `Z = J_t Q`: the Lyapunov exponents of the forward dynamics (the mathematically right
    /// choice; default).
    #[default]
    #[cfg_attr(feature = "clap", value(name = "jq"))]
    JQ,
    /// `Z = J_t^T Q`: what the published PyTorch reference code computes. For a single constant
    /// Jacobian both give the same exponents; for products of varying Jacobians they differ in
    /// general (the transpose reverses the product order). Use only to compare with numbers of
    /// that code.
    #[cfg_attr(feature = "clap", value(name = "jtq"))]
    JtQ,
}

impl Orientation {
    /// The label of reports: `JQ`, `JtQ`.
    pub fn label(self) -> &'static str {
        match self {
            Orientation::JQ => "JQ",
            Orientation::JtQ => "JtQ",
        }
    }
}

/// Base of the logarithm the exponents are expressed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum LogBase {
    /// Natural log: nats per step (maps) or per unit time (flows). Default.
    #[default]
    E,
    /// Log base 2: bits per step, as the published reference code reports (`two` in configs,
    /// `2` on the command line).
    #[cfg_attr(feature = "clap", value(name = "2"))]
    Two,
}

impl LogBase {
    /// The label of reports and spectrum files: `e`, `2`.
    pub fn label(self) -> &'static str {
        match self {
            LogBase::E => "e",
            LogBase::Two => "2",
        }
    }

    /// Factor converting nats into this base.
    pub fn from_nats(self) -> f64 {
        match self {
            LogBase::E => 1.0,
            LogBase::Two => std::f64::consts::LOG2_E,
        }
    }
}

/// The initial orthonormal basis `Q_0` (`D x k`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum InitialBasis {
    /// The first `k` columns of the identity (reference behaviour; default).
    #[default]
    Identity,
    /// A random orthonormal `D x k` basis: Gaussian entries from ChaCha8 seeded with `seed`
    /// (trajectory `b` of a batch uses `seed + b`), orthonormalised by QR. Avoids the
    /// (measure-zero) bad alignment of the identity with a stable direction.
    Random {
        /// Seed of trajectory 0.
        seed: u64,
    },
}

/// Floating-point precision of state and tangent vectors. Log sums are always `f64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// `f64` everywhere (default for the generic engine).
    #[default]
    F64,
    /// `f32` state and tangent vectors, `f64` accumulation of `ln R_ii`.
    F32,
}

impl Precision {
    /// The label of reports: `f64`, `f32`.
    pub fn label(self) -> &'static str {
        match self {
            Precision::F64 => "f64",
            Precision::F32 => "f32",
        }
    }
}

/// Largest `steps` (and `warmup`) accepted: 2^40, so `warmup + steps` never overflows and a
/// mistyped count is refused rather than run for days.
pub const MAX_STEPS: usize = 1 << 40;
/// Largest `k` accepted before the system's dimension is known (the dimension bounds it too).
pub const MAX_EXPONENTS: usize = 1 << 16;

/// Settings of the Benettin/QR algorithm (see `METHOD.md` section 4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpectrumConfig {
    /// Number of exponents `k` (`1 <= k <= D`); `None` means all `D`.
    pub k: Option<usize>,
    /// Steps run before accumulation starts. The state and the basis are advanced and the basis
    /// is re-orthonormalised (every `ons_interval` steps and at the end), but no `ln R_ii` is
    /// accumulated, so transients of both the orbit and the basis are discarded.
    pub warmup: usize,
    /// Number of accumulated steps `T` for maps and flows (a Jacobian sequence uses its own
    /// length). Exponents are `(1 / (T dt)) sum ln R_ii`.
    pub steps: usize,
    /// Re-orthonormalisation interval `T_ons` (>= 1). Between QRs the basis is multiplied by
    /// the Jacobians without normalisation, which saves QRs but can overflow for strongly
    /// expanding systems; a QR is always done at the last step so no stretching is dropped.
    pub ons_interval: usize,
    /// `J Q` (default) or `J^T Q` (reference mode).
    pub orientation: Orientation,
    /// Natural log (default) or log2.
    pub log_base: LogBase,
    /// `Q_0`: identity columns (default) or seeded random orthonormal.
    pub initial_basis: InitialBasis,
    /// `f64` (default) or `f32` with `f64` log accumulation.
    pub precision: Precision,
    /// Record the running estimate every `n` accumulated steps (`None`: no trace).
    pub trace_every: Option<usize>,
    /// Also compute the time mean of `ln |det J_t|` by LU of the explicit Jacobian when the
    /// system provides it (`O(D^3 / 3)` extra per step). With `k = D` it must equal the sum of
    /// the exponents: a built-in self-check.
    pub log_det: bool,
    /// Exponents above this value count as positive (for `n_positive`, the entropy rate).
    /// Keeps the zero exponent of a flow, estimated as a small number of either sign, out.
    pub zero_tolerance: f64,
}

impl Default for SpectrumConfig {
    fn default() -> Self {
        Self {
            k: None,
            warmup: 0,
            steps: 10_000,
            ons_interval: 1,
            orientation: Orientation::JQ,
            log_base: LogBase::E,
            initial_basis: InitialBasis::Identity,
            precision: Precision::F64,
            trace_every: None,
            log_det: true,
            zero_tolerance: 1e-3,
        }
    }
}

impl SpectrumConfig {
    /// The number of exponents for a system of dimension `d`, checked against `d`.
    pub fn resolve_k(&self, d: usize) -> Result<usize> {
        if d == 0 {
            return Err(LeError::InvalidConfig {
                field: "dimension",
                message: "the system has dimension 0".into(),
            });
        }
        let k = self.k.unwrap_or(d);
        if k == 0 || k > d {
            return Err(LeError::InvalidConfig {
                field: "k",
                message: format!(
                    "number of exponents must be in 1..={d} (the state dimension), got {k}"
                ),
            });
        }
        Ok(k)
    }

    /// Check the settings that do not depend on the system.
    pub fn validate(&self) -> Result<()> {
        if self.steps > MAX_STEPS || self.warmup > MAX_STEPS {
            return Err(LeError::InvalidConfig {
                field: if self.steps > MAX_STEPS { "steps" } else { "warmup" },
                message: format!(
                    "must be at most {MAX_STEPS} (2^40, days of work), got steps = {}, warmup = {}",
                    self.steps, self.warmup
                ),
            });
        }
        if let Some(k) = self.k
            && k > MAX_EXPONENTS
        {
            return Err(LeError::InvalidConfig {
                field: "k",
                message: format!("must be at most {MAX_EXPONENTS}, got {k}"),
            });
        }
        if self.ons_interval == 0 {
            return Err(LeError::InvalidConfig {
                field: "ons_interval",
                message: "re-orthonormalisation interval must be >= 1".into(),
            });
        }
        if self.trace_every == Some(0) {
            return Err(LeError::InvalidConfig {
                field: "trace_every",
                message: "trace interval must be >= 1".into(),
            });
        }
        if !self.zero_tolerance.is_finite() || self.zero_tolerance < 0.0 {
            return Err(LeError::InvalidConfig {
                field: "zero_tolerance",
                message: format!("must be a finite number >= 0, got {}", self.zero_tolerance),
            });
        }
        Ok(())
    }
}
