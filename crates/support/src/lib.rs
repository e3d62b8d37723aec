//! # aelle-support: the low-level helpers every crate of the workspace shares
//!
//! This crate has no dependencies and no knowledge of RNNs or spectra. It exists so that the
//! engine (`le-engine`) and the trainer (`rnn-models`) do not reach into each other for
//! machinery: they meet only at the checkpoint file and the shared vocabulary.
//!
//! * [`simd`]: the run-time SIMD level (AVX-512 / AVX2+FMA / baseline), capped by
//!   `LE_ENGINE_SIMD=avx512|avx2|baseline`, used by every run-time-dispatched kernel.
//! * [`fastmath`]: branch-free `f32` `exp`, sigmoid and `tanh` whose loops vectorise.
//! * [`fs`]: the one crash-safe file write (`write_atomic`): temp file beside the target,
//!   `fsync`, rename, `fsync` of the folder.
//! * [`mem`]: the machine's memory (`/proc/meminfo`, cgroup limit, `AELLE_MEMORY_BYTES`) and
//!   the check every size estimate goes through before an allocation.
//! * [`tolerance`]: the one float-comparison rule of the tests (`|got - want| <= abs + rel
//!   |want|`, as `numpy.isclose`), with messages naming the quantity and the index.

#![warn(missing_docs)]
// A library returns values and errors; only the CLI prints (tests may).
#![cfg_attr(not(test), warn(clippy::print_stdout, clippy::print_stderr))]

pub mod fastmath;
pub mod fs;
pub mod mem;
pub mod simd;
pub mod tolerance;
