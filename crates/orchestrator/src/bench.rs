//! `orchestrator bench`: the engine's kernels against this machine's own GEMM rate, measured in
//! the same run.
//!
//! * GEMM: `gemm` crate (the GEMM candle uses), square `n = 256`, one thread and all threads.
//! * QR: [`le_engine::qr::householder_factor`] (the factorisation, `2 D k^2 - 2 k^3 / 3` flops)
//!   and the full [`le_engine::qr::orthonormalize_in_place`] (factorisation + explicit `Q`,
//!   twice that), `k = D`, one thread, next to a textbook unblocked Householder baseline.
//! * Spectrum step: one step of [`le_engine::jacobian_sequence_spectrum`] at `k = D`
//!   (`Z = J Q`, `2 D^2 k` flops, then the full QR), one thread.
//!
//! Every rate is reported as GFLOP/s and as a fraction of the one-thread GEMM rate of the same
//! precision. Timings are the best of three repetitions of at least `min_ms` each.

use std::time::{Duration, Instant};

use anyhow::Result;
use le_engine::qr::{QrWorkspace, householder_factor, orthonormalize_in_place, qr_flops};
use le_engine::{Real, SpectrumConfig, jacobian_sequence_spectrum};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use serde::Serialize;

use crate::cli::BenchArgs;

/// One measured kernel.
#[derive(Debug, Serialize)]
pub struct BenchRow {
    pub kernel: String,
    pub precision: &'static str,
    pub d: usize,
    pub seconds_per_call: f64,
    pub gflops: f64,
    /// `gflops` / one-thread GEMM GFLOP/s of the same precision.
    pub fraction_of_gemm: f64,
}

/// The whole report.
#[derive(Debug, Serialize)]
pub struct BenchReport {
    pub cpu: String,
    pub simd: &'static str,
    pub threads: usize,
    pub gemm_gflops_f64_1t: f64,
    pub gemm_gflops_f32_1t: f64,
    pub gemm_gflops_f64_all: f64,
    pub gemm_gflops_f32_all: f64,
    pub rows: Vec<BenchRow>,
}

/// Best-of-three mean time per call of `f`, each repetition running at least `min`.
fn time_per_call(min: Duration, mut f: impl FnMut()) -> f64 {
    f(); // warm caches and lazy initialisation
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < min {
            f();
            n += 1;
        }
        best = best.min(start.elapsed().as_secs_f64() / n as f64);
    }
    best
}

fn random<T: Real>(n: usize, seed: u64) -> Vec<T> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let g: f64 = StandardNormal.sample(&mut rng);
            T::from_f64(g)
        })
        .collect()
}

fn gemm_rate<T: Real>(n: usize, par: gemm::Parallelism, min: Duration) -> f64 {
    let a = random::<T>(n * n, 1);
    let b = random::<T>(n * n, 2);
    let mut c = vec![T::zero(); n * n];
    let t = time_per_call(min, || unsafe {
        // SAFETY: all three matrices are n x n column-major with the strides given.
        gemm::gemm(
            n,
            n,
            n,
            c.as_mut_ptr(),
            n as isize,
            1,
            false,
            a.as_ptr(),
            n as isize,
            1,
            b.as_ptr(),
            n as isize,
            1,
            T::zero(),
            T::one(),
            false,
            false,
            false,
            par,
        )
    });
    2.0 * (n as f64).powi(3) / t / 1e9
}

/// Textbook unblocked Householder QR (no panels, no SIMD dispatch), column-major, returning
/// `ln |R_ii|`: the baseline the blocked kernel is compared with.
pub fn textbook_householder_factor(a: &mut [f64], d: usize, k: usize, logs: &mut [f64]) {
    for c in 0..k {
        let norm = (c..d).map(|r| a[c * d + r] * a[c * d + r]).sum::<f64>().sqrt();
        let alpha = a[c * d + c];
        let beta = if alpha >= 0.0 { -norm } else { norm };
        logs[c] = beta.abs().ln();
        if norm == 0.0 {
            continue;
        }
        let v0 = alpha - beta;
        for r in c + 1..d {
            a[c * d + r] /= v0;
        }
        let tau = (beta - alpha) / beta;
        a[c * d + c] = beta;
        for j in c + 1..k {
            let mut s = a[j * d + c];
            for r in c + 1..d {
                s += a[c * d + r] * a[j * d + r];
            }
            s *= tau;
            a[j * d + c] -= s;
            for r in c + 1..d {
                a[j * d + r] -= s * a[c * d + r];
            }
        }
    }
}

fn panel_sweep_rows<T: Real>(
    d: usize,
    widths: &[usize],
    min: Duration,
    gemm1: f64,
    rows: &mut Vec<BenchRow>,
) {
    let input = random::<T>(d * d, 3 + d as u64);
    let mut a = input.clone();
    let mut logs = vec![0.0; d];
    let f = qr_flops(d, d);
    for &nb in widths {
        let mut ws = QrWorkspace::<T>::with_panel_width(d, d, nb);
        let t = time_per_call(min, || {
            a.copy_from_slice(&input);
            orthonormalize_in_place(&mut a, &mut logs, &mut ws);
        });
        rows.push(BenchRow {
            kernel: format!("QR factor + form Q, panel width {nb}"),
            precision: T::NAME,
            d,
            seconds_per_call: t,
            gflops: 2.0 * f / t / 1e9,
            fraction_of_gemm: 2.0 * f / t / 1e9 / gemm1,
        });
    }
}

