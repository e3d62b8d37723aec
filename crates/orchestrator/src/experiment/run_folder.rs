//! The run folder (ARCHITECTURE.md, "Run folder"): its paths, and the check that a folder
//! belongs to the configuration at hand.
//!
//! ```text
//! runs/<name>/
//!   config.toml                          resolved config of this run
//!   nets/<net-id>/epoch-<e>.safetensors  checkpoints (epoch 0 = initialisation)
//!   nets/<net-id>/metrics.json           per-epoch losses and accuracies; written last
//!   spectra/driving.safetensors          the fixed driving sequences [B, T, I]
//!   spectra/<net-id>/epoch-<e>.json      per-sequence spectra [B, k], mean, std, status
//!   aelle/model.safetensors, model.json, metrics.json, rows.json
//!   report/index.html, summary.md, *.png, *.svg
//!   shards/<stage>-shard-<i>-of-<n>.json completion records of sharded stages
//!   timings/<stage>[-shard-..].json      wall time of each stage run
//! ```
//!
//! `.lock` (and `.lock-shard-<i>-of-<n>`) hold the folder lock of the process working on it
//! ([`super::lock`]).
//!
//! Every file is written through [`crate::fs`] (a temporary `<name>.tmp` in the same folder,
//! renamed into place), so a crash or Ctrl-C never leaves a half file under a final name.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};

use super::config::{ExperimentConfig, read_resolved};
use super::lock::FolderLock;
use crate::fs::write_atomic;

/// Paths of one run, and the folder lock ([`super::lock`]) of the process working on it.
#[derive(Debug, Clone)]
pub struct RunFolder {
    root: PathBuf,
    _lock: Option<Arc<FolderLock>>,
}

impl RunFolder {
    /// The folder `root` (not touched, not locked).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into(), _lock: None }
    }

    /// [`RunFolder::open_as`] with the exclusive lock (every unsharded stage).
    pub fn open(root: impl Into<PathBuf>, config: &ExperimentConfig) -> Result<Self> {
        Self::open_as(root, config, None)
    }

    /// Opens `root` for `config`: creates it and writes `config.toml` when new; when it holds
    /// a `config.toml`, refuses a different experiment (the `[runtime]` section and `name`
    /// may differ) with an error naming the file and the differing fields. Nothing in the
    /// folder is modified on refusal.
    ///
    /// First the folder lock is taken: exclusively (`shard = None`; stale `<name>.tmp` files
    /// of a killed process are then removed), or as shard `shard` (a shard tag). A folder in
    /// use by another process is refused (exit 2, naming its pid).
    pub fn open_as(
        root: impl Into<PathBuf>,
        config: &ExperimentConfig,
        shard: Option<&str>,
    ) -> Result<Self> {
        let mut run = Self::new(root);
        std::fs::create_dir_all(&run.root)
            .with_context(|| format!("{}: cannot create the run folder", run.root.display()))?;
        let lock = match shard {
            None => super::lock::lock_exclusive(&run.root)?,
            Some(tag) => super::lock::lock_shard(&run.root, tag)?,
        };
        run._lock = Some(Arc::new(lock));
        if shard.is_none() {
            let removed = super::lock::remove_stale_temporaries(&run.root);
            if removed > 0 {
                tracing::info!(removed, "removed temporary files left by an interrupted run");
            }
        }
        let path = run.config_path();
        if path.exists() {
            let existing = read_resolved(&path)?;
            let diffs = existing.experiment_differences(config)?;
            if !diffs.is_empty() {
                let shown: Vec<String> = diffs
                    .iter()
                    .take(5)
                    .map(|(k, a, b)| format!("{k} is {a} there, {b} here"))
                    .collect();
                let more = if diffs.len() > 5 {
                    format!(" (and {} more)", diffs.len() - 5)
                } else {
                    String::new()
                };
                return Err(crate::error::UsageError(format!(
                    "{}: this run folder was made by a different configuration: {}{more}; \
                     use another --name, or remove the folder to start over",
                    path.display(),
                    shown.join("; ")
                ))
                .into());
            }
            if existing != *config {
                write_atomic(&path, config.to_toml()?.as_bytes())?;
            }
        } else {
            write_atomic(&path, config.to_toml()?.as_bytes())?;
        }
        Ok(run)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.toml")
    }
    pub fn nets_dir(&self) -> PathBuf {
        self.root.join("nets")
    }
    pub fn net_dir(&self, id: &str) -> PathBuf {
        self.nets_dir().join(id)
    }
    pub fn checkpoint(&self, id: &str, epoch: u32) -> PathBuf {
        self.net_dir(id).join(format!("epoch-{epoch}.safetensors"))
    }
    pub fn metrics(&self, id: &str) -> PathBuf {
        self.net_dir(id).join("metrics.json")
    }
    pub fn spectra_dir(&self) -> PathBuf {
        self.root.join("spectra")
    }
    pub fn driving(&self) -> PathBuf {
        self.spectra_dir().join("driving.safetensors")
    }
    pub fn spectrum(&self, id: &str, epoch: u32) -> PathBuf {
        self.spectra_dir().join(id).join(format!("epoch-{epoch}.json"))
    }
    pub fn aelle_dir(&self) -> PathBuf {
        self.root.join("aelle")
    }
    /// The pre-trained AeLLE fitted on the whole population (`aelle/pretrained/model.safetensors`,
    /// with `model.json` and `model.readout.json`).
    pub fn pretrained_model(&self) -> PathBuf {
        self.aelle_dir().join("pretrained").join("model.safetensors")
    }
    /// `transfer/<source>.json`: a pre-trained AeLLE of another run applied to this one.
    pub fn transfer_dir(&self) -> PathBuf {
        self.root.join("transfer")
    }
    pub fn report_dir(&self) -> PathBuf {
        self.root.join("report")
    }
    pub fn shard_record(&self, stage: &str, tag: &str) -> PathBuf {
        self.root.join("shards").join(format!("{stage}-{tag}.json"))
    }
    pub fn timing(&self, stage: &str) -> PathBuf {
        self.root.join("timings").join(format!("{stage}.json"))
    }
    pub fn timings_dir(&self) -> PathBuf {
        self.root.join("timings")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::config::Preset;

    #[test]
    fn refuses_a_folder_of_another_experiment_and_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("r");
        let a = Preset::Tiny.config();
        RunFolder::open(&root, &a).unwrap();
        let before = std::fs::read(root.join("config.toml")).unwrap();
        let mut b = a.clone();
        b.training.epochs = 5;
        let e = RunFolder::open(&root, &b).unwrap_err().to_string();
        assert!(
            e.contains("config.toml") && e.contains("training.epochs is 2 there, 5 here"),
            "{e}"
        );
        assert_eq!(std::fs::read(root.join("config.toml")).unwrap(), before);
        // runtime changes are allowed
        let mut c = a.clone();
        c.runtime.workers = 3;
        RunFolder::open(&root, &c).unwrap();
    }
}
