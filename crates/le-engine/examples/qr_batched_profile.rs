//! Profiling driver for the SIMD-interleaved batched QR: `cargo run --release -p le-engine
//! --example qr_batched_profile -- D ITERS` (f32, 16 blocks of D x D).
use le_engine::linalg::qr::batched::{BatchedQrWorkspace, LANES, orthonormalize_blocks};

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let (d, iters) = (args.first().copied().unwrap_or(128), args.get(1).copied().unwrap_or(200));
    let input: Vec<f32> =
        (0..LANES * d * d).map(|i| ((i * 7919 % 1013) as f32 / 1013.0) - 0.5).collect();
    let mut blocks = input.clone();
    let mut logs = vec![0.0; LANES * d];
    let mut ws = BatchedQrWorkspace::<f32>::new(d, d);
    let start = std::time::Instant::now();
    for _ in 0..iters {
        blocks.copy_from_slice(&input);
        orthonormalize_blocks(&mut blocks, &mut logs, &mut ws);
    }
    let per_block = start.elapsed().as_secs_f64() / (iters * LANES) as f64;
    let flops = 2.0 * le_engine::linalg::qr::qr_flops(d, d);
    println!(
        "D = {d}: {:.1} us per block, {:.1} GFLOP/s",
        per_block * 1e6,
        flops / per_block / 1e9
    );
}
