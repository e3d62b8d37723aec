//! The CPU backend: [`crate::rnn::population_spectra`] behind [`SpectrumBackend`].

use super::{BackendError, Device, PopulationInputs, SpectrumBackend};
use crate::rnn::{Network, PopulationSpectra, RnnSpectrumConfig, population_spectra};

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
