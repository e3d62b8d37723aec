//! Command-line arguments (clap derive). Parsing only: validation into engine settings lives
//! next to each command.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use le_engine::rnn::{CellKind, LstmState};
use le_engine::{LogBase, Orientation, Precision};

pub use crate::experiment::args::{ShardedStageArgs, StageArgs};

/// AeLLE-rs: Lyapunov spectra of dynamical systems and recurrent networks, fast.
///
/// Without a subcommand, runs the default experiment (`run`).
#[derive(Debug, Parser)]
#[command(name = "orchestrator", version, about, long_about = None)]
pub struct Cli {
    /// Log format on stderr (level from RUST_LOG, default info).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole experiment: train the population and compute spectra (pipelined), then
    /// AeLLE and the report (the default command; resumable).
    Run(StageArgs),
    /// Train the population, checkpointing every epoch (resumable; --shard for arrays).
    Sweep(ShardedStageArgs),
    /// Lyapunov spectra of the selected checkpoints of trained networks (--shard for arrays).
    Spectra(ShardedStageArgs),
    /// Check that every shard's outputs are present and complete.
    Merge(StageArgs),
    /// AeLLE: autoencoder embedding of the spectra and the early-prediction evaluation.
    Aelle(StageArgs),
    /// Write report/index.html, summary.md and the figures (PNG and SVG).
    Report(StageArgs),
    /// Apply the pre-trained AeLLE of one run (fitted on all its networks) to another run's
    /// population with no refitting; the target's report shows it next to its own
    /// cross-validation.
    Transfer(TransferArgs),
    /// Check the spectrum engine on the reference systems of METHOD.md section 7.
    #[command(name = "check-engine", alias = "reference-systems")]
    CheckEngine(RunArgs),
    /// Lyapunov spectrum of a built-in system or of a Jacobian sequence file.
    Spectrum(Box<SpectrumArgs>),
    /// Benchmarks: Householder QR and spectrum steps against this machine's GEMM rate.
    Bench(BenchArgs),
}

/// Arguments of `transfer`.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  \
    orchestrator run --name seed-a --seed 1\n  \
    orchestrator run --name seed-b --seed 2\n  \
    orchestrator transfer --model runs/seed-a --run-dir runs/seed-b")]
pub struct TransferArgs {
    /// The source: a run folder whose `aelle` stage is done (its
    /// aelle/pretrained/model.safetensors) or such a model file.
    #[arg(long, value_name = "RUN_A")]
    pub model: PathBuf,
    /// The target run folder (trained and with spectra).
    #[arg(long, value_name = "RUN_B")]
    pub run_dir: PathBuf,
    /// File the result under this name (default: the source run's name).
    #[arg(long)]
    pub name: Option<String>,
}

/// Arguments of `check-engine` (the reference-system check).
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Folder that holds the run folders.
    #[arg(long, default_value = "runs")]
    pub runs_dir: PathBuf,
    /// Name of this run (its folder is RUNS_DIR/NAME).
    #[arg(long, default_value = "reference-systems")]
    pub name: String,
}

/// Built-in reference systems (METHOD.md section 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SystemName {
    /// x' = A x; A from --matrix (default diag(1.1, 0.8)). Exponents ln|eig A| for normal A.
    Linear,
    /// x' = r x (1 - x); --param r=4. Exponent ln 2 at r = 4.
    Logistic,
    /// (x, y)' = (1 - a x^2 + y, b x); --param a=1.4 --param b=0.3. Exponents 0.41922, -1.62319.
    Henon,
    /// Arnold's cat map [[2,1],[1,1]] mod 1. Exponents +-0.9624236501.
    Cat,
    /// Lorenz-63 flow; --param sigma=10 --param rho=28 --param beta=2.6667; RK4 with --dt.
    /// Exponents 0.9056, 0, -14.5723 per unit time.
    Lorenz63,
    /// Random network h' = tanh(g W h), W ~ N(0, 1/N) seeded by --seed; --param n=64 --param g=1.5.
    /// For g < 1 the spectrum is ln|eig(g W)|.
    TanhRnn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BasisArg {
    /// First k columns of the identity.
    Identity,
    /// Seeded random orthonormal basis (seed from --seed).
    Random,
}

/// Arguments of `spectrum`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    orchestrator spectrum --system henon --steps 1000000\n  \
    orchestrator spectrum --system lorenz63 --dt 0.01 --steps 1000000 --json\n  \
    orchestrator spectrum --jacobians my_rnn_jacobians.safetensors --k 10 --log-base 2\n\n\
    Jacobian files: tensor `jacobians` [T, D, D] (F32 or F64), rows are outputs\n\
    (J[i][j] = d x_{t+1,i} / d x_{t,j}), J_t applied at step t; optional scalar tensor `dt`.\n\
    Exponents are per step for maps, per unit time for flows and files with `dt`.")]
