//! The experiment configuration: one TOML file, every field with a documented default.
//!
//! Layering (later wins): the built-in defaults, a preset (`--preset`), the `--config` file,
//! `--set KEY=VALUE` overrides, then the dedicated CLI flags. Unknown keys, wrong types and
//! out-of-range values are errors naming the file (or `--set`) and the field. The resolved
//! config is written to `<run>/config.toml`; a rerun on the same folder must resolve to the
//! same experiment (the `runtime` section may differ), otherwise it is refused.

#[cfg(test)]
mod fuzz;
mod layering;
mod presets;
mod validate;

use datasets::PixelNormalization;
use le_engine::rnn::{CellKind, LstmState};
use le_engine::{LogBase, Precision};
use serde::{Deserialize, Serialize};

pub use layering::{read_resolved, resolve};
pub use presets::Preset;
pub use validate::ConfigError;
use validate::range_error;

/// Which task the population is trained on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskKind {
    /// Row-wise sequential MNIST on the embedded 10k subset (8k train / 2k test): T = 28,
    /// I = 28, 10 classes. The published setting.
    SmnistRow,
    /// Character-level language model on Moby-Dick (`datasets::CharLmTask`): windows of
    /// T = 100 one-hot characters (I = 83, the full text's vocabulary), next-character
    /// targets at every step, the first 90 % of the text for training and the last 10 % as the
    /// validation split whose loss (nats per character) is the performance target. The
    /// paper's second task (`--preset char-lm`).
    CharLm,
}

impl TaskKind {
    /// `(T, I, classes)`: steps per sequence, inputs per step and classes of the task.
    pub fn shape(self) -> (usize, usize, usize) {
        match self {
            TaskKind::SmnistRow => (28, 28, 10),
            TaskKind::CharLm => (datasets::CHAR_LM_SEQ_LEN, CHAR_LM_VOCABULARY, CHAR_LM_VOCABULARY),
        }
    }

    /// The readout and loss `rnn-models` trains with.
    pub fn head(self) -> rnn_models::Head {
        match self {
            TaskKind::SmnistRow => rnn_models::Head::LastStepClass { classes: 10 },
            TaskKind::CharLm => rnn_models::Head::PerStepClass { classes: CHAR_LM_VOCABULARY },
        }
    }

    /// What the report calls the split whose loss is the target: the test images of
    /// `smnist-row`, the held-out last 10 % of the text of `char-lm`.
    pub fn held_out_split(self) -> &'static str {
        match self {
            TaskKind::SmnistRow => "test",
            TaskKind::CharLm => "validation",
        }
    }
}

/// Characters of the committed Moby-Dick vocabulary (`datasets::CharVocabulary::moby_dick`;
/// a unit test checks the two agree).
pub const CHAR_LM_VOCABULARY: usize = 83;

/// Which data the task reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskData {
    /// What ships with the repository (default): for `smnist-row` the embedded 10k MNIST
    /// subset (8,000 train / 2,000 test); for `char-lm` the committed 7,969-character
    /// Moby-Dick excerpt (71 training / 7 validation windows of 100 characters).
    Embedded,
    /// Full MNIST (60,000 / 10,000) from `$AELLE_DATASETS_DIR/mnist` or `datasets/mnist`
    /// (`scripts/fetch-mnist.sh`); an error naming the folder if it is not there.
    /// `smnist-row` only.
    Mnist,
    /// The full Moby-Dick text (1,190,317 characters: 10,712 training / 1,190 validation
    /// windows) from `$AELLE_DATASETS_DIR/moby-dick/data.txt` or `datasets/moby-dick/data.txt`
    /// (`scripts/fetch-moby-dick.sh`); an error naming the folder if it is not there.
    /// `char-lm` only.
    MobyDick,
    /// The task's full data set when it has been fetched (full MNIST, the full Moby-Dick
    /// text), else what ships; resolved once when the run folder is created, and
    /// `config.toml` records which (the `paper` and `char-lm` presets' choice).
    Auto,
}

