//! Typed errors of the engine. Every variant names what was wrong and what was expected.

use std::path::PathBuf;

/// Errors returned by `le-engine`.
#[derive(Debug, thiserror::Error)]
pub enum LeError {
    /// A configuration value is out of range or inconsistent with the system.
    #[error("invalid configuration: {field}: {message}")]
    InvalidConfig { field: &'static str, message: String },

    /// The system cannot provide what the configuration asks for (e.g. `J^T Q` from a map that
    /// only provides `J Q`).
    #[error("unsupported: {0}")]
    Unsupported(String),

    /// A file could not be read.
    #[error("{path}: cannot read")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A file is not a valid safetensors file (bad header, truncated data, ...).
    #[error("{path}: not a valid safetensors file: {message}")]
    Safetensors { path: PathBuf, message: String },

    /// A required tensor is absent from a file.
    #[error("{path}: missing tensor `{name}` (expected {expected})")]
    MissingTensor { path: PathBuf, name: String, expected: String },

    /// A tensor has the wrong shape.
    #[error("{path}: tensor `{name}` has shape {found:?}, expected {expected}")]
    BadShape { path: PathBuf, name: String, expected: String, found: Vec<usize> },

    /// A tensor has an unsupported element type.
    #[error("{path}: tensor `{name}` has dtype {found}, expected {expected}")]
    BadDtype { path: PathBuf, name: String, expected: String, found: String },

    /// A tensor holds NaN or infinite values.
    #[error("{path}: tensor `{name}` holds a non-finite value ({value}) at index {index:?}")]
    NonFinite { path: PathBuf, name: String, index: Vec<usize>, value: f64 },

    /// Metadata of a file contradicts its tensors or is malformed.
    #[error("{path}: metadata `{key}`: {message}")]
    BadMetadata { path: PathBuf, key: String, message: String },
}

/// Shorthand for `Result<T, LeError>`.
pub type Result<T, E = LeError> = std::result::Result<T, E>;