pub struct SpectrumArgs {
    /// A built-in reference system.
    #[arg(
        long,
        value_enum,
        conflicts_with_all = ["jacobians", "weights"],
        required_unless_present_any = ["jacobians", "weights"]
    )]
    pub system: Option<SystemName>,

    /// A safetensors file with a `jacobians` tensor [T, D, D] (and optional scalar `dt`).
    #[arg(long, value_name = "FILE", conflicts_with = "weights")]
    pub jacobians: Option<PathBuf>,

    /// RNN weights (safetensors, PyTorch names, see docs/checkpoint-format.md). Repeat for a
    /// population of same-shaped networks.
    #[arg(long, value_name = "FILE")]
    pub weights: Vec<PathBuf>,

    /// Driving inputs for --weights: safetensors with tensor `inputs` [B, T, I].
    #[arg(long, value_name = "FILE", conflicts_with = "inputs_random")]
    pub inputs: Option<PathBuf>,

    /// Seeded N(0, 1) driving inputs for --weights: B sequences of T steps (seed from --seed).
    #[arg(long, value_name = "B,T")]
    pub inputs_random: Option<String>,

    /// Cell kind of --weights when the file's metadata has no `arch`.
    #[arg(long, value_enum)]
    pub arch: Option<CellKind>,

    /// Common prefix of the tensor names in --weights (e.g. `rnn.`); found automatically when
    /// the file holds one network.
    #[arg(long)]
    pub prefix: Option<String>,

    /// Reproduce the published PyTorch code (calc_LEs_an): J^T Q, log2, Q_0 = I, LSTM h-only
    /// (c frozen), a warm-up over the first min(--warmup, T) inputs (default 500, so in
    /// practice all of them) without re-orthonormalising and closed by one QR, then all T
    /// inputs replayed from the warmed-up state with a QR at t = 0, T_ons, 2 T_ons, .. (none
    /// forced at the last step) and exponents (1/T) sum log2 R_ii. An overflow of the
    /// unnormalised warm-up product is reported as diverged. CoRNN and ASRNN use our correct
    /// Jacobians, not the published code's partial ones (documented bugs there).
    #[arg(long)]
    pub reference_mode: bool,

    /// LSTM tangent state: the full (h, c) state (2N, default) or h only (N, the reference's).
    #[arg(long, value_enum)]
    pub lstm_state: Option<LstmState>,

    /// System parameter NAME=VALUE (repeatable), e.g. --param a=1.4.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,

    /// Matrix of the linear system, rows separated by ';', e.g. "1.1,0;0,0.8".
    #[arg(long)]
    pub matrix: Option<String>,

    /// Initial state, comma-separated (default: a standard point on or near the attractor).
    #[arg(long, value_name = "X1,X2,..")]
    pub x0: Option<String>,

    /// Accumulated steps T (maps: iterations; flows: RK4 steps). Default 100000.
    #[arg(long)]
    pub steps: Option<usize>,

    /// Warm-up steps (re-orthonormalised, not accumulated). Default 1000 for systems, 0 for
    /// files and --weights, 500 with --weights --reference-mode (which warms up over
    /// min(--warmup, T) inputs without re-orthonormalising, then replays all T).
    #[arg(long)]
    pub warmup: Option<usize>,

    /// RK4 time step for flows (default 0.01).
    #[arg(long)]
    pub dt: Option<f64>,

    /// Number of exponents k <= D (default: all).
    #[arg(long)]
    pub k: Option<usize>,

    /// Re-orthonormalisation interval T_ons (a QR is always done at the last step, except in
    /// --reference-mode: a QR at t mod T_ons = 0 only, as the published code does).
    #[arg(long, default_value_t = 1)]
    pub ons: usize,

    /// Seed for the random basis, random networks and the batch's initial perturbations.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// Initial basis Q_0.
    #[arg(long, value_enum, default_value_t = BasisArg::Identity)]
    pub basis: BasisArg,

    /// Tangent orientation.
    #[arg(long, value_enum)]
    pub orientation: Option<Orientation>,

    /// Log base of the exponents (default e; 2 with --reference-mode).
    #[arg(long, value_enum)]
    pub log_base: Option<LogBase>,

    /// Precision of state and tangent vectors (logs always accumulate in f64). Default f64 for
    /// systems and files, f32 for --weights.
    #[arg(long, value_enum)]
    pub precision: Option<Precision>,

    /// Record the running estimate every N accumulated steps.
    #[arg(long, value_name = "N")]
    pub trace_every: Option<usize>,

    /// Number of trajectories for a built-in system: initial states x0 + 1e-3 N(0, 1) (seeded);
    /// reports mean and standard deviation over them.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,

    /// Exponents above this count as positive (n_positive, entropy rate); keeps a flow's
    /// zero exponent, estimated as a small number of either sign, out.
    #[arg(long, default_value_t = 1e-3)]
    pub zero_tol: f64,

    /// Print one JSON object on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Block sizes D (k = D).
    #[arg(long, value_delimiter = ',', default_values_t = vec![64usize, 128, 256])]
    pub sizes: Vec<usize>,
    /// Also benchmark RNN populations (LSTM and GRU, issue setting) against a naive baseline.
    #[arg(long)]
    pub rnn: bool,
    /// Hidden sizes for --rnn.
    #[arg(long, value_delimiter = ',', default_values_t = vec![64usize, 128])]
    pub rnn_hidden: Vec<usize>,
    /// Networks per population for --rnn.
    #[arg(long, default_value_t = 32)]
    pub rnn_networks: usize,
    /// Also sweep these QR panel widths (e.g. 4,8,16,32), side by side in this run.
    #[arg(long, value_delimiter = ',')]
    pub panel_widths: Vec<usize>,
    /// Minimum wall time per measurement, in milliseconds.
    #[arg(long, default_value_t = 400)]
    pub min_ms: u64,
    /// Also write the report as Markdown to this file.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// With --rnn: also run the PyTorch reference (scripts/reference/bench_torch_les.py, built
    /// into the binary) with this Python (needs torch, numpy, safetensors) on the same LSTM
    /// networks and inputs, right after each engine row, plus torch's and numpy's SGEMM.
    #[arg(long, value_name = "PYTHON", requires = "rnn")]
    pub against_torch: Option<PathBuf>,
    /// Networks of each population the PyTorch reference runs (its rate is per sequence-step).
    #[arg(long, default_value_t = 8)]
    pub torch_networks: usize,
}
