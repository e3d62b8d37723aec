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
    /// The paper's second task: a character-level language model on Moby-Dick
    /// (`task.kind = "char-lm"`): LSTM, GRU and RNN, 40 networks each, N = 16, trained on the
    /// committed excerpt (`task.data = "embedded"`; `"moby-dick"` or `"auto"` reads the full
    /// text fetched by `scripts/fetch-moby-dick.sh`); the target is the validation loss.
    /// About a minute on 2 cores (docs/orchestrator.md).
    CharLm,
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
            Preset::CharLm => {
                c.name = "char-lm".into();
                c.task.kind = super::TaskKind::CharLm;
                c.task.data = super::TaskData::Embedded;
                c.population.architectures = vec![CellKind::Lstm, CellKind::Gru, CellKind::Rnn];
                c.population.hidden_size = 16;
                c.population.networks_per_architecture = 40;
                c.population.p_min = 0.2;
                c.population.p_max = 3.0;
                c.training.epochs = 10;
                c.training.batch_size = 8;
                c.training.learning_rate = 0.01;
                // Every validation window of the excerpt (it has 7).
                c.spectra.driving_sequences = 7;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::config::{TaskData, TaskKind, resolve};

    fn err(preset: Preset, sets: &[&str]) -> String {
        let sets: Vec<String> = sets.iter().map(ToString::to_string).collect();
        resolve(preset, None, &sets).unwrap_err().to_string()
    }

    #[test]
    fn char_lm_preset_is_valid_and_round_trips() {
        let c = Preset::CharLm.config();
        c.validate().unwrap();
        assert_eq!((c.task.kind, c.task.data), (TaskKind::CharLm, TaskData::Embedded));
        let text = c.to_toml().unwrap();
        assert!(text.contains("kind = \"char-lm\"") && text.contains("data = \"embedded\""));
        let back: ExperimentConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, c);
        // The shipped excerpt: 71 training / 7 validation windows of 100 characters.
        assert_eq!(c.task.sizes(), (71, 7));
        assert_eq!(c.example_counts(), (71, 7));
        assert_eq!(c.task.kind.shape(), (100, 83, 83));
        assert_eq!(c.task.kind.head(), rnn_models::Head::PerStepClass { classes: 83 });
        let mut full = c.clone();
        full.task.data = TaskData::MobyDick;
        assert_eq!(full.task.sizes(), (10_712, 1_190));
        assert!(full.task.describe().contains("1,190,317 characters"), "{}", full.task.describe());
        assert!(c.task.describe().contains("7,969 characters"), "{}", c.task.describe());
    }

    #[test]
    fn task_data_must_name_data_of_the_task() {
        let e = err(Preset::CharLm, &["task.data=\"mnist\""]);
        assert!(
            e.contains("task.data") && e.contains("\"moby-dick\"") && e.contains("mnist"),
            "{e}"
        );
        let e = err(Preset::Tiny, &["task.data=\"moby-dick\""]);
        assert!(e.contains("task.data") && e.contains("smnist-row"), "{e}");
        let e = err(Preset::CharLm, &["task.data=\"shakespeare\""]);
        assert!(e.contains("shakespeare"), "{e}");
        let e = err(Preset::Tiny, &["task.kind=\"char-rnn\""]);
        assert!(e.contains("char-rnn"), "{e}");
        // A task switched by `--set` alone is the char-lm task with the embedded excerpt.
        let c = resolve(
            Preset::Tiny,
            None,
            &[
                "task.kind=\"char-lm\"".into(),
                "task.train_examples=0".into(),
                "task.test_examples=0".into(),
                // the excerpt has 71 training windows, fewer than the tiny preset's batch
                "training.batch_size=8".into(),
            ],
        )
        .unwrap();
        assert_eq!(c.example_counts(), (71, 7));
        for data in ["auto", "moby-dick", "embedded"] {
            resolve(Preset::CharLm, None, &[format!("task.data=\"{data}\"")]).unwrap();
        }
    }

    #[test]
    fn char_lm_bounds_follow_the_text() {
        // The excerpt has 71 training and 7 validation windows.
        let e = err(Preset::CharLm, &["task.train_examples=72"]);
        assert!(e.contains("task.train_examples") && e.contains("0 (all) ..= 71"), "{e}");
        let e = err(Preset::CharLm, &["task.test_examples=8"]);
        assert!(e.contains("task.test_examples") && e.contains("..= 7"), "{e}");
        let e = err(Preset::CharLm, &["spectra.driving_sequences=8"]);
        assert!(e.contains("spectra.driving_sequences") && e.contains("1 ..= 7"), "{e}");
        // The full text allows more.
        let c = resolve(
            Preset::CharLm,
            None,
            &[
                "task.data=\"moby-dick\"".into(),
                "task.train_examples=10712".into(),
                "spectra.driving_sequences=15".into(),
            ],
        )
        .unwrap();
        assert_eq!(c.example_counts(), (10_712, 1_190));
        let e = err(Preset::CharLm, &["task.data=\"moby-dick\"", "task.train_examples=10713"]);
        assert!(e.contains("0 (all) ..= 10712"), "{e}");
    }
}
