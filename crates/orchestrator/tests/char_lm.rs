//! End to end on the paper's second task (`--preset char-lm`, shrunk to 12 networks of N = 8
//! and 2 epochs by a config file): Moby-Dick characters through train -> spectra -> aelle ->
//! report; the report names the task and the text it used, shows the cross-validated table with
//! intervals and the spread over repeats, and no published (sequential MNIST) numbers; which
//! text `task.data` reads, and a missing full text is a usage error.

mod common;

use std::path::Path;

use common::{orchestrator, s};

const TINY_CHAR_LM: &str = r#"
name = "char-lm-tiny"

[population]
networks_per_architecture = 4
hidden_size = 8

[training]
epochs = 2

[spectra]
fractions = []

[aelle.features]
length = 16

[aelle.split]
validation_fraction = 0.25
test_fraction = 0.25

[aelle.autoencoder]
latent_dim = 4

[[aelle.autoencoder.alpha_stages]]
alpha = 5.0
epochs = 10

[[aelle.autoencoder.alpha_stages]]
alpha = 10.0
epochs = 10

[[aelle.evaluation.points]]
epoch = 0

[[aelle.evaluation.points]]
epoch = 1

[[aelle.evaluation.points]]
epoch = 2
"#;

const NETS: [&str; 12] = [
    "lstm-000", "lstm-001", "lstm-002", "lstm-003", "gru-000", "gru-001", "gru-002", "gru-003",
    "rnn-000", "rnn-001", "rnn-002", "rnn-003",
];

