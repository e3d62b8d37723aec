//! The pipeline configs shared by the integration tests and the `synthetic_benchmark`
//! example (which includes this file by path).
#![allow(dead_code)]

use aelle::tsne::TsneConfig;
use aelle::{
    AelleConfig, AlphaStage, AutoencoderConfig, EmbeddingConfig, FeatureConfig, SplitConfig,
};

/// The documented defaults (L = 128, latent 32, the full alpha schedule), with 30 % test
/// networks so that test AUROCs are tight (sd about 0.03 at 300 networks) and a small t-SNE.
pub fn default_config() -> AelleConfig {
    AelleConfig {
        seed: 7,
        split: SplitConfig {
            validation_fraction: 0.2,
            test_fraction: 0.3,
            stratify_by_group: true,
        },
        embedding: EmbeddingConfig {
            tsne: TsneConfig { iterations: 300, ..TsneConfig::default() },
            tsne_max_points: 300,
        },
        ..AelleConfig::default()
    }
}

/// A shorter schedule at L = 64 for the tests that only need a trained model.
pub fn test_config() -> AelleConfig {
    let mut config = default_config();
    config.features = FeatureConfig { length: 64, ..FeatureConfig::default() };
    config.autoencoder = AutoencoderConfig {
        alpha_stages: vec![
            AlphaStage { alpha: 5.0, epochs: 10 },
            AlphaStage { alpha: 10.0, epochs: 10 },
            AlphaStage { alpha: 20.0, epochs: 20 },
        ],
        patience: Some(8),
        ..AutoencoderConfig::default()
    };
    config
}
