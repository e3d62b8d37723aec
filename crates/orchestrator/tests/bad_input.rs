//! Issue 16: bad input never aborts, hangs or wastes hours. Each case the issue lists is a
//! named regression test run against the release binary: exit code 2, one line naming the key
//! (or flag), the value and the allowed range, before any work; and the run-folder lock (two
//! processes on one folder: one works, the other is refused naming its pid; a killed holder
//! never blocks a rerun).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{fixture, orchestrator, s};

/// Expects exit 2 with one line containing every needle (a refusal, not a panic or an abort).
fn refused(args: &[&str], needles: &[&str]) {
    refused_with_env(args, &[], needles);
}

fn refused_with_env(args: &[&str], env: &[(&str, &str)], needles: &[&str]) {
    let mut c = orchestrator();
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("spawn orchestrator");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {:?}: {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{args:?}: one line expected: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "{args:?}: `{n}` missing from: {stderr}");
    }
}

fn lstm() -> String {
    fixture("torch_lstm_l1_bias.safetensors")
}

// ---- spectrum: CLI sizes --------------------------------------------------------------

#[test]
fn regression_inputs_random_u64_max_is_refused_not_a_panic() {
    refused(
        &["spectrum", "--weights", &lstm(), "--inputs-random", "18446744073709551615,2"],
        &["--inputs-random", "18446744073709551615"],
    );
}

#[test]
fn regression_inputs_random_beyond_memory_is_refused_with_the_estimate() {
    refused(
        &["spectrum", "--weights", &lstm(), "--inputs-random", "100000000,100000000"],
        &["--inputs-random", "needs"],
    );
    // 1,000,000 x 1,000 x I = 5 inputs in f64 and f32: about 120 GiB; refused on a machine
    // (declared) with 8 GiB, with the estimate in the message.
    refused_with_env(
        &["spectrum", "--weights", &lstm(), "--inputs-random", "1000000,1000"],
        &[("AELLE_MEMORY_BYTES", "8589934592")],
        &["--inputs-random 1000000,1000", "needs about", "GiB", "8.0 GiB"],
    );
}

#[test]
fn regression_device_and_missing_inputs_exit_2() {
    refused(
        &["spectrum", "--weights", &lstm(), "--inputs", "/dev/zero"],
        &["/dev/zero", "not a regular file"],
    );
    refused(
        &["spectrum", "--weights", &lstm(), "--inputs", "/nonexistent/in.safetensors"],
        &["/nonexistent/in.safetensors", "cannot read"],
    );
    refused(&["spectrum", "--weights", "/dev/zero", "--inputs-random", "2,5"], &["/dev/zero"]);
    refused(&["spectrum", "--jacobians", "/dev/zero"], &["/dev/zero"]);
}

#[test]
fn regression_steps_u64_max_is_refused_not_reported_finite() {
    refused(&["spectrum", "--system", "henon", "--steps", "18446744073709551615"], &["steps"]);
    refused(&["spectrum", "--system", "henon", "--warmup", "18446744073709551615"], &["warmup"]);
}

#[test]
fn regression_subnormal_dt_is_refused() {
    refused(&["spectrum", "--system", "lorenz63", "--dt", "1e-310", "--steps", "10"], &["dt"]);
}

#[test]
fn regression_huge_batch_and_k_are_refused() {
    refused(
        &["spectrum", "--system", "henon", "--batch", "18446744073709551615"],
        &["--batch", "needs"],
    );
    refused(&["spectrum", "--system", "henon", "--k", "18446744073709551615"], &["k"]);
    refused(
        &[
            "spectrum",
            "--weights",
            &lstm(),
            "--inputs-random",
            "2,5",
            "--k",
            "18446744073709551615",
        ],
        &["k"],
    );
}

// ---- the experiment config: one validation pass before any work ----------------------

/// Every way a config is used must refuse it: `--dry-run`, `--print-config` and a real stage
/// (which must stop before training).
fn refused_everywhere(set: &str, needles: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("run");
    for mode in [&["run", "--dry-run"][..], &["run", "--print-config"], &["sweep"], &["run"]] {
        let mut args: Vec<&str> = mode.to_vec();
        args.extend(["--preset", "tiny", "--run-dir", s(&root), "--set", set]);
        refused(&args, needles);
    }
    assert!(!root.join("nets").exists(), "{set}: work was done before the refusal");
}

