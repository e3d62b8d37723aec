//! Files of the CLI: every write goes through the workspace's one crash-safe write
//! ([`aelle_support::fs::write_atomic`]: `<name>.tmp`, fsync, rename); reads name the file on
//! error, and a file that does not parse is bad input (exit code 2).

use std::path::Path;

use anyhow::Result;

/// Writes `bytes` to `path` atomically (creating the folder).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(aelle_support::fs::write_atomic(path, bytes)?)
}

/// Serialises `value` as pretty JSON (with a final newline) and writes it atomically.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value)?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// Reads and parses a JSON file, naming the file on error.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = aelle_support::fs::read_input_file(path)
        .map_err(|e| crate::error::usage(format!("{}: cannot read: {e}", path.display())))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        crate::error::usage(format!("{}: not a valid file of its kind: {e}", path.display()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x/y.json");
        write_json(&p, &vec![1, 2, 3]).unwrap();
        let names: Vec<_> = std::fs::read_dir(p.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1);
        assert_eq!(read_json::<Vec<i32>>(&p).unwrap(), vec![1, 2, 3]);
    }
}
