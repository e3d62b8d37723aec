//! Every case of METHOD.md section 7: spectra the engine must reproduce, from closed forms,
//! published values and an independent eigenvalue solver (numpy/LAPACK, see the fixture).

mod common;

use aelle_support::tolerance::{Tol, assert_close};
use le_engine::systems::{CatMap, Henon, LinearMap, Logistic, Lorenz63, TanhRnn};
use le_engine::{
    InitialBasis, LogBase, Orientation, Precision, SpectrumConfig, Status, flow_spectrum,
    jacobian_sequence_spectrum, map_spectra_batch, map_spectrum,
};

fn cfg(warmup: usize, steps: usize) -> SpectrumConfig {
    SpectrumConfig { warmup, steps, ..SpectrumConfig::default() }
}

#[test]
fn linear_diagonal_map_is_exact() {
    let map = LinearMap::diagonal(&[1.1, 0.8]);
    for (steps, ons) in [(1, 1), (50, 1), (200, 7)] {
        let c = SpectrumConfig { steps, ons_interval: ons, ..cfg(0, steps) };
        let s = map_spectrum(&map, &[1.0f64, 1.0], &c).unwrap();
        assert_close("diag(1.1, 0.8)", &s.exponents, &[1.1f64.ln(), 0.8f64.ln()], Tol::abs(1e-14));
        assert!((s.mean_log_abs_det.unwrap() - 0.88f64.ln()).abs() < 1e-14);
    }
    // f32 state, f64 accumulation
    let c = SpectrumConfig { precision: Precision::F32, ..cfg(0, 300) };
    let s = map_spectrum(&map, &[1.0f32, 1.0], &c).unwrap();
    assert_close("diag(1.1, 0.8) f32", &s.exponents, &[1.1f64.ln(), 0.8f64.ln()], Tol::abs(1e-7));
    // log base 2
    let c = SpectrumConfig { log_base: LogBase::Two, ..cfg(0, 10) };
    let s = map_spectrum(&map, &[1.0f64, 1.0], &c).unwrap();
    assert_close("diag log2", &s.exponents, &[1.1f64.log2(), 0.8f64.log2()], Tol::abs(1e-14));
}

#[test]
fn logistic_map_r4_gives_ln2() {
    let s = map_spectrum(&Logistic::default(), &[0.3f64], &cfg(1000, 1_000_000)).unwrap();
    assert!(s.status.is_finite());
    // statistical error of the time average ~ 1/sqrt(T) = 1e-3
    assert!((s.exponents[0] - 2f64.ln()).abs() < 3e-3, "logistic: {}", s.exponents[0]);
    assert_eq!(s.n_positive, 1);
    // f32 orbits hit the absorbing point 0 through rounding without the guard
    let c = SpectrumConfig { precision: Precision::F32, ..cfg(1000, 1_000_000) };
    let s = map_spectrum(&Logistic::default(), &[0.3f32], &c).unwrap();
    assert!((s.exponents[0] - 2f64.ln()).abs() < 1e-2, "logistic f32: {}", s.exponents[0]);
}

#[test]
fn henon_map_spectrum_and_exact_sum() {
    let s = map_spectrum(&Henon::default(), &[0.1f64, 0.1], &cfg(1000, 1_000_000)).unwrap();
    assert_close("Henon", &s.exponents, &[0.41922, -1.62319], Tol::abs(2e-3));
    // det J = -b at every step, so the sum is ln 0.3 up to rounding.
    assert!((s.sum - 0.3f64.ln()).abs() < 1e-10, "Henon sum {} vs ln 0.3", s.sum);
    let ld = s.mean_log_abs_det.unwrap();
    assert!((ld - 0.3f64.ln()).abs() < 1e-12, "mean ln|det J| = {ld} vs {}", 0.3f64.ln());
    assert!((s.kaplan_yorke - (1.0 + s.exponents[0] / s.exponents[1].abs())).abs() < 1e-12);
    assert_eq!(s.n_positive, 1);
    assert!((s.entropy_rate - s.exponents[0]).abs() < 1e-15);
}

