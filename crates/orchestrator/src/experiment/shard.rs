//! `--shard INDEX/COUNT`: a deterministic slice of a stage's work.
//!
//! Work items (training units, spectrum batches) are numbered in plan order; shard `i` of `n`
//! takes items `j` with `j % n == i` (round robin, so every shard gets a mix of cells and a
//! similar cost). `INDEX` may be `auto`: `SLURM_ARRAY_TASK_ID`, else `JOB_COMPLETION_INDEX`
//! (Kubernetes indexed jobs). The count is always explicit: `SLURM_ARRAY_TASK_COUNT` is the
//! number of tasks of *this submission*, which is 1 when a single failed task is resubmitted.

use std::fmt;

/// One slice of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 0-based index.
    pub index: usize,
    /// Number of shards (>= 1).
    pub count: usize,
}

impl Shard {
    /// The whole work.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Parses `INDEX/COUNT` (`INDEX` a number or `auto`), reading `auto` from `env`.
    pub fn parse_with_env(
        text: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Shard, crate::error::UsageError> {
        let bad = |why: &str| {
            crate::error::UsageError(format!(
                "--shard {text:?}: {why} (expected INDEX/COUNT, e.g. 0/4 or auto/4)"
            ))
        };
        let (index, count) = text.split_once('/').ok_or_else(|| bad("no '/'"))?;
        let count: usize = count.trim().parse().map_err(|_| bad("COUNT is not a whole number"))?;
        if count == 0 {
            return Err(bad("COUNT must be at least 1"));
        }
        let index: usize = if index.trim() == "auto" {
            let (var, value) = ["SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"]
                .iter()
                .find_map(|v| env(v).map(|x| (*v, x)))
                .ok_or_else(|| {
                    bad("INDEX is auto but neither SLURM_ARRAY_TASK_ID nor JOB_COMPLETION_INDEX is set")
                })?;
            value.trim().parse().map_err(|_| {
                crate::error::UsageError(format!(
                    "--shard {text:?}: {var}={value:?} is not a whole number"
                ))
            })?
        } else {
            index.trim().parse().map_err(|_| bad("INDEX is neither a whole number nor auto"))?
        };
        if index >= count {
            return Err(crate::error::UsageError(format!(
                "--shard {text:?}: index {index} is out of range for {count} shards (0 ..= {})",
                count - 1
            )));
        }
        Ok(Shard { index, count })
    }

    /// Parses with the process environment.
    pub fn parse(text: &str) -> Result<Shard, crate::error::UsageError> {
        Self::parse_with_env(text, |v| std::env::var(v).ok())
    }

    /// Whether work item `j` belongs to this shard.
    pub fn owns(&self, j: usize) -> bool {
        j % self.count == self.index
    }

    /// File-name tag, e.g. `shard-2-of-4`.
    pub fn tag(&self) -> String {
        format!("shard-{}-of-{}", self.index, self.count)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| pairs.iter().find(|(a, _)| *a == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn parses_explicit_and_auto_indices() {
        assert_eq!(
            Shard::parse_with_env("2/4", env_of(&[])).unwrap(),
            Shard { index: 2, count: 4 }
        );
        let slurm = env_of(&[("SLURM_ARRAY_TASK_ID", "3"), ("JOB_COMPLETION_INDEX", "1")]);
        assert_eq!(Shard::parse_with_env("auto/4", slurm).unwrap().index, 3);
        let k8s = env_of(&[("JOB_COMPLETION_INDEX", "1")]);
        assert_eq!(Shard::parse_with_env("auto/2", k8s).unwrap().index, 1);
    }

    #[test]
    fn rejects_bad_shards_with_the_reason() {
        for (text, why) in [
            ("4/4", "out of range"),
            ("1/0", "at least 1"),
            ("x/2", "neither"),
            ("3", "no '/'"),
            ("auto/4", "neither SLURM_ARRAY_TASK_ID"),
        ] {
            let e = Shard::parse_with_env(text, env_of(&[])).unwrap_err().to_string();
            assert!(e.contains(why), "{text}: {e}");
        }
        let e = Shard::parse_with_env("auto/4", env_of(&[("SLURM_ARRAY_TASK_ID", "7")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("out of range"), "{e}");
    }

    #[test]
    fn shards_partition_the_work() {
        let n = 4;
        for j in 0..37 {
            let owners: Vec<usize> =
                (0..n).filter(|&i| Shard { index: i, count: n }.owns(j)).collect();
            assert_eq!(owners.len(), 1);
        }
    }
}
