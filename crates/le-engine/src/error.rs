//! Typed errors of the engine. Every variant names what was wrong and what was expected.

use std::path::PathBuf;

/// Errors returned by `le-engine`.
#[derive(Debug, thiserror::Error)]
pub enum LeError {
    /// A configuration value is out of range or inconsistent with the system.
    #[error("invalid configuration: {field}: {message}")]
    InvalidConfig {
        /// The configuration field (or argument) at fault.
        field: &'static str,
        /// What is wrong and what was expected.
        message: String,
    },

    /// The system cannot provide what the configuration asks for (e.g. `J^T Q` from a map that
    /// only provides `J Q`).
    #[error("unsupported: {0}")]
    Unsupported(String),

    /// A file could not be read.
    #[error("{path}: cannot read")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// A file is not a valid safetensors file (bad header, truncated data, ...).
    #[error("{path}: not a valid safetensors file: {message}")]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },

    /// A required tensor is absent from a file.
    #[error("{path}: missing tensor `{name}` (expected {expected})")]
    MissingTensor {
        /// The file.
        path: PathBuf,
        /// The tensor's full name.
        name: String,
        /// What was expected there.
        expected: String,
    },

    /// A tensor has the wrong shape.
    #[error("{path}: tensor `{name}` has shape {found:?}, expected {expected}")]
    BadShape {
        /// The file.
        path: PathBuf,
        /// The tensor's full name.
        name: String,
        /// The expected shape.
        expected: String,
        /// The shape in the file.
        found: Vec<usize>,
    },

    /// A tensor has an unsupported element type.
    #[error("{path}: tensor `{name}` has dtype {found}, expected {expected}")]
    BadDtype {
        /// The file.
        path: PathBuf,
        /// The tensor's full name.
        name: String,
        /// The element types accepted.
        expected: String,
        /// The element type in the file.
        found: String,
    },

    /// A tensor holds NaN or infinite values.
    #[error("{path}: tensor `{name}` holds a non-finite value ({value}) at index {index:?}")]
    NonFinite {
        /// The file.
        path: PathBuf,
        /// The tensor's full name.
        name: String,
        /// Multi-index of the first non-finite entry.
        index: Vec<usize>,
        /// Its value.
        value: f64,
    },

    /// Metadata of a file contradicts its tensors or is malformed.
    #[error("{path}: metadata `{key}`: {message}")]
    BadMetadata {
        /// The file.
        path: PathBuf,
        /// The metadata key (or option) at fault.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// Shorthand for `Result<T, LeError>`.
pub type Result<T, E = LeError> = std::result::Result<T, E>;
