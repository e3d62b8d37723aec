//! The run-folder lock: one process works on a run folder at a time.
//!
//! An advisory lock (`flock`, through std's `File::try_lock`) on `<run>/.lock`, held by the
//! process for as long as the stage runs. The kernel drops it when the process ends in any
//! way (exit, panic, Ctrl-C, `kill -9`), so a stale lock never blocks a rerun: the file may
//! stay, the lock does not. Every stage that writes takes it exclusively; a second process
//! on the same folder exits with code 2 naming the holder's pid (written into the lock file).
//!
//! Sharded stages (`--shard i/n`, run side by side on a cluster) share the folder: each holds
//! `.lock` shared and `.lock-shard-<i>-of-<n>` exclusively, so shards run together while a
//! second process of the same shard, or an unsharded stage, is refused.
//! `--dry-run` and `--print-config` only read and take no lock.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::Result;

/// A held lock (released when dropped, or by the kernel when the process dies).
#[derive(Debug)]
pub struct FolderLock {
    _files: Vec<File>,
}

/// The lock file of a run folder.
pub fn lock_path(root: &Path) -> PathBuf {
    root.join(".lock")
}

fn shard_lock_path(root: &Path, tag: &str) -> PathBuf {
    root.join(format!(".lock-{tag}"))
}

fn open(path: &Path) -> Result<File> {
    OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).map_err(|e| {
        crate::error::usage(format!("{}: cannot open the lock file: {e}", path.display()))
    })
}

fn write_pid(file: &mut File) {
    // Best effort: the pid only makes the refusal message of another process more useful.
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = write!(file, "{}", std::process::id());
    let _ = file.flush();
}

fn read_pid(path: &Path) -> Option<u32> {
    let mut s = String::new();
    File::open(path).ok()?.read_to_string(&mut s).ok()?;
    s.trim().parse().ok()
}

/// The pids of whoever holds locks in `root` (the exclusive holder's, or the shards').
fn holders(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(root) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if !name.starts_with(".lock") {
                continue;
            }
            let path = e.path();
            // Held right now? (a free file is a leftover of a finished process)
            let held = match File::open(&path) {
                Ok(f) => matches!(f.try_lock(), Err(TryLockError::WouldBlock)),
                Err(_) => false,
            };
            if held && let Some(pid) = read_pid(&path) {
                out.push(pid.to_string());
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn refused(root: &Path, what: &str) -> anyhow::Error {
    let pids = holders(root);
    let by = if pids.is_empty() {
        "another process".to_string()
    } else {
        format!("process {}", pids.join(", "))
    };
    crate::error::usage(format!(
        "{}: the run folder is in use by {by} ({what}); wait for it to finish, or use another --name",
        root.display()
    ))
}

/// Takes the folder's exclusive lock (the folder must exist).
pub fn lock_exclusive(root: &Path) -> Result<FolderLock> {
    let path = lock_path(root);
    let mut file = open(&path)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Err(refused(root, "lock .lock")),
        Err(TryLockError::Error(e)) => {
            return Err(crate::error::usage(format!("{}: cannot lock: {e}", path.display())));
        }
    }
    write_pid(&mut file);
    Ok(FolderLock { _files: vec![file] })
}

/// Takes the folder's shared lock and the exclusive lock of shard `tag`.
pub fn lock_shard(root: &Path, tag: &str) -> Result<FolderLock> {
    let path = lock_path(root);
    let shared = open(&path)?;
    match shared.try_lock_shared() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            return Err(refused(root, "an unsharded stage holds .lock"));
        }
        Err(TryLockError::Error(e)) => {
            return Err(crate::error::usage(format!("{}: cannot lock: {e}", path.display())));
        }
    }
    let shard_path = shard_lock_path(root, tag);
    let mut mine = open(&shard_path)?;
    match mine.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            return Err(refused(root, &format!("{tag} is running")));
        }
        Err(TryLockError::Error(e)) => {
            return Err(crate::error::usage(format!("{}: cannot lock: {e}", shard_path.display())));
        }
    }
    write_pid(&mut mine);
    Ok(FolderLock { _files: vec![shared, mine] })
}

/// Removes the temporary files a killed writer left (`<name>.tmp`, see
/// `aelle_support::fs::write_atomic`) anywhere under `root`; only called under the exclusive
/// lock, when no other process can be writing one. Returns how many were removed.
pub fn remove_stale_temporaries(root: &Path) -> usize {
    fn walk(dir: &Path, removed: &mut usize) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let path = e.path();
            let Ok(kind) = e.file_type() else { continue };
            if kind.is_dir() {
                walk(&path, removed);
            } else if kind.is_file()
                && path.extension().is_some_and(|x| x == "tmp")
                && std::fs::remove_file(&path).is_ok()
            {
                *removed += 1;
            }
        }
    }
    let mut removed = 0;
    walk(root, &mut removed);
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_exclusive_lock_is_refused_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let a = lock_exclusive(dir.path()).unwrap();
        let e = lock_exclusive(dir.path()).unwrap_err().to_string();
        assert!(e.contains(&format!("process {}", std::process::id())), "{e}");
        assert!(lock_shard(dir.path(), "shard-1-of-2").is_err());
        drop(a);
        let s1 = lock_shard(dir.path(), "shard-1-of-2").unwrap();
        let _s2 = lock_shard(dir.path(), "shard-2-of-2").unwrap();
        assert!(lock_shard(dir.path(), "shard-1-of-2").is_err());
        assert!(lock_exclusive(dir.path()).is_err());
        drop(s1);
        assert!(lock_shard(dir.path(), "shard-1-of-2").is_ok());
    }

    #[test]
    fn stale_temporaries_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("nets/a")).unwrap();
        std::fs::write(dir.path().join("nets/a/metrics.json.tmp"), b"{").unwrap();
        std::fs::write(dir.path().join("nets/a/metrics.json"), b"{}").unwrap();
        assert_eq!(remove_stale_temporaries(dir.path()), 1);
        assert!(dir.path().join("nets/a/metrics.json").exists());
    }
}
