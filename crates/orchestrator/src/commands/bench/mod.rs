//! `orchestrator bench`: the engine's kernels against this machine's own GEMM rate, measured in
//! the same run.
//!
//! * GEMM: `gemm` crate (the GEMM candle uses), square `n = 256`, one thread and all threads.
//! * QR: [`le_engine::linalg::qr::householder_factor`] (the factorisation, `2 D k^2 - 2 k^3 / 3` flops)
//!   and the full [`le_engine::linalg::qr::orthonormalize_in_place`] (factorisation + explicit `Q`,
//!   twice that), `k = D`, one thread, next to a textbook unblocked Householder baseline.
//! * Spectrum step: one step of [`le_engine::jacobian_sequence_spectrum`] at `k = D`
//!   (`Z = J Q`, `2 D^2 k` flops, then the full QR), one thread.
//!
//! Every rate is reported as GFLOP/s and as a fraction of the one-thread GEMM rate of the same
//! precision. Timings are the best of three repetitions of at least `min_ms` each.

use std::time::{Duration, Instant};

use anyhow::Result;
use le_engine::linalg::qr::{QrWorkspace, householder_factor, orthonormalize_in_place, qr_flops};
use le_engine::linalg::timing::{gemm_rate, random_normal, time_per_call};
use le_engine::{Real, SpectrumConfig, jacobian_sequence_spectrum};
use rand::SeedableRng;
use serde::Serialize;

use crate::cli::BenchArgs;

mod markdown;
mod torch;

pub use markdown::render_markdown;
use torch::TorchScript;
pub use torch::{BlasSgemm, TorchRow};

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

impl BenchRow {
    /// A row for `kernel` doing `flops` useful flops in `seconds` per call, compared with the
    /// one-thread GEMM rate `gemm_gflops` of the same precision.
    fn new(
        kernel: impl Into<String>,
        precision: &'static str,
        d: usize,
        seconds: f64,
        flops: f64,
        gemm_gflops: f64,
    ) -> Self {
        let gflops = flops / seconds / 1e9;
        Self {
            kernel: kernel.into(),
            precision,
            d,
            seconds_per_call: seconds,
            gflops,
            fraction_of_gemm: gflops / gemm_gflops,
        }
    }
}

/// One RNN population measurement (issue setting: B sequences, T steps after a warm-up, QR
/// every step, f32, full state).
#[derive(Debug, Serialize)]
pub struct RnnBenchRow {
    pub arch: &'static str,
    pub hidden: usize,
    pub networks: usize,
    pub batch: usize,
    pub steps: usize,
    pub warmup: usize,
    pub k: usize,
    pub seconds: f64,
    pub sequence_steps_per_second: f64,
    /// Useful flops (`2 G N^2 k` tangent + `2 D k^2 - 2 k^3 / 3` QR per sequence-step, the
    /// issue's count) per second, whatever the engine does to get there: in these settings
    /// (one layer, `k = D`, QR every step) it keeps `Q` factored and applies it to the explicit
    /// Jacobian from the right (about `2 D^3` flops per sequence-step in place of forming `Q`
    /// and the tangent GEMM; `le-engine` README). The count is the issue's, unchanged.
    pub useful_gflops: f64,
    /// `useful_gflops` / all-thread SGEMM GFLOP/s of this run.
    pub fraction_of_gemm_all_threads: f64,
    /// `useful_gflops` / the best SGEMM of this run (`gemm` crate or, with `--against-torch`,
    /// torch's or numpy's BLAS).
    pub fraction_of_best_sgemm: f64,
    /// Sequence-steps per second of the naive baseline (one thread, one sequence at a time).
    pub baseline_sequence_steps_per_second: f64,
    pub speedup_over_baseline: f64,
    /// The PyTorch reference on the same networks and inputs, right after this row.
    pub torch: Option<TorchRow>,
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
    /// The all-thread SGEMM rate the RNN rows are compared with: the best of the first
    /// measurement and two taken right before the RNN rows (n = 512 and 1024).
    pub sgemm_gflops_for_rnn: f64,
    /// With `--against-torch`: torch's and numpy's SGEMM of the same run.
    pub blas_sgemm: Option<BlasSgemm>,
    /// With `--against-torch` and `LE_ENGINE_SIMD` below this CPU's widest level: the
    /// environment that capped PyTorch's and numpy's kernels to the same level
    /// ([`reference_isa_caps`]), as `NAME=value` pairs.
    pub reference_isa_caps: Vec<String>,
    /// The best all-thread SGEMM of the run: the RNN rows' `fraction_of_best_sgemm`
    /// denominator. The `gemm` crate or BLAS; with [`Self::reference_isa_caps`] set, BLAS only (the
    /// `gemm` crate always runs this CPU's widest kernels, so under a cap it is not a rate of
    /// the capped level).
    pub best_sgemm_gflops: f64,
    pub rows: Vec<BenchRow>,
    pub rnn: Vec<RnnBenchRow>,
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
    let input = random_normal::<T>(d * d, 3 + d as u64);
    let mut a = le_engine::linalg::AlignedBuf::<T>::zeroed(d * d);
    let mut logs = vec![0.0; d];
    let f = qr_flops(d, d);
    for &nb in widths {
        let mut ws = QrWorkspace::<T>::with_panel_width(d, d, nb);
        let t = time_per_call(min, || {
            a.copy_from_slice(&input);
            orthonormalize_in_place(&mut a, &mut logs, &mut ws);
        });
        rows.push(BenchRow::new(
            format!("QR factor + form Q, panel width {nb}"),
            T::NAME,
            d,
            t,
            2.0 * f,
            gemm1,
        ));
    }
}

