//! Backends for population spectra: one trait, a CPU backend that is always compiled, and a
//! CUDA backend behind the `cuda` feature.
//!
//! ```text
//! Device::parse("cpu" | "cuda" | "cuda:N")  ->  backend_for(device)  ->  Box<dyn SpectrumBackend>
//! ```
//!
//! * [`CpuBackend`] runs the population loop of `cpu/population.rs`
//!   ([`crate::rnn::population_spectra`]; rayon, `f32` state, `f64` log sums).
//! * [`CudaBackend`] runs the whole time loop of a population on one GPU: per step and layer one
//!   strided-batched GEMM for the input and one for the recurrent pre-activations of all `M x B`
//!   sequences, one fused elementwise forward kernel, one strided-batched GEMM
//!   `P_m = U_m [Q_{m,1} .. Q_{m,B}]` for all `m` at once, one fused tangent kernel, and a
//!   batched Householder QR of the `M B` blocks `D x k` (shared memory for `D <= 128`) that
//!   accumulates `ln R_ii` in `f64`. The host synchronises once per batch of networks, not per
//!   step. Kernels: the `aelle-kernels` crate, compiled by NVRTC at first use and cached per
//!   device. Without the `cuda` feature the same names exist and return
//!   [`CudaError::NotCompiled`].
//!
//! Both backends compute in `f32` with `f64` log sums (the batched CPU path's default) and return
//! the same [`PopulationSpectra`]: `spectra[m][b]` and per-network statistics. See
//! `docs/gpu.md` for building, checking and what has been verified on which hardware.
//!
//! Status: the CUDA path compiles without a toolkit, NVRTC compiles every kernel without
//! warnings, the kernels pass their checks on a CPU emulator, and the device program executed
//! on the host reproduces the CPU backend; it has **not yet run on a GPU** (no agreement with
//! the CPU or timing has been measured on a device).
//!
//! The GPU check (CUDA vs CPU on [`sample::comparison_cases`], LSTM timings):
//!
//! ```text
//! scripts/gpu-check.sh --build   # here: cargo build --release -p le-engine --features cuda
//!                                #       --example gpu_check, stripped + precompiled PTX
//!                                #       into target/gpu-check/
//! scripts/gpu-check.sh           # on the GPU machine (no Rust needed), from the repo root
//! ```

pub(crate) mod cpu;
mod cuda;
pub mod sample;

pub use cpu::CpuBackend;
pub use cuda::{
    CudaBackend, CudaOptions, GemmEngine, PTX_DIR_ENV, compile_module_ptx, kernel_module_names,
};

use crate::error::LeError;
use crate::rnn::{InputSet, Network, PopulationSpectra, RnnSpectrumConfig};

/// Where a spectrum computation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Device {
    /// The batched CPU backend (rayon).
    #[default]
    Cpu,
    /// CUDA device with this ordinal.
    Cuda(usize),
}

impl Device {
    /// Parse `cpu`, `cuda` (ordinal 0) or `cuda:N`.
    pub fn parse(s: &str) -> Result<Self, BackendError> {
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "cpu" => Ok(Device::Cpu),
            "cuda" | "gpu" => Ok(Device::Cuda(0)),
            _ => {
                if let Some(n) = t.strip_prefix("cuda:")
                    && let Ok(ordinal) = n.parse::<usize>()
                {
                    return Ok(Device::Cuda(ordinal));
                }
                Err(BackendError::Engine(LeError::InvalidConfig {
                    field: "device",
                    message: format!("expected `cpu`, `cuda` or `cuda:N`, got `{s}`"),
                }))
            }
        }
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl std::str::FromStr for Device {
    type Err = BackendError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Device::parse(s)
    }
}

/// Why the CUDA backend could not run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CudaError {
    /// le-engine was built without the `cuda` feature.
    #[error(
        "le-engine was built without CUDA support: rebuild with `--features cuda` (see docs/gpu.md)"
    )]
    NotCompiled,
    /// A CUDA library could not be loaded (no driver, no NVRTC, ...).
    #[error("cannot load {library}: {hint}")]
    LibraryMissing {
        /// The library that failed to load.
        library: &'static str,
        /// What to install or set up.
        hint: &'static str,
    },
    /// The driver reported an error (no such device, out of memory, launch failure, ...).
    #[error("CUDA driver: {0}")]
    Driver(String),
    /// NVRTC failed to compile a kernel module; `log` is the compiler's log.
    #[error("NVRTC could not compile kernel module `{module}`:\n{log}")]
    Compile {
        /// The kernel module.
        module: &'static str,
        /// NVRTC's compile log.
        log: String,
    },
    /// cuBLAS reported an error.
    #[error("cuBLAS: {0}")]
    Blas(String),
    /// The request is valid but this backend does not implement it.
    #[error("not supported by the CUDA backend: {0}")]
    Unsupported(String),
}

