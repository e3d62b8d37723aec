//! A run folder written by an earlier release of the code (`fixtures/run-folder-cf8924d`,
//! provenance in `fixtures/README.md`: shard 0 of 2 of the tiny population, trained and
//! analysed) resumes with this release: the finished work is kept byte for byte, the other
//! shard, AeLLE and the report are done, and the result equals a fresh run of the same
//! experiment.

mod common;

use std::path::Path;

use common::{NETS, assert_same_results, run_ok, s};

/// The settings the fixture was made with.
const ARGS: [&str; 8] = [
    "--preset",
    "tiny",
    "--set",
    "spectra.lstm_state=\"h-only\"",
    "--set",
    "spectra.log_base=\"two\"",
    "--set",
    "task.normalization=\"mnist-standardized\"",
];

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

fn stage(name: &str, run_dir: &Path, extra: &[&str]) {
    let mut args = vec![name];
    args.extend(ARGS);
    args.extend(["--run-dir", s(run_dir)]);
    args.extend(extra);
    run_ok(&args);
}

#[test]
fn a_run_folder_of_the_previous_release_resumes_to_a_fresh_runs_result() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/run-folder-cf8924d");
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old");
    copy_dir(&fixture, &old);
    let kept = ["nets/lstm-000/epoch-2.safetensors", "spectra/lstm-000/epoch-2.json"];
    let before: Vec<Vec<u8>> = kept.iter().map(|f| std::fs::read(old.join(f)).unwrap()).collect();
    assert!(!old.join("nets/gru-000").exists(), "the fixture leaves the GRUs to the resume");

    // The missing shard with this release, then the whole run (which finds every network and
    // spectrum complete, and does AeLLE and the report).
    stage("sweep", &old, &["--shard", "1/2"]);
    stage("spectra", &old, &["--shard", "1/2"]);
    stage("merge", &old, &[]);
    stage("run", &old, &[]);
    for (f, bytes) in kept.iter().zip(&before) {
        assert_eq!(&std::fs::read(old.join(f)).unwrap(), bytes, "{f} was rewritten");
    }
    assert!(old.join("report/index.html").is_file());
    assert!(old.join("aelle/metrics.json").is_file());

    let fresh = dir.path().join("fresh");
    stage("run", &fresh, &[]);
    assert_same_results(&fresh, &old, &[0, 1, 2]);
    assert!(NETS.iter().all(|id| old.join("nets").join(id).join("metrics.json").is_file()));
}