impl TaskConfig {
    /// `data` with `Auto` resolved against what is on disk for this task; the others
    /// unchanged.
    pub fn resolved_data(&self) -> TaskData {
        match (self.kind, self.data) {
            (TaskKind::SmnistRow, TaskData::Auto) => {
                let family = datasets::MnistFamily::Mnist;
                if family.has_files(&family.default_dir()) {
                    TaskData::Mnist
                } else {
                    TaskData::Embedded
                }
            }
            (TaskKind::CharLm, TaskData::Auto) => {
                if datasets::CharLmTask::moby_dick_default_dir().join("data.txt").is_file() {
                    TaskData::MobyDick
                } else {
                    TaskData::Embedded
                }
            }
            (_, other) => other,
        }
    }

    /// `(training, test)` examples of the whole data set: images of `smnist-row`, windows of
    /// `char-lm` (its test split is the validation text). `Auto` is resolved before a run;
    /// here it counts as the full data set, the larger bound.
    pub fn sizes(&self) -> (usize, usize) {
        let full_text = || {
            datasets::split_windows(
                datasets::MOBY_DICK_CHARS,
                datasets::CHAR_LM_SEQ_LEN,
                datasets::CHAR_LM_TRAIN_FRACTION,
            )
        };
        match (self.kind, self.data) {
            (TaskKind::SmnistRow, TaskData::Embedded) => (8_000, 2_000),
            (TaskKind::SmnistRow, _) => (60_000, 10_000),
            (TaskKind::CharLm, TaskData::Embedded) => datasets::split_windows(
                datasets::char_lm::MOBY_DICK_EXCERPT.chars().count(),
                datasets::CHAR_LM_SEQ_LEN,
                datasets::CHAR_LM_TRAIN_FRACTION,
            ),
            (TaskKind::CharLm, _) => full_text(),
        }
    }

    /// How the report names the task and its data.
    pub fn describe(&self) -> String {
        match (self.kind, self.data) {
            (TaskKind::SmnistRow, TaskData::Mnist) => format!(
                "full MNIST (60,000 / 10,000 images, from {})",
                datasets::MnistFamily::Mnist.default_dir().display()
            ),
            (TaskKind::SmnistRow, TaskData::Embedded) => {
                "the embedded 10k MNIST subset (8,000 / 2,000 images)".to_string()
            }
            (TaskKind::SmnistRow, _) => {
                "full MNIST if fetched, else the embedded subset".to_string()
            }
            (TaskKind::CharLm, TaskData::MobyDick) => format!(
                "the full Moby-Dick text ({} characters, from {})",
                group_thousands(datasets::MOBY_DICK_CHARS),
                datasets::CharLmTask::moby_dick_default_dir().join("data.txt").display()
            ),
            (TaskKind::CharLm, TaskData::Embedded) => format!(
                "the committed Moby-Dick excerpt (its first {} characters)",
                group_thousands(datasets::char_lm::MOBY_DICK_EXCERPT.chars().count())
            ),
            (TaskKind::CharLm, _) => {
                "the full Moby-Dick text if fetched, else the committed excerpt".to_string()
            }
        }
    }
}

