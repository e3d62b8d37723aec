//! The factored-`Q` path of the population loop against the explicit path.

use super::*;
use crate::config::Precision;
use crate::rnn::{CellConstants, CellKind, Layer};

/// `len` values uniform in `(-p, p)`, seeded (xorshift).
fn rand_vec<T: Real>(len: usize, p: f64, seed: u64) -> Vec<T> {
    let mut u = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            u ^= u << 13;
            u ^= u >> 7;
            u ^= u << 17;
            T::from_f64(p * (2.0 * ((u >> 11) as f64 / (1u64 << 53) as f64) - 1.0))
        })
        .collect()
}

fn net<T: Real>(kind: CellKind, n: usize, input: usize, seed: u64) -> Network<T> {
    let mut s = seed;
    let mut rnd = |len: usize, p: f64| {
        s += 1;
        rand_vec::<T>(len, p, s)
    };
    let g = kind.gates();
    let p = 1.5 / (n as f64).sqrt();
    let layer = Layer {
        input,
        w_in: rnd(g * n * input, p),
        b_in: rnd(g * n, p),
        w_rec: rnd(g * n * n, p),
        b_rec: rnd(g * n, p),
    };
    let consts = CellConstants { eps: 0.0, gamma: 0.0, dt: 0.0 };
    Network::from_layers(kind, n, input, true, consts, vec![layer]).unwrap()
}

/// The cells and states the factored-Q path serves.
const CASES: [(CellKind, LstmState); 3] = [
    (CellKind::Lstm, LstmState::Full),
    (CellKind::Lstm, LstmState::HOnly),
    (CellKind::Gru, LstmState::Full),
];
const BATCH: usize = 3;
const STEPS: usize = 40;
const INPUT: usize = 4;

/// Spectra of `net` (`BATCH` sequences of `STEPS` inputs) on one thread, with or without
/// the factored-Q path.
fn spectra<T: Real>(
    net: &Network<T>,
    inputs: &[T],
    cfg: &RnnSpectrumConfig,
    parallel_qr: bool,
    factored_q: bool,
    simd: Level,
) -> Vec<Spectrum> {
    let threading = Threading { par: gemm::Parallelism::None, parallel_qr, factored_q, simd };
    network_spectra_with(net, inputs, BATCH, STEPS, cfg, threading).unwrap()
}

/// The factored-Q path (explicit Jacobian times the previous QR's reflectors) gives the
/// spectra of the explicit path (form Q, multiply) for every cell and state it serves,
/// sizes with one and several panels and row stripes, both precisions, both QR schedules.
fn factored_equals_explicit<T: Real>(tol: f64) {
    at_every_tiled_level("factored_q_path_equals_explicit_path", |level| {
        factored_equals_explicit_at::<T>(tol, level);
    });
}

/// Run `f` at every SIMD level of this CPU that has the factored-`Q` path (AVX-512, AVX2 +
/// FMA); says so on stderr when there is none.
#[allow(clippy::print_stderr)] // the skip must be visible in the test output
fn at_every_tiled_level(test: &str, f: impl Fn(Level)) {
    let levels: Vec<Level> =
        aelle_support::simd::supported().into_iter().filter(|l| *l != Level::Baseline).collect();
    if levels.is_empty() {
        eprintln!("SKIP {test}: needs AVX2 + FMA or AVX-512 (the factored-Q path)");
    }
    for level in levels {
        f(level);
    }
}

fn factored_equals_explicit_at<T: Real>(tol: f64, simd: Level) {
    let level = simd.name();
    for (kind, lstm) in CASES {
        for n in [3, 8, 21, 40, 64] {
            let net = net::<T>(kind, n, INPUT, 7 + n as u64);
            let inputs = rand_vec::<T>(BATCH * STEPS * INPUT, 1.0, 99);
            let mut cfg = RnnSpectrumConfig { lstm_state: lstm, ..Default::default() };
            cfg.spectrum.warmup = 5;
            cfg.spectrum.precision = if T::NAME == "f64" { Precision::F64 } else { Precision::F32 };
            for parallel_qr in [false, true] {
                let run = |factored| spectra(&net, &inputs, &cfg, parallel_qr, factored, simd);
                let (a, b) = (run(false), run(true));
                for (sa, sb) in a.iter().zip(&b) {
                    assert!(sa.status.is_finite() && sb.status.is_finite());
                    for (x, y) in sa.exponents.iter().zip(&sb.exponents) {
                        assert!(
                            (x - y).abs() <= tol * x.abs().max(1.0),
                            "{} {kind:?} {lstm:?} N = {n} ({level}): explicit {x} vs factored {y}",
                            T::NAME
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn factored_q_path_equals_explicit_path_f64() {
    factored_equals_explicit::<f64>(1e-11);
}

/// In f32 the two paths round differently, so each is compared with the f64 spectrum of
/// the same (f32-valued) weights and inputs: every factored spectrum is within the f32
/// tolerance of `f32_default_tracks_f64` (2e-3 relative), and over all cases its total
/// error is at most twice the explicit path's (the test prints the ratio: 1.25 on this
/// machine; single cases go either way, f32 rounding noise in strongly contracting
/// directions).
#[test]
fn factored_q_path_is_as_accurate_as_explicit_path_f32() {
    at_every_tiled_level(
        "factored_q_path_is_as_accurate_as_explicit_path_f32",
        factored_as_accurate_at,
    );
}

fn factored_as_accurate_at(simd: Level) {
    let level = simd.name();
    let mut sums = (0.0f64, 0.0f64);
    for (kind, lstm) in CASES {
        for n in [3, 8, 21, 40, 64] {
            let net32 = net::<f32>(kind, n, INPUT, 7 + n as u64);
            let widen = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
            let net64 = net32.to_precision::<f64>();
            let in32 = rand_vec::<f32>(BATCH * STEPS * INPUT, 1.0, 99);
            let in64 = widen(&in32);
            let mut cfg = RnnSpectrumConfig { lstm_state: lstm, ..Default::default() };
            cfg.spectrum.warmup = 5;
            cfg.spectrum.precision = Precision::F64;
            let truth = spectra(&net64, &in64, &cfg, false, false, simd);
            cfg.spectrum.precision = Precision::F32;
            let run = |factored| spectra(&net32, &in32, &cfg, false, factored, simd);
            let (explicit, factored) = (run(false), run(true));
            for ((t, e), f) in truth.iter().zip(&explicit).zip(&factored) {
                let err = |s: &Spectrum| {
                    s.exponents
                        .iter()
                        .zip(&t.exponents)
                        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs() / y.abs().max(1.0)))
                };
                let (ee, ef) = (err(e), err(f));
                sums.0 += ee;
                sums.1 += ef;
                assert!(
                    ef <= 2e-3,
                    "{kind:?} {lstm:?} N = {n} ({level}): factored error {ef:e} vs explicit {ee:e}"
                );
            }
        }
    }
    // Printed for the record (`cargo test -p le-engine --release --lib
    // factored_q_path_is_as_accurate -- --nocapture`).
    eprintln!(
        "f32 error against f64 ({level}), summed over all cases: factored {:.3e}, \
         explicit {:.3e} (ratio {:.2})",
        sums.1,
        sums.0,
        sums.1 / sums.0
    );
    assert!(
        sums.1 <= 2.0 * sums.0,
        "total error ({level}): factored {:e}, explicit {:e}",
        sums.1,
        sums.0
    );
}
