//! The AeLLE experiment as resumable stages on a run folder: `sweep` (train the population,
//! checkpoint every epoch), `spectra` (Lyapunov spectrum of the selected checkpoints),
//! `aelle` (autoencoder embedding and early-prediction evaluation), `report` (HTML, Markdown,
//! PNG and SVG figures), `merge` (checks every shard's outputs), and `run` (all of them, with
//! spectra computed while other networks still train).

pub mod args;
pub mod commands;
pub mod config;
pub mod lock;
pub mod pipeline;
pub mod plan;
pub mod progress;
pub mod records;
pub mod run_folder;
pub mod shard;
pub mod stages;
pub mod status;
pub mod task;
