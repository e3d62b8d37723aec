//! `spectrum --system NAME` and `spectrum --jacobians FILE`: built-in maps and flows (METHOD.md
//! section 7), optionally as a batch of perturbed trajectories, and Jacobian sequences dumped
//! from any framework.

use anyhow::{Context, Result};
use le_engine::systems::{CatMap, Henon, LinearMap, Logistic, Lorenz63, TanhRnn};
use le_engine::{
    BatchSpectra, DiscreteMap, JacobianFile, Precision, Real, Spectrum, SpectrumConfig,
    SpectrumStats, Status, TracePoint, flow_spectra_batch, kaplan_yorke_dimension,
    map_spectra_batch,
};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use serde::Serialize;

use super::fmt_num;
use super::options::{config_from_args, parse_list, parse_matrix, parse_params};
use crate::cli::{SpectrumArgs, SystemName};
use crate::error::usage;

/// What `spectrum --json` prints.
#[derive(Debug, Serialize)]
pub struct SpectrumReport {
    /// `system <name>` or the Jacobian file path.
    pub source: String,
    pub dim: usize,
    pub k: usize,
    pub steps: usize,
    pub warmup: usize,
    /// Time per step (exponents are per unit time when it is not 1).
    pub dt: f64,
    pub log_base: &'static str,
    pub orientation: &'static str,
    pub precision: &'static str,
    /// Sorted descending (the mean over the batch when `batch` is present).
    pub exponents: Vec<f64>,
    /// QR order (single trajectory only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exponents_qr_order: Option<Vec<f64>>,
    pub sum: f64,
    pub mean_log_abs_det: Option<f64>,
    pub kaplan_yorke: f64,
    pub n_positive: usize,
    pub entropy_rate: f64,
    /// `finite` or `diverged`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diverged_at_step: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trace: Vec<TracePoint>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<BatchReport>,
}

/// Batch statistics in `spectrum --json`.
#[derive(Debug, Serialize)]
pub struct BatchReport {
    pub size: usize,
    pub n_finite: usize,
    pub diverged: Vec<usize>,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    /// Sorted exponents of every member.
    pub exponents: Vec<Vec<f64>>,
}

/// Initial states of a batch: member 0 is `x0`, member `b > 0` is `x0 + 1e-3 N(0, 1)` drawn
/// from ChaCha8 seeded with `seed + b`.
fn batch_states(x0: &[f64], batch: usize, seed: u64) -> Vec<Vec<f64>> {
    (0..batch)
        .map(|b| {
            if b == 0 {
                return x0.to_vec();
            }
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed.wrapping_add(b as u64));
            x0.iter()
                .map(|v| {
                    let g: f64 = StandardNormal.sample(&mut rng);
                    v + 1e-3 * g
                })
                .collect()
        })
        .collect()
}

enum Dynamics {
    Map(Box<dyn DynMap>),
    Flow(Lorenz63, f64),
}

/// A built-in map in both precisions.
trait DynMap: DiscreteMap<f64> + DiscreteMap<f32> + Sync {}
impl<M: DiscreteMap<f64> + DiscreteMap<f32> + Sync> DynMap for M {}

fn run_batch<T: PrecisionMap>(
    dynamics: &Dynamics,
    x0s: &[Vec<f64>],
    cfg: &SpectrumConfig,
) -> le_engine::Result<BatchSpectra> {
    let x0s: Vec<Vec<T>> =
        x0s.iter().map(|x| x.iter().map(|&v| T::from_f64(v)).collect()).collect();
    match dynamics {
        Dynamics::Map(m) => map_spectra_batch(T::view(m.as_ref()), &x0s, cfg),
        Dynamics::Flow(f, dt) => flow_spectra_batch(f, &x0s, *dt, cfg),
    }
}

/// Chooses the `DiscreteMap<T>` view of a [`DynMap`].
trait PrecisionMap: Real {
    fn view(m: &dyn DynMap) -> &dyn DiscreteMap<Self>;
}
impl PrecisionMap for f64 {
    fn view(m: &dyn DynMap) -> &dyn DiscreteMap<f64> {
        m
    }
}
impl PrecisionMap for f32 {
    fn view(m: &dyn DynMap) -> &dyn DiscreteMap<f32> {
        m
    }
}

/// Memory of `batch` trajectories of a `dim`-dimensional system under `cfg`, against this
/// machine's: per member the state, the `k` tangent vectors, their product and the QR scratch,
/// and the trace, all f64 at most. Returns the estimate in bytes.
pub fn check_batch_memory(batch: usize, dim: usize, cfg: &SpectrumConfig) -> Result<u64> {
    let k = cfg.k.unwrap_or(dim).min(dim) as u64;
    let trace_points = cfg.trace_every.map_or(0, |e| cfg.steps / e.max(1)) as u64;
    let per_member = (dim as u64)
        .checked_mul(k)
        .and_then(|dk| dk.checked_mul(3))
        .and_then(|v| v.checked_add(4 * dim as u64))
        .and_then(|v| v.checked_add(trace_points.checked_mul(k + 1)?));
    let needed = per_member.and_then(|m| m.checked_mul(batch as u64)?.checked_mul(8));
    aelle_support::mem::check_fits(
        format!("--batch {batch} trajectories of dimension {dim} (k = {k})"),
        needed,
    )
    .map_err(|e| usage(e.to_string()))
}

