//! Throughput of population training: LSTM N = 64 on row-wise sequential MNIST (T = 28,
//! I = 28), batch 128, Adam. Trains `STEPS` minibatches (default 20) for a population of
//! `M` networks and reports network-samples per second (`M * samples / s`), the implied time
//! of one 8,000-sample epoch per network, and the ratios to the candle `M = 1` run and to the
//! fused `M = 1` run. Runs, in this order: candle for each `M` in `CANDLE_SIZES` (default
//! `1`), then the fused path for each `M` in `FUSED_SIZES` (default `1,4,16`; skipped for
//! cells the fused path does not support).
//!
//! ```text
//! cargo run --release -p rnn-models --example bench_population -- [CANDLE_SIZES] [STEPS] [ARCH] [FUSED_SIZES]
//! ```
//! Timing covers the training steps only (batch assembly included, evaluation excluded).
//!
//! The same run also measures the all-thread SGEMM rate (`le_engine::linalg::timing::gemm_rate`, n = 512, best of
//! three) and reports each row's GEMM work as GFLOP/s and as a share of it: per network-sample
//! `T * 2 G N (I + N)` flops forward (input and recurrent products of the `G N` gate rows) and
//! `T * 2 G N (I + 2 N)` backward (weight gradients and the recurrent input gradient), so
//! `T * 2 G N (2 I + 3 N)` (3.56 MFLOP for the LSTM at N = 64). Training `M` networks does `M`
//! times that work, so no population can beat the fused `M = 1` throughput by more than the
//! SGEMM rate divided by `M = 1`'s GFLOP/s: the bound printed last.

use std::time::Instant;

use candle_core::{DType, Device};
use datasets::{PixelOrder, SequentialImageTask, Subset};
use rnn_models::{
    InitScheme, NetSpec, PopulationTrainer, TrainBackend, TrainConfig, cell_kind_from_name,
};

fn parse_sizes(arg: Option<&String>, default: &str) -> Result<Vec<usize>, std::num::ParseIntError> {
    let text = arg.map_or(default, String::as_str);
    if text.is_empty() || text == "-" {
        return Ok(Vec::new());
    }
    text.split(',').map(str::parse).collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let candle_sizes = parse_sizes(args.get(1), "1")?;
    let steps: usize = args.get(2).map_or(Ok(20), |s| s.parse())?;
    let arch = cell_kind_from_name(args.get(3).map_or("lstm", String::as_str))?;
    let fused_sizes = parse_sizes(args.get(4), "1,4,16")?;
    let full = SequentialImageTask::mnist_10k(PixelOrder::RowWise)?;
    let batch = 128;
    let task = Subset::first(&full, steps * batch, 0);
    let threads = rayon::current_num_threads();
    let sgemm = le_engine::linalg::timing::gemm_rate::<f32>(
        512,
        gemm::Parallelism::Rayon(threads),
        std::time::Duration::from_millis(200),
    );
    let (t_len, i_len, n_hid) = (28.0, 28.0, 64.0);
    let flops_per_sample = t_len * 2.0 * arch.gates() as f64 * n_hid * (2.0 * i_len + 3.0 * n_hid);
    println!(
        "all-thread SGEMM (n = 512, best of 3): {sgemm:.1} GFLOP/s; GEMM work per network-sample: {:.2} MFLOP",
        flops_per_sample / 1e6
    );
    println!(
        "{} N=64, row-wise sMNIST, batch {batch}, {steps} steps per run, threads: rayon {}, candle {}",
        arch.name(),
        env_or("RAYON_NUM_THREADS"),
        env_or("CANDLE_NUM_THREADS")
    );
    println!(
        "backend      M  wall_s  network-samples/s  vs_candle_M1  vs_fused_M1  epoch(8000)/network_s  GFLOP/s  of_SGEMM"
    );
    let mut candle_base: Option<f64> = None;
    let mut fused_base: Option<f64> = None;
    let runs = candle_sizes
        .iter()
        .map(|&m| (TrainBackend::Candle, m))
        .chain(fused_sizes.iter().map(|&m| (TrainBackend::Fused, m)));
    for (backend, m) in runs {
        let config = TrainConfig { batch_size: batch, backend, ..TrainConfig::default() };
        let specs: Vec<NetSpec> = (0..m)
            .map(|k| {
                let mut s = NetSpec::new(format!("n{k}"), arch, 64, 0.0, 0.01, k as u64);
                s.init = InitScheme::PytorchDefault;
                s
            })
            .collect();
        let mut trainer =
            match PopulationTrainer::new(&task, &specs, &config, DType::F32, &Device::Cpu) {
                Ok(t) => t,
                Err(e) if backend == TrainBackend::Fused => {
                    println!("fused: not supported here ({e})");
                    break;
                }
                Err(e) => return Err(e.into()),
            };
        // warm-up step outside the timer (allocator, thread pool)
        let warm = Subset::first(&full, batch, 0);
        let mut warm_trainer =
            PopulationTrainer::new(&warm, &specs, &config, DType::F32, &Device::Cpu)?;
        warm_trainer.train_epoch(1)?;
        let t0 = Instant::now();
        trainer.train_epoch(1)?;
        let wall = t0.elapsed().as_secs_f64();
        let throughput = (m * steps * batch) as f64 / wall;
        if backend == TrainBackend::Candle && m == 1 {
            candle_base.get_or_insert(throughput);
        }
        if backend == TrainBackend::Fused && m == 1 {
            fused_base.get_or_insert(throughput);
        }
        let ratio =
            |base: Option<f64>| base.map_or("-".to_string(), |b| format!("{:.2}", throughput / b));
        let name = if trainer.uses_fused() { "fused" } else { "candle" };
        let gflops = throughput * flops_per_sample / 1e9;
        println!(
            "{name:<7}  {m:>5}  {wall:>6.2}  {throughput:>17.0}  {:>12}  {:>11}  {:>21.2}  {gflops:>7.1}  {:>7.0}%",
            ratio(candle_base),
            ratio(fused_base),
            8000.0 / throughput,
            100.0 * gflops / sgemm
        );
    }
    if let Some(b) = fused_base {
        println!(
            "bound on any population's speed-up over fused M = 1 here: SGEMM / (fused M = 1 GFLOP/s) = {:.2}x",
            sgemm / (b * flops_per_sample / 1e9)
        );
    }
    Ok(())
}

fn env_or(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| "default".into())
}
