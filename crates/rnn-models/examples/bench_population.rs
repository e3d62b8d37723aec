//! Throughput of population training: LSTM N = 64 on row-wise sequential MNIST (T = 28,
//! I = 28), batch 128, Adam. Trains `STEPS` minibatches (default 20) for a population of
//! `M` networks, for each `M` in the list (default `1,4,16`), and reports network-samples per
//! second (`M * samples / s`) and the implied time of one 8,000-sample epoch per network.
//!
//! ```text
//! cargo run --release -p rnn-models --example bench_population -- [M,M,..] [STEPS] [ARCH]
//! ```
//! Timing covers the training steps only (batch assembly included, evaluation excluded).

use std::time::Instant;

use candle_core::{DType, Device};
use datasets::{Batch, OutputKind, PixelOrder, SequentialImageTask, Split, Task};
use rnn_models::{Arch, InitScheme, NetSpec, PopulationTrainer, TrainConfig};

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

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let sizes: Vec<usize> = args
        .get(1)
        .map_or("1,4,16", String::as_str)
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let steps: usize = args.get(2).map_or(Ok(20), |s| s.parse())?;
    let arch = Arch::from_name(args.get(3).map_or("lstm", String::as_str))?;
    let full = SequentialImageTask::mnist_10k(PixelOrder::RowWise)?;
    let batch = 128;
    let task = Truncated { inner: &full, train: steps * batch };
    let config = TrainConfig { batch_size: batch, ..TrainConfig::default() };
    println!(
        "{arch} N=64, row-wise sMNIST, batch {batch}, {steps} steps per run, threads: rayon {}",
        rayon_threads()
    );
    println!("    M  wall_s  network-samples/s  speed-up  epoch(8000)/network_s");
    let mut base = None;
    for &m in &sizes {
        let specs: Vec<NetSpec> = (0..m)
            .map(|k| {
                let mut s = NetSpec::new(format!("n{k}"), arch, 64, 0.0, 0.01, k as u64);
                s.init = InitScheme::PytorchDefault;
                s
            })
            .collect();
        let mut trainer = PopulationTrainer::new(&task, &specs, &config, DType::F32, &Device::Cpu)?;
        // warm-up step outside the timer (allocator, thread pool)
        let warm = Truncated { inner: &full, train: batch };
        let mut warm_trainer =
            PopulationTrainer::new(&warm, &specs, &config, DType::F32, &Device::Cpu)?;
        warm_trainer.train_epoch(1)?;
        let t0 = Instant::now();
        trainer.train_epoch(1)?;
        let wall = t0.elapsed().as_secs_f64();
        let throughput = (m * steps * batch) as f64 / wall;
        let speedup = throughput / *base.get_or_insert(throughput);
        println!(
            "{m:>5}  {wall:>6.2}  {throughput:>17.0}  {speedup:>8.2}  {:>21.2}",
            8000.0 / throughput
        );
    }
    Ok(())
}

fn rayon_threads() -> String {
    std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "default".into())
}
