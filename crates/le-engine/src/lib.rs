//! # le-engine: Lyapunov spectra, fast
//!
//! The Benettin/QR method for the Lyapunov spectrum `lambda_1 >= ... >= lambda_k` of
//!
//! * a **discrete map** `x_{t+1} = f_t(x_t)` ([`DiscreteMap`]: state step plus the full Jacobian
//!   or Jacobian-times-block products),
//! * a **flow** `dx/dt = F(x)` ([`Flow`]), integrated with RK4 whose tangent dynamics use the
//!   same RK4 stages ([`Rk4`]),
//! * a **given sequence of Jacobians** `[T, D, D]` ([`jacobian_sequence_spectrum`],
//!   [`JacobianFile`] for safetensors files),
//!
//! with `lambda_i = (1 / (T dt)) sum_t ln R_ii(t)` where `J_t Q_{t-1} = Q_t R_t` is a reduced
//! Householder QR ([`linalg::qr`]) with `diag(R) >= 0`. See `METHOD.md` section 4 for the algorithm and
//! [`SpectrumConfig`] for every option (number of exponents, warm-up, re-orthonormalisation
//! interval, `J Q` or the reference `J^T Q`, log base, `Q_0`, precision).
//!
//! Results ([`Spectrum`]) carry the sorted and QR-order exponents, their sum, the time mean of
//! `ln |det J|` (an independent check of the sum when explicit Jacobians exist), the number of
//! positive exponents, the Kaplan-Yorke dimension, the entropy rate, an optional convergence
//! trace, and a [`Status`]: a run that meets a non-finite value reports *diverged at step t*
//! with NaN exponents; it never panics and never substitutes numbers. Batches of trajectories
//! run in parallel with rayon ([`map_spectra_batch`], ...) and come with mean and standard
//! deviation ([`SpectrumStats`]).
//!
//! Storage conventions: full Jacobians are row-major `D x D` with rows = outputs; tangent blocks
//! are column-major `D x k`.
//!
//! Features: `cuda` adds the CUDA backend (`backend::CudaBackend`: NVRTC-compiled kernels from
//! the `aelle-kernels` crate, cuBLAS, cudarc with dynamic loading, so it builds without a CUDA
//! toolkit); without it the same names return a typed "built without CUDA" error.

#![warn(missing_docs)]
// A library returns values and errors; only the CLI prints (tests may).
#![cfg_attr(not(test), warn(clippy::print_stdout, clippy::print_stderr))]

pub mod backend;
pub mod config;
pub mod engine;
pub mod error;
pub mod jacobian_file;
pub mod linalg;
pub mod map;
pub mod rnn;
pub mod scalar;
mod schedule;
pub mod spectrum;
pub mod systems;
pub mod tensor_data;

pub use config::{InitialBasis, LogBase, Orientation, Precision, SpectrumConfig};
pub use engine::{
    BatchSpectra, flow_spectra_batch, flow_spectrum, initial_basis, jacobian_sequence_spectrum,
    jacobian_sequences_batch, map_spectra_batch, map_spectrum,
};
pub use error::{LeError, Result};
pub use jacobian_file::{JacobianData, JacobianFile, save_jacobians};
pub use map::{DiscreteMap, Flow, MapWorkspace, Rk4};
pub use scalar::Real;
pub use spectrum::{Spectrum, SpectrumStats, Status, TracePoint, kaplan_yorke_dimension};
