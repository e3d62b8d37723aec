//! Trains networks on the embedded sequential-MNIST split (row-wise, 8,000 train / 2,000
//! test) with the published setting (Adam, lr 0.01, batch 128, N = 64) and prints the
//! per-epoch curves.
//!
//! ```text
//! cargo run --release -p rnn-models --example train_smnist -- [ARCH[,ARCH..]] [EPOCHS] [OUT]
//! ```
//! `ARCH` is `rnn`, `gru`, `lstm`, `asrnn` or `cornn` (default `lstm,gru`); one network per
//! arch (seed 0, `p` = PyTorch default init). Checkpoints land in `OUT` (default a temp dir).

use std::time::Instant;

use candle_core::Device;
use datasets::{PixelOrder, SequentialImageTask};
use rnn_models::{InitScheme, NetSpec, TrainConfig, cell_kind_from_name, run_sweep};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let archs = args.get(1).map_or("lstm,gru", String::as_str);
    let epochs: usize = args.get(2).map_or(Ok(10), |s| s.parse())?;
    let out = match args.get(3) {
        Some(p) => std::path::PathBuf::from(p),
        None => std::env::temp_dir().join(format!("rnn-models-smnist-{}", std::process::id())),
    };
    let task = SequentialImageTask::mnist_10k(PixelOrder::RowWise)?;
    let specs = archs
        .split(',')
        .map(|a| {
            let mut s = NetSpec::new(format!("{a}-n64"), cell_kind_from_name(a)?, 64, 0.0, 0.01, 0);
            s.init = InitScheme::PytorchDefault;
            Ok(s)
        })
        .collect::<Result<Vec<_>, rnn_models::ModelError>>()?;
    let config = TrainConfig { epochs, max_population: 1, ..TrainConfig::default() };
    let t0 = Instant::now();
    run_sweep(&task, &specs, &config, &out, &Device::Cpu)?;
    println!("total wall time {:.1} s, output in {}", t0.elapsed().as_secs_f64(), out.display());
    for s in &specs {
        let m: rnn_models::NetMetrics = serde_json::from_slice(&std::fs::read(
            out.join("nets").join(&s.id).join("metrics.json"),
        )?)?;
        println!("{} ({:?})", s.id, m.status);
        println!("epoch  train_loss  train_acc  test_loss  test_acc  wall_s");
        for e in &m.epochs {
            let f = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.4}"));
            println!(
                "{:>5}  {:>10}  {:>9}  {:>9}  {:>8}  {:>6.1}",
                e.epoch,
                f(e.train_loss),
                f(e.train_accuracy),
                f(e.test_loss),
                f(e.test_accuracy),
                e.wall_time_s
            );
        }
    }
    Ok(())
}
