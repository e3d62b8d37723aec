//! `orchestrator spectrum --weights ...`: spectra of recurrent networks loaded from safetensors
//! (PyTorch names, `docs/checkpoint-format.md`), driven by inputs from a file or seeded noise.

use std::path::{Path, PathBuf};

use anyhow::Result;
use le_engine::rnn::{
    InputSet, LoadOptions, LstmState, Network, RnnSpectrumConfig, WarmupMode, population_spectra,
};
use le_engine::{Precision, Real, Spectrum, SpectrumStats, kaplan_yorke_dimension};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use safetensors::SafeTensors;
use serde::Serialize;

use super::fmt_num;
use super::options::config_from_args;
use crate::cli::SpectrumArgs;
use crate::error::usage;

/// Spectrum of one network over its driving sequences (what `--json` prints per network).
#[derive(Debug, Serialize)]
pub struct NetworkReport {
    pub weights: PathBuf,
    pub arch: &'static str,
    pub hidden_size: usize,
    pub num_layers: usize,
    /// Tangent state dimension (2N per layer for LSTM full state and CoRNN).
    pub dim: usize,
    pub k: usize,
    /// Accumulated steps per sequence.
    pub steps: usize,
    /// Warm-up steps (reference mode: the `min(--warmup, T)` inputs it warms up over before
    /// replaying all `T`).
    pub warmup: usize,
    pub batch: usize,
    pub log_base: &'static str,
    pub orientation: &'static str,
    pub precision: &'static str,
    pub lstm_state: &'static str,
    pub reference_mode: bool,
    /// Mean over the finite sequences, sorted descending (same as `mean`).
    pub exponents: Vec<f64>,
    pub mean: Vec<f64>,
    /// Sample standard deviation over the finite sequences.
    pub std: Vec<f64>,
    /// Derived from the mean spectrum.
    pub sum: f64,
    pub kaplan_yorke: f64,
    pub n_positive: usize,
    pub entropy_rate: f64,
    /// `finite`, `partly_diverged` or `diverged`.
    pub status: &'static str,
    pub n_finite: usize,
    /// Sequences that diverged, with where and why.
    pub diverged: Vec<DivergedSequence>,
    /// Sorted exponents of every sequence (null entries for diverged ones).
    pub sequences: Vec<Vec<f64>>,
}

#[derive(Debug, Serialize)]
pub struct DivergedSequence {
    pub sequence: usize,
    pub step: usize,
    pub reason: String,
}

/// Driving inputs `[B, T, I]` as `f64` with their shape.
struct Inputs {
    data: Vec<f64>,
    batch: usize,
    steps: usize,
    input: usize,
}

fn read_inputs(path: &Path) -> Result<Inputs> {
    let bytes = aelle_support::fs::read_input_file(path)
        .map_err(|e| usage(format!("{}: cannot read: {e}", path.display())))?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| usage(format!("{}: not a valid safetensors file: {e}", path.display())))?;
    let v = st.tensor("inputs").map_err(|_| {
        usage(format!(
            "{}: missing tensor `inputs` (expected shape [B, T, I], F32 or F64)",
            path.display()
        ))
    })?;
    let shape = v.shape().to_vec();
    if shape.len() != 3 || shape.contains(&0) {
        return Err(usage(format!(
            "{}: tensor `inputs` has shape {shape:?}, expected [B, T, I] with B, T, I >= 1",
            path.display()
        )));
    }
    let Some(data) = le_engine::tensor_data::decode_floats(v.dtype(), v.data()) else {
        return Err(usage(format!(
            "{}: tensor `inputs` has dtype {:?}, expected {}",
            path.display(),
            v.dtype(),
            le_engine::tensor_data::FLOAT_DTYPES
        )));
    };
    if let Some(i) = data.iter().position(|x| !x.is_finite()) {
        let (t, d) = (shape[1], shape[2]);
        return Err(usage(format!(
            "{}: tensor `inputs` holds a non-finite value at [{}, {}, {}]",
            path.display(),
            i / (t * d),
            (i / d) % t,
            i % d
        )));
    }
    Ok(Inputs { data, batch: shape[0], steps: shape[1], input: shape[2] })
}

