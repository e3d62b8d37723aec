//! The CUDA backend, or its stub: `enabled.rs` with the `cuda` feature, `disabled.rs` without
//! (same names; the stub returns [`super::CudaError::NotCompiled`]).

#[cfg(feature = "cuda")]
mod enabled;
#[cfg(feature = "cuda")]
pub use enabled::{
    CudaBackend, CudaOptions, GemmEngine, PTX_DIR_ENV, compile_module_ptx, kernel_module_names,
};

#[cfg(not(feature = "cuda"))]
mod disabled;
#[cfg(not(feature = "cuda"))]
pub use disabled::{
    CudaBackend, CudaOptions, GemmEngine, PTX_DIR_ENV, compile_module_ptx, kernel_module_names,
};