#[test]
fn regression_tsne_perplexity_nan_negative_zero() {
    for v in ["nan", "-1", "0"] {
        refused_everywhere(
            &format!("aelle.embedding.tsne.perplexity={v}"),
            &["aelle.embedding.tsne.perplexity", ">= 1"],
        );
    }
}

#[test]
fn regression_tsne_early_exaggeration_inf() {
    refused_everywhere(
        "aelle.embedding.tsne.early_exaggeration=inf",
        &["aelle.embedding.tsne.early_exaggeration", "got inf"],
    );
}

#[test]
fn regression_tsne_iterations_without_end() {
    refused_everywhere(
        "aelle.embedding.tsne.iterations=1000000000",
        &["aelle.embedding.tsne.iterations", "1 ..= 100000", "1000000000"],
    );
}

#[test]
fn regression_evaluation_point_beyond_the_epochs() {
    refused_everywhere(
        "aelle.evaluation.points=[{epoch=99}]",
        &["aelle.evaluation.points", "epoch = 99", "training.epochs = 2"],
    );
}

#[test]
fn regression_evaluation_points_empty() {
    refused_everywhere("aelle.evaluation.points=[]", &["aelle.evaluation.points", "[]"]);
}

#[test]
fn regression_unknown_key_inside_an_alpha_stage() {
    refused_everywhere("aelle.autoencoder.alpha_stages=[{alpha=1.0,epochs=1,zzz=1}]", &["zzz"]);
    // and in a config file, with its name
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, "[[aelle.autoencoder.alpha_stages]]\nalpha = 1.0\nepochs = 1\nzzz = 1\n")
        .unwrap();
    refused(&["run", "--dry-run", "--preset", "tiny", "--config", s(&file)], &["c.toml", "zzz"]);
}

#[test]
fn regression_batch_sizes_2_pow_63() {
    refused_everywhere(
        "training.batch_size=9223372036854775807",
        &["training.batch_size", "1 ..= 256", "9223372036854775807"],
    );
    refused_everywhere(
        "aelle.autoencoder.batch_size=9223372036854775807",
        &["aelle.autoencoder.batch_size", "9223372036854775807"],
    );
}

#[test]
fn regression_training_learning_rate_1e308() {
    refused_everywhere("training.learning_rate=1e308", &["training.learning_rate", "(0, 1]"]);
}

#[test]
fn regression_spectra_warmup_beyond_t_is_refused_before_training() {
    refused_everywhere("spectra.warmup=100000", &["spectra.warmup", "T = 28", "100000"]);
    refused_everywhere("spectra.warmup=28", &["spectra.warmup", "0 ..= 27"]);
}

#[test]
fn regression_latent_dim_and_feature_length_1e9() {
    refused_everywhere(
        "aelle.autoencoder.latent_dim=1000000000",
        &["aelle.autoencoder.latent_dim", "1000000000"],
    );
    refused_everywhere(
        "aelle.features.length=1000000000",
        &["aelle.features.length", "1000000000"],
    );
}

#[test]
fn a_model_beyond_the_machine_memory_is_refused_with_the_estimate() {
    // Each size within its range, the whole beyond 1 GiB: the estimate is in the message.
    let dir = tempfile::tempdir().unwrap();
    refused_with_env(
        &[
            "run",
            "--dry-run",
            "--preset",
            "tiny",
            "--run-dir",
            s(&dir.path().join("r")),
            "--set",
            "aelle.features.length=65536",
            "--set",
            "aelle.autoencoder.hidden_width=65536",
        ],
        &[("AELLE_MEMORY_BYTES", "1073741824")],
        &["aelle", "needs about", "GiB", "1.0 GiB"],
    );
}

#[test]
fn an_invalid_config_in_a_run_folder_is_refused_by_every_stage() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("run");
    // A valid folder, then its config.toml edited by hand.
    let out = orchestrator()
        .args(["run", "--preset", "tiny", "--run-dir", s(&root), "--print-config"])
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::create_dir_all(&root).unwrap();
    let text =
        String::from_utf8(out.stdout).unwrap().replace("perplexity = 10.0", "perplexity = nan");
    assert!(text.contains("perplexity = nan"));
    std::fs::write(root.join("config.toml"), text).unwrap();
    for stage in ["sweep", "spectra", "aelle", "report", "run"] {
        refused(
            &[stage, "--run-dir", s(&root)],
            &["config.toml", "aelle.embedding.tsne.perplexity"],
        );
    }
}

