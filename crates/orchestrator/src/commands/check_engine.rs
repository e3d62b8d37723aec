//! `check-engine`: the Lyapunov spectra of the reference systems of METHOD.md section 7,
//! compared with their known values (closed forms, published values, an eigenvalue solver),
//! written to `RUNS_DIR/NAME/report/{summary.md, spectra.json}`. A self-check of the engine on
//! the machine at hand.

use std::time::Instant;

use anyhow::{Context, Result};
use le_engine::systems::{CatMap, Henon, LinearMap, Logistic, Lorenz63, TanhRnn};
use le_engine::{Spectrum, SpectrumConfig, flow_spectrum, map_spectrum};
use serde::Serialize;

use crate::cli::RunArgs;
use crate::fs::write_atomic;

#[derive(Debug, Serialize)]
struct Case {
    system: &'static str,
    settings: String,
    expected: Vec<f64>,
    expected_source: &'static str,
    tolerance: f64,
    spectrum: Spectrum,
    max_abs_error: f64,
    pass: bool,
    seconds: f64,
}

fn case(
    system: &'static str,
    settings: String,
    expected: Vec<f64>,
    expected_source: &'static str,
    tolerance: f64,
    compute: impl FnOnce() -> le_engine::Result<Spectrum>,
) -> Result<Case> {
    let start = Instant::now();
    let spectrum = compute().with_context(|| format!("spectrum of {system}"))?;
    let seconds = start.elapsed().as_secs_f64();
    let max_abs_error = spectrum
        .exponents
        .iter()
        .zip(&expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, |m: f64, e| if e.is_nan() { f64::NAN } else { m.max(e) });
    let pass = spectrum.status.is_finite() && max_abs_error <= tolerance;
    tracing::info!(system, max_abs_error, pass, seconds, "reference system done");
    Ok(Case {
        system,
        settings,
        expected,
        expected_source,
        tolerance,
        spectrum,
        max_abs_error,
        pass,
        seconds,
    })
}

pub fn run(args: &RunArgs) -> Result<()> {
    let root = args.runs_dir.join(&args.name);
    tracing::info!(folder = %root.display(), "running the reference-system spectra");
    let c = |warmup, steps| SpectrumConfig { warmup, steps, ..SpectrumConfig::default() };
    let cat = ((3.0 + 5f64.sqrt()) / 2.0).ln();
    let tanh = TanhRnn::random(64, 1.5, 7);
    let tanh_x0 = tanh.random_state(8);
    let cases = vec![
        case(
            "linear diag(1.1, 0.8)",
            "T = 1000".into(),
            vec![1.1f64.ln(), 0.8f64.ln()],
            "closed form",
            1e-12,
            || map_spectrum(&LinearMap::diagonal(&[1.1, 0.8]), &[1.0f64, 1.0], &c(0, 1000)),
        )?,
        case(
            "logistic r = 4",
            "T = 10^6, warm-up 1000".into(),
            vec![2f64.ln()],
            "closed form ln 2",
            3e-3,
            || map_spectrum(&Logistic::default(), &[0.3f64], &c(1000, 1_000_000)),
        )?,
        case(
            "Henon a = 1.4, b = 0.3",
            "T = 10^6, warm-up 1000".into(),
            vec![0.41922, -1.62319],
            "published",
            2e-3,
            || map_spectrum(&Henon::default(), &[0.1f64, 0.1], &c(1000, 1_000_000)),
        )?,
        case(
            "Arnold cat map",
            "T = 10^4, warm-up 100".into(),
            vec![cat, -cat],
            "closed form",
            1e-10,
            || map_spectrum(&CatMap, &[0.1234f64, 0.5678], &c(100, 10_000)),
        )?,
        case(
            "Lorenz-63 (10, 28, 8/3)",
            "RK4 dt = 0.01, T = 10^6 steps (10^4 time units)".into(),
            vec![0.9056, 0.0, -14.5723],
            "published",
            1e-2,
            || flow_spectrum(&Lorenz63::default(), &[1.0f64, 1.0, 1.0], 0.01, &c(1000, 1_000_000)),
        )?,
    ];
    // The chaotic tanh network has no closed form; its check is the sum rule.
    let start = Instant::now();
    let s = map_spectrum(&tanh, &tanh_x0, &c(500, 5000)).context("spectrum of the tanh network")?;
    let tanh_seconds = start.elapsed().as_secs_f64();
    let ld = s.mean_log_abs_det.unwrap_or(f64::NAN);
    let tanh_sum_error = (s.sum - ld).abs();

    let mut md = String::new();
    md.push_str("# Reference systems: Lyapunov spectra vs known values\n\n");
    md.push_str("Computed by `cargo run --release -p orchestrator` (le-engine, Householder QR every step, f64, natural log).\n\n");
    md.push_str(
        "| system | settings | expected | computed | max abs error | tolerance | pass | time |\n",
    );
    md.push_str("| --- | --- | --- | --- | ---: | ---: | --- | ---: |\n");
    let fmt = |v: &[f64]| v.iter().map(|x| format!("{x:.5}")).collect::<Vec<_>>().join(", ");
    for k in &cases {
        md.push_str(&format!(
            "| {} | {} | {} ({}) | {} | {:.1e} | {:.0e} | {} | {:.2} s |\n",
            k.system,
            k.settings,
            fmt(&k.expected),
            k.expected_source,
            fmt(&k.spectrum.exponents),
            k.max_abs_error,
            k.tolerance,
            if k.pass { "yes" } else { "**no**" },
            k.seconds
        ));
    }
    md.push_str(&format!(
        "\nRandom network h' = tanh(1.5 W h), N = 64: lambda_max = {:.4}, {} positive exponents, \
         Kaplan-Yorke dimension {:.2}; sum of exponents {:.8} vs time mean of ln|det J| {:.8} \
         (difference {:.1e}, {:.2} s).\n",
        s.max_exponent(),
        s.n_positive,
        s.kaplan_yorke,
        s.sum,
        ld,
        tanh_sum_error,
        tanh_seconds
    ));
    let report = root.join("report");
    write_atomic(&report.join("summary.md"), md.as_bytes())?;
    #[derive(Serialize)]
    struct Out<'a> {
        cases: &'a [Case],
        tanh_rnn: &'a Spectrum,
    }
    let json = serde_json::to_vec_pretty(&Out { cases: &cases, tanh_rnn: &s })?;
    write_atomic(&report.join("spectra.json"), &json)?;
    print!("{md}");
    println!("\nreport: {}", report.join("summary.md").display());
    let failed: Vec<&str> = cases.iter().filter(|k| !k.pass).map(|k| k.system).collect();
    anyhow::ensure!(failed.is_empty(), "reference systems out of tolerance: {}", failed.join(", "));
    Ok(())
}
