//! Profiling driver for RNN population spectra:
//! `cargo run --release -p le-engine --example rnn_profile -- [lstm|gru|rnn] N M`
//! (f32, full state, k = D, QR every step, B = 16, T = 100 + 20 warm-up, I = 28).
use le_engine::rnn::{
    CellConstants, CellKind, InputSet, Layer, Network, RnnSpectrumConfig, population_spectra,
};
use rand::{Rng, SeedableRng};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let kind = match args.first().map_or("lstm", String::as_str) {
        "gru" => CellKind::Gru,
        "rnn" => CellKind::Rnn,
        _ => CellKind::Lstm,
    };
    let n: usize = args.get(1).map_or(Ok(64), |a| a.parse())?;
    let m: usize = args.get(2).map_or(Ok(32), |a| a.parse())?;
    let (b, t, w, input) = (16, 100, 20, 28);
    let g = kind.gates();
    let p = 1.0 / (n as f32).sqrt();
    let nets: Vec<Network<f32>> = (0..m)
        .map(|i| {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1000 + i as u64);
            let mut u =
                |len: usize| -> Vec<f32> { (0..len).map(|_| rng.random_range(-p..p)).collect() };
            let layer = Layer {
                input,
                w_in: u(g * n * input),
                b_in: u(g * n),
                w_rec: u(g * n * n),
                b_rec: u(g * n),
            };
            let consts = CellConstants { eps: 0.0, gamma: 0.0, dt: 0.0 };
            Network::from_layers(kind, n, input, true, consts, vec![layer])
        })
        .collect::<Result<_, _>>()?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(77);
    let inputs: Vec<f32> = (0..b * (t + w) * input).map(|_| rng.random_range(-1.0..1.0)).collect();
    let mut cfg = RnnSpectrumConfig::default();
    cfg.spectrum.warmup = w;
    let start = std::time::Instant::now();
    let pop = population_spectra(&nets, &InputSet::shared(&inputs, b, t + w), &cfg)?;
    let s = start.elapsed().as_secs_f64();
    println!(
        "{} N={n} M={m}: {s:.2} s, {:.0} sequence-steps/s, lambda_1 of network 0 = {:.4}",
        kind.name(),
        (m * b * (t + w)) as f64 / s,
        pop.stats[0].mean[0]
    );
    Ok(())
}
