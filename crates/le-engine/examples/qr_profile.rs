//! Profiling driver for the one-block QR: `cargo run --release -p le-engine --example qr_profile
//! -- D ITERS [f32|f64] [q]` (factorisation only, or factorisation + forming `Q` with `q`).
use le_engine::linalg::qr::{QrWorkspace, form_q_in_place, householder_factor, qr_flops};
use le_engine::scalar::Real;

fn run<T: Real>(d: usize, iters: usize, with_q: bool) {
    let input: Vec<T> =
        (0..d * d).map(|i| T::from_f64(((i * 7919 % 1013) as f64 / 1013.0) - 0.5)).collect();
    let mut a = le_engine::linalg::AlignedBuf::<T>::zeroed(d * d);
    let mut logs = vec![0.0; d];
    let mut ws = QrWorkspace::<T>::new(d, d);
    let start = std::time::Instant::now();
    for _ in 0..iters {
        a.copy_from_slice(&input);
        householder_factor(&mut a, &mut logs, &mut ws);
        if with_q {
            form_q_in_place(&mut a, &mut ws);
        }
    }
    let t = start.elapsed().as_secs_f64() / iters as f64;
    let what = if with_q { "factor + Q" } else { "factor" };
    println!(
        "D = {d} {what}: {:.1} us, {:.1} GFLOP/s (factorisation flops)",
        t * 1e6,
        qr_flops(d, d) / t / 1e9
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let d = args.first().and_then(|a| a.parse().ok()).unwrap_or(128);
    let iters = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(2000);
    let f32 = args.get(2).is_some_and(|a| a == "f32");
    let with_q = args.get(3).is_some_and(|a| a == "q");
    if f32 { run::<f32>(d, iters, with_q) } else { run::<f64>(d, iters, with_q) }
}
