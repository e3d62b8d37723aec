//! # aelle: Lyapunov-spectrum embeddings that predict RNN performance early
//!
//! AeLLE (Vogt, Zheng & Shlizerman, arXiv 2204.04876) learns an autoencoder embedding of the
//! Lyapunov spectra of a population of networks whose latent also predicts each network's
//! final test loss; the latent's first principal component then says, early in training,
//! whether a network will end up among the good ones. This crate takes plain tables (one row
//! per network checkpoint: spectrum, current loss, final loss, group) and knows nothing about
//! RNNs.
//!
//! Modules, in pipeline order:
//! - [`table`]: the input rows, validation, non-finite exclusions (counted, never replaced);
//! - [`features`]: resampling to one length (midpoint doubling or linear), sorting,
//!   standardisation;
//! - [`split`]: train / validation / test split **by network**;
//! - [`model`]: the candle autoencoder + predictor, staged-alpha training with early stopping
//!   on a deep copy of the best weights, safetensors + JSON save/load;
//! - [`pca`], [`tsne`]: exact centred PCA (Jacobi SVD) and exact t-SNE of the latent;
//! - [`classify`], [`metrics`]: logistic / ridge fitters, thresholds chosen on validation,
//!   precision / recall / F1 / AUROC / Spearman with explicit undefined values;
//! - [`pipeline`]: [`run_aelle`] ties it together on one train / validation / test split
//!   (the embedding plots and the single-split table) and returns an [`AelleReport`];
//! - [`crossval`]: the headline numbers: repeated stratified K-fold over networks, each fold a
//!   [`PretrainedAelle`] fitted on the other folds, with the hyperparameter-only and
//!   shuffled-label controls and within-cell results; [`bootstrap`] gives the intervals;
//! - [`transfer`]: a [`PretrainedAelle`] fitted on one population applied to another;
//! - [`synthetic`]: a two-factor population with known truth, for tests and benchmarks.
//!
//! Everything is deterministic given the seed in [`AelleConfig`] and runs on the CPU.
//!
//! ```
//! use aelle::synthetic::{SyntheticConfig, two_factor_population};
//! use aelle::{AelleConfig, AlphaStage, ClassifierKind, run_aelle};
//!
//! let population = two_factor_population(&SyntheticConfig { networks: 60, ..Default::default() })?;
//! let mut config = AelleConfig::default();
//! config.autoencoder.alpha_stages = vec![AlphaStage { alpha: 5.0, epochs: 5 }];
//! config.embedding.tsne_max_points = 0;
//! let run = run_aelle(&population.rows, &config)?;
//! let at_init = &run.report.evaluations[0];
//! let pc1 = at_init.classifiers.iter().find(|c| c.classifier == ClassifierKind::AellePc1).unwrap();
//! assert_eq!(pc1.confusion.total(), at_init.networks.test);
//! # Ok::<(), aelle::AelleError>(())
//! ```
//!
//! Features: `cuda` forwards candle's CUDA backend (off by default, never used in tests; the
//! models here are small enough that the CPU is the right device).

#![warn(missing_docs)]
// A library returns values and errors; only the CLI prints (tests may).
#![cfg_attr(not(test), warn(clippy::print_stdout, clippy::print_stderr))]

pub mod bootstrap;
pub mod classify;
pub mod crossval;
pub mod error;
pub mod features;
pub mod matrix;
pub mod metrics;
pub mod model;
pub mod pca;
pub mod pipeline;
pub mod split;
pub mod synthetic;
pub mod table;
pub mod transfer;
pub mod tsne;

pub use crossval::{CrossValidationConfig, CrossValidationReport, PretrainedAelle, cross_validate};
pub use error::{AelleError, Result};
pub use features::{FeatureConfig, ResamplingMethod};
pub use matrix::Matrix;
pub use model::{AelleModel, AlphaStage, AutoencoderConfig, LossNorm, TrainingHistory};
pub use pipeline::{
    AelleConfig, AelleReport, AelleRun, BaselineKind, ClassifierKind, EmbeddingConfig,
    EvaluationConfig, EvaluationPoint, run_aelle,
};
pub use split::{Split, SplitConfig};
pub use table::SpectrumRow;
pub use transfer::{TransferReport, transfer};
