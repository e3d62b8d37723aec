//! Helpers of the orchestrator's end-to-end tests: running the binary, and the numbers two
//! runs of one experiment must agree on.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

use aelle_support::tolerance::Tol;

pub fn orchestrator() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_orchestrator"));
    c.env("RUST_LOG", "warn").env_remove("SLURM_ARRAY_TASK_ID").env_remove("JOB_COMPLETION_INDEX");
    c
}

pub fn run_ok(args: &[&str]) -> Output {
    let out = orchestrator().args(args).output().expect("spawn orchestrator");
    assert!(
        out.status.success(),
        "orchestrator {args:?} failed ({:?}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn run_err(args: &[&str]) -> (i32, String) {
    let out = orchestrator().args(args).output().expect("spawn orchestrator");
    assert!(!out.status.success(), "orchestrator {args:?} succeeded but should have failed");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Path of a le-engine test fixture (PyTorch-produced weights and inputs).
pub fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../le-engine/tests/fixtures")
        .join(name)
        .to_str()
        .unwrap()
        .to_string()
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

pub const NETS: [&str; 12] = [
    "lstm-000", "lstm-001", "lstm-002", "lstm-003", "gru-000", "gru-001", "gru-002", "gru-003",
    "rnn-000", "rnn-001", "rnn-002", "rnn-003",
];

/// Numbers of a metrics.json that must agree between two runs of the same experiment.
pub fn metrics_numbers(path: &Path) -> Vec<f64> {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let mut out = Vec::new();
    for e in v["epochs"].as_array().unwrap() {
        for k in ["train_loss", "test_loss", "test_accuracy"] {
            out.push(e[k].as_f64().unwrap_or(f64::NAN));
        }
    }
    out
}

pub fn spectrum_means(path: &Path) -> Vec<f64> {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    v["mean"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap_or(f64::NAN)).collect()
}

/// Float agreement between two runs of the same work: batched training equals per-network
/// training "up to float rounding" (rnn-models), so allow a few f32 ulps of accumulated error.
pub const RUN_TO_RUN: Tol = Tol::abs_rel(1e-5, 1e-5).nan_equal();

/// Asserts that two runs of the same work gave the same numbers ([`RUN_TO_RUN`]).
pub fn assert_close(a: &[f64], b: &[f64], what: &str) {
    aelle_support::tolerance::assert_close(what, a, b, RUN_TO_RUN);
}

pub fn assert_same_results(a: &Path, b: &Path, epochs: &[u32]) {
    for id in NETS {
        assert_close(
            &metrics_numbers(&a.join("nets").join(id).join("metrics.json")),
            &metrics_numbers(&b.join("nets").join(id).join("metrics.json")),
            &format!("{id} metrics"),
        );
        for e in epochs {
            let f = format!("epoch-{e}.json");
            assert_close(
                &spectrum_means(&a.join("spectra").join(id).join(&f)),
                &spectrum_means(&b.join("spectra").join(id).join(&f)),
                &format!("{id} spectrum {f}"),
            );
        }
    }
}