fn qr_rows<T: Real>(d: usize, min: Duration, gemm1: f64, rows: &mut Vec<BenchRow>) {
    let input = random_normal::<T>(d * d, 3 + d as u64);
    // 64-byte-aligned block, as the RNN population path allocates them
    let mut a = le_engine::linalg::AlignedBuf::<T>::zeroed(d * d);
    let mut logs = vec![0.0; d];
    let mut ws = QrWorkspace::<T>::new(d, d);
    let f = qr_flops(d, d);
    let t = time_per_call(min, || {
        a.copy_from_slice(&input);
        householder_factor(&mut a, &mut logs, &mut ws);
    });
    rows.push(BenchRow::new("QR factor (blocked Householder)", T::NAME, d, t, f, gemm1));
    let t = time_per_call(min, || {
        a.copy_from_slice(&input);
        orthonormalize_in_place(&mut a, &mut logs, &mut ws);
    });
    rows.push(BenchRow::new("QR factor + form Q", T::NAME, d, t, 2.0 * f, gemm1));
    // the same on a block one element off a 64-byte boundary
    let mut off = le_engine::linalg::AlignedBuf::<T>::zeroed(d * d + 1);
    let t = time_per_call(min, || {
        let b = &mut off[1..];
        b.copy_from_slice(&input);
        orthonormalize_in_place(b, &mut logs, &mut ws);
    });
    rows.push(BenchRow::new("QR factor + form Q, misaligned block", T::NAME, d, t, 2.0 * f, gemm1));
    // 16 blocks at once, SIMD across blocks (the RNN population path): time per block
    {
        use le_engine::linalg::qr::batched::{BatchedQrWorkspace, LANES, orthonormalize_blocks};
        let many = random_normal::<T>(LANES * d * d, 9 + d as u64);
        let mut blocks = many.clone();
        let mut logs16 = vec![0.0; LANES * d];
        let mut bws = BatchedQrWorkspace::<T>::new(d, d);
        let t = time_per_call(min, || {
            blocks.copy_from_slice(&many);
            orthonormalize_blocks(&mut blocks, &mut logs16, &mut bws);
        }) / LANES as f64;
        rows.push(BenchRow::new(
            "QR factor + form Q, 16 blocks SIMD-interleaved (per block)",
            T::NAME,
            d,
            t,
            2.0 * f,
            gemm1,
        ));
    }
    // one spectrum step: Z = J Q (2 D^3) + QR with Q formed, over a 16-step sequence
    let steps = 16;
    let jac = random_normal::<T>(steps * d * d, 5 + d as u64);
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
    rows.push(BenchRow::new("spectrum step (J Q + QR + Q)", T::NAME, d, t, step_flops, gemm1));
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
        let input = random_normal::<f64>(d * d, 3 + d as u64);
        let mut a = input.clone();
        let mut logs = vec![0.0; d];
        let t = time_per_call(min, || {
            a.copy_from_slice(&input);
            textbook_householder_factor(&mut a, d, d, &mut logs);
        });
        let f = qr_flops(d, d);
        rows.push(BenchRow::new("QR factor (textbook baseline)", "f64", d, t, f, g64));
        qr_rows::<f64>(d, min, g64, &mut rows);
        qr_rows::<f32>(d, min, g32, &mut rows);
        if !args.panel_widths.is_empty() {
            for &nb in &args.panel_widths {
                anyhow::ensure!(
                    (1..=le_engine::linalg::qr::MAX_PANEL_WIDTH).contains(&nb),
                    "--panel-widths: each width must be in 1..={}, got {nb}",
                    le_engine::linalg::qr::MAX_PANEL_WIDTH
                );
            }
            panel_sweep_rows::<f64>(d, &args.panel_widths, min, g64, &mut rows);
            panel_sweep_rows::<f32>(d, &args.panel_widths, min, g32, &mut rows);
        }
    }
    let mut rnn = Vec::new();
    let mut sgemm_rnn = g32_all;
    let mut blas_sgemm = None;
    let mut best_sgemm = g32_all;
    let mut reference_isa_caps = Vec::new();
    if args.rnn {
        // The denominator of the RNN ratios: the best all-thread SGEMM rate of this run,
        // re-measured right before the RNN rows (so a machine that slowed down in between
        // does not flatter them) and also at n = 1024.
        let par = gemm::Parallelism::Rayon(threads);
        sgemm_rnn =
            g32_all.max(gemm_rate::<f32>(512, par, min)).max(gemm_rate::<f32>(1024, par, min));
        best_sgemm = sgemm_rnn;
        let torch = match &args.against_torch {
            Some(python) => {
                let script = TorchScript::write()?;
                let blas = script.sgemm(python, threads)?;
                let blas_best = blas.gflops.iter().map(|(_, g)| *g).fold(0.0, f64::max);
                anyhow::ensure!(blas_best > 0.0, "the PyTorch reference reported no SGEMM rate");
                // Under a cap the gemm crate's rate is not one of the capped level.
                best_sgemm = if script.isa_caps().is_empty() {
                    best_sgemm.max(blas_best)
                } else {
                    blas_best
                };
                reference_isa_caps =
                    script.isa_caps().iter().map(|(k, v)| format!("{k}={v}")).collect();
                blas_sgemm = Some(blas);
                Some((python, script))
            }
            None => None,
        };
        for arch in [le_engine::rnn::CellKind::Lstm, le_engine::rnn::CellKind::Gru] {
            for &hidden in &args.rnn_hidden {
                tracing::info!(arch = arch.name(), hidden, "benchmarking an RNN population");
                let torch = match (&torch, arch) {
                    (Some((python, script)), le_engine::rnn::CellKind::Lstm) => {
                        Some((python.as_path(), script))
                    }
                    _ => None,
                };
                rnn.push(rnn_population_row(arch, hidden, args, sgemm_rnn, best_sgemm, torch)?);
            }
        }
    }
    Ok(BenchReport {
        blas_sgemm,
        reference_isa_caps,
        best_sgemm_gflops: best_sgemm,
        rnn,
        cpu: cpu_name(),
        simd: aelle_support::simd::level_name(),
        threads,
        gemm_gflops_f64_1t: g64,
        gemm_gflops_f32_1t: g32,
        gemm_gflops_f64_all: g64_all,
        gemm_gflops_f32_all: g32_all,
        sgemm_gflops_for_rnn: sgemm_rnn,
        rows,
    })
}

