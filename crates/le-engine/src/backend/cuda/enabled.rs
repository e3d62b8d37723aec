//! The CUDA backend (feature `cuda`): cudarc 0.19 with run-time loading of the driver, NVRTC
//! and cuBLAS; kernels from `aelle-kernels`, compiled by NVRTC at first use and cached per
//! device. `plan.rs` validates a request and decides the schedule, `ops.rs` writes the whole
//! device program down as data, `population.rs` executes it with CUDA, and (tests only)
//! `host_exec.rs` executes the same program on the CPU to check it against the CPU backend.
//!
//! Scope: `f32` state and tangent vectors with `f64` log sums (the batched CPU path's default),
//! every cell kind, any number of layers, both LSTM tangent states, both orientations (the
//! reference `J^T Q` builds every sequence's `Dt x Dt` Jacobian per step: memory-hungry), both
//! warm-up modes, `T_ons`, traces. Not on the GPU: `f64` precision (use the CPU backend).

mod device;
#[cfg(test)]
mod host_exec;
mod ops;
mod plan;
mod population;

use std::sync::Arc;

pub use device::{PTX_DIR_ENV, compile_module_ptx, kernel_module_names};

use crate::backend::{BackendError, CudaError, Device, PopulationInputs, SpectrumBackend};
use crate::rnn::{Network, PopulationSpectra, RnnSpectrumConfig};

/// Which GEMM the CUDA backend uses for the strided-batched products.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GemmEngine {
    /// cuBLAS when libcublas can be loaded, else the built-in kernel.
    #[default]
    Auto,
    /// `cublasSgemmStridedBatched` (an error when libcublas cannot be loaded).
    Cublas,
    /// The built-in tiled kernel `gemm_strided_batched_f32` (slow, obviously correct twin).
    Builtin,
}

/// Options of the CUDA backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CudaOptions {
    /// GEMM implementation.
    pub gemm: GemmEngine,
    /// Networks per device batch (one host synchronisation each). `None`: as many as fit in
    /// 70 % of the free device memory.
    pub max_networks_per_batch: Option<usize>,
}

/// Population spectra on one CUDA device.
#[derive(Debug, Clone)]
pub struct CudaBackend {
    dev: Arc<device::DeviceState>,
    options: CudaOptions,
}

impl CudaBackend {
    /// The backend on device `ordinal` with default options. Fails with a typed error (never a
    /// panic) when the driver, NVRTC or the device is missing.
    pub fn new(ordinal: usize) -> Result<Self, CudaError> {
        Self::with_options(ordinal, CudaOptions::default())
    }

    /// The backend on device `ordinal` with `options`.
    pub fn with_options(ordinal: usize, options: CudaOptions) -> Result<Self, CudaError> {
        let dev = device::device_state(ordinal)?;
        Ok(Self { dev, options })
    }

    /// Whether the driver and NVRTC can be loaded and at least one device exists.
    pub fn is_available() -> bool {
        device::driver_present()
            && device::nvrtc_present()
            && device::guarded("device count", || {
                cudarc::driver::CudaContext::device_count().map_err(device::driver_error)
            })
            .map(|n| n > 0)
            .unwrap_or(false)
    }

    /// Whether libcublas was loaded on this device (otherwise the built-in GEMM runs).
    pub fn has_cublas(&self) -> bool {
        self.dev.blas.is_some()
    }

    /// `cuda:N (device name, SMs, cuBLAS or built-in GEMM)`.
    pub fn description(&self) -> String {
        let gemm = match (self.options.gemm, self.dev.blas.is_some()) {
            (GemmEngine::Builtin, _) | (GemmEngine::Auto, false) => "built-in GEMM",
            _ => "cuBLAS",
        };
        format!("cuda:{} ({}, {} SMs, {gemm})", self.dev.ordinal, self.dev.name, self.dev.sm_count)
    }
}

impl SpectrumBackend for CudaBackend {
    fn device(&self) -> Device {
        Device::Cuda(self.dev.ordinal)
    }

    fn population_spectra(
        &self,
        nets: &[Network<f32>],
        inputs: &PopulationInputs<'_>,
        cfg: &RnnSpectrumConfig,
    ) -> Result<PopulationSpectra, BackendError> {
        device::guarded("CUDA population run", || {
            population::population_spectra(&self.dev, &self.options, nets, inputs, cfg)
        })
    }
}
