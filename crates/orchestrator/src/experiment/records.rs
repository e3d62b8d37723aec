//! The JSON files of a run folder that more than one stage reads: spectrum records
//! (`spectra/<net-id>/epoch-<e>.json`), shard completion records (`shards/`) and stage timings
//! (`timings/`). Their field names are the file format: a folder written by an earlier release
//! must still parse.

use serde::{Deserialize, Serialize};

/// One driving sequence's spectrum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequenceSpectrum {
    /// Exponents sorted descending (`null` where the run diverged).
    pub exponents: Vec<Option<f64>>,
    /// `finite` or `diverged`.
    pub status: String,
    /// Step at which a diverged run stopped.
    pub diverged_at_step: Option<usize>,
}

/// `spectra/<net-id>/epoch-<e>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpectrumRecord {
    pub network_id: String,
    pub arch: String,
    pub p: f64,
    pub epoch: u32,
    /// `epoch / epochs`.
    pub training_fraction: f64,
    /// `finite` (every sequence finite), `partly_diverged`, `diverged`,
    /// `non_finite_weights`, or `diverged_in_training` (no checkpoint at this epoch).
    pub status: String,
    /// `e` (nats per step) or `2` (bits per step).
    pub log_base: String,
    /// Exponents per sequence.
    pub k: usize,
    /// Mean over the finite sequences (`null` when none is finite).
    pub mean: Vec<Option<f64>>,
    /// Sample standard deviation over the finite sequences.
    pub std: Vec<Option<f64>>,
    pub n_finite: usize,
    pub n_total: usize,
    /// `[B][k]`.
    pub per_sequence: Vec<SequenceSpectrum>,
}

impl SpectrumRecord {
    /// The mean spectrum with NaN for undefined entries (what AeLLE's table takes; it excludes
    /// such rows and lists them).
    pub fn mean_or_nan(&self) -> Vec<f64> {
        if self.mean.is_empty() {
            return vec![f64::NAN];
        }
        self.mean.iter().map(|v| v.unwrap_or(f64::NAN)).collect()
    }

    /// Largest mean exponent, if finite.
    pub fn lambda_max(&self) -> Option<f64> {
        self.mean.first().copied().flatten()
    }
}

/// `shards/<stage>-shard-i-of-n.json`: what a shard completed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardRecord {
    pub stage: String,
    pub index: usize,
    pub count: usize,
    pub networks: Vec<String>,
    pub seconds: f64,
}

/// One stage's recorded wall time (`timings/<stage>.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Timing {
    pub stage: String,
    pub seconds: f64,
    pub finished_unix: u64,
}
