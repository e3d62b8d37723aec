//! Spectra against an independent PyTorch implementation: the published algorithm
//! (`calc_LEs_an` of the AeLLE / rnn-lyapunov code, [`WarmupMode::Reference`]) and the
//! standard spectrum on PyTorch's state order.
//!
//! Provenance: the fixtures `tests/fixtures/refmode_*.safetensors` and
//! `tests/fixtures/stdorder_*.safetensors` were written by
//! `python3 scripts/reference/calc_les_reference.py` (from the repository root) with torch
//! 2.15.0+cu132 (CPU), safetensors 0.8.0, on 2026-12-07; every file's `__metadata__` records the
//! torch version, the command, the date and the case's settings. The script uses
//! `torch.nn.RNN` / `GRU` / `LSTM` modules, Jacobians by `torch.func.jacrev` of one module step
//! (LSTM h-only: `c` held fixed), `torch.linalg.qr` (LAPACK), nothing of ours.
//!
//! Cases (N = 6, I = 3, B = 3 sequences, T = 28, inputs N(0, 1) rounded to f32; weights
//! U(-0.3, 0.3) or U(-0.5, 0.5) rounded to f32, each recurrent gate block a random orthogonal
//! matrix times 1, 0.8 or 0.3, which keeps the unnormalised warm-up product well conditioned:
//! see the script): rnn, gru, lstm h-only; 1 and 2 layers; warm-up 0, 7 and 10 (< T) and 500
//! (>= T, so min(500, 28) = 28); `T_ons` = 1, 3 and 5 (5 does not divide T: the steps after the
//! last QR are dropped, as published). Each case once in f32 (the published code's precision)
//! and once in f64 (the same network and inputs).
//!
//! Tolerances (bits per step), with the deviations measured when the fixtures were made:
//! * f64: `|ours - torch| <= 1e-10`; measured at most 3.1e-12 (lstm_l1_w500_ons1), 1e-13 or
//!   less elsewhere. Both compute the same algorithm in double precision; what is left is
//!   rounding, amplified by the warm-up product's conditioning.
//! * f32: the unnormalised warm-up product amplifies f32 rounding; the script's f32 and f64 runs
//!   of the same case measure that sensitivity per exponent, `s_i = |torch_f32_i - torch_f64_i|`.
//!   We require `|ours_f32_i - torch_f32_i| <= 2e-4 + 3 s_i`: two independent f32 roundings of
//!   the same algorithm, each about `s_i` from the exact result, plus f32 noise of the
//!   well-conditioned exponents (the `2e-4` floor: relative rounding about 6e-8 per step in
//!   `log2 R_ii`, amplified by `Q`'s conditioning over up to 56 Jacobian products). Measured at
//!   most 2.1e-3 (lstm_l1_w500_ons1, 0.61 of its bound), 1e-4 or less elsewhere.
//! * the overflow case (N = 32 chaotic tanh RNN, weights U(-1.25, 1.25), T = 500, warm-up 500):
//!   in f32 the published code returns NaN and we report `Diverged` at the QR closing the
//!   warm-up; in f64 the product stays in range and both are finite with a positive leading
//!   exponent (a chaotic trajectory is not reproducible digit by digit: see the test).
//! * standard spectrum on PyTorch's state order (2-layer LSTM full `(h, c)`, flattened
//!   `[h_l0, h_l1, c_l0, c_l1]`, and 2-layer GRU; f64, `Q_0 = I`, no warm-up, `J Q`, natural log,
//!   QR every step): 1e-8 per exponent (measured 2.3e-13), and the public
//!   `Network::step_state` / `Network::jacobian_at` at one state to 1e-12 (measured 1.4e-16).

use std::collections::HashMap;
use std::path::PathBuf;

use aelle_support::tolerance::{Tol, assert_close};
use le_engine::rnn::{
    LoadOptions, LstmState, Network, RnnSpectrumConfig, WarmupMode, network_spectra,
};
use le_engine::{InitialBasis, LogBase, Orientation, Precision, Real, SpectrumConfig, Status};

/// One fixture file: its tensors as `f64` and its metadata.
struct Fixture {
    path: PathBuf,
    tensors: HashMap<String, (Vec<f64>, Vec<usize>)>,
    meta: HashMap<String, String>,
}