fn random_network(
    kind: le_engine::rnn::CellKind,
    n: usize,
    input: usize,
    seed: u64,
) -> le_engine::rnn::Network<f32> {
    use le_engine::rnn::{CellConstants, Layer, Network};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let g = kind.gates();
    let mut u = |len: usize, p: f32| -> Vec<f32> {
        (0..len).map(|_| rand::Rng::random_range(&mut rng, -p..p)).collect()
    };
    // Scale 1/sqrt(N) keeps the dynamics away from saturation, as trained networks are.
    let p = 1.0 / (n as f32).sqrt();
    let layer = Layer {
        input,
        w_in: u(g * n * input, p),
        b_in: u(g * n, p),
        w_rec: u(g * n * n, p),
        b_rec: u(g * n, p),
    };
    Network::from_layers(
        kind,
        n,
        input,
        true,
        CellConstants { eps: 0.0, gamma: 0.0, dt: 0.0 },
        vec![layer],
    )
    .expect("consistent shapes")
}

/// Naive baseline: explicit Jacobian per sequence (dense), a triple-loop `J Q`, textbook
/// unblocked Householder with explicit `Q`, one sequence at a time, one thread. Returns
/// sequence-steps per second.
fn naive_rnn_rate(net: &le_engine::rnn::Network<f32>, inputs: &[f32], steps: usize) -> f64 {
    use le_engine::rnn::LstmState;
    let d = net.tangent_dim(LstmState::Full);
    let input = net.input;
    let mut x = vec![0.0f32; net.state_dim()];
    let mut q = vec![0.0f64; d * d];
    for i in 0..d {
        q[i * d + i] = 1.0;
    }
    let mut z = vec![0.0f64; d * d];
    let mut logs = vec![0.0; d];
    let mut total = 0.0;
    let start = Instant::now();
    for t in 0..steps {
        let u = &inputs[t * input..(t + 1) * input];
        let jac = net.jacobian_at(&x, u, LstmState::Full).expect("shapes match");
        for c in 0..d {
            for i in 0..d {
                let mut s = 0.0f64;
                for j in 0..d {
                    s += jac[i * d + j] as f64 * q[c * d + j];
                }
                z[c * d + i] = s;
            }
        }
        textbook_householder_factor(&mut z, d, d, &mut logs);
        textbook_form_q(&z, d, &mut q);
        total += logs.iter().sum::<f64>();
        x = net.step_state(&x, u).expect("shapes match");
    }
    std::hint::black_box(total);
    steps as f64 / start.elapsed().as_secs_f64()
}