/// `1190317` -> `"1,190,317"`.
fn group_thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `[task]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TaskConfig {
    /// `"smnist-row"` (default) or `"char-lm"` (Moby-Dick characters, `--preset char-lm`).
    pub kind: TaskKind,
    /// Which data: `"embedded"` (default: what ships), `"mnist"` (full MNIST, fetched;
    /// `smnist-row` only), `"moby-dick"` (the full text, fetched; `char-lm` only) or `"auto"`
    /// (the full data set if fetched, else what ships).
    pub data: TaskData,
    /// Train on the first this many examples of a seeded shuffle of the training split
    /// (0 = all: 8,000 embedded images; windows of 100 characters for `char-lm`). Default 0:
    /// the whole embedded training split, so the good networks train for real (best LSTM /
    /// GRU at 95 % and more).
    pub train_examples: usize,
    /// Evaluate the test loss / accuracy on this many test examples (0 = all 2,000; for
    /// `char-lm` validation windows). Default 0 (all).
    pub test_examples: usize,
    /// Pixel scaling: `"unit-range"` (`p / 255`, default) or `"mnist-standardized"`
    /// (`(p / 255 - 0.1307) / 0.3081`). `smnist-row` only (`char-lm` inputs are one-hot).
    pub normalization: PixelNormalization,
}

impl Default for TaskConfig {
    fn default() -> Self {
        Self {
            kind: TaskKind::SmnistRow,
            data: TaskData::Embedded,
            train_examples: 0,
            test_examples: 0,
            normalization: PixelNormalization::UnitRange,
        }
    }
}

/// `[population]`: which networks are trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PopulationConfig {
    /// Cells. Default all five: `["lstm", "gru", "rnn", "asrnn", "cornn"]`.
    pub architectures: Vec<CellKind>,
    /// Hidden size N. Default 32 (the paper uses 64: `--preset paper`).
    pub hidden_size: usize,
    /// Stacked layers, 1 to 3. Default 1 (the published setting).
    pub num_layers: usize,
    /// Networks per cell. Default 40 (200 networks: AUROC intervals of about +-0.05; paper:
    /// 200 per cell).
    pub networks_per_architecture: usize,
    /// Smallest initialisation scale p (weights ~ U(-p, p)). Default 0.2.
    pub p_min: f64,
    /// Largest p. Default 3.0. The networks of a cell take p evenly spaced over
    /// `[p_min, p_max]` (a deterministic grid, so every shard sees the same sweep), from
    /// well-conditioned to saturated initialisations: that spread of final performance is what
    /// AeLLE has to predict.
    pub p_max: f64,
}

impl Default for PopulationConfig {
    fn default() -> Self {
        Self {
            architectures: vec![
                CellKind::Lstm,
                CellKind::Gru,
                CellKind::Rnn,
                CellKind::Asrnn,
                CellKind::Cornn,
            ],
            hidden_size: 32,
            num_layers: 1,
            networks_per_architecture: 40,
            p_min: 0.2,
            p_max: 3.0,
        }
    }
}

/// `[training]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainingConfig {
    /// Epochs; a checkpoint is written at initialisation (epoch 0) and after every epoch.
    /// Default 10 (the published setting), so checkpoint e is at fraction e / 10.
    pub epochs: u32,
    /// Mini-batch size. Default 128 (published).
    pub batch_size: usize,
    /// Adam learning rate. Default 0.01 (published).
    pub learning_rate: f64,
}

impl Default for TrainingConfig {
    fn default() -> Self {
        Self { epochs: 10, batch_size: 128, learning_rate: 0.01 }
    }
}

/// `[spectra]`: the Lyapunov spectrum of every selected checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpectraConfig {
    /// Driving sequences B from the test split (the same for every network and epoch).
    /// Default 15 (the reference).
    pub driving_sequences: usize,
    /// Seed choosing them. Default 0.
    pub driving_seed: u64,
    /// Training fractions whose checkpoints get a spectrum (each mapped to the nearest
    /// epoch, `round(f * epochs)`); empty = every checkpoint. Default `[0, 0.1, 0.2, 0.5, 1]`.
    pub fractions: Vec<f64>,
    /// Exponents per network (`None`/absent = the full state dimension).
    pub k: Option<usize>,
    /// Warm-up steps (re-orthonormalised, not accumulated). Default 0: a 28-row sequence is
    /// short, and the reference accumulates from the first row.
    pub warmup: usize,
    /// LSTM tangent state: `"full"` (`(h, c)`, 2N exponents; default, METHOD.md section 3)
    /// or `"h-only"` (c frozen, the reference code's N x N block).
    pub lstm_state: LstmState,
    /// Default `"e"` (nats); `"two"` = bits as in the reference.
    pub log_base: LogBase,
    /// State and tangent precision (log sums are always f64). Default `"f64"`: a saturated
    /// tanh unit has `1 - h^2` = 0 in f32 (an exponent of -inf, reported as diverged) but a
    /// tiny finite value in f64, so saturated networks keep a finite spectrum. `"f32"` is
    /// the reference's and twice as fast.
    pub precision: Precision,
}

