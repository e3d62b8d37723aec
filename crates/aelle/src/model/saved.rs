//! A complete AeLLE model as saved and loaded: feature construction, standardisation and the
//! network, in `model.safetensors` + `model.json`, written through the workspace's one atomic
//! write.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use super::{AutoencoderConfig, AutoencoderPredictor, AutoencoderShape};
use crate::error::{AelleError, Result};
use crate::features::{FeatureConfig, Standardizer};
use crate::matrix::Matrix;

/// The JSON written next to a saved model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedModelConfig {
    /// Format version of this file (currently 1).
    pub format_version: u32,
    /// Parameter shapes.
    pub shape: AutoencoderShape,
    /// How spectra become features (the standardiser's statistics are in the safetensors file).
    pub features: FeatureConfig,
    /// The training settings that produced the weights (provenance).
    pub autoencoder: AutoencoderConfig,
}

/// A complete AeLLE model: feature construction + standardisation + autoencoder/predictor.
/// This is what is saved and loaded, so inference sees exactly the training transform.
#[derive(Debug, Clone)]
pub struct AelleModel {
    /// Feature construction settings.
    pub features: FeatureConfig,
    /// Feature standardisation fitted on training rows (identity when disabled).
    pub standardizer: Standardizer,
    /// The training settings (provenance only).
    pub autoencoder_config: AutoencoderConfig,
    /// The network.
    pub network: AutoencoderPredictor,
}

impl AelleModel {
    /// Raw spectra (any lengths, all finite) -> standardised feature matrix `[n, L]`.
    pub fn spectra_to_features(&self, spectra: &[Vec<f64>]) -> Result<Matrix> {
        let rows = spectra
            .iter()
            .map(|s| self.features.spectrum_to_features(s))
            .collect::<Result<Vec<_>>>()?;
        if rows.is_empty() {
            return Ok(Matrix::zeros(0, self.features.length));
        }
        self.standardizer.apply(&Matrix::from_rows(&rows)?)
    }

    /// Latent codes `[n, d]` of raw spectra.
    pub fn latent(&self, spectra: &[Vec<f64>]) -> Result<Matrix> {
        self.network.encode(&self.spectra_to_features(spectra)?)
    }

    /// Predicted final loss of each raw spectrum.
    pub fn predict_final_loss(&self, spectra: &[Vec<f64>]) -> Result<Vec<f64>> {
        self.network.predict_final_loss(&self.spectra_to_features(spectra)?)
    }

    /// The JSON path used next to `weights_path`: same stem, extension `json`.
    pub fn config_path(weights_path: &Path) -> PathBuf {
        weights_path.with_extension("json")
    }

    /// Writes the weights and standardisation statistics to `weights_path` (safetensors) and
    /// the config to [`Self::config_path`]; each through a temporary file and a rename.
    pub fn save(&self, weights_path: &Path) -> Result<()> {
        let mut tensors = self.network.tensors_for_saving()?;
        let l = self.standardizer.mean.len();
        tensors.insert(
            "features.mean".into(),
            Tensor::from_vec(self.standardizer.mean.clone(), l, &Device::Cpu)?,
        );
        tensors.insert(
            "features.scale".into(),
            Tensor::from_vec(self.standardizer.scale.clone(), l, &Device::Cpu)?,
        );
        let bytes = safetensors::serialize(&tensors, None).map_err(candle_core::Error::from)?;
        write_atomic(weights_path, &bytes)?;
        let config = SavedModelConfig {
            format_version: 1,
            shape: self.network.shape,
            features: self.features.clone(),
            autoencoder: self.autoencoder_config.clone(),
        };
        let json_path = Self::config_path(weights_path);
        let text = serde_json::to_string_pretty(&config)
            .map_err(|source| AelleError::Json { path: json_path.clone(), source })?;
        write_atomic(&json_path, text.as_bytes())
    }

    /// Loads what [`Self::save`] wrote.
    pub fn load(weights_path: &Path) -> Result<Self> {
        let json_path = Self::config_path(weights_path);
        let text = std::fs::read_to_string(&json_path)
            .map_err(|source| AelleError::Io { path: json_path.clone(), source })?;
        let config: SavedModelConfig = serde_json::from_str(&text)
            .map_err(|source| AelleError::Json { path: json_path.clone(), source })?;
        if config.format_version != 1 {
            return Err(AelleError::CorruptModel {
                path: json_path,
                expected: format!("format_version 1, found {}", config.format_version),
            });
        }
        if config.shape.input_length != config.features.length {
            return Err(AelleError::CorruptModel {
                path: json_path,
                expected: format!(
                    "shape.input_length ({}) equal to features.length ({})",
                    config.shape.input_length, config.features.length
                ),
            });
        }
        if !weights_path.exists() {
            return Err(AelleError::Io {
                path: weights_path.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "weights file not found"),
            });
        }
        let tensors = candle_core::safetensors::load(weights_path, &Device::Cpu)?;
        let network = AutoencoderPredictor::from_tensors(config.shape, &tensors, weights_path)?;
        let read_stats = |name: &str| -> Result<Vec<f64>> {
            let t = tensors.get(name).ok_or_else(|| AelleError::CorruptModel {
                path: weights_path.to_path_buf(),
                expected: format!("a tensor named `{name}`"),
            })?;
            let v: Vec<f64> = t.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
            if v.len() != config.features.length || !v.iter().all(|x| x.is_finite()) {
                return Err(AelleError::CorruptModel {
                    path: weights_path.to_path_buf(),
                    expected: format!("`{name}` with {} finite values", config.features.length),
                });
            }
            Ok(v)
        };
        let standardizer = Standardizer {
            mean: read_stats("features.mean")?,
            scale: read_stats("features.scale")?,
        };
        Ok(Self {
            features: config.features,
            standardizer,
            autoencoder_config: config.autoencoder,
            network,
        })
    }
}

/// The workspace's one crash-safe write (`aelle_support::fs`), with the crate's error.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    aelle_support::fs::write_atomic(path, bytes)
        .map_err(|e| AelleError::Io { path: e.path.clone(), source: e.source })
}
