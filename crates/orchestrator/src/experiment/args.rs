//! Command-line arguments of the experiment stages.

use std::path::PathBuf;

use clap::Args;

use super::config::Preset;

/// Arguments every stage takes: which experiment, which run folder, and overrides.
#[derive(Debug, Clone, Args)]
pub struct ExperimentArgs {
    /// Experiment config (TOML; every key optional, see docs/orchestrator.md). Layered over
    /// the preset.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Built-in preset the config file and overrides start from [default: default].
    #[arg(long, value_enum)]
    pub preset: Option<Preset>,
    /// Override one config key, e.g. `--set training.epochs=3` (repeatable; TOML values).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Folder holding the run folders.
    #[arg(long, default_value = "runs", value_name = "DIR")]
    pub runs_dir: PathBuf,
    /// Run name (overrides the config's `name`); the run folder is RUNS_DIR/NAME.
    #[arg(long)]
    pub name: Option<String>,
    /// The run folder itself (overrides --runs-dir and --name).
    #[arg(long, value_name = "DIR")]
    pub run_dir: Option<PathBuf>,
    /// Networks per cell (overrides population.networks_per_architecture).
    #[arg(long, value_name = "N")]
    pub networks: Option<usize>,
    /// Training epochs (overrides training.epochs).
    #[arg(long, value_name = "E")]
    pub epochs: Option<u32>,
    /// Hidden size N (overrides population.hidden_size).
    #[arg(long, value_name = "N")]
    pub hidden_size: Option<usize>,
    /// Master seed (overrides seed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Blocking workers (overrides runtime.workers; 0 = number of cores).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Print the plan (counts of networks, checkpoints, spectra, estimated time) and exit.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the resolved configuration as TOML (a starting point for --config) and exit.
    #[arg(long)]
    pub print_config: bool,
}

impl Default for ExperimentArgs {
    /// What clap gives with no flags (for the no-subcommand default `run`).
    fn default() -> Self {
        Self {
            config: None,
            preset: None,
            sets: Vec::new(),
            runs_dir: "runs".into(),
            name: None,
            run_dir: None,
            networks: None,
            epochs: None,
            hidden_size: None,
            seed: None,
            workers: None,
            dry_run: false,
            print_config: false,
        }
    }
}

impl ExperimentArgs {
    /// Whether anything that defines the experiment was given explicitly (else a stage run on
    /// an existing folder uses the folder's own config.toml).
    pub fn defines_experiment(&self) -> bool {
        self.config.is_some()
            || self.preset.is_some()
            || !self.sets.is_empty()
            || self.networks.is_some()
            || self.epochs.is_some()
            || self.hidden_size.is_some()
            || self.seed.is_some()
    }
}

/// `sweep` and `spectra`: a stage that can be sharded.
#[derive(Debug, Clone, Args)]
pub struct ShardedStageArgs {
    #[command(flatten)]
    pub experiment: ExperimentArgs,
    /// Do only shard INDEX of COUNT (INDEX may be `auto`: SLURM_ARRAY_TASK_ID, else
    /// JOB_COMPLETION_INDEX; COUNT is always explicit).
    #[arg(long, value_name = "INDEX/COUNT")]
    pub shard: Option<String>,
}

/// `run`, `merge`, `aelle`, `report`.
#[derive(Debug, Clone, Args, Default)]
pub struct StageArgs {
    #[command(flatten)]
    pub experiment: ExperimentArgs,
}