#[test]
fn cat_map_is_exact() {
    let want = ((3.0 + 5f64.sqrt()) / 2.0).ln();
    assert!((want - 0.9624236501).abs() < 1e-10);
    let s = map_spectrum(&CatMap, &[0.1f64, 0.2], &cfg(100, 10_000)).unwrap();
    assert_close("cat map", &s.exponents, &[want, -want], Tol::abs(1e-10));
    // constant Jacobian: the reference orientation J^T Q gives the same spectrum
    let c = SpectrumConfig { orientation: Orientation::JtQ, ..cfg(100, 10_000) };
    let s = map_spectrum(&CatMap, &[0.1f64, 0.2], &c).unwrap();
    assert_close("cat map J^T Q", &s.exponents, &[want, -want], Tol::abs(1e-10));
}

#[test]
fn lorenz63_with_rk4_tangent_dynamics() {
    // 10^6 RK4 steps of 0.01 = 10^4 time units after a warm-up of 10 time units.
    let c = SpectrumConfig { trace_every: Some(100_000), ..cfg(1000, 1_000_000) };
    let s = flow_spectrum(&Lorenz63::default(), &[1.0f64, 1.0, 1.0], 0.01, &c).unwrap();
    assert_close("Lorenz-63", &s.exponents, &[0.9056, 0.0, -14.5723], Tol::abs(0.01));
    // sum of exponents = time mean of ln|det| of the RK4 step Jacobian (exact identity), which
    // itself approximates the divergence -(sigma + 1 + beta) = -13.6667
    let ld = s.mean_log_abs_det.unwrap();
    assert!((s.sum - ld).abs() < 1e-9, "sum {} vs mean ln|det J| {ld}", s.sum);
    assert!((s.sum + 41.0 / 3.0).abs() < 1e-3, "sum {}", s.sum);
    assert_eq!(s.n_positive, 1, "{:?}", s.exponents);
    assert!((s.kaplan_yorke - 2.062).abs() < 2e-3, "D_KY = {}", s.kaplan_yorke);
    assert_eq!(s.trace.len(), 10);
    assert_eq!(s.trace.last().unwrap().exponents, s.exponents_qr_order);
}

#[test]
fn random_tanh_network_matches_eigenvalues_of_g_w() {
    let f = common::tanh_rnn_eigs();
    let net = TanhRnn::with_weights(f.n, f.g, &f.w_row_major);
    let x0: Vec<f64> = net.random_state(1).iter().map(|v| 0.1 * v).collect();
    let s = map_spectrum(&net, &x0, &cfg(500, 20_000)).unwrap();
    assert!(s.status.is_finite());
    // Converges like O(1/T) (basis alignment), plus equal moduli of complex pairs.
    assert_close("tanh(gWh), g < 1", &s.exponents, &f.log_abs_eig_sorted, Tol::abs(2e-3));
}

#[test]
fn sum_rule_holds_for_a_chaotic_network_and_a_random_sequence() {
    // g = 2: chaotic regime, Jacobians vary along the orbit.
    let net = TanhRnn::random(64, 2.0, 5);
    let x0 = net.random_state(2);
    let s = map_spectrum(&net, &x0, &cfg(200, 3000)).unwrap();
    let ld = s.mean_log_abs_det.unwrap();
    assert!(s.exponents[0] > 0.0, "g = 2 should be chaotic: {:?}", s.exponents);
    assert!((s.sum - ld).abs() <= 1e-9 * ld.abs().max(1.0), "sum {} vs {ld}", s.sum);

    // A random Jacobian sequence, both orientations.
    let (d, t) = (10, 500);
    let mut state = 12345u64;
    let mut next = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((state >> 11) as f64 / (1u64 << 53) as f64) - 0.5
    };
    let jac: Vec<f64> = (0..t * d * d).map(|_| next()).collect();
    for orientation in [Orientation::JQ, Orientation::JtQ] {
        let c = SpectrumConfig { orientation, ..cfg(0, 1) };
        let s = jacobian_sequence_spectrum(&jac, d, 1.0, &c).unwrap();
        let ld = s.mean_log_abs_det.unwrap();
        assert!((s.sum - ld).abs() < 1e-10, "{orientation:?}: sum {} vs {ld}", s.sum);
    }
}

