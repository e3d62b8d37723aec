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

use anyhow::{Context, Result};
use le_engine::linalg::qr::{QrWorkspace, householder_factor, orthonormalize_in_place, qr_flops};
use le_engine::linalg::timing::{gemm_rate, random_normal, time_per_call};
use le_engine::{Real, SpectrumConfig, jacobian_sequence_spectrum};
use rand::SeedableRng;
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

/// The PyTorch reference (`scripts/reference/bench_torch_les.py`) of one LSTM row.
#[derive(Debug, Serialize)]
pub struct TorchRow {
    /// Networks it ran (the first of the engine's population; its rate is per sequence-step).
    pub networks: usize,
    /// Its fastest setup (`threads`: one process, all intra-op threads; `processes`: one
    /// single-thread process per thread; `processes-compiled`: the same with the tangent step
    /// under `torch.compile`).
    pub best_mode: String,
    pub sequence_steps_per_second: f64,
    /// Every setup it measured: (mode, sequence-steps/s).
    pub modes: Vec<(String, f64)>,
    /// Engine sequence-steps/s over torch's.
    pub engine_over_torch: f64,
    /// Largest difference of a network's mean exponent between the two (both f32), relative
    /// to `max(1, |lambda|)`.
    pub max_exponent_difference: f64,
}