/// Runs a built-in system or a Jacobian file.
pub fn run(args: &SpectrumArgs) -> Result<SpectrumReport> {
    if args.batch == 0 {
        return Err(usage("--batch: must be >= 1"));
    }
    if let Some(path) = &args.jacobians {
        if !args.params.is_empty()
            || args.matrix.is_some()
            || args.x0.is_some()
            || args.dt.is_some()
        {
            return Err(usage(
                "--jacobians: --param, --matrix, --x0 and --dt apply to built-in systems only \
                 (a file's time step is its `dt` tensor)",
            ));
        }
        if args.batch != 1 {
            return Err(usage("--batch applies to built-in systems only"));
        }
        if args.steps.is_some() {
            return Err(usage(
                "--steps: a Jacobian file's length sets the steps (use --warmup to skip the first ones)",
            ));
        }
        let cfg = config_from_args(args, true);
        cfg.validate()?;
        let file = JacobianFile::load(path)?;
        let s = file
            .spectrum(&cfg)
            .with_context(|| format!("{}: spectrum of tensor `jacobians`", path.display()))?;
        return Ok(report(path.display().to_string(), file.dim, &cfg, s, None));
    }
    let system = args.system.expect("clap requires --system, --jacobians or --weights");
    let cfg = config_from_args(args, false);
    cfg.validate()?;
    let (dynamics, default_x0): (Dynamics, Vec<f64>) = match system {
        SystemName::Linear => {
            parse_params(args, &[])?;
            let m = match &args.matrix {
                Some(s) => parse_matrix(s)?,
                None => LinearMap::diagonal(&[1.1, 0.8]),
            };
            let d = m.d;
            (Dynamics::Map(Box::new(m)), vec![1.0; d])
        }
        SystemName::Logistic => {
            let p = parse_params(args, &[("r", 4.0)])?;
            (Dynamics::Map(Box::new(Logistic { r: p["r"] })), vec![0.3])
        }
        SystemName::Henon => {
            let p = parse_params(args, &[("a", 1.4), ("b", 0.3)])?;
            (Dynamics::Map(Box::new(Henon { a: p["a"], b: p["b"] })), vec![0.1, 0.1])
        }
        SystemName::Cat => {
            parse_params(args, &[])?;
            (Dynamics::Map(Box::new(CatMap)), vec![0.1234, 0.5678])
        }
        SystemName::Lorenz63 => {
            let p = parse_params(args, &[("sigma", 10.0), ("rho", 28.0), ("beta", 8.0 / 3.0)])?;
            let dt = args.dt.unwrap_or(0.01);
            if !(dt.is_finite() && dt > 0.0) {
                return Err(usage(format!("--dt: must be a finite number > 0, got {dt}")));
            }
            let f = Lorenz63 { sigma: p["sigma"], rho: p["rho"], beta: p["beta"] };
            (Dynamics::Flow(f, dt), vec![1.0, 1.0, 1.0])
        }
        SystemName::TanhRnn => {
            let p = parse_params(args, &[("n", 64.0), ("g", 1.5)])?;
            let n = p["n"];
            if n < 1.0 || n.fract() != 0.0 || n > 4096.0 {
                return Err(usage(format!("--param n: expected an integer in 1..=4096, got {n}")));
            }
            let net = TanhRnn::random(n as usize, p["g"], args.seed);
            let x0 = net.random_state(args.seed.wrapping_add(1));
            (Dynamics::Map(Box::new(net)), x0)
        }
    };
    if args.dt.is_some() && !matches!(dynamics, Dynamics::Flow(..)) {
        return Err(usage("--dt applies to flows (lorenz63) only"));
    }
    let x0 = match &args.x0 {
        Some(s) => parse_list("--x0", s)?,
        None => default_x0,
    };
    let dim = match &dynamics {
        Dynamics::Map(m) => DiscreteMap::<f64>::dim(m.as_ref()),
        Dynamics::Flow(f, _) => le_engine::Flow::<f64>::dim(f),
    };
    if x0.len() != dim {
        return Err(usage(format!(
            "--x0: expected {dim} comma-separated numbers, got {}",
            x0.len()
        )));
    }
    check_batch_memory(args.batch, dim, &cfg)?;
    let x0s = batch_states(&x0, args.batch, args.seed);
    let batch = match cfg.precision {
        Precision::F64 => run_batch::<f64>(&dynamics, &x0s, &cfg)?,
        Precision::F32 => run_batch::<f32>(&dynamics, &x0s, &cfg)?,
    };
    let name = format!(
        "system {}",
        clap::ValueEnum::to_possible_value(&system).expect("named").get_name()
    );
    if args.batch == 1 {
        let s = batch.members.into_iter().next().expect("one member");
        Ok(report(name, dim, &cfg, s, None))
    } else {
        let first = batch.members[0].clone();
        Ok(report(name, dim, &cfg, first, Some((batch.members, batch.stats))))
    }
}