/// Runs the orchestrator with `AELLE_DATASETS_DIR = datasets`; returns (exit code, stdout,
/// stderr).
fn run_with(datasets: &Path, args: &[&str]) -> (i32, String, String) {
    let out = orchestrator().env("AELLE_DATASETS_DIR", datasets).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A cross-validated cell: `value [low, high]`, optionally followed by ` (min–max)`, the
/// spread over repeats. Returns `(value, low, high, Some((min, max)))`.
fn cv_cell(c: &str) -> (f64, f64, f64, Option<(f64, f64)>) {
    let (interval, spread) = match c.split_once(" (") {
        Some((a, b)) => (a, Some(b.trim_end_matches(')'))),
        None => (c, None),
    };
    let nums: Vec<f64> = interval
        .split(|ch: char| ch == '[' || ch == ']' || ch == ',' || ch.is_whitespace())
        .filter_map(|t| t.parse().ok())
        .collect();
    assert_eq!(nums.len(), 3, "cell {c:?}");
    let spread = spread.map(|r| {
        let (a, b) = r.split_once('–').unwrap_or_else(|| panic!("spread {r:?} of {c:?}"));
        (a.parse().unwrap(), b.parse().unwrap())
    });
    (nums[0], nums[1], nums[2], spread)
}

fn cells(row: &str) -> Vec<&str> {
    row.split('|').map(str::trim).filter(|c| !c.is_empty()).collect()
}

#[test]
fn char_lm_population_runs_through_every_stage_and_the_report_says_what_it_used() {
    let dir = tempfile::tempdir().unwrap();
    let no_data = dir.path().join("no-datasets");
    std::fs::create_dir_all(&no_data).unwrap();
    let config = dir.path().join("char-lm-tiny.toml");
    std::fs::write(&config, TINY_CHAR_LM).unwrap();
    let root = dir.path().join("run");
    let (code, stdout, stderr) = run_with(
        &no_data,
        &["run", "--preset", "char-lm", "--config", s(&config), "--run-dir", s(&root)],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("report/index.html"), "{stdout}");

    let resolved = std::fs::read_to_string(root.join("config.toml")).unwrap();
    assert!(resolved.contains("kind = \"char-lm\"") && resolved.contains("data = \"embedded\""));
    for id in NETS {
        let m: serde_json::Value = serde_json::from_slice(
            &std::fs::read(root.join(format!("nets/{id}/metrics.json"))).unwrap(),
        )
        .unwrap();
        assert!(m["task"].as_str().unwrap().starts_with("moby-dick-excerpt-char"), "{}", m["task"]);
        let epochs = m["epochs"].as_array().unwrap();
        assert_eq!(epochs.len(), 3);
        // Untrained: about log2(83) = 6.4 bits per character; an 83-way softmax can't be worse
        // than a few times that, nor below 0.
        let bpc0 = epochs[0]["test_bits_per_char"].as_f64().unwrap();
        assert!((5.0..9.0).contains(&bpc0), "{id}: untrained bpc {bpc0}");
        for e in 0..=2 {
            let rec: serde_json::Value = serde_json::from_slice(
                &std::fs::read(root.join(format!("spectra/{id}/epoch-{e}.json"))).unwrap(),
            )
            .unwrap();
            // All 7 validation windows of the excerpt drive the spectra; D = 2N for the LSTM
            // (h, c), N for the others.
            assert_eq!(rec["per_sequence"].as_array().unwrap().len(), 7, "{id}");
            let k = if id.starts_with("lstm") { 16 } else { 8 };
            assert_eq!(rec["k"], k, "{id} epoch {e}");
        }
    }

    let md = std::fs::read_to_string(root.join("report/summary.md")).unwrap();
    // The task and data line.
    let task_line = md.lines().find(|l| l.starts_with("Task: ")).expect("task line");
    assert!(
        task_line.contains("Task: char-lm, next-character prediction on Moby-Dick")
            && task_line
                .contains("Data: the committed Moby-Dick excerpt (its first 7,969 characters)")
            && task_line.contains("71 training / 7 validation windows used"),
        "{task_line}"
    );
    // Nothing of sequential MNIST, and no published numbers for this task.
    assert!(!md.contains("sequential MNIST, 200 networks") && !md.contains("published AeLLE"));
    assert!(!md.contains("images"), "char-lm has no images:\n{md}");
    assert_eq!(md.matches("No published comparison values are shown for this task").count(), 2);

    // The per-cell table is in bits per character.
    let per_cell = &md[md.find("## Final validation loss per cell (bits per character").unwrap()..];
    for arch in ["lstm", "gru", "rnn"] {
        let row = per_cell.lines().find(|l| l.starts_with(&format!("| {arch} | 4 |"))).unwrap();
        let best: f64 = cells(row)[3].parse().unwrap();
        let worst: f64 = cells(row)[4].parse().unwrap();
        assert!(0.0 < best && best <= worst && worst < 9.0, "{row}");
    }

    // The cross-validated AUROC table: intervals, and the spread over the 3 repeats.
    let section = &md[md.find("## Early prediction, cross-validated").unwrap()..];
    assert!(section.contains("final validation loss below the population median ("));
    assert!(section.contains("bits per character); high networks per cell"), "{section}");
    let auroc = &section[section.find("### AUROC").unwrap()..];
    let mut spreads = 0;
    for point in ["epoch 0", "epoch 1", "epoch 2"] {
        let row = auroc.lines().find(|l| l.starts_with(&format!("| {point} |"))).unwrap();
        let c = cells(row);
        assert_eq!(c[1], "12", "{row}");
        assert_eq!(c.len(), 3 + 6, "point, networks, high, six classifiers: {row}");
        for cell in &c[3..] {
            let (v, lo, hi, spread) = cv_cell(cell);
            assert!((0.0..=1.0).contains(&v) && lo <= v + 1e-9 && v <= hi + 1e-9, "{row}");
            if let Some((min, max)) = spread {
                // The mean over repeats lies within their range.
                assert!(min < max && min <= v + 5e-4 && v <= max + 5e-4, "{cell}");
                spreads += 1;
            }
        }
    }
    assert!(spreads > 0, "AeLLE refits per repeat, so some spread must show:\n{auroc}");
    // Precision and recall: AeLLE PC1 / logistic / loss-based, no published columns.
    let pr = &section[section.find("### Precision and recall (percent)\n").unwrap()..];
    let header = pr.lines().find(|l| l.starts_with("| point |")).unwrap();
    assert_eq!(cells(header).len(), 7, "{header}");
    assert!(section.contains("### Within cells") && section.contains("hyperparameters only"));

    // Single split: 10 columns (no published pair).
    let single = &md[md.find("## Single split").unwrap()..];
    for point in ["epoch 0", "epoch 1", "epoch 2"] {
        let row = single.lines().find(|l| l.starts_with(&format!("| {point} |"))).unwrap();
        assert_eq!(row.matches('|').count(), 11, "{row}");
    }

    let html = std::fs::read_to_string(root.join("report/index.html")).unwrap();
    assert!(html.contains("<p id=\"task\">Task: char-lm"), "task line in the HTML");
    assert!(html.contains("<table id=\"cv-auroc\">") && html.contains("id=\"no-published\""));
    assert!(!html.contains("class=pub>"), "no published cells for char-lm");
    assert!(root.join("report/validation-loss.png").is_file());
    assert!(!root.join("report/accuracy.png").exists());
}

#[test]
fn char_lm_data_is_the_excerpt_or_the_fetched_full_text_and_a_missing_text_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let no_data = dir.path().join("no-datasets");
    std::fs::create_dir_all(&no_data).unwrap();
    // One epoch has spectra at epochs 0 and 1 only, so the evaluation points are those epochs
    // (the preset's fraction points need checkpoints near them).
    let small = [
        "--networks",
        "4",
        "--epochs",
        "1",
        "--hidden-size",
        "4",
        "--set",
        "aelle.evaluation.points=[{epoch = 0}, {epoch = 1}]",
    ];

    // The full text asked for but not fetched: exit 2, the folder and the script named, no run.
    let root = dir.path().join("full");
    let mut args = vec!["sweep", "--preset", "char-lm", "--set", "task.data=\"moby-dick\""];
    args.extend(small);
    args.extend(["--run-dir", s(&root)]);
    let (code, _, err) = run_with(&no_data, &args);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("fetch-moby-dick.sh") && err.contains("no-datasets"), "{err}");
    assert!(!root.join("nets").exists(), "no network may be trained without its text");

    // Data of another task: a usage error naming the field.
    let (code, _, err) = run_with(
        &no_data,
        &["run", "--preset", "char-lm", "--set", "task.data=\"mnist\"", "--dry-run"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("task.data") && err.contains("char-lm"), "{err}");

    // "auto" with nothing fetched: the excerpt, recorded in config.toml.
    let root = dir.path().join("auto-excerpt");
    let mut args = vec!["sweep", "--preset", "char-lm", "--set", "task.data=\"auto\""];
    args.extend(small);
    args.extend(["--run-dir", s(&root)]);
    let (code, _, err) = run_with(&no_data, &args);
    assert_eq!(code, 0, "{err}");
    let config = std::fs::read_to_string(root.join("config.toml")).unwrap();
    assert!(config.contains("data = \"embedded\""), "{config}");

    // "auto" with a fetched text (here a stand-in: the excerpt three times, 23,907
    // characters, so 215 training / 23 validation windows): the full text, recorded, trained on.
    let fetched = dir.path().join("fetched");
    std::fs::create_dir_all(fetched.join("moby-dick")).unwrap();
    let excerpt = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets/data/moby-dick/excerpt.txt"),
    )
    .unwrap();
    std::fs::write(fetched.join("moby-dick/data.txt"), excerpt.repeat(3)).unwrap();
    let root = dir.path().join("auto-full");
    let mut args = vec!["sweep", "--preset", "char-lm", "--set", "task.data=\"auto\""];
    args.extend(small);
    args.extend(["--run-dir", s(&root)]);
    let (code, _, err) = run_with(&fetched, &args);
    assert_eq!(code, 0, "{err}");
    let config = std::fs::read_to_string(root.join("config.toml")).unwrap();
    assert!(config.contains("data = \"moby-dick\""), "{config}");
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("nets/lstm-000/metrics.json")).unwrap())
            .unwrap();
    assert_eq!(m["task"], "moby-dick-char[215/23]", "the fetched text, all of it");
}
