//! The CPU backend: the batched population loop (`population.rs`, exported as
//! [`crate::rnn::population_spectra`] and [`crate::rnn::network_spectra`]) behind
//! [`SpectrumBackend`].

mod population;

#[cfg(feature = "cuda")]
pub(crate) use population::{check_population, check_run};
pub use population::{network_spectra, population_spectra};

use super::{BackendError, Device, PopulationInputs, SpectrumBackend};
use crate::rnn::{Network, PopulationSpectra, RnnSpectrumConfig};

/// The batched CPU backend (rayon over networks, or over GEMMs and QRs when there are fewer
/// networks than threads).
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuBackend;

impl SpectrumBackend for CpuBackend {
    fn device(&self) -> Device {
        Device::Cpu
    }

    fn population_spectra(
        &self,
        nets: &[Network<f32>],
        inputs: &PopulationInputs<'_>,
        cfg: &RnnSpectrumConfig,
    ) -> Result<PopulationSpectra, BackendError> {
        Ok(population_spectra(nets, &inputs.to_input_set(), cfg)?)
    }
}