fn report(
    source: String,
    dim: usize,
    cfg: &SpectrumConfig,
    s: Spectrum,
    batch: Option<(Vec<Spectrum>, SpectrumStats)>,
) -> SpectrumReport {
    let (status, diverged_at_step, reason) = match &s.status {
        Status::Finite => ("finite", None, None),
        Status::Diverged { step, reason } => ("diverged", Some(*step), Some(reason.clone())),
    };
    let mut r = SpectrumReport {
        source,
        dim,
        k: s.exponents.len(),
        steps: s.steps,
        warmup: cfg.warmup,
        dt: s.dt,
        log_base: cfg.log_base.label(),
        orientation: cfg.orientation.label(),
        precision: cfg.precision.label(),
        exponents: s.exponents.clone(),
        exponents_qr_order: Some(s.exponents_qr_order.clone()),
        sum: s.sum,
        mean_log_abs_det: s.mean_log_abs_det,
        kaplan_yorke: s.kaplan_yorke,
        n_positive: s.n_positive,
        entropy_rate: s.entropy_rate,
        status,
        diverged_at_step,
        reason,
        trace: s.trace,
        batch: None,
    };
    if let Some((members, stats)) = batch {
        // Batch: the headline numbers describe the mean spectrum over the finite members.
        let mean = stats.mean.clone();
        r.exponents = mean.clone();
        r.exponents_qr_order = None;
        r.sum = mean.iter().sum();
        r.mean_log_abs_det = None;
        r.kaplan_yorke = kaplan_yorke_dimension(&mean);
        r.n_positive = mean.iter().filter(|&&l| l > cfg.zero_tolerance).count();
        r.entropy_rate = 0.0 + mean.iter().filter(|&&l| l > cfg.zero_tolerance).sum::<f64>();
        r.trace = Vec::new();
        if stats.n_finite == stats.n_total {
            r.status = "finite";
            r.diverged_at_step = None;
            r.reason = None;
        } else {
            r.status = if stats.n_finite == 0 { "diverged" } else { "partly_diverged" };
            r.reason = Some(format!(
                "{} of {} trajectories diverged",
                stats.diverged.len(),
                stats.n_total
            ));
        }
        r.batch = Some(BatchReport {
            size: stats.n_total,
            n_finite: stats.n_finite,
            diverged: stats.diverged.clone(),
            mean: stats.mean,
            std: stats.std,
            exponents: members.into_iter().map(|m| m.exponents).collect(),
        });
    }
    r
}

/// A readable rendering of a system or file spectrum.
pub fn render_table(r: &SpectrumReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let unit = match (r.log_base, r.dt == 1.0) {
        ("e", true) => "nats/step",
        ("e", false) => "nats/time",
        (_, true) => "bits/step",
        (_, false) => "bits/time",
    };
    let _ = writeln!(s, "Lyapunov spectrum of {}", r.source);
    let _ = writeln!(
        s,
        "  D = {}, k = {}, steps = {} (+{} warm-up), dt = {}, orientation {}, precision {}",
        r.dim, r.k, r.steps, r.warmup, r.dt, r.orientation, r.precision
    );
    let _ = writeln!(
        s,
        "  status: {}{}",
        r.status,
        r.reason.as_ref().map(|x| format!(" ({x})")).unwrap_or_default()
    );
    let std = r.batch.as_ref().map(|b| &b.std);
    let _ = writeln!(
        s,
        "\n     i   lambda_i [{unit}]{}",
        if std.is_some() { "     std over batch" } else { "" }
    );
    for (i, l) in r.exponents.iter().enumerate() {
        match std {
            Some(sd) => {
                let _ = writeln!(s, "  {:>4}  {}  {}", i + 1, fmt_num(*l), fmt_num(sd[i]));
            }
            None => {
                let _ = writeln!(s, "  {:>4}  {}", i + 1, fmt_num(*l));
            }
        }
    }
    let _ = writeln!(s, "\n  sum                  {}", fmt_num(r.sum));
    if let Some(ld) = r.mean_log_abs_det {
        let _ = writeln!(s, "  mean ln|det J|       {}", fmt_num(ld));
    }
    let _ = writeln!(s, "  positive exponents   {:>12}", r.n_positive);
    let _ = writeln!(s, "  entropy rate         {}", fmt_num(r.entropy_rate));
    let _ = writeln!(s, "  Kaplan-Yorke dim.    {}", fmt_num(r.kaplan_yorke));
    if let Some(b) = &r.batch {
        let _ = writeln!(s, "  batch                {:>12}  ({} finite)", b.size, b.n_finite);
    }
    s
}