/// SGEMM through the BLAS torch and numpy ship, measured in the same run.
#[derive(Debug, Serialize)]
pub struct BlasSgemm {
    pub torch_version: String,
    pub numpy_version: String,
    /// GFLOP/s by library and threads (`torch_1t`, `torch_2t`, `numpy_2t`, ...), best of
    /// n = 512 and 1024.
    pub gflops: Vec<(String, f64)>,
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
    /// ([`blas_isa_caps`]), as `NAME=value` pairs.
    pub blas_isa_caps: Vec<String>,
    /// The best all-thread SGEMM of the run: the RNN rows' `fraction_of_best_sgemm`
    /// denominator. The `gemm` crate or BLAS; with [`Self::blas_isa_caps`] set, BLAS only (the
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
                if !blas_isa_caps().is_empty() {
                    best_sgemm = 0.0;
                }
                for (_, g) in &blas.gflops {
                    best_sgemm = best_sgemm.max(*g);
                }
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
    let blas_isa_caps = match &blas_sgemm {
        Some(_) => blas_isa_caps().iter().map(|(k, v)| format!("{k}={v}")).collect(),
        None => Vec::new(),
    };
    Ok(BenchReport {
        blas_sgemm,
        blas_isa_caps,
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

/// When `LE_ENGINE_SIMD` caps this project's kernels below the CPU's widest level: the
/// environment that caps PyTorch's and numpy's kernels to the same level, so that the
/// reference and the SGEMM denominator are those an AVX2-only (or SSE-only) machine would
/// have: MKL's code path (`MKL_ENABLE_INSTRUCTIONS`), ATen's vectorised kernels
/// (`ATEN_CPU_CAPABILITY`), oneDNN (`ONEDNN_MAX_CPU_ISA`) and OpenBLAS, which numpy ships
/// (`OPENBLAS_CORETYPE`), each as this process's environment has it if set there, else at the
/// level's value. Empty when nothing is capped.
pub fn blas_isa_caps() -> Vec<(&'static str, String)> {
    use aelle_support::simd::{Level, level, supported};
    let widest = supported()[0];
    if level() == widest {
        return Vec::new();
    }
    let caps: &[(&'static str, &'static str)] = match level() {
        #[cfg(target_arch = "x86_64")]
        Level::Avx2Fma => &[
            ("MKL_ENABLE_INSTRUCTIONS", "AVX2"),
            ("ATEN_CPU_CAPABILITY", "avx2"),
            ("ONEDNN_MAX_CPU_ISA", "AVX2"),
            ("OPENBLAS_CORETYPE", "Haswell"),
        ],
        #[cfg(target_arch = "x86_64")]
        Level::Baseline => &[
            ("MKL_ENABLE_INSTRUCTIONS", "SSE4_2"),
            ("ATEN_CPU_CAPABILITY", "default"),
            ("ONEDNN_MAX_CPU_ISA", "SSE41"),
            ("OPENBLAS_CORETYPE", "Nehalem"),
        ],
        _ => &[],
    };
    caps.iter().map(|&(k, v)| (k, std::env::var(k).unwrap_or_else(|_| v.to_string()))).collect()
}

/// The PyTorch reference script, built into the binary and written to a temporary file for the
/// run (removed on drop).
pub struct TorchScript {
    dir: std::path::PathBuf,
}

/// `(best mode, its sequence-steps/s, every mode)` of one PyTorch run.
type TorchRate = (String, f64, Vec<(String, f64)>);

impl TorchScript {
    const SOURCE: &'static str = include_str!("../../../../scripts/reference/bench_torch_les.py");

    fn write() -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("aelle-bench-torch-{}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating the scratch folder {}", dir.display()))?;
        let me = Self { dir };
        std::fs::write(me.script(), Self::SOURCE)
            .with_context(|| format!("writing {}", me.script().display()))?;
        Ok(me)
    }

    fn script(&self) -> std::path::PathBuf {
        self.dir.join("bench_torch_les.py")
    }

    /// Run the script with `args` (and [`blas_isa_caps`] in its environment); its stdout
    /// parsed as one JSON object.
    fn call(&self, python: &std::path::Path, args: &[&str]) -> Result<serde_json::Value> {
        let out = std::process::Command::new(python)
            .arg(self.script())
            .args(args)
            .envs(blas_isa_caps())
            .output()
            .with_context(|| format!("running {} (--against-torch)", python.display()))?;
        anyhow::ensure!(
            out.status.success(),
            "the PyTorch reference failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        serde_json::from_slice(&out.stdout).context("parsing the PyTorch reference's JSON")
    }

    fn sgemm(&self, python: &std::path::Path, threads: usize) -> Result<BlasSgemm> {
        let v = self.call(python, &["--sgemm-only", "--threads", &threads.to_string()])?;
        let gflops = v["sgemm_gflops"]
            .as_object()
            .context("the PyTorch reference's JSON has no sgemm_gflops")?
            .iter()
            .filter_map(|(k, g)| g.as_f64().map(|g| (k.clone(), g)))
            .collect();
        Ok(BlasSgemm {
            torch_version: v["torch"].as_str().unwrap_or("?").to_string(),
            numpy_version: v["numpy"].as_str().unwrap_or("?").to_string(),
            gflops,
        })
    }

    /// The reference on `nets` (one-layer LSTMs) and the shared `inputs` `[batch, len, I]`:
    /// its rate and each network's mean sorted exponents.
    fn lstm(
        &self,
        python: &std::path::Path,
        nets: &[le_engine::rnn::Network<f32>],
        inputs: &[f32],
        batch: usize,
        len: usize,
        warmup: usize,
    ) -> Result<(TorchRate, Vec<Vec<f64>>)> {
        let (m, n, ni) = (nets.len(), nets[0].hidden, nets[0].input);
        let mut w_ih = Vec::with_capacity(m * 4 * n * ni);
        let mut w_hh = Vec::with_capacity(m * 4 * n * n);
        let mut bias = Vec::with_capacity(m * 4 * n);
        for net in nets {
            let l = &net.layers[0];
            w_ih.extend_from_slice(&l.w_in);
            w_hh.extend_from_slice(&l.w_rec);
            bias.extend(l.b_in.iter().zip(&l.b_rec).map(|(a, b)| a + b));
        }
        let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let (b1, b2, b3, b4) = (bytes(&w_ih), bytes(&w_hh), bytes(&bias), bytes(inputs));
        use safetensors::tensor::{Dtype, TensorView};
        fn view(data: &[u8], shape: Vec<usize>) -> Result<TensorView<'_>> {
            TensorView::new(Dtype::F32, shape, data).context("building a tensor view")
        }
        let tensors = vec![
            ("w_ih", view(&b1, vec![m, 4 * n, ni])?),
            ("w_hh", view(&b2, vec![m, 4 * n, n])?),
            ("b", view(&b3, vec![m, 4 * n])?),
            ("inputs", view(&b4, vec![batch, len, ni])?),
        ];
        let meta = std::collections::HashMap::from([("warmup".to_string(), warmup.to_string())]);
        let file = self.dir.join(format!("lstm{n}.safetensors"));
        safetensors::serialize_to_file(tensors, Some(meta), &file)
            .with_context(|| format!("writing {}", file.display()))?;
        let threads = rayon::current_num_threads().to_string();
        let file_arg = file.to_string_lossy().into_owned();
        let v = self.call(
            python,
            &[
                "--weights",
                &file_arg,
                "--json",
                "--no-sgemm",
                "--threads",
                &threads,
                "--modes",
                "processes,threads,processes-compiled",
            ],
        )?;
        let rate = |row: &serde_json::Value| row["sequence_steps_per_second"].as_f64();
        let best = &v["best"];
        let modes = v["modes"]
            .as_array()
            .context("the PyTorch reference's JSON has no modes")?
            .iter()
            .filter_map(|r| Some((r["mode"].as_str()?.to_string(), rate(r)?)))
            .collect();
        let lambdas = v["exponents"]
            .as_array()
            .context("the PyTorch reference's JSON has no exponents")?
            .iter()
            .map(|row| {
                row.as_array()
                    .map(|r| r.iter().filter_map(serde_json::Value::as_f64).collect())
                    .context("exponents: expected one array per network")
            })
            .collect::<Result<Vec<Vec<f64>>>>()?;
        anyhow::ensure!(
            lambdas.len() == m,
            "the PyTorch reference returned {} networks, expected {m}",
            lambdas.len()
        );
        let mode = best["mode"].as_str().unwrap_or("?").to_string();
        let best_rate = rate(best).context("the PyTorch reference's JSON has no best rate")?;
        Ok(((mode, best_rate, modes), lambdas))
    }
}

impl Drop for TorchScript {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
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
        le_engine::linalg::qr::DEFAULT_PANEL_WIDTH
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
    if !r.rnn.is_empty() {
        let _ = writeln!(
            s,
            "\nRNN populations (f32, full state, k = D, QR every step, B = 16, T = 100 + 20 warm-up, I = 28, all threads), against the all-thread SGEMM rate {:.1} GFLOP/s of the gemm crate (best of the first measurement and two right before these rows, n = 512 and 1024):\n",
            r.sgemm_gflops_for_rnn
        );
        if let Some(b) = &r.blas_sgemm {
            let rates: Vec<String> = b.gflops.iter().map(|(k, g)| format!("{k} {g:.1}")).collect();
            let _ = writeln!(
                s,
                "BLAS SGEMM of the same run (torch {}, numpy {}; GFLOP/s, n = 512 / 1024): {}. \
                 Best SGEMM of the run: {:.1} GFLOP/s (\"of best SGEMM\").\n",
                b.torch_version,
                b.numpy_version,
                rates.join(", "),
                r.best_sgemm_gflops
            );
            if !r.blas_isa_caps.is_empty() {
                let _ = writeln!(
                    s,
                    "This project's kernels are capped at `{}` (`LE_ENGINE_SIMD`), and so are \
                     PyTorch and numpy ({}): \"of best SGEMM\" is against their capped SGEMM \
                     only, since the gemm crate runs this CPU's widest kernels whatever the \
                     cap (\"of gemm-crate SGEMM\").\n",
                    r.simd,
                    r.blas_isa_caps.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")
                );
            }
        }
        let _ = writeln!(
            s,
            "| cell | N | networks | time | sequence-steps/s | useful GFLOP/s | of gemm-crate SGEMM | of best SGEMM | PyTorch (seq-steps/s, setup, networks) | engine / PyTorch | max exponent diff | naive baseline (seq-steps/s, 1 thread) | speed-up |"
        );
        let _ = writeln!(
            s,
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        let notes = "\nUseful flops per sequence-step: `2 G N^2 k` (tangent, G gates) + \
            `2 D k^2 - 2 k^3 / 3` (QR factorisation), as the issue counts them. The engine does \
            the factorisation and then, instead of forming Q and multiplying the next \
            Jacobian by it, applies the factored Q to the explicit next Jacobian from the \
            right (about 2 D^3 flops; le-engine README, \"Factored Q\"). PyTorch: \
            `scripts/reference/bench_torch_les.py` on the first networks of the same \
            population and the same inputs (analytic tangent map, one GEMM per network, batched \
            `torch.linalg.qr`), best of one process with all threads, one single-thread \
            process per thread, and the latter with the tangent step under torch.compile \
            (`processes-compiled`) (the threads setup on 2 networks: it is the slow one); \"max \
            exponent diff\": the largest difference of a network's mean exponent between the \
            two, relative to max(1, |lambda|) (both f32).";
        for x in &r.rnn {
            let (torch, ratio, diff) = match &x.torch {
                Some(t) => (
                    format!("{:.0} ({}, {})", t.sequence_steps_per_second, t.best_mode, t.networks),
                    format!("{:.2}x", t.engine_over_torch),
                    format!("{:.1e}", t.max_exponent_difference),
                ),
                None => ("—".into(), "—".into(), "—".into()),
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.2} s | {:.0} | {:.1} | {:.0} % | {:.0} % | {} | {} | {} | {:.1} | {:.0}x |",
                x.arch,
                x.hidden,
                x.networks,
                x.seconds,
                x.sequence_steps_per_second,
                x.useful_gflops,
                100.0 * x.fraction_of_gemm_all_threads,
                100.0 * x.fraction_of_best_sgemm,
                torch,
                ratio,
                diff,
                x.baseline_sequence_steps_per_second,
                x.speedup_over_baseline
            );
        }
        let _ = writeln!(s, "{notes}");
    }
    s
}

#[cfg(test)]
mod tests {
    use aelle_support::simd::{Level, supported, with_level};

