//! The crate's error type. Every variant says what was expected and what was found.

use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, AelleError>;

/// Everything that can go wrong in `aelle`. Bad input is always reported here, never by a panic.
#[derive(Debug, thiserror::Error)]
pub enum AelleError {
    /// Too few items (rows, networks, samples, ...) to do what was asked.
    #[error("too few {what}: expected at least {expected}, got {got}")]
    TooFew {
        /// What was counted.
        what: &'static str,
        /// The minimum needed.
        expected: usize,
        /// What was given.
        got: usize,
    },
    /// Two lengths or dimensions that must agree do not.
    #[error("shape mismatch in {context}: expected {expected}, got {got}")]
    ShapeMismatch {
        /// Where the mismatch was found.
        context: &'static str,
        /// The expected length.
        expected: usize,
        /// The length found.
        got: usize,
    },
    /// A configuration value is out of its valid range.
    #[error("invalid config `{field}`: expected {expected}, got {got}")]
    InvalidConfig {
        /// Dotted field name.
        field: &'static str,
        /// What a valid value looks like.
        expected: &'static str,
        /// The value given, formatted.
        got: String,
    },
    /// An input row is malformed.
    #[error("input row {row} (network `{network_id}`): expected {expected}, got {got}")]
    InvalidRow {
        /// Index of the row in the input table.
        row: usize,
        /// The row's network id.
        network_id: String,
        /// What a valid row looks like.
        expected: &'static str,
        /// What was found.
        got: String,
    },
    /// A numeric input that must be finite is not.
    #[error(
        "non-finite value in {context}: expected every value finite, found {value} at index {index}"
    )]
    NonFinite {
        /// Where the value was found.
        context: &'static str,
        /// Its position.
        index: usize,
        /// The value.
        value: f64,
    },
    /// Midpoint up-sampling needs the target length to be the source length times 2^m.
    #[error(
        "midpoint up-sampling from {from} to {to}: expected the target length to be the source length times a power of two (use linear resampling for other lengths)"
    )]
    NotPowerOfTwoMultiple {
        /// Source spectrum length.
        from: usize,
        /// Requested feature length.
        to: usize,
    },
    /// A linear system that must be positive definite is not (after regularisation).
    #[error("{context}: expected a positive-definite system, pivot {pivot} was {value}")]
    NotPositiveDefinite {
        /// Which solve failed.
        context: &'static str,
        /// Index of the failing pivot.
        pivot: usize,
        /// The pivot value.
        value: f64,
    },
    /// Training diverged (non-finite loss).
    #[error("autoencoder training diverged: expected a finite loss, got {value} at epoch {epoch}")]
    TrainingDiverged {
        /// Zero-based epoch.
        epoch: usize,
        /// The loss value.
        value: f64,
    },
    /// A configuration whose memory estimate exceeds the machine's memory.
    #[error(transparent)]
    TooLarge(#[from] aelle_support::mem::TooLarge),
    /// An error from candle.
    #[error("candle tensor operation failed: {0}")]
    Candle(#[from] candle_core::Error),
    /// File I/O failed.
    #[error("i/o on `{path}`: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The JSON config next to a saved model could not be written or parsed.
    #[error("model config JSON `{path}`: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// A saved model is missing a tensor or has one of the wrong shape.
    #[error("saved model `{path}`: expected {expected}")]
    CorruptModel {
        /// The file.
        path: PathBuf,
        /// What was expected.
        expected: String,
    },
}
