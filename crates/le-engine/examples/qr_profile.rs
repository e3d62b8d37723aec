//! Profiling driver for the one-block QR: `cargo run --release -p le-engine --example qr_profile
//! -- D ITERS` (f64, factorisation only).
use le_engine::qr::{QrWorkspace, householder_factor, qr_flops};

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let (d, iters) = (args.first().copied().unwrap_or(128), args.get(1).copied().unwrap_or(2000));
    let input: Vec<f64> = (0..d * d).map(|i| ((i * 7919 % 1013) as f64 / 1013.0) - 0.5).collect();
    let mut a = input.clone();
    let mut logs = vec![0.0; d];
    let mut ws = QrWorkspace::<f64>::new(d, d);
    let start = std::time::Instant::now();
    for _ in 0..iters {
        a.copy_from_slice(&input);
        householder_factor(&mut a, &mut logs, &mut ws);
    }
    let t = start.elapsed().as_secs_f64() / iters as f64;
    println!("D = {d}: {:.1} us, {:.1} GFLOP/s", t * 1e6, qr_flops(d, d) / t / 1e9);
}
