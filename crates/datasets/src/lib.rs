//! Sequence tasks for training populations of RNNs and for driving their Lyapunov spectra.
//!
//! Every task implements [`Task`]: a train and a test split of fixed-length sequences, served
//! as [`Batch`]es with inputs `f32 [B, T, I]` (row-major) and targets shaped by the task's
//! [`OutputKind`]; epochs are shuffled by a seed ([`Task::epoch_batches`]); a fixed set of
//! test sequences for spectra comes from [`Task::driving_sequences`] and is saved to / loaded
//! from safetensors ([`DrivingSequences`]).
//!
//! | task | `T` | `I` | targets |
//! | --- | --- | --- | --- |
//! | [`SequentialImageTask`] row-wise | 28 | 28 | class `[B]` |
//! | [`SequentialImageTask`] pixel-wise / permuted | 784 | 1 | class `[B]` |
//! | [`CharLmTask`] (Moby-Dick) | 100 | 83 (one-hot) | next char `[B, T]` |
//! | [`SumOfSinesTask`] | 100 | 1 | next value `[B, T, 1]` |
//! | [`AddingProblemTask`] | 100 | 2 | sum `[B, 1]` |
//! | [`CopyMemoryTask`] | `D + 2L` = 120 | 10 (one-hot) | symbol `[B, T]` |
//!
//! Data sources: the embedded MNIST 10k subset ([`mnist_10k`], loads from any working
//! directory), full MNIST / Fashion-MNIST IDX files on disk ([`MnistFamily`], reader in
//! [`idx`]), the Moby-Dick text ([`CharLmTask`]), and the Hugging Face hub ([`hub`]).
//!
//! # Features
//! - `hub` (default): [`hub::load_mnist_from_hub`]: locate / download `ylecun/mnist` through
//!   `hf-hub` (blocking `ureq` + rustls) and decode its parquet (`parquet` without arrow, `png`).
//!   Without it the same functions return [`HubError::NotBuilt`].
//!
//! Libraries never print: errors are typed ([`DatasetError`], [`IdxError`], [`HubError`]) and
//! name the file and what was expected.

// A library returns values and errors; only the CLI prints (tests may).
#![cfg_attr(not(test), warn(clippy::print_stdout, clippy::print_stderr))]

pub mod char_lm;
pub mod driving;
pub mod error;
pub mod hub;
pub mod idx;
pub mod mnist;
pub mod sequential_image;
pub mod subset;
pub mod synthetic;
pub mod task;

pub use char_lm::{
    CHAR_LM_SEQ_LEN, CHAR_LM_TRAIN_FRACTION, CharLmTask, CharVocabulary, MOBY_DICK_CHARS,
    split_windows,
};
pub use driving::DrivingSequences;
pub use error::{DatasetError, HubError, IdxError, Result};
pub use hub::{
    HubMnistFiles, HubOptions, load_mnist_from_hub, locate_mnist_parquet, read_mnist_parquet,
};
pub use idx::{IdxArray, ImageSet};
pub use mnist::{
    ImageSplit, MNIST_10K_CLASS_COUNTS, MnistFamily, mnist_10k, mnist_10k_split, stratified_split,
};
pub use sequential_image::{PixelNormalization, PixelOrder, SequentialImageTask};
pub use subset::Subset;
pub use synthetic::{
    AddingProblemConfig, AddingProblemTask, CopyMemoryConfig, CopyMemoryTask, SumOfSinesConfig,
    SumOfSinesTask,
};
pub use task::{Batch, BatchIter, OutputKind, Split, Targets, Task};
