//! A task restricted to fixed subsets of its splits: example `k` of a split of the subset is
//! example `indices[k]` of the inner task's split. Used to train on part of a data set (the
//! experiment's `task.train_examples`) and by benchmarks that need a given number of examples.

use crate::error::{DatasetError, Result};
use crate::task::{Batch, OutputKind, Split, Task, shuffled_indices};

/// A task restricted to fixed subsets of its splits (see the module doc).
pub struct Subset<T: Task> {
    inner: T,
    train: Vec<usize>,
    test: Vec<usize>,
}

/// The seed streams of [`Subset::seeded`]: far from the epoch streams (0, 1, ..) and the
/// driving-sequence stream (`u64::MAX`).
const TRAIN_STREAM: u64 = u64::MAX - 1;
const TEST_STREAM: u64 = u64::MAX - 2;

impl<T: Task> Subset<T> {
    /// The first `n_train` / `n_test` examples of each split, in order (0 = all).
    pub fn first(inner: T, n_train: usize, n_test: usize) -> Self {
        let take =
            |n: usize, total: usize| (0..if n == 0 { total } else { n.min(total) }).collect();
        let train = take(n_train, inner.num_train());
        let test = take(n_test, inner.num_test());
        Self { inner, train, test }
    }

    /// The first `n_train` / `n_test` examples of seeded shuffles of the splits, in inner
    /// order (0 or at least the split's size = all, in the inner order).
    pub fn seeded(inner: T, n_train: usize, n_test: usize, seed: u64) -> Self {
        let pick = |n: usize, total: usize, stream: u64| -> Vec<usize> {
            if n == 0 || n >= total {
                (0..total).collect()
            } else {
                let mut v = shuffled_indices(total, seed, stream);
                v.truncate(n);
                v.sort_unstable();
                v
            }
        };
        let train = pick(n_train, inner.num_train(), TRAIN_STREAM);
        let test = pick(n_test, inner.num_test(), TEST_STREAM);
        Self { inner, train, test }
    }
}

impl<T: Task> Task for Subset<T> {
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
    fn batch(&self, split: Split, indices: &[usize]) -> Result<Batch> {
        let map = match split {
            Split::Train => &self.train,
            Split::Test => &self.test,
        };
        let mut inner_indices = Vec::with_capacity(indices.len());
        for &i in indices {
            match map.get(i) {
                Some(&j) => inner_indices.push(j),
                None => {
                    return Err(DatasetError::IndexOutOfRange {
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
