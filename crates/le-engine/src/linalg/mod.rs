//! Dense linear algebra of the engine.
//!
//! Conventions: a full Jacobian `J` is **row-major** `D x D` with `J[i * D + j] = d out_i /
//! d in_j` (rows are outputs, as in the `--jacobians` file format); tangent blocks `Q`, `Z` are
//! **column-major** `D x k` (column `c` is `Q[c * D .. (c + 1) * D]`).
//!
//! * `dense.rs`: Jacobian-times-block products ([`jacobian_times`]) and `ln |det J|` by LU
//!   ([`log_abs_det`]).
//! * `aligned.rs`: [`AlignedBuf`], a zeroed buffer starting on a 64-byte boundary.
//! * `primitives.rs`: the run-time-dispatched level-1 kernels (`dot`, `axpy`, `fmadd`) the QR
//!   is built from.
//! * [`timing`]: the same-run GEMM rate every speed claim is set against, and the benchmarks'
//!   timing rule.
//! * [`qr`]: the Householder QR of one block, its factored-`Q` form, the batched QR of 16
//!   blocks and the AVX-512 register-tiled kernels.

mod aligned;
mod dense;
pub(crate) mod primitives;
pub mod qr;
pub mod timing;

pub use aligned::AlignedBuf;
pub use dense::{jacobian_times, log_abs_det};
