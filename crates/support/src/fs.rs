//! The one crash-safe file write of the workspace.
//!
//! Rule: a file a stage or a checkpoint writes is either absent, or complete. [`write_atomic`]
//! writes the bytes to `<name>.tmp` in the target's folder, flushes them to disk (`fsync`),
//! renames the temporary file over the target (atomic on POSIX file systems within one
//! folder) and flushes the folder entry. A crash at any moment leaves the old file (or none)
//! and at most a stale `<name>.tmp`, which the next write of the same file replaces. Readers
//! never look at `.tmp` files.

use std::io::Write;
use std::path::{Path, PathBuf};

/// A failed atomic write: which path, which step, and the OS error.
#[derive(Debug)]
pub struct WriteError {
    /// The file (or folder) the failing operation was on.
    pub path: PathBuf,
    /// What was being done: `create folder`, `write`, `rename into place`.
    pub action: &'static str,
    /// The operating system's error.
    pub source: std::io::Error,
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: cannot {}: {}", self.path.display(), self.action, self.source)
    }
}

impl std::error::Error for WriteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl From<WriteError> for std::io::Error {
    fn from(e: WriteError) -> Self {
        std::io::Error::new(e.source.kind(), e.to_string())
    }
}

/// The temporary file [`write_atomic`] uses for `path`: `<name>.tmp` in the same folder.
pub fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(std::ffi::OsStr::to_os_string).unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Writes `bytes` to `path` so that a crash never leaves a half file there (see the module
/// doc); creates the parent folder if needed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let fail =
        |path: &Path, action, source| WriteError { path: path.to_path_buf(), action, source };
    std::fs::create_dir_all(&dir).map_err(|e| fail(&dir, "create folder", e))?;
    let tmp = temporary_path(path);
    let mut f = std::fs::File::create(&tmp).map_err(|e| fail(&tmp, "create", e))?;
    f.write_all(bytes).map_err(|e| fail(&tmp, "write", e))?;
    f.sync_all().map_err(|e| fail(&tmp, "flush to disk", e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| fail(path, "rename into place", e))?;
    // The rename is durable once the folder entry is; some file systems refuse to open a
    // folder for syncing, which loses nothing but durability across a power cut.
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Reads a whole input file, refusing what would not end or not fit: a path that is not a
/// regular file (a pipe, a device such as `/dev/zero`, a folder) is refused before any byte is
/// read (`InvalidInput`, "not a regular file"), and a file larger than the machine's memory
/// ([`crate::mem::memory_limit_bytes`]) is refused with its size (`OutOfMemory`). Reads at most
/// the size the file had when opened.
pub fn read_input_file(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    // `stat` first: opening a named pipe without a writer would block.
    let not_regular = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file (pipes, devices and folders are not read)",
        )
    };
    if !std::fs::metadata(path)?.is_file() {
        return Err(not_regular());
    }
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(not_regular());
    }
    let len = meta.len();
    let limit = crate::mem::memory_limit_bytes();
    if len > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::OutOfMemory,
            format!(
                "the file has {}, more than this machine's memory ({})",
                crate::mem::format_bytes(len),
                crate::mem::format_bytes(limit)
            ),
        ));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(len).read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_replaces_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/a.json");
        write_atomic(&path, b"one").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
        // A stale temporary file from a killed writer is replaced, then renamed away.
        std::fs::write(temporary_path(&path), b"half").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert!(!temporary_path(&path).exists());
        assert_eq!(std::fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn input_files_must_be_regular() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.bin");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(read_input_file(&p).unwrap(), b"abc");
        let e = read_input_file(Path::new("/dev/zero")).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
        let e = read_input_file(dir.path()).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
    }

    #[test]
    fn failure_names_the_path_and_the_step() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"x").unwrap();
        let err = write_atomic(&blocker.join("inside.json"), b"y").unwrap_err();
        assert!(err.to_string().contains("cannot create folder"), "{err}");
        assert!(err.to_string().contains("file"), "{err}");
    }
}
