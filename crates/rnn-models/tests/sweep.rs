//! The sweep API: folder layout, metrics, divergence handling and resumption (a resumed or
//! interrupted sweep writes byte-identical checkpoints).

mod common;

use std::path::Path;

use candle_core::Device;
use common::TinyTask;
use datasets::OutputKind;
use le_engine::rnn::CellKind;
use rnn_models::{ModelError, NetMetrics, NetSpec, NetStatus, TrainConfig, run_sweep};

fn task() -> TinyTask {
    TinyTask::new(OutputKind::ClassPerSequence { num_classes: 3 }, 30, 10, 4, 3, 3)
}

fn specs() -> Vec<NetSpec> {
    let mut bad = NetSpec::new("lstm-bad", CellKind::Lstm, 6, 0.5, 1e300, 2);
    bad.num_layers = 1;
    vec![
        NetSpec::new("lstm-a", CellKind::Lstm, 6, 0.5, 0.01, 1),
        bad,
        NetSpec::new("gru-c", CellKind::Gru, 6, 0.4, 0.01, 3),
        NetSpec::new("cornn-d", CellKind::Cornn, 6, 0.4, 0.01, 4),
    ]
}

fn config(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 8,
        eval_batch_size: 10,
        grad_clip: Some(1.0),
        ..TrainConfig::default()
    }
}

fn metrics(out: &Path, id: &str) -> NetMetrics {
    serde_json::from_slice(&std::fs::read(out.join("nets").join(id).join("metrics.json")).unwrap())
        .unwrap()
}

/// Metrics without wall times and population sizes (which legitimately differ between
/// runs: a resumed group holds only the networks still training).
fn timeless(mut m: NetMetrics) -> NetMetrics {
    for e in &mut m.epochs {
        e.wall_time_s = 0.0;
        e.population_size = 0;
    }
    m
}

/// The sorted names of the checkpoint files in `dir`.
fn checkpoint_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".safetensors"))
        .collect();
    names.sort();
    names
}

fn assert_same_files(a: &Path, b: &Path, ids: &[&str]) {
    for id in ids {
        let (da, db) = (a.join("nets").join(id), b.join("nets").join(id));
        let (names, names_b) = (checkpoint_names(&da), checkpoint_names(&db));
        assert_eq!(names, names_b, "{id}: file sets differ");
        for n in &names {
            assert!(
                std::fs::read(da.join(n)).unwrap() == std::fs::read(db.join(n)).unwrap(),
                "{id}/{n} differs"
            );
        }
        assert_eq!(timeless(metrics(a, id)), timeless(metrics(b, id)), "{id}: metrics differ");
    }
}

#[test]
fn sweep_writes_layout_and_handles_divergence() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    let outcomes = run_sweep(&task(), &specs(), &config(2), out, &Device::Cpu).unwrap();
    assert_eq!(outcomes.len(), 4);
    for id in ["lstm-a", "gru-c", "cornn-d"] {
        let m = metrics(out, id);
        assert_eq!(m.status, NetStatus::Finished, "{id}");
        assert_eq!(m.epochs.iter().map(|e| e.epoch).collect::<Vec<_>>(), vec![0, 1, 2]);
        assert!(
            m.epochs
                .iter()
                .all(|e| e.test_loss.is_some_and(f64::is_finite) && e.test_accuracy.is_some())
        );
        for e in 0..=2 {
            assert!(out.join(format!("nets/{id}/epoch-{e}.safetensors")).is_file());
        }
        // only the last optimiser state is kept
        assert!(out.join(format!("nets/{id}/optimizer-2.safetensors")).is_file());
        assert!(!out.join(format!("nets/{id}/optimizer-1.safetensors")).exists());
    }
    let bad = metrics(out, "lstm-bad");
    assert_eq!(bad.status, NetStatus::Diverged);
    let d = bad.diverged_at.unwrap();
    assert_eq!((d.epoch, d.batch), (1, 1));
    assert_eq!(bad.epochs.len(), 1, "only the untrained epoch is recorded");
    assert!(out.join("nets/lstm-bad/epoch-0.safetensors").is_file());
    assert!(!out.join("nets/lstm-bad/epoch-1.safetensors").exists());
    // A rerun skips everything, diverged included.
    let again = run_sweep(&task(), &specs(), &config(2), out, &Device::Cpu).unwrap();
    assert!(again.iter().all(|o| o.resumed_from.is_some()));
    assert_eq!(again[1].status, NetStatus::Diverged);
    // The checkpoint metadata carries the training record.
    let bytes = std::fs::read(out.join("nets/gru-c/epoch-2.safetensors")).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let md = header.metadata().clone().unwrap();
    for (k, v) in [
        ("arch", "gru"),
        ("hidden_size", "6"),
        ("input_size", "3"),
        ("num_layers", "1"),
        ("bias", "true"),
        ("epoch", "2"),
        ("seed", "3"),
        ("p", "0.4"),
        ("lr", "0.01"),
    ] {
        assert_eq!(md.get(k).map(String::as_str), Some(v), "metadata {k}");
    }
    let m = metrics(out, "gru-c");
    assert_eq!(md["test_loss"].parse::<f64>().unwrap(), m.epochs[2].test_loss.unwrap());
}

