//! The one validation pass of a resolved experiment config, run before any work by every
//! command that takes one (`--dry-run`, `--print-config` and every stage, also on a config read
//! back from a run folder): one function per section, then the checks that depend on the task
//! (`T`, the number of epochs, the data sizes), then the memory estimates against this
//! machine's memory ([`aelle_support::mem`]). Each failure is a [`ConfigError`] naming the key,
//! the value and the allowed range (exit code 2).
//!
//! The checks of a concept live in the crate that owns it and come back here as typed errors:
//! `aelle::AelleConfig::validate` and `check_memory` (the `[aelle]` section),
//! `le_engine::rnn::RnnSpectrumConfig::validate_for_steps` (warm-up against `T`),
//! `rnn_models::config::TrainingFootprint` (the training memory).

use super::{ExperimentConfig, TaskData, TaskKind, parse_device};

/// Largest `runtime.networks_per_unit`.
pub const MAX_NETWORKS_PER_UNIT: usize = 4096;
/// Largest `spectra.driving_sequences` is the test split; largest warm-up (any task).
pub const MAX_WARMUP: usize = 100_000;

/// A configuration problem, naming where the value came from and the field.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}: {field}: expected {expected}, got {got}")]
pub struct ConfigError {
    /// The file (or `--set`, or `the resolved configuration`).
    pub source_name: String,
    /// Dotted path of the field.
    pub field: String,
    /// What is allowed.
    pub expected: String,
    /// What was given.
    pub got: String,
}

pub(super) fn range_error(field: &str, expected: &str, got: impl ToString) -> ConfigError {
    ConfigError {
        source_name: "configuration".into(),
        field: field.into(),
        expected: expected.into(),
        got: got.to_string(),
    }
}