/// `B,T` of `--inputs-random` for networks of input size `input`: both >= 1, `T` at most
/// `MAX_STEPS`, and the inputs (f64 plus their copy in the run's precision) within this
/// machine's memory, else a usage error naming the flag (and the estimate).
pub fn parse_inputs_random(spec: &str, input: usize) -> Result<(usize, usize)> {
    let parts: Vec<&str> = spec.split(',').map(str::trim).collect();
    let parsed: Option<Vec<usize>> =
        (parts.len() == 2).then(|| parts.iter().map(|p| p.parse().ok()).collect()).flatten();
    let Some(v) = parsed.filter(|v| v[0] >= 1 && v[1] >= 1) else {
        return Err(usage(format!(
            "--inputs-random `{spec}`: expected B,T with B, T >= 1 (e.g. 15,100)"
        )));
    };
    let (batch, steps) = (v[0], v[1]);
    if steps > le_engine::config::MAX_STEPS {
        return Err(usage(format!(
            "--inputs-random `{spec}`: T = {steps} steps, expected at most {}",
            le_engine::config::MAX_STEPS
        )));
    }
    let needed =
        aelle_support::mem::checked_product(&[batch as u64, steps as u64, input as u64, 16]);
    aelle_support::mem::check_fits(
        format!("--inputs-random {batch},{steps} ({batch} x {steps} x {input} inputs)"),
        needed,
    )
    .map_err(|e| usage(e.to_string()))?;
    Ok((batch, steps))
}

fn random_inputs(spec: &str, input: usize, seed: u64) -> Result<Inputs> {
    let (batch, steps) = parse_inputs_random(spec, input)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let data = (0..batch * steps * input).map(|_| StandardNormal.sample(&mut rng)).collect();
    Ok(Inputs { data, batch, steps, input })
}

fn load_options(args: &SpectrumArgs) -> Result<LoadOptions> {
    let mut opts =
        LoadOptions { arch: args.arch, prefix: args.prefix.clone(), ..LoadOptions::default() };
    for p in &args.params {
        let Some((name, value)) = p.split_once('=') else {
            return Err(usage(format!("--param `{p}`: expected NAME=VALUE")));
        };
        let v: f64 =
            value.trim().parse().ok().filter(|v: &f64| v.is_finite()).ok_or_else(|| {
                usage(format!("--param {name}: `{value}` is not a finite number"))
            })?;
        match name.trim() {
            "eps" => opts.eps = Some(v),
            "gamma" => opts.gamma = Some(v),
            "dt" => opts.dt = Some(v),
            other => {
                return Err(usage(format!(
                    "--param `{other}`: unknown cell constant for --weights (expected one of: eps, gamma, dt)"
                )));
            }
        }
    }
    Ok(opts)
}

fn rnn_config(args: &SpectrumArgs) -> RnnSpectrumConfig {
    let mut spectrum = config_from_args(args, true);
    spectrum.log_det = false;
    RnnSpectrumConfig {
        spectrum,
        lstm_state: match (args.lstm_state, args.reference_mode) {
            (Some(state), _) => state,
            (None, true) => LstmState::HOnly,
            (None, false) => LstmState::Full,
        },
        warmup_mode: if args.reference_mode { WarmupMode::Reference } else { WarmupMode::Tangent },
    }
}

