//! The built-in presets (`--preset NAME`): full configs the file and `--set` overrides layer on.

use le_engine::rnn::CellKind;

use super::ExperimentConfig;

/// Built-in presets (`--preset NAME`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    /// The laptop-scale default experiment: 200 networks on the whole embedded split (a few
    /// minutes on 2 cores; see docs/orchestrator.md).
    Default,
    /// The published scale: 200 networks per cell, N = 64, 10 epochs, full MNIST when
    /// `scripts/fetch-mnist.sh` has fetched it (else the embedded 8k / 2k split; the report
    /// says which); for a GPU node or a Slurm cluster.
    Paper,
    /// A few networks, 2 epochs, a small data subset: seconds, for tests and smoke checks.
    Tiny,
}

impl Preset {
    /// The preset's full config.
    pub fn config(self) -> ExperimentConfig {
        let mut c = ExperimentConfig::default();
        match self {
            Preset::Default => {}
            Preset::Paper => {
                c.name = "paper".into();
                c.population.hidden_size = 64;
                c.population.networks_per_architecture = 200;
                c.training.epochs = 10;
                c.task.data = super::TaskData::Auto;
                c.task.train_examples = 0;
                c.task.test_examples = 0;
            }
            Preset::Tiny => {
                c.name = "tiny".into();
                c.population.architectures = vec![CellKind::Lstm, CellKind::Gru, CellKind::Rnn];
                c.population.hidden_size = 8;
                c.population.networks_per_architecture = 4;
                c.training.epochs = 2;
                c.task.train_examples = 256;
                c.task.test_examples = 128;
                c.spectra.driving_sequences = 4;
                c.spectra.fractions = Vec::new();
                c.aelle.autoencoder.latent_dim = 4;
                c.aelle.autoencoder.alpha_stages = vec![
                    aelle::AlphaStage { alpha: 5.0, epochs: 10 },
                    aelle::AlphaStage { alpha: 10.0, epochs: 10 },
                ];
                c.aelle.features.length = 16;
                c.aelle.split.validation_fraction = 0.25;
                c.aelle.split.test_fraction = 0.25;
                c.aelle.evaluation.points = vec![
                    aelle::EvaluationPoint::Epoch(0),
                    aelle::EvaluationPoint::Epoch(1),
                    aelle::EvaluationPoint::Epoch(2),
                ];
            }
        }
        c
    }
}
