//! Stub of the CUDA backend for builds without the `cuda` feature: the same names as
//! `enabled.rs`, every constructor returns [`CudaError::NotCompiled`].

use crate::backend::{BackendError, CudaError, Device, PopulationInputs, SpectrumBackend};
use crate::rnn::{Network, PopulationSpectra, RnnSpectrumConfig};

/// Which GEMM the CUDA backend uses (see the `cuda` build).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GemmEngine {
    /// cuBLAS when it can be loaded, else the built-in kernel.
    #[default]
    Auto,
    /// `cublasSgemmStridedBatched` (an error when libcublas cannot be loaded).
    Cublas,
    /// The built-in tiled kernel `gemm_strided_batched_f32`.
    Builtin,
}

/// Options of the CUDA backend (see the `cuda` build).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CudaOptions {
    /// GEMM implementation.
    pub gemm: GemmEngine,
    /// Networks per device batch (one host synchronisation each). `None`: as many as fit in
    /// 70 % of the free device memory.
    pub max_networks_per_batch: Option<usize>,
}

/// The CUDA backend. This build has no CUDA support: [`CudaBackend::new`] always fails.
#[derive(Debug)]
pub struct CudaBackend {
    never: std::convert::Infallible,
}

impl CudaBackend {
    /// Always [`CudaError::NotCompiled`] in this build.
    pub fn new(ordinal: usize) -> Result<Self, CudaError> {
        Self::with_options(ordinal, CudaOptions::default())
    }

    /// Always [`CudaError::NotCompiled`] in this build.
    pub fn with_options(_ordinal: usize, _options: CudaOptions) -> Result<Self, CudaError> {
        Err(CudaError::NotCompiled)
    }

    /// `false`: this build has no CUDA support.
    pub fn is_available() -> bool {
        false
    }

    /// Unreachable (no value of this type exists in this build).
    pub fn has_cublas(&self) -> bool {
        match self.never {}
    }

    /// Unreachable (no value of this type exists in this build).
    pub fn description(&self) -> String {
        match self.never {}
    }
}

impl SpectrumBackend for CudaBackend {
    fn device(&self) -> Device {
        match self.never {}
    }

    fn population_spectra(
        &self,
        _nets: &[Network<f32>],
        _inputs: &PopulationInputs<'_>,
        _cfg: &RnnSpectrumConfig,
    ) -> Result<PopulationSpectra, BackendError> {
        match self.never {}
    }
}

/// Always [`CudaError::NotCompiled`] in this build.
pub fn compile_module_ptx(_module: &str) -> Result<String, CudaError> {
    Err(CudaError::NotCompiled)
}

/// Environment variable of precompiled PTX modules (used by the `cuda` build only).
pub const PTX_DIR_ENV: &str = "AELLE_PTX_DIR";

/// No kernel modules in this build.
pub fn kernel_module_names() -> Vec<&'static str> {
    Vec::new()
}