/// Errors of a backend: the engine's own (invalid configuration, ...) or the device's.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// An error of the engine (invalid configuration or inputs, ...).
    #[error(transparent)]
    Engine(#[from] LeError),
    /// An error of the CUDA device or libraries.
    #[error(transparent)]
    Cuda(#[from] CudaError),
}

/// Driving inputs of a population for a backend: one `[B, T, I]` set (row-major) shared by all
/// networks, or one per network (all with the same `B`, `T`). The backend-facing twin of
/// [`InputSet`], whose sets are private to the CPU module.
#[derive(Debug, Clone)]
pub struct PopulationInputs<'a> {
    sets: Vec<&'a [f32]>,
    /// Sequences per network `B`.
    pub batch: usize,
    /// Steps per sequence `T`.
    pub steps: usize,
}

impl<'a> PopulationInputs<'a> {
    /// One set `[batch, steps, I]` for every network.
    pub fn shared(data: &'a [f32], batch: usize, steps: usize) -> Self {
        Self { sets: vec![data], batch, steps }
    }

    /// One set per network, in network order.
    pub fn per_network(sets: Vec<&'a [f32]>, batch: usize, steps: usize) -> Self {
        Self { sets, batch, steps }
    }

    /// Whether one set drives every network.
    pub fn is_shared(&self) -> bool {
        self.sets.len() == 1
    }

    /// Number of sets (1, or one per network).
    pub fn set_count(&self) -> usize {
        self.sets.len()
    }

    /// The set that drives network `m`.
    pub fn for_network(&self, m: usize) -> &'a [f32] {
        if self.sets.len() == 1 { self.sets[0] } else { self.sets[m] }
    }

    /// The same inputs as the CPU module's [`InputSet`].
    pub fn to_input_set(&self) -> InputSet<'a, f32> {
        if self.is_shared() {
            InputSet::shared(self.sets[0], self.batch, self.steps)
        } else {
            InputSet::per_network(self.sets.clone(), self.batch, self.steps)
        }
    }

    /// The sub-population `start .. end` of networks (the same sets when shared).
    pub fn networks(&self, start: usize, end: usize) -> Self {
        if self.is_shared() {
            self.clone()
        } else {
            Self { sets: self.sets[start..end].to_vec(), batch: self.batch, steps: self.steps }
        }
    }
}

/// A device that computes spectra of populations of networks (`f32` state, `f64` log sums).
pub trait SpectrumBackend: Send + Sync {
    /// The device this backend runs on.
    fn device(&self) -> Device;

    /// Spectra of every network of `nets` (same cell kind and sizes) driven by `inputs`: the
    /// contract of [`crate::rnn::population_spectra`] (`spectra[m][b]`, statistics per network,
    /// non-finite runs reported per sequence, never a panic).
    fn population_spectra(
        &self,
        nets: &[Network<f32>],
        inputs: &PopulationInputs<'_>,
        cfg: &RnnSpectrumConfig,
    ) -> Result<PopulationSpectra, BackendError>;
}

/// The backend of `device`: [`CpuBackend`], or [`CudaBackend::new`] (an error when CUDA is not
/// compiled in or not usable).
pub fn backend_for(device: Device) -> Result<Box<dyn SpectrumBackend>, BackendError> {
    Ok(match device {
        Device::Cpu => Box::new(CpuBackend),
        Device::Cuda(ordinal) => Box::new(CudaBackend::new(ordinal)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse_and_print() {
        assert_eq!(Device::parse("cpu").unwrap(), Device::Cpu);
        assert_eq!(Device::parse(" CUDA ").unwrap(), Device::Cuda(0));
        assert_eq!(Device::parse("cuda:3").unwrap(), Device::Cuda(3));
        assert_eq!("cuda:1".parse::<Device>().unwrap().to_string(), "cuda:1");
        for bad in ["", "tpu", "cuda:", "cuda:x", "cuda:-1"] {
            assert!(Device::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cpu_backend_is_always_available() {
        let b = backend_for(Device::Cpu).unwrap();
        assert_eq!(b.device(), Device::Cpu);
    }
}