#[test]
fn resumed_sweep_writes_the_same_files() {
    let full = tempfile::tempdir().unwrap();
    run_sweep(&task(), &specs(), &config(3), full.path(), &Device::Cpu).unwrap();

    // Stop after one epoch, then continue to three.
    let staged = tempfile::tempdir().unwrap();
    run_sweep(&task(), &specs(), &config(1), staged.path(), &Device::Cpu).unwrap();
    assert_eq!(metrics(staged.path(), "lstm-a").status, NetStatus::Finished);
    let outcomes = run_sweep(&task(), &specs(), &config(3), staged.path(), &Device::Cpu).unwrap();
    assert_eq!(outcomes[0].resumed_from, Some(1));
    assert_same_files(full.path(), staged.path(), &["lstm-a", "lstm-bad", "gru-c", "cornn-d"]);

    // A kill while epoch 3 was being written: half temp file, orphan garbage checkpoint.
    let killed = tempfile::tempdir().unwrap();
    run_sweep(&task(), &specs(), &config(2), killed.path(), &Device::Cpu).unwrap();
    let net = killed.path().join("nets/lstm-a");
    std::fs::write(net.join("epoch-3.safetensors.tmp"), b"half a file").unwrap();
    std::fs::write(net.join("epoch-3.safetensors"), b"garbage from a killed writer").unwrap();
    run_sweep(&task(), &specs(), &config(3), killed.path(), &Device::Cpu).unwrap();
    assert!(
        !net.join("epoch-3.safetensors.tmp").exists(),
        "the stale temp file is replaced, then renamed"
    );
    assert_same_files(full.path(), killed.path(), &["lstm-a", "lstm-bad", "gru-c", "cornn-d"]);
}

#[test]
fn sweep_rejects_bad_input_without_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let mut dup = specs();
    dup[1].id = "lstm-a".into();
    assert!(matches!(
        run_sweep(&task(), &dup, &config(1), dir.path(), &Device::Cpu),
        Err(ModelError::InvalidConfig(_))
    ));
    let mut bad_id = specs();
    bad_id[0].id = "../escape".into();
    assert!(matches!(
        run_sweep(&task(), &bad_id, &config(1), dir.path(), &Device::Cpu),
        Err(ModelError::InvalidConfig(_))
    ));
    let mut layers = specs();
    layers[0].num_layers = 4;
    assert!(run_sweep(&task(), &layers, &config(1), dir.path(), &Device::Cpu).is_err());
    let cfg = TrainConfig { batch_size: 0, ..config(1) };
    assert!(run_sweep(&task(), &specs(), &cfg, dir.path(), &Device::Cpu).is_err());
    // Changing a network's spec under the same id is refused.
    run_sweep(&task(), &specs()[..1], &config(1), dir.path(), &Device::Cpu).unwrap();
    let mut changed = specs();
    changed[0].lr = 0.02;
    assert!(matches!(
        run_sweep(&task(), &changed[..1], &config(1), dir.path(), &Device::Cpu),
        Err(ModelError::Metrics { .. })
    ));
    // A corrupt metrics file is an error naming the file.
    std::fs::write(dir.path().join("nets/lstm-a/metrics.json"), b"{not json").unwrap();
    let err = run_sweep(&task(), &specs()[..1], &config(1), dir.path(), &Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("metrics.json"), "{err}");
}

