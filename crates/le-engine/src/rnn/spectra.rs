//! What a population spectrum computation takes and returns: its settings
//! ([`RnnSpectrumConfig`], [`WarmupMode`]), its driving inputs ([`InputSet`]) and its result
//! ([`PopulationSpectra`]). The computation itself is a backend's
//! ([`crate::backend::CpuBackend`], [`crate::backend::CudaBackend`]).

use serde::Serialize;

use super::LstmState;
use crate::config::{InitialBasis, LogBase, Orientation, Precision, SpectrumConfig};
use crate::error::{LeError, Result};
use crate::scalar::Real;
use crate::schedule::QrSchedule;
use crate::spectrum::{Spectrum, SpectrumStats};

/// The warm-up and QR schedule of an RNN spectrum computation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WarmupMode {
    /// The first `w = warmup` inputs of each sequence advance state and basis
    /// (re-orthonormalised every `T_ons` steps and at the warm-up's end, not accumulated); the
    /// exponents average over the remaining `T - w` steps, with a QR every `T_ons` steps and
    /// at the last one: `lambda_i = (1 / (T - w)) sum ln R_ii`. Needs `w < T`. Default.
    #[default]
    Tangent,
    /// The published code's `calc_LEs_an`: over the first `w = min(warmup, T)` inputs the state
    /// advances and `Q <- J^T Q` (or `J Q`) with no re-orthonormalisation, then one QR
    /// `Q <- q`; then all `T` inputs are replayed from the warmed-up state (not reset) with a
    /// QR `J^T Q = q r`, `Q <- q S`, `R_t = S r` (`S = sign diag r`) at `t mod T_ons = 0` and
    /// `R_t = I` on the other steps (no QR forced at the last step):
    /// `lambda_i = (1 / T) sum_t log (R_t)_ii`. An overflow of the unnormalised warm-up product
    /// is reported as a [`crate::Status::Diverged`] whose reason says so.
    Reference,
}

/// Settings of an RNN spectrum computation.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RnnSpectrumConfig {
    /// The Benettin settings (`k`, `warmup`, `ons_interval`, orientation, log base, `Q_0`,
    /// precision, trace, zero tolerance); `steps` is ignored (the inputs' `T` decides) and so is
    /// `log_det` (the batched path computes no Jacobian determinants; the sum of the
    /// exponents is their time mean).
    pub spectrum: SpectrumConfig,
    /// LSTM full `(h, c)` (default) or h-only.
    pub lstm_state: LstmState,
    /// Standard warm-up and QR schedule (default) or the published code's.
    pub warmup_mode: WarmupMode,
}

impl Default for RnnSpectrumConfig {
    fn default() -> Self {
        Self {
            spectrum: SpectrumConfig {
                precision: Precision::F32,
                log_det: false,
                ..SpectrumConfig::default()
            },
            lstm_state: LstmState::Full,
            warmup_mode: WarmupMode::Tangent,
        }
    }
}

/// The published code's default warm-up (`calc_LEs_an(..., warmup=500)`): in practice the
/// whole sequence, since the warm-up covers `min(warmup, T)` inputs.
pub const REFERENCE_WARMUP: usize = 500;

impl RnnSpectrumConfig {
    /// The published PyTorch code's conventions: `J^T Q`, log2, `Q_0 = I`, QR every step,
    /// [`WarmupMode::Reference`] over `min(warmup, T)` inputs (default [`REFERENCE_WARMUP`]),
    /// LSTM h-only; `f32`. Our CoRNN and ASRNN Jacobians are the correct ones, not the
    /// published code's partial ones.
    pub fn reference(k: Option<usize>, warmup: Option<usize>) -> Self {
        Self {
            spectrum: SpectrumConfig {
                k,
                warmup: warmup.unwrap_or(REFERENCE_WARMUP),
                ons_interval: 1,
                orientation: Orientation::JtQ,
                log_base: LogBase::Two,
                initial_basis: InitialBasis::Identity,
                precision: Precision::F32,
                log_det: false,
                ..SpectrumConfig::default()
            },
            lstm_state: LstmState::HOnly,
            warmup_mode: WarmupMode::Reference,
        }
    }