    /// At this CPU's widest level PyTorch and numpy run as they are; below it, each lower level
    /// this CPU has caps MKL, ATen, oneDNN and OpenBLAS to the same instruction set.
    #[test]
    fn blas_caps_follow_the_engine_level() {
        let levels = supported();
        let widest = with_level(levels[0], super::blas_isa_caps).expect("a supported level");
        assert!(widest.is_empty(), "nothing is capped at the widest level: {widest:?}");
        for &level in &levels[1..] {
            let caps = with_level(level, super::blas_isa_caps).expect("a supported level");
            let want = match level {
                #[cfg(target_arch = "x86_64")]
                Level::Avx2Fma => "AVX2",
                _ => "SSE4_2",
            };
            let keys: Vec<&str> = caps.iter().map(|(k, _)| *k).collect();
            assert_eq!(
                keys,
                [
                    "MKL_ENABLE_INSTRUCTIONS",
                    "ATEN_CPU_CAPABILITY",
                    "ONEDNN_MAX_CPU_ISA",
                    "OPENBLAS_CORETYPE"
                ],
                "{}",
                level.name()
            );
            let mkl = std::env::var("MKL_ENABLE_INSTRUCTIONS").unwrap_or_else(|_| want.into());
            assert_eq!(caps[0].1, mkl, "{}", level.name());
        }
    }
}
