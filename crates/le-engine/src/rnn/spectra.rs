//! What a population spectrum computation takes and returns: its settings
//! ([`RnnSpectrumConfig`], [`WarmupMode`]), its driving inputs ([`InputSet`]) and its result
//! ([`PopulationSpectra`]). The computation itself is a backend's
//! ([`crate::backend::CpuBackend`], [`crate::backend::CudaBackend`]).

use serde::Serialize;

use super::LstmState;
use crate::config::{InitialBasis, LogBase, Orientation, Precision, SpectrumConfig};
use crate::error::{LeError, Result};
use crate::scalar::Real;
use crate::spectrum::{Spectrum, SpectrumStats};

/// How the warm-up treats the driving inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WarmupMode {
    /// The first `warmup` inputs of each sequence advance state and basis (re-orthonormalised,
    /// not accumulated); exponents average over the remaining `T - warmup` steps. Default.
    #[default]
    Tangent,
    /// Reference behaviour: the first `warmup` inputs advance the state only (no tangent
    /// dynamics), then all `T` inputs are replayed from `Q_0` and accumulated.
    ReplayInputs,
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
    /// Warm-up over the inputs with tangent dynamics (default) or replay (reference).
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

impl RnnSpectrumConfig {
    /// The published PyTorch code's conventions: `J^T Q`, log2, `Q_0 = I`, QR every step,
    /// warm-up that advances the state over the first `warmup` inputs and then replays all of
    /// them, LSTM h-only; `f32`.
    pub fn reference(k: Option<usize>, warmup: usize) -> Self {
        Self {
            spectrum: SpectrumConfig {
                k,
                warmup,
                ons_interval: 1,
                orientation: Orientation::JtQ,
                log_base: LogBase::Two,
                initial_basis: InitialBasis::Identity,
                precision: Precision::F32,
                log_det: false,
                ..SpectrumConfig::default()
            },
            lstm_state: LstmState::HOnly,
            warmup_mode: WarmupMode::ReplayInputs,
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