#[test]
fn random_initial_basis_gives_the_same_spectrum() {
    let base = map_spectrum(&Henon::default(), &[0.1f64, 0.1], &cfg(1000, 200_000)).unwrap();
    let c =
        SpectrumConfig { initial_basis: InitialBasis::Random { seed: 42 }, ..cfg(1000, 200_000) };
    let s = map_spectrum(&Henon::default(), &[0.1f64, 0.1], &c).unwrap();
    // same orbit, different Q_0: after the warm-up the bases agree, so do the sums
    assert_close("random Q0", &s.exponents, &base.exponents, Tol::abs(1e-9));
}

#[test]
fn fewer_exponents_than_dimensions() {
    let c = SpectrumConfig { k: Some(1), ..cfg(1000, 100_000) };
    let s = flow_spectrum(&Lorenz63::default(), &[1.0f64, 1.0, 1.0], 0.01, &c).unwrap();
    assert_eq!(s.exponents.len(), 1);
    assert!((s.exponents[0] - 0.9056).abs() < 0.03, "{:?}", s.exponents);
    assert!(s.mean_log_abs_det.is_some());
}

#[test]
fn batch_of_initial_conditions_in_parallel() {
    let x0s: Vec<Vec<f64>> = (0..6).map(|i| vec![0.05 * i as f64, 0.1]).collect();
    let b = map_spectra_batch(&Henon::default(), &x0s, &cfg(1000, 100_000)).unwrap();
    assert_eq!(b.members.len(), 6);
    assert_eq!(b.stats.n_finite, 6);
    assert_close("Henon batch mean", &b.stats.mean, &[0.41922, -1.62319], Tol::abs(5e-3));
    assert!(b.stats.std[0] > 0.0 && b.stats.std[0] < 5e-3, "std {:?}", b.stats.std);
    // each member equals the single-trajectory call
    for (x0, m) in x0s.iter().zip(&b.members) {
        let s = map_spectrum(&Henon::default(), x0, &cfg(1000, 100_000)).unwrap();
        assert_eq!(&s, m);
    }
}

#[test]
fn divergence_is_reported_not_hidden() {
    // |lambda| = ln 1e200 per step with T_ons = 5: the un-normalised product overflows.
    let map = LinearMap::diagonal(&[1e200, 0.5]);
    let c = SpectrumConfig { ons_interval: 5, ..cfg(0, 100) };
    let s = map_spectrum(&map, &[1e-300f64, 1.0], &c).unwrap();
    match &s.status {
        Status::Diverged { step, .. } => assert!(*step < 5, "step {step}"),
        Status::Finite => panic!("overflow not detected: {:?}", s.exponents),
    }
    assert!(s.exponents.iter().all(|v| v.is_nan()), "no substituted numbers: {:?}", s.exponents);
    // a state that blows up
    let map = LinearMap::diagonal(&[1e300, 1e300]);
    let s = map_spectrum(&map, &[1e10f64, 1.0], &cfg(0, 10)).unwrap();
    assert!(matches!(s.status, Status::Diverged { step: 0, .. }), "{}", s.status);
    // a singular Jacobian: ln 0
    let s = map_spectrum(&LinearMap::diagonal(&[1.0, 0.0]), &[1.0f64, 1.0], &cfg(0, 5)).unwrap();
    assert!(!s.status.is_finite());
}

#[test]
fn configuration_errors_are_typed() {
    let e = map_spectrum(
        &Henon::default(),
        &[0.1f64, 0.1],
        &SpectrumConfig { k: Some(3), ..cfg(0, 5) },
    );
    assert!(e.unwrap_err().to_string().contains("1..=2"));
    let e = map_spectrum(&Henon::default(), &[0.1f64], &cfg(0, 5));
    assert!(e.unwrap_err().to_string().contains("initial_state"));
    let e = map_spectrum(&Henon::default(), &[0.1f32, 0.1], &cfg(0, 5));
    assert!(e.unwrap_err().to_string().contains("precision"));
    let e = map_spectrum(
        &Henon::default(),
        &[0.1f64, 0.1],
        &SpectrumConfig { ons_interval: 0, ..cfg(0, 5) },
    );
    assert!(e.unwrap_err().to_string().contains("ons_interval"));
    let e = jacobian_sequence_spectrum(&[1.0f64; 8], 2, 1.0, &cfg(2, 1));
    assert!(e.unwrap_err().to_string().contains("warm-up"));
}