// ---- the run-folder lock ---------------------------------------------------------------

fn wait_for_pid_in(lock: &Path, limit: Duration) -> Option<String> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if let Ok(s) = std::fs::read_to_string(lock)
            && !s.trim().is_empty()
        {
            return Some(s.trim().to_string());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn a_second_process_on_a_run_folder_is_refused_naming_the_holder_and_a_killed_one_never_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("run");
    let args = |stage: &str| -> Vec<String> {
        [stage, "--preset", "tiny", "--workers", "1", "--set", "training.epochs=3", "--run-dir"]
            .iter()
            .map(ToString::to_string)
            .chain([s(&root).to_string()])
            .collect()
    };
    let mut first = orchestrator().args(args("sweep")).spawn().unwrap();
    let pid = wait_for_pid_in(&root.join(".lock"), Duration::from_secs(60)).expect("no lock");
    assert_eq!(pid, first.id().to_string());
    // A second sweep (and any other stage) on the same folder: exit 2 naming the holder.
    for stage in ["sweep", "run", "aelle"] {
        refused(
            &args(stage).iter().map(String::as_str).collect::<Vec<_>>(),
            &["in use by process", &pid],
        );
    }
    // Read-only commands still work.
    let out = orchestrator().args(args("run")).arg("--dry-run").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let killed = first.try_wait().unwrap().is_none();
    if killed {
        Command::new("kill").args(["-KILL", &pid]).status().unwrap();
    }
    first.wait().unwrap();
    // The lock file stays, the lock does not: the next stage gets past it (merge then says
    // what is missing, not who holds the folder).
    let out = orchestrator().args(args("merge")).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("in use"), "{stderr}");
    if killed {
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("incomplete run"), "{stderr}");
    }
}

// ---- resume checks what it skips ------------------------------------------------------

#[test]
fn regression_resume_checks_skipped_files_and_corrupt_ones_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("run");
    let run = |stage: &str| {
        orchestrator().args([stage, "--preset", "tiny", "--run-dir", s(&root)]).output().unwrap()
    };
    let out = run("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let driving = root.join("spectra/driving.safetensors");
    let rows = root.join("aelle/rows.json");
    let (driving_bytes, rows_bytes) =
        (std::fs::read(&driving).unwrap(), std::fs::read(&rows).unwrap());
    // Truncated copies of files a rerun skips are noticed and rewritten; a stale temporary
    // file of a killed writer is removed.
    std::fs::write(&driving, &driving_bytes[..driving_bytes.len() / 2]).unwrap();
    std::fs::write(&rows, &rows_bytes[..rows_bytes.len() / 2]).unwrap();
    let tmp = root.join("nets/lstm-000/metrics.json.tmp");
    std::fs::write(&tmp, b"{\"half").unwrap();
    let out = run("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let load = |p: &Path| datasets::DrivingSequences::load_safetensors(p).unwrap();
    std::fs::write(dir.path().join("original.safetensors"), &driving_bytes).unwrap();
    assert!(
        load(&driving) == load(&dir.path().join("original.safetensors")),
        "driving not restored"
    );
    assert!(std::fs::read(&rows).unwrap() == rows_bytes, "rows.json not restored");
    assert!(!tmp.exists(), "stale temporary file left");
    // A truncated checkpoint whose spectrum exists: named, exit 2, with what to do.
    let ckpt = root.join("nets/lstm-001/epoch-1.safetensors");
    let ckpt_bytes = std::fs::read(&ckpt).unwrap();
    std::fs::write(&ckpt, &ckpt_bytes[..ckpt_bytes.len() - 10]).unwrap();
    let out = run("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("lstm-001/epoch-1.safetensors") && stderr.contains("corrupt"),
        "{stderr}"
    );
    std::fs::write(&ckpt, &ckpt_bytes).unwrap();
    // A truncated metrics.json: exit 2 naming it (was 1).
    let metrics = root.join("nets/gru-000/metrics.json");
    let m = std::fs::read(&metrics).unwrap();
    std::fs::write(&metrics, &m[..m.len() / 2]).unwrap();
    for stage in ["sweep", "run"] {
        let out = run(stage);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stage}: {stderr}");
        assert!(stderr.contains("gru-000/metrics.json"), "{stage}: {stderr}");
    }
}
