//! End-to-end tests of the experiment stages on the tiny preset (12 networks of N = 8, 2
//! epochs, 256 training images): run folder contents, report tables, resumability after a
//! kill and after Ctrl-C, sharding equivalence, and bad input.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    NETS, assert_close, assert_same_results, metrics_numbers, orchestrator, run_err, run_ok, s,
};

#[test]
fn tiny_run_writes_the_run_folder_and_a_report_with_its_tables() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tiny");
    let out = run_ok(&["run", "--preset", "tiny", "--run-dir", s(&root)]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("report/index.html"));

    // Run folder layout (ARCHITECTURE.md).
    let config = std::fs::read_to_string(root.join("config.toml")).unwrap();
    assert!(
        config.contains("name = \"tiny\"")
            && config.contains("[population]")
            && config.contains("[aelle")
    );
    assert!(root.join("spectra/driving.safetensors").is_file());
    for id in NETS {
        for e in 0..=2 {
            assert!(
                root.join(format!("nets/{id}/epoch-{e}.safetensors")).is_file(),
                "{id} epoch {e}"
            );
            let rec: serde_json::Value = serde_json::from_slice(
                &std::fs::read(root.join(format!("spectra/{id}/epoch-{e}.json"))).unwrap(),
            )
            .unwrap();
            assert_eq!(rec["network_id"], id);
            assert_eq!(rec["per_sequence"].as_array().unwrap().len(), 4, "B = 4 driving sequences");
        }
        let m: serde_json::Value = serde_json::from_slice(
            &std::fs::read(root.join(format!("nets/{id}/metrics.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(m["epochs"].as_array().unwrap().len(), 3);
    }
    for f in [
        "aelle/metrics.json",
        "aelle/model.safetensors",
        "aelle/model.json",
        "aelle/rows.json",
        "aelle/crossval.json",
        "aelle/pretrained/model.safetensors",
        "aelle/pretrained/model.readout.json",
    ] {
        assert!(root.join(f).is_file(), "{f}");
    }
    let figures = ["accuracy", "spectra", "lambda-max-vs-p", "latent-pca", "latent-tsne"];
    for f in figures {
        let png = std::fs::read(root.join(format!("report/{f}.png"))).unwrap();
        assert_eq!(&png[1..4], b"PNG", "{f}.png");
        let svg = std::fs::read_to_string(root.join(format!("report/{f}.svg"))).unwrap();
        assert!(svg.starts_with("<svg") || svg.contains("<svg"), "{f}.svg");
    }

    // Pipelined, not stage after stage: the first spectra were written before the last
    // network finished training.
    let mtime = |p: PathBuf| std::fs::metadata(p).unwrap().modified().unwrap();
    let first_spectrum = NETS
        .iter()
        .flat_map(|id| {
            let root = &root;
            (0..=2).map(move |e| root.join(format!("spectra/{id}/epoch-{e}.json")))
        })
        .map(mtime)
        .min()
        .unwrap();
    let last_trained =
        NETS.iter().map(|id| mtime(root.join(format!("nets/{id}/metrics.json")))).max().unwrap();
    assert!(first_spectrum < last_trained, "spectra only started after all training ended");

    // The report's tables.
    let md = std::fs::read_to_string(root.join("report/summary.md")).unwrap();
    assert!(md.contains("## Final test accuracy per cell"));
    for arch in ["lstm", "gru", "rnn"] {
        assert!(
            md.lines().any(|l| l.starts_with(&format!("| {arch} | 4 |"))),
            "accuracy row of {arch}:\n{md}"
        );
    }
    assert!(md.contains("## Single split: AeLLE vs loss-based classifier"));
    let single = &md[md.find("## Single split").unwrap()..];
    for point in ["epoch 0", "epoch 1", "epoch 2"] {
        let row = single
            .lines()
            .find(|l| l.starts_with(&format!("| {point} |")))
            .unwrap_or_else(|| panic!("{point}:\n{md}"));
        // 12 columns: point, test networks, 4 AeLLE, 4 loss-based, 2 published
        assert_eq!(row.matches('|').count(), 13, "{row}");
    }
    let html = std::fs::read_to_string(root.join("report/index.html")).unwrap();
    assert_eq!(html.matches("src=\"data:image/png;base64,").count(), figures.len());
    assert!(html.contains("<table id=\"early\">") && html.contains("<table id=\"accuracy\">"));
    // The tiny preset evaluates at epochs, not at the published fractions: its published
    // columns say n/a (the default experiment's carry 92.2 etc., checked in the unit tests).
    assert!(html.contains("published AeLLE") && html.contains("<td class=pub>n/a</td>"));
    assert!(html.contains("<table id=\"timings\">") && html.contains("sweep+spectra"));

    // A rerun finds everything done and changes no result.
    let ckpt = root.join("nets/lstm-000/epoch-2.safetensors");
    let before = std::fs::metadata(&ckpt).unwrap().modified().unwrap();
    let aelle_before = std::fs::read(root.join("aelle/metrics.json")).unwrap();
    run_ok(&["run", "--preset", "tiny", "--run-dir", s(&root)]);
    assert_eq!(std::fs::metadata(&ckpt).unwrap().modified().unwrap(), before);
    assert_eq!(std::fs::read(root.join("aelle/metrics.json")).unwrap(), aelle_before);

    // The stages alone, on the existing folder, use its config.toml.
    run_ok(&["merge", "--run-dir", s(&root)]);
    run_ok(&["report", "--run-dir", s(&root)]);
}

/// The `value [low, high]` cells of a Markdown table row (after the first `skip` cells).
fn intervals_in(row: &str, skip: usize) -> Vec<(f64, f64, f64)> {
    row.split('|')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .skip(skip)
        .map(|c| {
            // `value [low, high]`, then the spread over repeats ` (min–max)` where they differ.
            let interval = c.split(" (").next().unwrap_or(c);
            let nums: Vec<f64> = interval
                .split(|ch: char| ch == '[' || ch == ']' || ch == ',' || ch.is_whitespace())
                .filter_map(|t| t.parse().ok())
                .collect();
            assert_eq!(nums.len(), 3, "cell {c:?} of {row}");
            (nums[0], nums[1], nums[2])
        })
        .collect()
}

#[test]
fn the_report_shows_cross_validated_intervals_and_a_transfer_next_to_them() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    run_ok(&["run", "--preset", "tiny", "--run-dir", s(&a)]);
    run_ok(&["run", "--preset", "tiny", "--seed", "5", "--name", "b", "--run-dir", s(&b)]);

    let cv: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.join("aelle/crossval.json")).unwrap()).unwrap();
    assert_eq!(cv["networks"].as_array().unwrap().len(), 12);
    assert_eq!(cv["folds"].as_array().unwrap().len(), 5 * 3, "5 folds x 3 repeats");
    let md = std::fs::read_to_string(a.join("report/summary.md")).unwrap();
    let section = &md[md.find("## Early prediction, cross-validated").expect("CV section")..];
    let auroc = &section[section.find("### AUROC").unwrap()..];
    for point in ["epoch 0", "epoch 1", "epoch 2"] {
        let row = auroc.lines().find(|l| l.starts_with(&format!("| {point} |"))).unwrap();
        // point, networks, high, then six `value [low, high]` AUROCs.
        let cells = intervals_in(row, 3);
        assert_eq!(cells.len(), 6, "{row}");
        for (v, lo, hi) in cells {
            assert!((0.0..=1.0).contains(&v) && lo <= v + 1e-9 && v <= hi + 1e-9, "{row}");
        }
    }
    assert!(section.contains("### Paired AUROC differences"));
    assert!(section.contains("### Within cells"));
    assert!(section.contains("shuffled-label control"));
    assert!(section.contains("hyperparameters only"));
    let html = std::fs::read_to_string(a.join("report/index.html")).unwrap();
    for id in ["cv-auroc", "cv-precision-recall", "cv-comparisons", "cv-within-cell"] {
        assert!(html.contains(&format!("<table id=\"{id}\">")), "{id}");
    }
    assert!(html.contains("<ul id=\"conclusions\">"));

    // Transfer a's pre-trained model to b: a file in b and a table in b's report.
    let out = run_ok(&["transfer", "--model", s(&a), "--run-dir", s(&b)]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("transfer/tiny.json"));
    let t: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.join("transfer/tiny.json")).unwrap()).unwrap();
    assert_eq!(t["model_fitted_networks"], 12);
    let md = std::fs::read_to_string(b.join("report/summary.md")).unwrap();
    let section = &md[md.find("## Transfer: the pre-trained AeLLE of `tiny`").expect("transfer")..];
    for point in ["epoch 0", "epoch 1", "epoch 2"] {
        let row = section.lines().find(|l| l.starts_with(&format!("| {point} |"))).unwrap();
        assert_eq!(intervals_in(row, 1).len(), 5, "in-population CV and 4 transfer columns: {row}");
    }
    assert!(
        std::fs::read_to_string(b.join("report/index.html"))
            .unwrap()
            .contains("<table id=\"transfer\">")
    );

    // Bad sources are one-line usage errors.
    let (code, err) =
        run_err(&["transfer", "--model", s(&dir.path().join("nope")), "--run-dir", s(&b)]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no pre-trained AeLLE model"), "{err}");
    let (code, err) = run_err(&["transfer", "--model", s(&a), "--run-dir", s(dir.path())]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not a run folder"), "{err}");
}

#[test]
fn dry_run_prints_the_plan_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("plan");
    let out = run_ok(&["run", "--preset", "tiny", "--run-dir", s(&root), "--dry-run"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("networks         12 in 3 training units"), "{text}");
    assert!(text.contains("checkpoints      36"), "{text}");
    assert!(text.contains("spectra          36"), "{text}");
    assert!(text.contains("estimated time"), "{text}");
    assert!(!root.exists());
    let out = run_ok(&["run", "--dry-run", "--run-dir", s(&root)]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("networks         200 in 50 training units"), "{text}");
    assert!(text.contains("spectra          1000 at epochs [0, 1, 2, 5, 10]"), "{text}");
}

#[test]
fn shards_together_equal_an_unsharded_run_and_merge_names_a_missing_shard() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole");
    let parts = dir.path().join("parts");
    run_ok(&["sweep", "--preset", "tiny", "--run-dir", s(&whole)]);
    run_ok(&["spectra", "--preset", "tiny", "--run-dir", s(&whole)]);
    run_ok(&["merge", "--preset", "tiny", "--run-dir", s(&whole)]);

    for i in [0, 2] {
        let shard = format!("{i}/3");
        run_ok(&["sweep", "--preset", "tiny", "--run-dir", s(&parts), "--shard", &shard]);
        run_ok(&["spectra", "--preset", "tiny", "--run-dir", s(&parts), "--shard", &shard]);
    }
    let (code, err) = run_err(&["merge", "--preset", "tiny", "--run-dir", s(&parts)]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("shard(s) 1/3") && err.contains("gru-000"), "{err}");
    // aelle refuses an incomplete run and writes nothing
    let (code, err) = run_err(&["aelle", "--preset", "tiny", "--run-dir", s(&parts)]);
    assert_eq!(code, 2, "{err}");
    assert!(!parts.join("aelle/metrics.json").exists());
    // the missing shard via the Slurm variable
    let out = orchestrator()
        .args(["sweep", "--preset", "tiny", "--run-dir", s(&parts), "--shard", "auto/3"])
        .env("SLURM_ARRAY_TASK_ID", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    run_ok(&["spectra", "--preset", "tiny", "--run-dir", s(&parts), "--shard", "1/3"]);
    run_ok(&["merge", "--preset", "tiny", "--run-dir", s(&parts)]);
    assert!(parts.join("shards/sweep-shard-1-of-3.json").is_file());
    assert_same_results(&whole, &parts, &[0, 1, 2]);
}

fn wait_for(path: &Path, limit: Duration) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if path.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A slower tiny sweep (more data, more epochs, one worker) so that a kill lands mid-sweep.
fn slow_args(root: &Path) -> Vec<String> {
    [
        "sweep",
        "--preset",
        "tiny",
        "--workers",
        "1",
        "--set",
        "task.train_examples=1500",
        "--set",
        "training.epochs=3",
        "--run-dir",
    ]
    .iter()
    .map(std::string::ToString::to_string)
    .chain([s(root).to_string()])
    .collect()
}

fn no_temporary_files(root: &Path) {
    fn walk(p: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(p).unwrap().flatten() {
            let path = e.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(root, &mut files);
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        // Every write goes through `aelle_support::fs::write_atomic` (`<name>.tmp`, then a
        // rename). A SIGKILL may leave one such temporary behind, but never a partial file
        // under a final name (checked by the comparison with the uninterrupted run), and no
        // temporary of another naming scheme.
        assert!(!name.ends_with(".partial"), "{}", f.display());
        assert!(!name.contains(".tmp-"), "{}: not the one atomic-write rule", f.display());
    }
}

fn kill_and_resume(signal: &str) {
    let dir = tempfile::tempdir().unwrap();
    let reference = dir.path().join("reference");
    let resumed = dir.path().join("resumed");
    let mut ref_args = slow_args(&reference);
    ref_args[0] = "sweep".into();
    let out = orchestrator().args(&ref_args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let mut child = orchestrator().args(slow_args(&resumed)).spawn().unwrap();
    // Kill after the first unit's first trained epoch is on disk, before the sweep ends.
    let marker = resumed.join("nets/lstm-000/epoch-1.safetensors");
    assert!(wait_for(&marker, Duration::from_secs(60)), "no checkpoint appeared");
    let status = Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    let last_net = resumed.join("nets/rnn-003/metrics.json");
    let interrupted_mid_sweep =
        !last_net.exists() || !std::fs::read_to_string(&last_net).unwrap().contains("\"finished\"");
    assert!(
        interrupted_mid_sweep,
        "the sweep finished before the kill; make the test sweep slower"
    );
    if signal == "-INT" {
        // Ctrl-C: the running unit (lstm-000 ..= lstm-003) finishes, then a clean exit, 130.
        assert_eq!(exit.code(), Some(130), "{exit:?}");
        let m = std::fs::read_to_string(resumed.join("nets/lstm-003/metrics.json")).unwrap();
        assert!(m.contains("\"finished\""), "the running unit was not finished: {m}");
    } else {
        assert!(exit.code().is_none(), "{exit:?}");
    }
    no_temporary_files(&resumed);
    let out = orchestrator().args(slow_args(&resumed)).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for id in NETS {
        assert_close(
            &metrics_numbers(&reference.join("nets").join(id).join("metrics.json")),
            &metrics_numbers(&resumed.join("nets").join(id).join("metrics.json")),
            &format!("{id} metrics after {signal}"),
        );
    }
}

#[test]
fn sweep_killed_mid_run_resumes_to_the_uninterrupted_result() {
    kill_and_resume("-KILL");
}

#[test]
fn ctrl_c_finishes_the_running_unit_exits_130_and_resumes() {
    kill_and_resume("-INT");
}

#[test]
fn invalid_configs_are_clear_errors_naming_the_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("[training]\nepochz = 3\n", "epochz"),
        ("[training]\nepochs = \"three\"\n", "epochs"),
        ("[training]\nepochs = 0\n", "training.epochs"),
        ("[population]\narchitectures = [\"lstm\", \"transformer\"]\n", "transformer"),
        ("[spectra]\nfractions = [0.0, 1.5]\n", "spectra.fractions"),
        ("[aelle.split]\ntest_fraction = 0.9\n", "test_fraction"),
        ("seed = -1\n", "seed"),
    ];
    for (i, (text, field)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let root = dir.path().join(format!("run{i}"));
        let (code, err) = run_err(&["run", "--config", s(&path), "--run-dir", s(&root)]);
        assert_eq!(code, 2, "{text}: {err}");
        assert!(err.contains(&format!("bad{i}.toml")), "{text}: no file name in {err}");
        assert!(err.contains(field), "{text}: no field {field} in {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(!root.exists(), "nothing written for an invalid config");
    }
    let (code, err) = run_err(&[
        "run",
        "--preset",
        "tiny",
        "--set",
        "population.hidden_size=0",
        "--run-dir",
        s(&dir.path().join("x")),
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--set population.hidden_size=0") && err.contains("population.hidden_size"),
        "{err}"
    );
    let (code, err) = run_err(&["run", "--config", s(&dir.path().join("missing.toml"))]);
    assert_eq!(code, 2);
    assert!(err.contains("missing.toml"), "{err}");
    let (code, err) = run_err(&[
        "sweep",
        "--preset",
        "tiny",
        "--shard",
        "4/4",
        "--run-dir",
        s(&dir.path().join("y")),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("out of range"), "{err}");
}

#[test]
fn a_run_folder_of_another_config_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("r");
    run_ok(&["sweep", "--preset", "tiny", "--run-dir", s(&root)]);
    let before = std::fs::read(root.join("config.toml")).unwrap();
    let (code, err) =
        run_err(&["sweep", "--preset", "tiny", "--epochs", "3", "--run-dir", s(&root)]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("config.toml") && err.contains("training.epochs is 2 there, 3 here"),
        "{err}"
    );
    assert_eq!(std::fs::read(root.join("config.toml")).unwrap(), before);
    // runtime settings may change
    run_ok(&["sweep", "--preset", "tiny", "--workers", "1", "--run-dir", s(&root)]);
}

#[test]
fn a_corrupt_checkpoint_is_named_and_nothing_computed_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("r");
    run_ok(&["sweep", "--preset", "tiny", "--run-dir", s(&root)]);
    run_ok(&["spectra", "--preset", "tiny", "--run-dir", s(&root), "--shard", "0/3"]);
    let kept = root.join("spectra/lstm-000/epoch-0.json");
    let kept_bytes = std::fs::read(&kept).unwrap();
    let bad = root.join("nets/gru-001/epoch-1.safetensors");
    let bytes = std::fs::read(&bad).unwrap();
    std::fs::write(&bad, &bytes[..bytes.len() / 3]).unwrap();
    let (code, err) = run_err(&["spectra", "--preset", "tiny", "--run-dir", s(&root)]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("corrupt checkpoint") && err.contains("gru-001/epoch-1.safetensors"),
        "{err}"
    );
    assert_eq!(std::fs::read(&kept).unwrap(), kept_bytes);
    assert!(!root.join("spectra/gru-001/epoch-1.json").exists());
}

/// A training device that cannot be opened (here: a build without the `cuda` feature, or a
/// machine without a GPU) is one exit-2 line before any work, and no run folder is created.
#[test]
fn an_unavailable_training_device_is_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("gpu");
    let args =
        ["run", "--preset", "tiny", "--run-dir", s(&root), "--set", "runtime.device=\"cuda:0\""];
    let (code, err) = run_err(&args);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("runtime.device = \"cuda:0\""), "{err}");
    assert!(err.contains("before any work"), "{err}");
    assert_eq!(err.lines().filter(|l| l.contains("runtime.device")).count(), 1, "{err}");
    assert!(!root.exists(), "the run folder was created");
}