fn run_typed<T: Real>(args: &SpectrumArgs, cfg: &RnnSpectrumConfig) -> Result<Vec<NetworkReport>> {
    let opts = load_options(args)?;
    let nets: Vec<Network<T>> = args
        .weights
        .iter()
        .map(|p| Network::<T>::load(p, &opts).map_err(anyhow::Error::from))
        .collect::<Result<_>>()?;
    let first = &nets[0];
    for (p, net) in args.weights.iter().zip(&nets).skip(1) {
        if net.kind != first.kind
            || net.hidden != first.hidden
            || net.input != first.input
            || net.num_layers() != first.num_layers()
        {
            return Err(usage(format!(
                "{}: a {} with N = {}, I = {}, {} layers; a population needs networks shaped like {} ({} with N = {}, I = {}, {} layers)",
                p.display(),
                net.kind.name(),
                net.hidden,
                net.input,
                net.num_layers(),
                args.weights[0].display(),
                first.kind.name(),
                first.hidden,
                first.input,
                first.num_layers()
            )));
        }
    }
    let inputs = match (&args.inputs, &args.inputs_random) {
        (Some(path), None) => read_inputs(path)?,
        (None, Some(spec)) => random_inputs(spec, first.input, args.seed)?,
        _ => {
            return Err(usage(
                "--weights needs driving inputs: --inputs FILE or --inputs-random B,T",
            ));
        }
    };
    if inputs.input != first.input {
        return Err(usage(format!(
            "{}: tensor `inputs` has I = {} per step, the network expects input_size = {}",
            args.inputs.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
            inputs.input,
            first.input
        )));
    }
    let d = first.tangent_dim(cfg.lstm_state);
    let k = cfg.spectrum.k.unwrap_or(d).min(d);
    let needed = aelle_support::mem::checked_product(&[
        nets.len() as u64,
        inputs.batch as u64,
        d as u64,
        k as u64 + 4,
        8,
    ]);
    aelle_support::mem::check_fits(
        format!(
            "the tangent state of {} network(s) x B = {} sequences x a {d} x {k} block",
            nets.len(),
            inputs.batch
        ),
        needed,
    )
    .map_err(|e| usage(e.to_string()))?;
    let data: Vec<T> = inputs.data.iter().map(|&v| T::from_f64(v)).collect();
    tracing::info!(
        networks = nets.len(),
        batch = inputs.batch,
        steps = inputs.steps,
        arch = first.kind.name(),
        "computing RNN spectra"
    );
    let pop = population_spectra(&nets, &InputSet::shared(&data, inputs.batch, inputs.steps), cfg)?;
    let sc = &cfg.spectrum;
    let k = pop.spectra[0][0].exponents.len();
    Ok(args
        .weights
        .iter()
        .zip(&nets)
        .zip(pop.spectra.iter().zip(&pop.stats))
        .map(|((path, net), (spectra, stats))| {
            network_report(
                path,
                net,
                spectra,
                stats,
                k,
                (inputs.batch, inputs.steps),
                cfg,
                args.reference_mode,
                sc.zero_tolerance,
            )
        })
        .collect())
}