impl ExperimentConfig {
    /// Checks every documented range, the cross-section rules and the memory estimates.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_name()?;
        self.validate_population()?;
        self.validate_training()?;
        self.validate_task_and_spectra()?;
        self.validate_runtime()?;
        self.validate_aelle()?;
        self.validate_memory()?;
        Ok(())
    }

    fn validate_name(&self) -> Result<(), ConfigError> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 200
            && self.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && !self.name.starts_with('.');
        if !name_ok {
            return Err(range_error(
                "name",
                "a non-empty folder name (at most 200 characters) of letters, digits, '-', '_', '.'",
                format!("{:?}", self.name),
            ));
        }
        Ok(())
    }

    fn validate_population(&self) -> Result<(), ConfigError> {
        let p = &self.population;
        if p.architectures.is_empty() {
            return Err(range_error("population.architectures", "at least one cell", "[]"));
        }
        let repeated =
            p.architectures.iter().enumerate().any(|(i, a)| p.architectures[..i].contains(a));
        if repeated {
            return Err(range_error(
                "population.architectures",
                "each cell at most once",
                format!("{:?}", p.architectures),
            ));
        }
        if !(1..=4096).contains(&p.hidden_size) {
            return Err(range_error("population.hidden_size", "1 ..= 4096", p.hidden_size));
        }
        if !(1..=3).contains(&p.num_layers) {
            return Err(range_error("population.num_layers", "1 ..= 3", p.num_layers));
        }
        if !(1..=100_000).contains(&p.networks_per_architecture) {
            return Err(range_error(
                "population.networks_per_architecture",
                "1 ..= 100000",
                p.networks_per_architecture,
            ));
        }
        if !(p.p_min.is_finite() && p.p_min > 0.0) {
            return Err(range_error("population.p_min", "a finite p > 0", p.p_min));
        }
        if !(p.p_max.is_finite() && p.p_max >= p.p_min) {
            return Err(range_error("population.p_max", "a finite p >= p_min", p.p_max));
        }
        Ok(())
    }

    fn validate_training(&self) -> Result<(), ConfigError> {
        let t = &self.training;
        if !(1..=10_000).contains(&t.epochs) {
            return Err(range_error("training.epochs", "1 ..= 10000", t.epochs));
        }
        let (train, _) = self.example_counts();
        if !(1..=train).contains(&t.batch_size) {
            return Err(range_error(
                "training.batch_size",
                &format!("1 ..= {train} (the training examples used)"),
                t.batch_size,
            ));
        }
        // NaN fails both comparisons.
        if !(t.learning_rate > 0.0 && t.learning_rate <= 1.0) {
            return Err(range_error("training.learning_rate", "a rate in (0, 1]", t.learning_rate));
        }
        Ok(())
    }

    fn validate_task_and_spectra(&self) -> Result<(), ConfigError> {
        let (p, s) = (&self.population, &self.spectra);
        self.validate_task_data()?;
        let (train_total, test_total) = self.task.sizes();
        if self.task.train_examples > train_total {
            return Err(range_error(
                "task.train_examples",
                &format!("0 (all) ..= {train_total}"),
                self.task.train_examples,
            ));
        }
        if self.task.test_examples > test_total {
            return Err(range_error(
                "task.test_examples",
                &format!("0 (all) ..= {test_total}"),
                self.task.test_examples,
            ));
        }
        if s.driving_sequences == 0 || s.driving_sequences > test_total {
            return Err(range_error(
                "spectra.driving_sequences",
                &format!("1 ..= {test_total} (the test split)"),
                s.driving_sequences,
            ));
        }
        for f in &s.fractions {
            if !(0.0..=1.0).contains(f) {
                return Err(range_error("spectra.fractions", "fractions in [0, 1]", f));
            }
        }
        let max_dim = p
            .architectures
            .iter()
            .map(|a| a.tangent_blocks(s.lstm_state) * p.hidden_size * p.num_layers)
            .min()
            .unwrap_or(0);
        if let Some(k) = s.k
            && (k == 0 || k > max_dim)
        {
            return Err(range_error(
                "spectra.k",
                &format!("1 ..= {max_dim} (the smallest state dimension of the population)"),
                k,
            ));
        }
        if s.warmup > MAX_WARMUP {
            return Err(range_error("spectra.warmup", "0 ..= 100000", s.warmup));
        }
        // The engine's rule for a run over the task's T steps (the standard warm-up must leave
        // at least one accumulated step).
        let (steps, _, _) = self.task.kind.shape();
        let engine = crate::experiment::stages::spectra::engine_config(self);
        if engine.validate_for_steps(steps).is_err() {
            return Err(range_error(
                "spectra.warmup",
                &format!("0 ..= {} (T = {steps} steps per driving sequence)", steps - 1),
                s.warmup,
            ));
        }
        Ok(())
    }

    fn validate_runtime(&self) -> Result<(), ConfigError> {
        let r = &self.runtime;
        if !(1..=MAX_NETWORKS_PER_UNIT).contains(&r.networks_per_unit) {
            return Err(range_error(
                "runtime.networks_per_unit",
                "1 ..= 4096",
                r.networks_per_unit,
            ));
        }
        if parse_device(&r.device).is_none() {
            return Err(range_error(
                "runtime.device",
                "\"cpu\" or \"cuda:N\"",
                format!("{:?}", r.device),
            ));
        }
        if r.workers > 1024 {
            return Err(range_error("runtime.workers", "0 (= cores) ..= 1024", r.workers));
        }
        Ok(())
    }

    /// The `[aelle]` section through its own validation, then what depends on the
    /// population: folds against the number of networks, evaluation points against the
    /// checkpoints that get a spectrum.
    fn validate_aelle(&self) -> Result<(), ConfigError> {
        self.aelle.validate().map_err(|e| match e {
            aelle::AelleError::InvalidConfig { field, expected, got } => {
                range_error(&format!("aelle.{field}"), expected, got)
            }
            other => range_error("aelle", "a valid [aelle] section", other),
        })?;
        let total = self.population.architectures.len() * self.population.networks_per_architecture;
        let folds = self.aelle.cross_validation.folds;
        if total < 2 * folds {
            return Err(range_error(
                "aelle.cross_validation.folds",
                &format!("at most {} (2 networks per fold; the population has {total})", total / 2),
                folds,
            ));
        }
        let epochs = self.spectrum_epochs();
        let total_epochs = f64::from(self.training.epochs);
        let listed = || epochs.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
        let tolerance = self.aelle.evaluation.fraction_tolerance;
        for point in &self.aelle.evaluation.points {
            match *point {
                aelle::EvaluationPoint::Epoch(e) if !epochs.contains(&e) => {
                    return Err(range_error(
                        "aelle.evaluation.points",
                        &format!(
                            "epochs with a spectrum ({}; training.epochs = {})",
                            listed(),
                            self.training.epochs
                        ),
                        format!("{{ epoch = {e} }}"),
                    ));
                }
                aelle::EvaluationPoint::Fraction(f)
                    if !epochs
                        .iter()
                        .any(|&e| (f64::from(e) / total_epochs - f).abs() <= tolerance + 1e-12) =>
                {
                    return Err(range_error(
                        "aelle.evaluation.points",
                        &format!(
                            "fractions within aelle.evaluation.fraction_tolerance = {tolerance} \
                             of a checkpoint with a spectrum (epochs {} of {})",
                            listed(),
                            self.training.epochs
                        ),
                        format!("{{ fraction = {f} }}"),
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn validate_task_data(&self) -> Result<(), ConfigError> {
        let fits = match self.task.kind {
            TaskKind::SmnistRow => self.task.data != TaskData::MobyDick,
            TaskKind::CharLm => self.task.data != TaskData::Mnist,
        };
        if fits {
            return Ok(());
        }
        let expected = match self.task.kind {
            TaskKind::SmnistRow => {
                "\"embedded\", \"mnist\" or \"auto\" for task.kind = \"smnist-row\""
            }
            TaskKind::CharLm => {
                "\"embedded\", \"moby-dick\" or \"auto\" for task.kind = \"char-lm\""
            }
        };
        let got = match self.task.data {
            TaskData::Mnist => "\"mnist\"",
            _ => "\"moby-dick\"",
        };
        Err(range_error("task.data", expected, got))
    }

    /// The memory the stages will need, against this machine's: training one unit per worker,
    /// the spectra of one network per worker, the AeLLE analysis of every row.
    fn validate_memory(&self) -> Result<(), ConfigError> {
        let p = &self.population;
        let (seq_len, input, classes) = self.task.kind.shape();
        let workers = crate::experiment::pipeline::worker_count(self) as u64;
        let training = p
            .architectures
            .iter()
            .map(|&arch| {
                rnn_models::config::TrainingFootprint {
                    arch,
                    hidden_size: p.hidden_size,
                    num_layers: p.num_layers,
                    input_size: input,
                    num_classes: classes,
                    seq_len,
                    batch_size: self.training.batch_size.max(1000),
                    networks: self.runtime.networks_per_unit,
                }
                .bytes()
            })
            .try_fold(0u64, |acc, b| Some(acc.max(b?)))
            .and_then(|b| b.checked_mul(workers));
        aelle_support::mem::check_fits(
            format!(
                "training ({} worker(s) x runtime.networks_per_unit = {} networks of \
                 population.hidden_size = {}, {} layer(s), training.batch_size = {})",
                workers,
                self.runtime.networks_per_unit,
                p.hidden_size,
                p.num_layers,
                self.training.batch_size
            ),
            training,
        )
        .map_err(|e| memory_error("runtime.networks_per_unit / population.hidden_size", &e))?;
        // Spectra: per worker, one network's checkpoints x B sequences x the tangent block.
        let dim = p.architectures.iter().map(|a| a.state_blocks()).max().unwrap_or(1)
            * p.hidden_size
            * p.num_layers;
        let k = self.spectra.k.unwrap_or(dim);
        let spectra = aelle_support::mem::checked_product(&[
            workers,
            self.spectrum_epochs().len() as u64,
            self.spectra.driving_sequences as u64,
            (dim as u64).saturating_mul(k as u64 + 2),
            8,
        ]);
        aelle_support::mem::check_fits(
            format!(
                "the spectra ({workers} worker(s) x {} checkpoints x spectra.driving_sequences = {} x a {dim} x {k} tangent block)",
                self.spectrum_epochs().len(),
                self.spectra.driving_sequences
            ),
            spectra,
        )
        .map_err(|e| memory_error("spectra.driving_sequences / spectra.k", &e))?;
        let rows =
            p.architectures.len() * p.networks_per_architecture * self.spectrum_epochs().len();
        self.aelle.check_memory(rows).map_err(|e| {
            range_error("aelle", "an analysis that fits in this machine's memory", e)
        })?;
        Ok(())
    }
}

fn memory_error(field: &str, e: &aelle_support::mem::TooLarge) -> ConfigError {
    range_error(
        field,
        &format!(
            "sizes that fit in this machine's memory ({})",
            aelle_support::mem::format_bytes(e.limit)
        ),
        e,
    )
}