/// Issue 16 ("Also found"): a kill while a population commits epoch `e` leaves some of its
/// networks at `e`, the others at `e - 1`. The resumed sweep used to train the laggards as a
/// smaller population (`population_size` 4 -> 2, last-digit loss changes); now the ones ahead
/// roll back and the population retrains together, so every metrics.json equals the
/// uninterrupted run's, population sizes and losses exactly.
#[test]
fn regression_a_population_killed_mid_commit_resumes_to_identical_metrics() {
    let specs: Vec<NetSpec> = (0..4u64)
        .map(|k| {
            NetSpec::new(format!("lstm-{k}"), CellKind::Lstm, 6, 0.3 + 0.1 * k as f64, 0.01, k)
        })
        .collect();
    let ids: Vec<String> = specs.iter().map(|s| s.id.clone()).collect();
    let full = tempfile::tempdir().unwrap();
    run_sweep(&task(), &specs, &config(2), full.path(), &Device::Cpu).unwrap();

    // The state a kill leaves: all four committed epoch 1 (optimizer-1 kept, since the
    // population had not finished epoch 2), lstm-0 and lstm-1 also committed epoch 2.
    let killed = tempfile::tempdir().unwrap();
    let out = killed.path();
    run_sweep(&task(), &specs, &config(1), out, &Device::Cpu).unwrap();
    let snapshot = tempfile::tempdir().unwrap();
    for id in &ids {
        let (from, to) = (out.join("nets").join(id), snapshot.path().join(id));
        std::fs::create_dir_all(&to).unwrap();
        for f in ["metrics.json", "optimizer-1.safetensors"] {
            std::fs::copy(from.join(f), to.join(f)).unwrap();
        }
    }
    run_sweep(&task(), &specs, &config(2), out, &Device::Cpu).unwrap();
    for (k, id) in ids.iter().enumerate() {
        let (net, saved) = (out.join("nets").join(id), snapshot.path().join(id));
        std::fs::copy(saved.join("optimizer-1.safetensors"), net.join("optimizer-1.safetensors"))
            .unwrap();
        if k >= 2 {
            std::fs::copy(saved.join("metrics.json"), net.join("metrics.json")).unwrap();
            std::fs::remove_file(net.join("epoch-2.safetensors")).unwrap();
            std::fs::remove_file(net.join("optimizer-2.safetensors")).unwrap();
        }
    }
    assert_eq!(metrics(out, "lstm-0").status, NetStatus::Finished);
    assert_eq!(metrics(out, "lstm-3").epochs.len(), 2);
    run_sweep(&task(), &specs, &config(2), out, &Device::Cpu).unwrap();
    for id in &ids {
        let (mut a, mut b) = (metrics(full.path(), id), metrics(out, id));
        for m in [&mut a, &mut b] {
            for e in &mut m.epochs {
                e.wall_time_s = 0.0;
            }
        }
        assert_eq!(a, b, "{id}: metrics differ from the uninterrupted run");
        assert!(b.epochs.iter().all(|e| e.population_size == 4), "{id}: {:?}", b.epochs);
        let (da, db) = (full.path().join("nets").join(id), out.join("nets").join(id));
        for e in 0..=2 {
            let f = format!("epoch-{e}.safetensors");
            assert!(
                std::fs::read(da.join(&f)).unwrap() == std::fs::read(db.join(&f)).unwrap(),
                "{id}/{f}"
            );
        }
        assert!(!db.join("optimizer-1.safetensors").exists(), "{id}: stale optimizer state");
    }
}
