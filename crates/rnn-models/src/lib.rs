//! # rnn-models: trainable RNN populations on candle
//!
//! Cells (PyTorch names and gate orders): vanilla tanh RNN, GRU (`r, z, n`), LSTM
//! (`i, f, g, o`), antisymmetric RNN (ASRNN) and coupled oscillatory RNN (CoRNN), 1-3 stacked
//! layers, optional biases; readouts for last-step classification (sequential MNIST),
//! per-step classification (next character) and regression. Equations in [`model`]. The
//! cell kinds are le-engine's [`le_engine::rnn::CellKind`] ([`CellKind::ALL`](le_engine::rnn::CellKind::ALL) lists them), the
//! resolved cell constants its [`le_engine::rnn::CellConstants`].
//!
//! The unit of everything is a **population**: `M` networks of one cell kind and size stacked
//! into tensors `[M, ...]` and trained as one batched model ([`PopulationModel`],
//! [`PopulationTrainer`]), each with its own seed (weights, data order, dropout), learning
//! rate and Adam state ([`PopulationAdam`]). A single network is a population of one, and
//! training a network inside a population gives what training it alone gives (tested).
//!
//! LSTM and GRU populations with the last-step classification head (sequential MNIST) train,
//! in F32 on the CPU, on a hand-written fused forward / backward / Adam path ([`fused`]),
//! chosen automatically ([`TrainBackend`]); it gives candle's results up to float rounding
//! (tested) and is 3.4-4.1x faster thread for thread (the crate README has the numbers).
//!
//! [`run_sweep`] trains a list of [`NetSpec`]s into
//! `<out>/nets/<id>/epoch-<e>.safetensors` + `metrics.json`, resumably. Checkpoints follow
//! `docs/checkpoint-format.md` ([`checkpoint`]) so `le-engine` reads them directly.
//!
//! Features: `cuda` (candle's CUDA backend; off by default, never needed by the tests).
//! Libraries never print; progress goes to `tracing`.

// A library returns values and errors; only the CLI prints (tests may).
#![cfg_attr(not(test), warn(clippy::print_stdout, clippy::print_stderr))]

#[macro_use]
mod dispatch;

pub mod checkpoint;
pub mod config;
pub mod error;
pub mod fused;
pub mod init;
pub mod model;
pub mod optim;
pub mod sweep;
pub mod train;

pub use checkpoint::{CheckpointRecord, read_checkpoint, write_checkpoint};
pub use config::{
    ConstantOverrides, InitScheme, NetSpec, OptimizerKind, TrainBackend, TrainConfig,
    cell_kind_from_name,
};
pub use error::{ModelError, Result};
pub use model::{Head, ModelShape, ParamRole, ParamSpec, PopulationModel};
pub use optim::PopulationAdam;
pub use sweep::{EpochMetrics, NetMetrics, NetOutcome, NetPaths, NetStatus, Recipe, run_sweep};
pub use train::{
    Divergence, EvalResult, PopulationTrainer, TrainEpochResult, fused_path_applies, shape_for_task,
};