impl Default for SpectraConfig {
    fn default() -> Self {
        Self {
            driving_sequences: 15,
            driving_seed: 0,
            fractions: vec![0.0, 0.1, 0.2, 0.5, 1.0],
            k: None,
            warmup: 0,
            lstm_state: LstmState::Full,
            log_base: LogBase::E,
            precision: Precision::F64,
        }
    }
}

/// `[runtime]`: how the work is run. May change between reruns of one run folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Blocking workers for training and spectra (0 = the number of cores). Default 0.
    pub workers: usize,
    /// Networks trained together as one batched population (one unit of work). Default 4.
    pub networks_per_unit: usize,
    /// Where candle trains: `"cpu"` (default) or `"cuda:N"` (GPU N; needs a build with the
    /// `cuda` feature, otherwise training stops with candle's "not compiled with CUDA"
    /// error). Spectra always run on le-engine's CPU path here.
    pub device: String,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self { workers: 0, networks_per_unit: 4, device: "cpu".into() }
    }
}

impl RuntimeConfig {
    /// The candle device of `device`.
    pub fn candle_device(&self) -> anyhow::Result<candle_core::Device> {
        match parse_device(&self.device) {
            Some(None) => Ok(candle_core::Device::Cpu),
            Some(Some(i)) => candle_core::Device::new_cuda(i)
                .map_err(|e| anyhow::anyhow!("runtime.device = {:?}: {e}", self.device)),
            None => {
                Err(range_error("runtime.device", "\"cpu\" or \"cuda:N\"", &self.device).into())
            }
        }
    }
}

/// `cpu` -> `Some(None)`, `cuda:N` -> `Some(Some(N))`, anything else `None`.
fn parse_device(s: &str) -> Option<Option<usize>> {
    if s == "cpu" {
        return Some(None);
    }
    s.strip_prefix("cuda:").and_then(|n| n.parse().ok()).map(Some)
}

/// The whole experiment. Every field has a default (`ExperimentConfig::default()` is the
/// default experiment); see `docs/orchestrator.md` for the reference table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Run name: the run folder is `<runs-dir>/<name>`. Default `"default"`.
    pub name: String,
    /// Master seed of the population (initialisations, data order). Default 0.
    pub seed: u64,
    /// `[task]`.
    pub task: TaskConfig,
    /// `[population]`.
    pub population: PopulationConfig,
    /// `[training]`.
    pub training: TrainingConfig,
    /// `[spectra]`.
    pub spectra: SpectraConfig,
    /// `[aelle]`: the `aelle` crate's `AelleConfig` (features, split, autoencoder, embedding,
    /// evaluation); its defaults are documented there.
    pub aelle: aelle::AelleConfig,
    /// `[runtime]`.
    pub runtime: RuntimeConfig,
}

impl Default for ExperimentConfig {
    fn default() -> Self {
        Self {
            name: "default".into(),
            seed: 0,
            task: TaskConfig::default(),
            population: PopulationConfig::default(),
            training: TrainingConfig::default(),
            spectra: SpectraConfig::default(),
            aelle: aelle::AelleConfig::default(),
            runtime: RuntimeConfig::default(),
        }
    }
}

impl ExperimentConfig {
    /// Training and test images actually used (`0` = the whole split).
    pub fn example_counts(&self) -> (usize, usize) {
        let (train, test) = self.task.sizes();
        let pick = |n: usize, all: usize| if n == 0 { all } else { n };
        (pick(self.task.train_examples, train), pick(self.task.test_examples, test))
    }

    /// Epochs whose checkpoints get a spectrum (sorted, unique).
    pub fn spectrum_epochs(&self) -> Vec<u32> {
        let e = self.training.epochs;
        let mut v: Vec<u32> = if self.spectra.fractions.is_empty() {
            (0..=e).collect()
        } else {
            self.spectra.fractions.iter().map(|f| (f * e as f64).round() as u32).collect()
        };
        v.sort_unstable();
        v.dedup();
        v
    }
}
