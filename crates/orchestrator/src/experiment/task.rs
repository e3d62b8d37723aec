//! The experiment's task: row-wise sequential MNIST on the embedded 10k split, optionally
//! restricted to a seeded subset of each split (`task.train_examples`, `task.test_examples`).

use datasets::{Batch, OutputKind, PixelOrder, SequentialImageTask, Split, Task};

use super::config::{ExperimentConfig, TaskKind};

/// A task restricted to fixed subsets of its splits (indices into the inner task's splits).
/// Subset `k` of a split is example `indices[k]` of the inner split.
pub struct SubsetTask<T: Task> {
    inner: T,
    train: Vec<usize>,
    test: Vec<usize>,
}

impl<T: Task> SubsetTask<T> {
    /// The first `n_train` / `n_test` examples of seeded shuffles of the splits (0 = all, in
    /// the inner order).
    pub fn new(inner: T, n_train: usize, n_test: usize, seed: u64) -> Self {
        let pick = |n: usize, total: usize, stream: u64| -> Vec<usize> {
            if n == 0 || n >= total {
                (0..total).collect()
            } else {
                let mut v = datasets::task::shuffled_indices(total, seed, stream);
                v.truncate(n);
                v.sort_unstable();
                v
            }
        };
        // Streams far from the epoch streams (0, 1, ..) and the driving stream (u64::MAX).
        let train = pick(n_train, inner.num_train(), u64::MAX - 1);
        let test = pick(n_test, inner.num_test(), u64::MAX - 2);
        Self { inner, train, test }
    }
}

impl<T: Task> Task for SubsetTask<T> {
    fn name(&self) -> String {
        format!("{}[{}/{}]", self.inner.name(), self.train.len(), self.test.len())
    }
    fn num_train(&self) -> usize {
        self.train.len()
    }
    fn num_test(&self) -> usize {
        self.test.len()
    }
    fn seq_len(&self) -> usize {
        self.inner.seq_len()
    }
    fn input_size(&self) -> usize {
        self.inner.input_size()
    }
    fn output_kind(&self) -> OutputKind {
        self.inner.output_kind()
    }
    fn batch(&self, split: Split, indices: &[usize]) -> datasets::Result<Batch> {
        let map = match split {
            Split::Train => &self.train,
            Split::Test => &self.test,
        };
        let mut inner_indices = Vec::with_capacity(indices.len());
        for &i in indices {
            match map.get(i) {
                Some(&j) => inner_indices.push(j),
                None => {
                    return Err(datasets::DatasetError::IndexOutOfRange {
                        task: self.name(),
                        split: split.name(),
                        index: i,
                        len: map.len(),
                    });
                }
            }
        }
        let mut batch = self.inner.batch(split, &inner_indices)?;
        batch.example_indices = indices.to_vec();
        Ok(batch)
    }
}

/// The configured task.
pub fn build_task(config: &ExperimentConfig) -> anyhow::Result<SubsetTask<SequentialImageTask>> {
    let inner = match config.task.kind {
        TaskKind::SmnistRow => {
            let split = datasets::mnist_10k_split()?;
            let norm = config.task.normalization;
            SequentialImageTask::new(split, PixelOrder::RowWise, norm)?
        }
    };
    Ok(SubsetTask::new(inner, config.task.train_examples, config.task.test_examples, config.seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subset_serves_the_chosen_examples_only() {
        let mut c = ExperimentConfig::default();
        c.task.train_examples = 100;
        c.task.test_examples = 50;
        let task = build_task(&c).unwrap();
        assert_eq!((task.num_train(), task.num_test()), (100, 50));
        let b = task.batch(Split::Train, &[0, 99]).unwrap();
        assert_eq!(b.input_shape(), [2, 28, 28]);
        assert!(task.batch(Split::Test, &[50]).is_err());
        let d = task.driving_sequences(15, 0).unwrap();
        assert_eq!(d.shape(), [15, 28, 28]);
    }
}
