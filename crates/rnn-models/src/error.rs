//! Typed errors of `rnn-models`.

use std::path::PathBuf;

/// Everything that can go wrong while building, training or saving networks.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A configuration value is out of range or inconsistent.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// Networks of one population must share arch, sizes, layers, bias and output head.
    #[error("population mismatch: {0}")]
    PopulationMismatch(String),
    /// A tensor operation failed inside candle (boxed: candle's error is large).
    #[error("tensor operation failed: {0}")]
    Candle(Box<candle_core::Error>),
    /// A dataset operation failed.
    #[error("dataset error: {0}")]
    Dataset(Box<datasets::DatasetError>),
    /// Reading or writing a file failed.
    #[error("i/o error on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A safetensors file could not be written or parsed.
    #[error("safetensors error in {path}: {message}")]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A checkpoint or state file lacks a tensor or metadata field, or it has the wrong shape.
    #[error("checkpoint {path}: {message}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What is missing or wrong.
        message: String,
    },
    /// `metrics.json` could not be parsed or written.
    #[error("metrics file {path}: {message}")]
    Metrics {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The task's output kind is not supported by the chosen head.
    #[error("unsupported task: {0}")]
    UnsupportedTask(String),
}

impl From<candle_core::Error> for ModelError {
    fn from(e: candle_core::Error) -> Self {
        Self::Candle(Box::new(e))
    }
}

impl From<datasets::DatasetError> for ModelError {
    fn from(e: datasets::DatasetError) -> Self {
        Self::Dataset(Box::new(e))
    }
}

/// `Result` with [`ModelError`].
pub type Result<T> = std::result::Result<T, ModelError>;

impl ModelError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }
    pub(crate) fn checkpoint(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Checkpoint { path: path.into(), message: message.into() }
    }
}
