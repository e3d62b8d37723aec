//! Which images a run reads: `task.data = "auto"` (the paper preset's choice) resolves once to
//! what is on disk and `config.toml` records it; `"mnist"` without the fetched files is a
//! one-line error naming the folder and the fetch script.

mod common;

use common::{orchestrator, s};

#[test]
fn auto_data_is_resolved_and_recorded_and_missing_mnist_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("no-datasets");
    std::fs::create_dir_all(&empty).unwrap();
    let root = dir.path().join("auto");
    // The plan of the paper preset with no fetched MNIST: the embedded split, recorded.
    let out = orchestrator()
        .env("AELLE_DATASETS_DIR", &empty)
        .args(["sweep", "--preset", "tiny", "--set", "task.data=\"auto\"", "--run-dir", s(&root)])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let config = std::fs::read_to_string(root.join("config.toml")).unwrap();
    assert!(config.contains("data = \"embedded\""), "{config}");

    // Full MNIST asked for but not fetched: exit 2, the folder and the script named, no run.
    let root = dir.path().join("mnist");
    let out = orchestrator()
        .env("AELLE_DATASETS_DIR", &empty)
        .args(["sweep", "--preset", "tiny", "--set", "task.data=\"mnist\"", "--run-dir", s(&root)])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("fetch-mnist.sh") && err.contains("no-datasets"), "{err}");
    assert!(!root.join("nets").exists(), "no network may be trained without its data");

    // A bound that depends on the data: 8,001 training images do not exist in the embedded split.
    let out = orchestrator()
        .args(["run", "--preset", "tiny", "--set", "task.train_examples=8001", "--dry-run"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("task.train_examples") && err.contains("8000"), "{err}");
}