#[allow(clippy::too_many_arguments)]
fn network_report<T: Real>(
    path: &Path,
    net: &Network<T>,
    spectra: &[Spectrum],
    stats: &SpectrumStats,
    k: usize,
    (batch, input_steps): (usize, usize),
    cfg: &RnnSpectrumConfig,
    reference_mode: bool,
    zero_tolerance: f64,
) -> NetworkReport {
    let sc = &cfg.spectrum;
    let mean = stats.mean.clone();
    let status = if stats.n_finite == stats.n_total {
        "finite"
    } else if stats.n_finite == 0 {
        "diverged"
    } else {
        "partly_diverged"
    };
    NetworkReport {
        weights: path.to_path_buf(),
        arch: net.kind.name(),
        hidden_size: net.hidden,
        num_layers: net.num_layers(),
        dim: net.tangent_dim(cfg.lstm_state),
        k,
        steps: spectra.iter().map(|s| s.steps).max().unwrap_or(0),
        warmup: match cfg.warmup_mode {
            WarmupMode::Tangent => sc.warmup,
            WarmupMode::Reference => sc.warmup.min(input_steps),
        },
        batch,
        log_base: sc.log_base.label(),
        orientation: sc.orientation.label(),
        precision: sc.precision.label(),
        lstm_state: cfg.lstm_state.label(),
        reference_mode,
        exponents: mean.clone(),
        sum: mean.iter().sum(),
        kaplan_yorke: kaplan_yorke_dimension(&mean),
        n_positive: mean.iter().filter(|&&l| l > zero_tolerance).count(),
        entropy_rate: 0.0 + mean.iter().filter(|&&l| l > zero_tolerance).sum::<f64>(),
        mean,
        std: stats.std.clone(),
        status,
        n_finite: stats.n_finite,
        diverged: spectra
            .iter()
            .enumerate()
            .filter_map(|(b, s)| match &s.status {
                le_engine::Status::Diverged { step, reason } => {
                    Some(DivergedSequence { sequence: b, step: *step, reason: reason.clone() })
                }
                le_engine::Status::Finite => None,
            })
            .collect(),
        sequences: spectra.iter().map(|s| s.exponents.clone()).collect(),
    }
}

/// Run `spectrum --weights ...`: one report per weights file.
pub fn run(args: &SpectrumArgs) -> Result<Vec<NetworkReport>> {
    if args.jacobians.is_some() || args.system.is_some() {
        return Err(usage("--weights cannot be combined with --system or --jacobians"));
    }
    if args.matrix.is_some()
        || args.x0.is_some()
        || args.dt.is_some()
        || args.batch != 1
        || args.steps.is_some()
    {
        return Err(usage(
            "--weights: --matrix, --x0, --dt, --batch and --steps apply to built-in systems only \
             (the driving inputs set B and T; use --warmup to skip the first steps)",
        ));
    }
    let cfg = rnn_config(args);
    cfg.spectrum.validate()?;
    match cfg.spectrum.precision {
        Precision::F32 => run_typed::<f32>(args, &cfg),
        Precision::F64 => run_typed::<f64>(args, &cfg),
    }
}

/// A readable rendering of one network's report.
pub fn render_table(r: &NetworkReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let unit = if r.log_base == "e" { "nats/step" } else { "bits/step" };
    let _ = writeln!(s, "Lyapunov spectrum of {} ({} network)", r.weights.display(), r.arch);
    let _ = writeln!(
        s,
        "  N = {}, layers = {}, tangent dim = {}, k = {}, B = {} sequences x {} steps (+{} warm-up)",
        r.hidden_size, r.num_layers, r.dim, r.k, r.batch, r.steps, r.warmup
    );
    let _ = writeln!(
        s,
        "  orientation {}, precision {}, LSTM state {}{}",
        r.orientation,
        r.precision,
        r.lstm_state,
        if r.reference_mode { ", reference mode" } else { "" }
    );
    let _ = writeln!(s, "  status: {} ({} of {} sequences finite)", r.status, r.n_finite, r.batch);
    for d in &r.diverged {
        let _ =
            writeln!(s, "    sequence {} diverged at step {}: {}", d.sequence, d.step, d.reason);
    }
    let _ = writeln!(s, "\n     i   mean lambda_i [{unit}]   std over sequences");
    for (i, (m, sd)) in r.mean.iter().zip(&r.std).enumerate() {
        let _ = writeln!(s, "  {:>4}  {}  {}", i + 1, fmt_num(*m), fmt_num(*sd));
    }
    let _ = writeln!(s, "\n  sum                  {}", fmt_num(r.sum));
    let _ = writeln!(s, "  positive exponents   {:>12}", r.n_positive);
    let _ = writeln!(s, "  entropy rate         {}", fmt_num(r.entropy_rate));
    let _ = writeln!(s, "  Kaplan-Yorke dim.    {}", fmt_num(r.kaplan_yorke));
    s
}