fn qr_rows<T: Real>(d: usize, min: Duration, gemm1: f64, rows: &mut Vec<BenchRow>) {
    let input = random::<T>(d * d, 3 + d as u64);
    let mut a = input.clone();
    let mut logs = vec![0.0; d];
    let mut ws = QrWorkspace::<T>::new(d, d);
    let f = qr_flops(d, d);
    let t = time_per_call(min, || {
        a.copy_from_slice(&input);
        householder_factor(&mut a, &mut logs, &mut ws);
    });
    rows.push(BenchRow {
        kernel: "QR factor (blocked Householder)".into(),
        precision: T::NAME,
        d,
        seconds_per_call: t,
        gflops: f / t / 1e9,
        fraction_of_gemm: f / t / 1e9 / gemm1,
    });
    let t = time_per_call(min, || {
        a.copy_from_slice(&input);
        orthonormalize_in_place(&mut a, &mut logs, &mut ws);
    });
    rows.push(BenchRow {
        kernel: "QR factor + form Q".into(),
        precision: T::NAME,
        d,
        seconds_per_call: t,
        gflops: 2.0 * f / t / 1e9,
        fraction_of_gemm: 2.0 * f / t / 1e9 / gemm1,
    });
    // one spectrum step: Z = J Q (2 D^3) + QR with Q formed, over a 16-step sequence
    let steps = 16;
    let jac = random::<T>(steps * d * d, 5 + d as u64);
    let cfg = SpectrumConfig {
        log_det: false,
        precision: if T::NAME == "f32" {
            le_engine::Precision::F32
        } else {
            le_engine::Precision::F64
        },
        ..SpectrumConfig::default()
    };
    let t = time_per_call(min, || {
        let s = jacobian_sequence_spectrum(&jac, d, 1.0, &cfg).expect("valid sequence");
        std::hint::black_box(s);
    }) / steps as f64;
    let step_flops = 2.0 * (d as f64).powi(3) + 2.0 * f;
    rows.push(BenchRow {
        kernel: "spectrum step (J Q + QR + Q)".into(),
        precision: T::NAME,
        d,
        seconds_per_call: t,
        gflops: step_flops / t / 1e9,
        fraction_of_gemm: step_flops / t / 1e9 / gemm1,
    });
}

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// Run every measurement.
pub fn run(args: &BenchArgs) -> Result<BenchReport> {
    let min = Duration::from_millis(args.min_ms.max(1));
    let threads = rayon::current_num_threads();
    let g64 = gemm_rate::<f64>(256, gemm::Parallelism::None, min);
    let g32 = gemm_rate::<f32>(256, gemm::Parallelism::None, min);
    let g64_all = gemm_rate::<f64>(512, gemm::Parallelism::Rayon(threads), min);
    let g32_all = gemm_rate::<f32>(512, gemm::Parallelism::Rayon(threads), min);
    let mut rows = Vec::new();
    for &d in &args.sizes {
        anyhow::ensure!((1..=4096).contains(&d), "--sizes: each size must be in 1..=4096, got {d}");
        tracing::info!(d, "benchmarking QR and spectrum step");
        // textbook baseline, f64
        let input = random::<f64>(d * d, 3 + d as u64);
        let mut a = input.clone();
        let mut logs = vec![0.0; d];
        let t = time_per_call(min, || {
            a.copy_from_slice(&input);
            textbook_householder_factor(&mut a, d, d, &mut logs);
        });
        let f = qr_flops(d, d);
        rows.push(BenchRow {
            kernel: "QR factor (textbook baseline)".into(),
            precision: "f64",
            d,
            seconds_per_call: t,
            gflops: f / t / 1e9,
            fraction_of_gemm: f / t / 1e9 / g64,
        });
        qr_rows::<f64>(d, min, g64, &mut rows);
        qr_rows::<f32>(d, min, g32, &mut rows);
        if !args.panel_widths.is_empty() {
            for &nb in &args.panel_widths {
                anyhow::ensure!(
                    (1..=le_engine::qr::MAX_PANEL_WIDTH).contains(&nb),
                    "--panel-widths: each width must be in 1..={}, got {nb}",
                    le_engine::qr::MAX_PANEL_WIDTH
                );
            }
            panel_sweep_rows::<f64>(d, &args.panel_widths, min, g64, &mut rows);
            panel_sweep_rows::<f32>(d, &args.panel_widths, min, g32, &mut rows);
        }
    }
    Ok(BenchReport {
        cpu: cpu_name(),
        simd: le_engine::qr::simd_level_name(),
        threads,
        gemm_gflops_f64_1t: g64,
        gemm_gflops_f32_1t: g32,
        gemm_gflops_f64_all: g64_all,
        gemm_gflops_f32_all: g32_all,
        rows,
    })
}

/// The report as Markdown.
pub fn render_markdown(r: &BenchReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "CPU: {} ({} threads, kernels: {})\n", r.cpu, r.threads, r.simd);
    let _ = writeln!(
        s,
        "GEMM (gemm crate, n = 256, 1 thread): f64 {:.1} GFLOP/s, f32 {:.1} GFLOP/s; \
         all threads (n = 512): f64 {:.1}, f32 {:.1}\n",
        r.gemm_gflops_f64_1t, r.gemm_gflops_f32_1t, r.gemm_gflops_f64_all, r.gemm_gflops_f32_all
    );
    let _ = writeln!(
        s,
        "| kernel (1 thread, k = D; default QR panel width {}) | prec | D | time | GFLOP/s | of 1-thread GEMM |",
        le_engine::qr::DEFAULT_PANEL_WIDTH
    );
    let _ = writeln!(s, "| --- | --- | ---: | ---: | ---: | ---: |");
    for row in &r.rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.1} us | {:.1} | {:.0} % |",
            row.kernel,
            row.precision,
            row.d,
            row.seconds_per_call * 1e6,
            row.gflops,
            100.0 * row.fraction_of_gemm
        );
    }
    s
}
