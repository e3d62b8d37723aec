//! Scale-out on a real single-node Slurm cluster (munged + slurmctld + slurmd from Debian's
//! packages, started by scripts/slurm/local-cluster.sh): the tiny experiment as a 4-task
//! array (`sweep` + `spectra` with `--shard auto/4`) plus a merge job
//! (`--dependency=afterok`, `--kill-on-invalid-dep=yes`) that runs merge, aelle and report;
//! its results must equal an unsharded run.
//!
//! Needs root and the packages (scripts/ci-setup.sh). Without them the test is skipped with a
//! message, unless CI=true, where it fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/slurm").canonicalize().unwrap()
}

fn have(bin: &str) -> bool {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"].iter().any(|d| Path::new(d).join(bin).is_file())
}

fn ready_or_skip() -> bool {
    let missing: Vec<&str> = ["slurmctld", "slurmd", "sbatch", "squeue", "munged"]
        .into_iter()
        .filter(|b| !have(b))
        .collect();
    let is_root =
        Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false);
    let why = if !missing.is_empty() {
        format!("missing {}", missing.join(", "))
    } else if !is_root {
        "not root (munged and slurmd are started as root)".to_string()
    } else {
        return true;
    };
    assert!(
        !std::env::var("CI").is_ok_and(|v| v == "true"),
        "Slurm test cannot run under CI=true: {why}; run scripts/ci-setup.sh in .ci/run"
    );
    skip_notice(&format!(
        "SKIP slurm_cluster: {why} (apt-get install slurmctld slurmd slurm-client munge, or scripts/ci-setup.sh)"
    ));
    false
}

/// The cluster; stopped (through its pid files) when dropped.
struct Cluster {
    dir: PathBuf,
}

impl Cluster {
    fn cmd(&self, what: &str) -> Command {
        let mut c = Command::new("bash");
        c.arg(scripts().join("local-cluster.sh"))
            .arg(what)
            .env("SLURM_CI_DIR", &self.dir)
            .env("SLURM_CI_FAKE_GPUS", "0");
        c
    }
    fn start(dir: PathBuf) -> Self {
        let c = Cluster { dir };
        let out = c.cmd("start").output().unwrap();
        assert!(
            out.status.success(),
            "cluster start failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        c
    }
    fn conf(&self) -> PathBuf {
        self.dir.join("etc/slurm.conf")
    }
    fn slurm(&self, bin: &str) -> Command {
        let mut c = Command::new(bin);
        c.env("SLURM_CONF", self.conf());
        c
    }
    /// Waits until no task of `job` is pending or running; returns its tasks' states.
    fn wait(&self, job: &str, limit: Duration) -> String {
        let t0 = Instant::now();
        loop {
            let out =
                self.slurm("squeue").args(["-h", "-j", job, "-t", "PD,R,CG,CF"]).output().unwrap();
            if out.stdout.is_empty() {
                break;
            }
            assert!(t0.elapsed() < limit, "job {job} still running after {limit:?}");
            std::thread::sleep(Duration::from_millis(300));
        }
        let out = self
            .slurm("squeue")
            .args(["-h", "-t", "all", "-j", job, "-o", "%i:%T"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.cmd("stop").output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn numbers(path: &Path, key: &str) -> Vec<f64> {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let mut out = Vec::new();
    match key {
        "epochs" => {
            for e in v["epochs"].as_array().unwrap() {
                for k in ["test_loss", "test_accuracy"] {
                    out.push(e[k].as_f64().unwrap_or(f64::NAN));
                }
            }
        }
        _ => out.extend(v[key].as_array().unwrap().iter().map(|x| x.as_f64().unwrap_or(f64::NAN))),
    }
    out
}

#[test]
fn array_of_four_shards_plus_merge_on_slurm_equals_an_unsharded_run() {
    if !ready_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // munged runs as user `munge` and must traverse to its socket: a world-traversable
    // folder, not the 0700 temporary one.
    let cluster_dir = std::env::temp_dir().join(format!("aelle-slurm-ci-{}", std::process::id()));
    std::fs::create_dir_all(&cluster_dir).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&cluster_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let cluster = Cluster::start(cluster_dir);
    let sharded = dir.path().join("sharded");
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let bin = env!("CARGO_BIN_EXE_orchestrator");
    let out = cluster
        .slurm("bash")
        .arg(scripts().join("submit.sh"))
        .args(["4", "--preset", "tiny", "--run-dir", sharded.to_str().unwrap()])
        .env("ORCHESTRATOR", bin)
        .env("OUT_DIR", &logs)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "submit.sh failed: {}", String::from_utf8_lossy(&out.stderr));
    let ids = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let (array, merge) = ids.split_once(' ').unwrap_or_else(|| panic!("submit.sh printed {ids:?}"));
    let array_states = cluster.wait(array, Duration::from_secs(240));
    let merge_states = cluster.wait(merge, Duration::from_secs(240));
    let log_text = || {
        let mut s = String::new();
        for e in std::fs::read_dir(&logs).unwrap().flatten() {
            s += &format!(
                "== {}\n{}\n",
                e.path().display(),
                std::fs::read_to_string(e.path()).unwrap_or_default()
            );
        }
        s
    };
    assert_eq!(
        array_states.matches("COMPLETED").count(),
        4,
        "array: {array_states}\n{}",
        log_text()
    );
    assert!(merge_states.contains("COMPLETED"), "merge: {merge_states}\n{}", log_text());
    for i in 0..4 {
        assert!(sharded.join(format!("shards/sweep-shard-{i}-of-4.json")).is_file());
        assert!(sharded.join(format!("shards/spectra-shard-{i}-of-4.json")).is_file());
    }
    assert!(sharded.join("aelle/metrics.json").is_file());
    assert!(sharded.join("report/index.html").is_file());

    // The same experiment in one process.
    let whole = dir.path().join("whole");
    let out = Command::new(bin)
        .args(["run", "--preset", "tiny", "--run-dir", whole.to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut compared = 0;
    for e in std::fs::read_dir(whole.join("nets")).unwrap().flatten() {
        let id = e.file_name().to_string_lossy().to_string();
        let pairs = [
            (format!("nets/{id}/metrics.json"), "epochs"),
            (format!("spectra/{id}/epoch-0.json"), "mean"),
            (format!("spectra/{id}/epoch-2.json"), "mean"),
        ];
        for (rel, key) in pairs {
            let (a, b) = (numbers(&whole.join(&rel), key), numbers(&sharded.join(&rel), key));
            common::assert_close(&b, &a, &rel);
            compared += 1;
        }
    }
    assert_eq!(compared, 12 * 3);
    // The AeLLE input tables agree too (same rows, same order).
    let rows = |p: &Path| -> Vec<serde_json::Value> {
        serde_json::from_slice(&std::fs::read(p.join("aelle/rows.json")).unwrap()).unwrap()
    };
    let (ra, rb) = (rows(&whole), rows(&sharded));
    assert_eq!(ra.len(), rb.len());
    for (a, b) in ra.iter().zip(&rb) {
        assert_eq!(a["network_id"], b["network_id"]);
        assert_eq!(a["epoch"], b["epoch"]);
    }
}

/// Prints past libtest's output capture (which takes `eprintln!`), so a skip is visible.
fn skip_notice(message: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{message}");
}