impl Fixture {
    fn load(name: &str) -> Self {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (_, metadata) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let meta = metadata.metadata().clone().unwrap_or_default();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let tensors = st
            .tensors()
            .into_iter()
            .map(|(name, v)| {
                let data = match v.dtype() {
                    safetensors::Dtype::F64 => v
                        .data()
                        .chunks_exact(8)
                        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                        .collect(),
                    safetensors::Dtype::F32 => v
                        .data()
                        .chunks_exact(4)
                        .map(|c| f64::from(f32::from_le_bytes(c.try_into().unwrap())))
                        .collect(),
                    other => panic!("{name}: unexpected dtype {other:?}"),
                };
                (name, (data, v.shape().to_vec()))
            })
            .collect();
        assert!(meta.get("torch_version").is_some_and(|v| !v.is_empty()), "{name}: provenance");
        assert!(
            meta.get("generator").is_some_and(|g| g.contains("calc_les_reference.py")),
            "{name}: generator"
        );
        Self { path, tensors, meta }
    }

    fn tensor(&self, name: &str) -> &(Vec<f64>, Vec<usize>) {
        &self.tensors[name]
    }

    fn usize(&self, key: &str) -> usize {
        self.meta[key].parse().unwrap()
    }
}

/// Our spectra of a reference fixture, in the precision `T` of its file: `[B][D]` in QR order,
/// with each sequence's status.
fn reference_spectra<T: Real>(f: &Fixture) -> Vec<(Vec<f64>, Status)> {
    let net = Network::<T>::load(&f.path, &LoadOptions::default()).unwrap();
    let (inputs, shape) = f.tensor("inputs");
    let inputs: Vec<T> = inputs.iter().map(|&v| T::from_f64(v)).collect();
    let mut cfg = RnnSpectrumConfig::reference(None, Some(f.usize("warmup")));
    cfg.spectrum.ons_interval = f.usize("ons");
    cfg.spectrum.precision = if T::NAME == "f64" { Precision::F64 } else { Precision::F32 };
    assert_eq!(cfg.warmup_mode, WarmupMode::Reference);
    assert_eq!(cfg.lstm_state, LstmState::HOnly);
    network_spectra(&net, &inputs, shape[0], shape[1], &cfg)
        .unwrap()
        .into_iter()
        .map(|s| (s.exponents_qr_order, s.status))
        .collect()
}

fn rows(f: &Fixture, name: &str) -> Vec<Vec<f64>> {
    let (v, shape) = f.tensor(name);
    v.chunks_exact(shape[1]).map(<[f64]>::to_vec).collect()
}

const REFERENCE_CASES: [&str; 10] = [
    "rnn_l1_w0_ons1",
    "rnn_l1_w10_ons1",
    "rnn_l2_w500_ons3",
    "gru_l1_w500_ons1",
    "gru_l2_w10_ons3",
    "gru_l2_w500_ons1",
    "lstm_l1_w0_ons3",
    "lstm_l1_w500_ons1",
    "lstm_l2_w500_ons3",
    "lstm_l1_w7_ons5",
];

#[test]
fn reference_mode_matches_the_published_algorithm_in_f64() {
    for case in REFERENCE_CASES {
        let f = Fixture::load(&format!("refmode_{case}_f64.safetensors"));
        assert_eq!(f.meta["kind"], "reference");
        let want = rows(&f, "exponents");
        for (b, ((got, status), want)) in reference_spectra::<f64>(&f).iter().zip(&want).enumerate()
        {
            assert_eq!(*status, Status::Finite, "{case} sequence {b}");
            assert_close(&format!("{case} f64 sequence {b}"), got, want, Tol::abs(1e-10));
        }
    }
}

#[test]
fn reference_mode_matches_the_published_algorithm_in_f32() {
    for case in REFERENCE_CASES {
        let f32_file = Fixture::load(&format!("refmode_{case}_f32.safetensors"));
        let f64_file = Fixture::load(&format!("refmode_{case}_f64.safetensors"));
        let (want, exact) = (rows(&f32_file, "exponents"), rows(&f64_file, "exponents"));
        let got = reference_spectra::<f32>(&f32_file);
        for (b, (got, status)) in got.iter().enumerate() {
            assert_eq!(*status, Status::Finite, "{case} sequence {b}");
            for (i, &g) in got.iter().enumerate() {
                let sensitivity = (want[b][i] - exact[b][i]).abs();
                let tol = Tol::abs(2e-4 + 3.0 * sensitivity);
                assert_close(
                    &format!("{case} f32 sequence {b} exponent {i}"),
                    &[g],
                    &[want[b][i]],
                    tol,
                );
            }
        }
    }
}