/// Explicit `Q` (column-major `d x d`) from the reflectors [`textbook_householder_factor`] left
/// in `a` (`v_c` below the diagonal, implicit 1, `tau` recomputed from `v`), signs fixed so
/// `diag(R) >= 0`.
fn textbook_form_q(a: &[f64], d: usize, q: &mut [f64]) {
    q.fill(0.0);
    for i in 0..d {
        q[i * d + i] = 1.0;
    }
    for c in (0..d).rev() {
        let vnorm2: f64 = 1.0 + (c + 1..d).map(|r| a[c * d + r] * a[c * d + r]).sum::<f64>();
        let tau = 2.0 / vnorm2;
        for j in 0..d {
            let mut s = q[j * d + c];
            for r in c + 1..d {
                s += a[c * d + r] * q[j * d + r];
            }
            s *= tau;
            q[j * d + c] -= s;
            for r in c + 1..d {
                q[j * d + r] -= s * a[c * d + r];
            }
        }
    }
    for c in 0..d {
        if a[c * d + c] < 0.0 {
            for r in 0..d {
                q[c * d + r] = -q[c * d + r];
            }
        }
    }
}

fn rnn_population_row(
    kind: le_engine::rnn::CellKind,
    hidden: usize,
    args: &BenchArgs,
    sgemm_all: f64,
    best_sgemm: f64,
    torch: Option<(&std::path::Path, &TorchScript)>,
) -> Result<RnnBenchRow> {
    use le_engine::rnn::{InputSet, LstmState, RnnSpectrumConfig, population_spectra};
    let (m, b, t, w, input) = (args.rnn_networks, 16usize, 100usize, 20usize, 28usize);
    let nets: Vec<_> =
        (0..m).map(|i| random_network(kind, hidden, input, 1000 + i as u64)).collect();
    let inputs = random_normal::<f32>(b * (t + w) * input, 77);
    let mut cfg = RnnSpectrumConfig::default();
    cfg.spectrum.warmup = w;
    let start = Instant::now();
    let pop = population_spectra(&nets, &InputSet::shared(&inputs, b, t + w), &cfg)?;
    let seconds = start.elapsed().as_secs_f64();
    anyhow::ensure!(pop.stats.iter().all(|s| s.n_finite == b), "benchmark networks diverged");
    let d = nets[0].tangent_dim(LstmState::Full);
    let k = d;
    let seq_steps = (m * b * (t + w)) as f64;
    let flops_per = 2.0 * (kind.gates() * hidden * hidden * k) as f64 + qr_flops(d, k);
    let rate = seq_steps / seconds;
    let baseline_steps = if hidden > 64 { 6 } else { 20 };
    let baseline = naive_rnn_rate(&nets[0], &inputs[..baseline_steps * input], baseline_steps);
    let torch = match torch {
        Some((python, script)) => {
            let mt = args.torch_networks.clamp(1, m);
            tracing::info!(hidden, networks = mt, "running the PyTorch reference");
            let (side, lambdas) = script.lstm(python, &nets[..mt], &inputs, b, t + w, w)?;
            let mut worst = 0.0f64;
            for (stats, lam) in pop.stats.iter().zip(&lambdas) {
                anyhow::ensure!(
                    lam.len() == stats.mean.len(),
                    "the PyTorch reference returned {} exponents per network, expected {}",
                    lam.len(),
                    stats.mean.len()
                );
                for (a, b) in stats.mean.iter().zip(lam) {
                    worst = worst.max((a - b).abs() / b.abs().max(1.0));
                }
            }
            Some(TorchRow {
                networks: mt,
                engine_over_torch: rate / side.1,
                best_mode: side.0,
                sequence_steps_per_second: side.1,
                modes: side.2,
                max_exponent_difference: worst,
            })
        }
        None => None,
    };
    Ok(RnnBenchRow {
        torch,
        fraction_of_best_sgemm: rate * flops_per / 1e9 / best_sgemm,
        arch: kind.name(),
        hidden,
        networks: m,
        batch: b,
        steps: t,
        warmup: w,
        k,
        seconds,
        sequence_steps_per_second: rate,
        useful_gflops: rate * flops_per / 1e9,
        fraction_of_gemm_all_threads: rate * flops_per / 1e9 / sgemm_all,
        baseline_sequence_steps_per_second: baseline,
        speedup_over_baseline: rate / baseline,
    })
}
