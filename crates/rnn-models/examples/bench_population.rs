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

use std::time::Instant;

use candle_core::{DType, Device};
use datasets::{Batch, OutputKind, PixelOrder, SequentialImageTask, Split, Task};
use rnn_models::{Arch, InitScheme, NetSpec, PopulationTrainer, TrainBackend, TrainConfig};

/// The first `train` training examples of a task.
struct Truncated<'a> {
    inner: &'a dyn Task,
    train: usize,
}

impl Task for Truncated<'_> {
    fn name(&self) -> String {
        self.inner.name()
    }
    fn num_train(&self) -> usize {
        self.train.min(self.inner.num_train())
    }
    fn num_test(&self) -> usize {
        self.inner.num_test()
    }
    fn seq_len(&self) -> usize {
        self.inner.seq_len()
    }
    fn input_size(&self) -> usize {
        self.inner.input_size()
    }
    fn output_kind(&self) -> OutputKind {
        self.inner.output_kind()
    }
    fn batch(&self, split: Split, indices: &[usize]) -> datasets::Result<Batch> {
        self.inner.batch(split, indices)
    }
}

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
    let arch = Arch::from_name(args.get(3).map_or("lstm", String::as_str))?;
    let fused_sizes = parse_sizes(args.get(4), "1,4,16")?;
    let full = SequentialImageTask::mnist_10k(PixelOrder::RowWise)?;
    let batch = 128;
    let task = Truncated { inner: &full, train: steps * batch };
    println!(
        "{arch} N=64, row-wise sMNIST, batch {batch}, {steps} steps per run, threads: rayon {}, candle {}",
        env_or("RAYON_NUM_THREADS"),
        env_or("CANDLE_NUM_THREADS")
    );
    println!(
        "backend      M  wall_s  network-samples/s  vs_candle_M1  vs_fused_M1  epoch(8000)/network_s"
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
        let warm = Truncated { inner: &full, train: batch };
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
        println!(
            "{name:<7}  {m:>5}  {wall:>6.2}  {throughput:>17.0}  {:>12}  {:>11}  {:>21.2}",
            ratio(candle_base),
            ratio(fused_base),
            8000.0 / throughput
        );
    }
    Ok(())
}

fn env_or(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| "default".into())
}