#[test]
fn reference_warmup_overflow_is_reported_not_hidden() {
    // f32: the published code's exponents are NaN (the warm-up product left the f32 range
    // before its QR); we report every sequence diverged at the QR closing the warm-up.
    let f = Fixture::load("refmode_rnn_l1_overflow_f32.safetensors");
    assert!(f.tensor("exponents").0.iter().all(|v| !v.is_finite()));
    let warmup = f.usize("warmup").min(f.usize("steps"));
    for (b, (got, status)) in reference_spectra::<f32>(&f).iter().enumerate() {
        assert!(got.iter().all(|v| v.is_nan()), "sequence {b}: {got:?}");
        let Status::Diverged { step, reason } = status else {
            panic!("sequence {b}: expected a divergence, got {status:?}");
        };
        assert_eq!(*step, warmup - 1, "sequence {b}: {reason}");
        assert!(
            reason.contains("warm-up product") && reason.contains("overflowed f32"),
            "sequence {b}: {reason}"
        );
    }
    // f64: the product stays in range and both implementations are finite, with the positive
    // leading exponent of a chaotic network. Not compared digit by digit: with a positive
    // exponent the state trajectories themselves separate by rounding (about 2^-52 growing
    // like 2^(0.3 s) over 1000 steps), in any two implementations.
    let f = Fixture::load("refmode_rnn_l1_overflow_f64.safetensors");
    let want = rows(&f, "exponents");
    for (b, (got, status)) in reference_spectra::<f64>(&f).iter().enumerate() {
        assert_eq!(*status, Status::Finite, "sequence {b}");
        assert!(want[b].iter().all(|v| v.is_finite()), "sequence {b}: {:?}", want[b]);
        assert!(got[0] > 0.0 && want[b][0] > 0.0, "sequence {b}: {} and {}", got[0], want[b][0]);
    }
}

#[test]
fn standard_spectrum_uses_pytorch_state_order() {
    for case in ["lstm_l2", "gru_l2"] {
        let f = Fixture::load(&format!("stdorder_{case}_f64.safetensors"));
        assert_eq!(f.meta["kind"], "standard");
        let net = Network::<f64>::load(&f.path, &LoadOptions::default()).unwrap();
        // the public state API in PyTorch's order: [h_l0, h_l1, c_l0, c_l1] for the LSTM
        let x = &f.tensor("state_t").0;
        let u = &f.tensor("input_t").0;
        let next = net.step_state(x, u).unwrap();
        assert_close(
            &format!("{case} step_state"),
            &next,
            &f.tensor("state_next").0,
            Tol::abs(1e-12),
        );
        let jac = net.jacobian_at(x, u, LstmState::Full).unwrap();
        assert_close(
            &format!("{case} jacobian_at"),
            &jac,
            &f.tensor("jacobian_t").0,
            Tol::abs(1e-12),
        );
        // the spectrum with Q_0 = I in PyTorch's coordinates
        let (inputs, shape) = f.tensor("inputs");
        let cfg = RnnSpectrumConfig {
            spectrum: SpectrumConfig {
                warmup: 0,
                ons_interval: 1,
                orientation: Orientation::JQ,
                log_base: LogBase::E,
                initial_basis: InitialBasis::Identity,
                precision: Precision::F64,
                log_det: false,
                ..SpectrumConfig::default()
            },
            lstm_state: LstmState::Full,
            warmup_mode: WarmupMode::Tangent,
        };
        let got = network_spectra(&net, inputs, shape[0], shape[1], &cfg).unwrap();
        for (b, (s, want)) in got.iter().zip(rows(&f, "exponents")).enumerate() {
            assert_eq!(s.status, Status::Finite);
            assert_close(
                &format!("{case} sequence {b}"),
                &s.exponents_qr_order,
                &want,
                Tol::abs(1e-8),
            );
        }
    }
}
