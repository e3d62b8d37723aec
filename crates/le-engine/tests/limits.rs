//! Issue 16: counts beyond the documented limits are refused before any work, a time step must
//! be a normal number, and an exponent that is not finite is never reported `Finite`.

use le_engine::systems::Henon;
use le_engine::{LeError, SpectrumConfig, Status, jacobian_sequence_spectrum, map_spectrum};

fn field(e: LeError) -> &'static str {
    match e {
        LeError::InvalidConfig { field, .. } => field,
        other => panic!("{other}"),
    }
}

#[test]
fn regression_steps_u64_max_is_refused_not_reported_finite() {
    let henon = Henon { a: 1.4, b: 0.3 };
    let cfg = SpectrumConfig { steps: usize::MAX, warmup: 1000, ..SpectrumConfig::default() };
    assert_eq!(field(map_spectrum::<f64, _>(&henon, &[0.1, 0.1], &cfg).unwrap_err()), "steps");
    let cfg = SpectrumConfig { warmup: usize::MAX, ..SpectrumConfig::default() };
    assert_eq!(field(cfg.validate().unwrap_err()), "warmup");
    let cfg = SpectrumConfig { k: Some(usize::MAX), ..SpectrumConfig::default() };
    assert_eq!(field(cfg.validate().unwrap_err()), "k");
    let ok = SpectrumConfig { steps: le_engine::config::MAX_STEPS, ..SpectrumConfig::default() };
    ok.validate().unwrap();
}

#[test]
fn regression_subnormal_dt_is_refused_and_infinite_exponents_are_not_finite() {
    let identity_half: Vec<f64> = [0.5, 0.0, 0.0, 0.5].repeat(3);
    let cfg = SpectrumConfig::default();
    let e = jacobian_sequence_spectrum(&identity_half, 2, 1e-310, &cfg).unwrap_err();
    assert_eq!(field(e), "dt");
    // A normal but tiny dt: ln(1e-300) / (3 x 3 x 2.2e-308) overflows to -inf.
    let tiny: Vec<f64> = [1e-300, 0.0, 0.0, 1e-300].repeat(3);
    let s = jacobian_sequence_spectrum(&tiny, 2, f64::MIN_POSITIVE, &cfg).unwrap();
    assert!(s.exponents.iter().all(|l| l.is_infinite()), "{:?}", s.exponents);
    assert!(matches!(s.status, Status::Diverged { .. }), "{:?}", s.status);
    // the same sequence with dt = 1 is finite: ln(1e-300) per step
    let s = jacobian_sequence_spectrum(&tiny, 2, 1.0, &cfg).unwrap();
    assert_eq!(s.status, Status::Finite);
    assert!((s.exponents[0] - (1e-300f64).ln()).abs() < 1e-9);
}

#[test]
fn safetensors_size_check_finds_truncated_and_extended_files() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("j.safetensors");
    le_engine::save_jacobians(&p, &[1.0, 0.0, 0.0, 1.0], 2, 1.0).unwrap();
    le_engine::tensor_data::check_safetensors_size(&p).unwrap();
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 3]).unwrap();
    let e = le_engine::tensor_data::check_safetensors_size(&p).unwrap_err().to_string();
    assert!(e.contains("j.safetensors") && e.contains("truncated"), "{e}");
    let mut longer = bytes.clone();
    longer.push(0);
    std::fs::write(&p, &longer).unwrap();
    assert!(le_engine::tensor_data::check_safetensors_size(&p).is_err());
    std::fs::write(&p, &bytes[..5]).unwrap();
    assert!(le_engine::tensor_data::check_safetensors_size(&p).is_err());
    assert!(
        le_engine::tensor_data::check_safetensors_size(std::path::Path::new("/dev/zero")).is_err()
    );
}