    /// Checks the settings against sequences of `steps` inputs before any work: the
    /// system-independent settings ([`SpectrumConfig::validate`]) and, in
    /// [`WarmupMode::Tangent`], a warm-up that leaves at least one accumulated step (the
    /// reference warm-up covers `min(warmup, T)` inputs and replays them all, so any warm-up
    /// is valid there).
    pub fn validate_for_steps(&self, steps: usize) -> Result<()> {
        self.spectrum.validate()?;
        let warmup = self.spectrum.warmup;
        if self.warmup_mode == WarmupMode::Tangent && warmup >= steps {
            return Err(LeError::InvalidConfig {
                field: "warmup",
                message: format!(
                    "warm-up of {warmup} steps leaves none of the T = {steps} input steps (expected 0 ..= {})",
                    steps.saturating_sub(1)
                ),
            });
        }
        Ok(())
    }

    /// The QR schedule of a run over `steps` inputs: the one rule the CPU loop and the CUDA
    /// plan follow.
    pub(crate) fn qr_schedule(&self, steps: usize) -> QrSchedule {
        let sc = &self.spectrum;
        match self.warmup_mode {
            WarmupMode::Tangent => QrSchedule::standard(sc.warmup, steps, sc.ons_interval),
            WarmupMode::Reference => QrSchedule::reference(sc.warmup, steps, sc.ons_interval),
        }
    }
}

/// Driving inputs of a population: one `[B, T, I]` set shared by all networks, or one per
/// network (all with the same `B`, `T`).
#[derive(Debug, Clone)]
pub struct InputSet<'a, T: Real> {
    sets: Vec<&'a [T]>,
    /// Sequences per network `B`.
    pub batch: usize,
    /// Steps per sequence `T`.
    pub steps: usize,
}

impl<'a, T: Real> InputSet<'a, T> {
    /// One set `[batch, steps, I]` for every network.
    pub fn shared(data: &'a [T], batch: usize, steps: usize) -> Self {
        Self { sets: vec![data], batch, steps }
    }

    /// One set per network, in network order.
    pub fn per_network(sets: Vec<&'a [T]>, batch: usize, steps: usize) -> Self {
        Self { sets, batch, steps }
    }

    /// Number of sets (1, or one per network).
    pub(crate) fn set_count(&self) -> usize {
        self.sets.len()
    }

    /// The set that drives network `m`.
    pub(crate) fn for_network(&self, m: usize) -> &'a [T] {
        if self.sets.len() == 1 { self.sets[0] } else { self.sets[m] }
    }
}

/// Spectra of a population: `spectra[m][b]` for network `m` and driving sequence `b`, and per
/// network statistics over the sequences.
#[derive(Debug, Clone, Serialize)]
pub struct PopulationSpectra {
    /// `spectra[m][b]`: network `m`, driving sequence `b`.
    pub spectra: Vec<Vec<Spectrum>>,
    /// `stats[m]`: mean and spread over network `m`'s sequences.
    pub stats: Vec<SpectrumStats>,
}

/// Check that `inputs` is a finite `[batch, steps, input]` array.
pub(crate) fn check_inputs<T: Real>(
    inputs: &[T],
    batch: usize,
    steps: usize,
    input: usize,
    name: &'static str,
) -> Result<()> {
    if batch == 0 || steps == 0 {
        return Err(LeError::InvalidConfig {
            field: name,
            message: format!(
                "need at least one sequence and one step (got B = {batch}, T = {steps})"
            ),
        });
    }
    if inputs.len() != batch * steps * input {
        return Err(LeError::InvalidConfig {
            field: name,
            message: format!(
                "expected [B, T, I] = [{batch}, {steps}, {input}] = {} values, got {}",
                batch * steps * input,
                inputs.len()
            ),
        });
    }
    if let Some(i) = inputs.iter().position(|v| !v.is_finite()) {
        return Err(LeError::InvalidConfig {
            field: name,
            message: format!(
                "non-finite value at [{}, {}, {}]",
                i / (steps * input),
                (i / input) % steps,
                i % input
            ),
        });
    }
    Ok(())
}
