//! The [`Task`] abstraction: sequence tasks yielding `(inputs [B, T, I], targets)` batches.
//!
//! All tensors are flat, row-major `Vec`s with their shape stated in the docs:
//! inputs are always `f32` `[B, T, I]` (batch, time, input feature). Targets depend on the
//! task's [`OutputKind`], see [`Targets`].
//!
//! Shuffling is seeded: epoch `e` of a run with seed `s` visits the split in the order of a
//! Fisher-Yates shuffle driven by `ChaCha8Rng::seed_from_u64(s)` on stream `e`, so the same
//! `(s, e)` gives the same batches on every machine, and different seeds differ.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::driving::DrivingSequences;
use crate::error::{DatasetError, Result};

/// Which part of a task's data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    /// Training examples.
    Train,
    /// Held-out examples (also the source of the driving sequences).
    Test,
}

impl Split {
    /// `"train"` or `"test"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Test => "test",
        }
    }
}

/// What a network must output, and so the form of [`Targets`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OutputKind {
    /// One class per sequence (sequential MNIST); targets [`Targets::ClassPerSequence`].
    ClassPerSequence { num_classes: usize },
    /// One class per time step (char LM next-character, copy memory); targets
    /// [`Targets::ClassPerStep`].
    ClassPerStep { num_classes: usize },
    /// A real vector of `output_size` per time step (sum of sines); targets
    /// [`Targets::ValuePerStep`].
    ValuePerStep { output_size: usize },
    /// A real vector of `output_size` per sequence (adding problem); targets
    /// [`Targets::ValuePerSequence`].
    ValuePerSequence { output_size: usize },
}

/// Targets of a batch of `B` sequences of length `T`.
#[derive(Clone, Debug, PartialEq)]
pub enum Targets {
    /// Class labels, shape `[B]`.
    ClassPerSequence(Vec<u32>),
    /// Class (token) ids, shape `[B, T]`.
    ClassPerStep(Vec<u32>),
    /// Values, shape `[B, T, O]`.
    ValuePerStep(Vec<f32>),
    /// Values, shape `[B, O]`.
    ValuePerSequence(Vec<f32>),
}

/// One batch: inputs `[batch_size, seq_len, input_size]` (row-major `f32`) and targets.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// Row-major inputs, `batch_size * seq_len * input_size` values.
    pub inputs: Vec<f32>,
    /// Targets; their shape follows [`Batch::output_kind`].
    pub targets: Targets,
    /// `B`.
    pub batch_size: usize,
    /// `T`.
    pub seq_len: usize,
    /// `I`.
    pub input_size: usize,
    /// The kind of output the targets are for.
    pub output_kind: OutputKind,
    /// Which examples of the split the batch holds, in batch order (length `B`).
    pub example_indices: Vec<usize>,
}

impl Batch {
    /// The batch of the examples `indices` of a split, in that order: `inputs` `[B, T, I]`
    /// (`B = indices.len()`, `(T, I) = (seq_len, input_size)`) and their `targets`.
    pub(crate) fn of_examples(
        indices: &[usize],
        inputs: Vec<f32>,
        targets: Targets,
        (seq_len, input_size): (usize, usize),
        output_kind: OutputKind,
    ) -> Self {
        Batch {
            inputs,
            targets,
            batch_size: indices.len(),
            seq_len,
            input_size,
            output_kind,
            example_indices: indices.to_vec(),
        }
    }

    /// Shape of the inputs, `[B, T, I]`.
    pub fn input_shape(&self) -> [usize; 3] {
        [self.batch_size, self.seq_len, self.input_size]
    }

    /// Shape of the targets: `[B]`, `[B, T]`, `[B, T, O]` or `[B, O]` by [`OutputKind`].
    pub fn target_shape(&self) -> Vec<usize> {
        let (b, t) = (self.batch_size, self.seq_len);
        match self.output_kind {
            OutputKind::ClassPerSequence { .. } => vec![b],
            OutputKind::ClassPerStep { .. } => vec![b, t],
            OutputKind::ValuePerStep { output_size } => vec![b, t, output_size],
            OutputKind::ValuePerSequence { output_size } => vec![b, output_size],
        }
    }

    /// Moves the inputs into a candle tensor `[B, T, I]` (`f32`) and the targets into one of
    /// [`Batch::target_shape`] (`u32` for classes, `f32` for values). On the CPU device the
    /// buffers are moved, not copied; other devices copy once to device memory.
    pub fn into_tensors(
        self,
        device: &candle_core::Device,
    ) -> Result<(candle_core::Tensor, candle_core::Tensor)> {
        let target_shape = self.target_shape();
        let inputs = candle_core::Tensor::from_vec(
            self.inputs,
            (self.batch_size, self.seq_len, self.input_size),
            device,
        )?;
        let targets = match self.targets {
            Targets::ClassPerSequence(v) | Targets::ClassPerStep(v) => {
                candle_core::Tensor::from_vec(v, target_shape, device)?
            }
            Targets::ValuePerSequence(v) | Targets::ValuePerStep(v) => {
                candle_core::Tensor::from_vec(v, target_shape, device)?
            }
        };
        Ok((inputs, targets))
    }
}

/// The one-hot, class-per-step batch of the examples `indices`: `example(k)` gives example
/// `k`'s `T` input ids (one-hot over `v` features, zeros elsewhere) and its `T` target classes.
pub(crate) fn one_hot_batch<X: AsRef<[u32]>, Y: AsRef<[u32]>>(
    indices: &[usize],
    (t, v): (usize, usize),
    output_kind: OutputKind,
    mut example: impl FnMut(usize) -> (X, Y),
) -> Batch {
    let mut inputs = vec![0.0f32; indices.len() * t * v];
    let mut targets = Vec::with_capacity(indices.len() * t);
    for (b, &k) in indices.iter().enumerate() {
        let (ids, target) = example(k);
        for (step, &id) in ids.as_ref().iter().enumerate() {
            inputs[(b * t + step) * v + id as usize] = 1.0;
        }
        targets.extend_from_slice(target.as_ref());
    }
    Batch::of_examples(indices, inputs, Targets::ClassPerStep(targets), (t, v), output_kind)
}

/// A sequence task: a train and a test split of fixed-length sequences.
///
/// Implementors provide [`Task::batch`]; shuffled epochs, driving sequences and tensor
/// conversion come from the provided methods.
pub trait Task {
    /// Short identifier, e.g. `"smnist-row"`; saved with driving sequences.
    fn name(&self) -> String;
    /// Number of training sequences.
    fn num_train(&self) -> usize;
    /// Number of test sequences.
    fn num_test(&self) -> usize;
    /// Time steps per sequence `T`.
    fn seq_len(&self) -> usize;
    /// Features per time step `I`.
    fn input_size(&self) -> usize;
    /// What the network must output.
    fn output_kind(&self) -> OutputKind;

    /// Builds the batch of examples `indices` of `split`, in that order:
    /// inputs `[indices.len(), T, I]`. Errors on an index `>= num(split)`.
    fn batch(&self, split: Split, indices: &[usize]) -> Result<Batch>;

    /// Number of classes for classification kinds, `None` for regression.
    fn num_classes(&self) -> Option<usize> {
        match self.output_kind() {
            OutputKind::ClassPerSequence { num_classes }
            | OutputKind::ClassPerStep { num_classes } => Some(num_classes),
            OutputKind::ValuePerStep { .. } | OutputKind::ValuePerSequence { .. } => None,
        }
    }

    /// Number of examples in `split`.
    fn num_examples(&self, split: Split) -> usize {
        match split {
            Split::Train => self.num_train(),
            Split::Test => self.num_test(),
        }
    }

    /// Batches of one epoch over `split`, shuffled by `(seed, epoch)` (see the module docs), of
    /// `batch_size` examples each; the last batch is smaller unless `drop_last`. For a
    /// `&dyn Task` use [`BatchIter::for_epoch`].
    fn epoch_batches(
        &self,
        split: Split,
        batch_size: usize,
        seed: u64,
        epoch: u64,
        drop_last: bool,
    ) -> Result<BatchIter<'_>>
    where
        Self: Sized,
    {
        BatchIter::for_epoch(self, split, batch_size, seed, epoch, drop_last)
    }

    /// Batches over `split` in index order (no shuffling), e.g. for evaluation. For a
    /// `&dyn Task` use [`BatchIter::new`] with `(0..n).collect()`.
    fn ordered_batches(&self, split: Split, batch_size: usize) -> Result<BatchIter<'_>>
    where
        Self: Sized,
    {
        BatchIter::new(self, split, (0..self.num_examples(split)).collect(), batch_size, false)
    }

    /// The fixed driving sequences used for Lyapunov spectra: `n` test sequences chosen by a
    /// seeded shuffle of the test indices (`ChaCha8Rng::seed_from_u64(seed)`, stream
    /// `u64::MAX`, first `n`, kept in that order). Inputs `[n, T, I]`. The same `(n, seed)`
    /// gives the same sequences for every network and epoch.
    fn driving_sequences(&self, n: usize, seed: u64) -> Result<DrivingSequences> {
        let available = self.num_test();
        if n == 0 || n > available {
            return Err(DatasetError::InvalidConfig {
                task: self.name(),
                message: format!("asked for {n} driving sequences, the test split has {available}"),
            });
        }
        let mut indices = shuffled_indices(available, seed, u64::MAX);
        indices.truncate(n);
        let batch = self.batch(Split::Test, &indices)?;
        Ok(DrivingSequences {
            inputs: batch.inputs,
            num_sequences: n,
            seq_len: batch.seq_len,
            input_size: batch.input_size,
            task: self.name(),
            seed,
            test_indices: indices,
        })
    }
}

/// A borrowed task is a task (so a [`crate::Subset`] can view a task it does not own).
impl<T: Task + ?Sized> Task for &T {
    fn name(&self) -> String {
        (**self).name()
    }
    fn num_train(&self) -> usize {
        (**self).num_train()
    }
    fn num_test(&self) -> usize {
        (**self).num_test()
    }
    fn seq_len(&self) -> usize {
        (**self).seq_len()
    }
    fn input_size(&self) -> usize {
        (**self).input_size()
    }
    fn output_kind(&self) -> OutputKind {
        (**self).output_kind()
    }
    fn batch(&self, split: Split, indices: &[usize]) -> Result<Batch> {
        (**self).batch(split, indices)
    }
    fn num_classes(&self) -> Option<usize> {
        (**self).num_classes()
    }
    fn driving_sequences(&self, n: usize, seed: u64) -> Result<DrivingSequences> {
        (**self).driving_sequences(n, seed)
    }
}

/// Indices `0..n` shuffled by `ChaCha8Rng::seed_from_u64(seed)` on stream `stream`.
pub fn shuffled_indices(n: usize, seed: u64, stream: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rng);
    order
}

/// Iterator over the batches of one pass through a split, in a given example order.
pub struct BatchIter<'a> {
    task: &'a dyn Task,
    split: Split,
    order: Vec<usize>,
    batch_size: usize,
    drop_last: bool,
    position: usize,
}

impl std::fmt::Debug for BatchIter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchIter")
            .field("task", &self.task.name())
            .field("split", &self.split)
            .field("examples", &self.order.len())
            .field("batch_size", &self.batch_size)
            .field("drop_last", &self.drop_last)
            .field("position", &self.position)
            .finish()
    }
}

impl<'a> BatchIter<'a> {
    /// Batches of `batch_size` examples in `order` (indices of `split`; checked when each
    /// batch is built).
    pub fn new(
        task: &'a dyn Task,
        split: Split,
        order: Vec<usize>,
        batch_size: usize,
        drop_last: bool,
    ) -> Result<Self> {
        if batch_size == 0 {
            return Err(DatasetError::InvalidConfig {
                task: task.name(),
                message: "batch_size must be at least 1".to_string(),
            });
        }
        Ok(Self { task, split, order, batch_size, drop_last, position: 0 })
    }

    /// One shuffled epoch, as [`Task::epoch_batches`], for any `&dyn Task`.
    pub fn for_epoch(
        task: &'a dyn Task,
        split: Split,
        batch_size: usize,
        seed: u64,
        epoch: u64,
        drop_last: bool,
    ) -> Result<Self> {
        let order = shuffled_indices(task.num_examples(split), seed, epoch);
        Self::new(task, split, order, batch_size, drop_last)
    }

    /// Number of batches this pass yields in total.
    pub fn num_batches(&self) -> usize {
        if self.drop_last {
            self.order.len() / self.batch_size
        } else {
            self.order.len().div_ceil(self.batch_size)
        }
    }

    /// The example order of this pass.
    pub fn order(&self) -> &[usize] {
        &self.order
    }
}

impl Iterator for BatchIter<'_> {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        let remaining = self.order.len() - self.position;
        if remaining == 0 || (self.drop_last && remaining < self.batch_size) {
            return None;
        }
        let end = self.position + remaining.min(self.batch_size);
        let indices = &self.order[self.position..end];
        self.position = end;
        Some(self.task.batch(self.split, indices))
    }
}

/// Checks that every index is `< len`, naming the task and split otherwise.
pub(crate) fn check_indices(
    task: &dyn Fn() -> String,
    split: Split,
    indices: &[usize],
    len: usize,
) -> Result<()> {
    match indices.iter().find(|&&i| i >= len) {
        Some(&index) => {
            Err(DatasetError::IndexOutOfRange { task: task(), split: split.name(), index, len })
        }
        None => Ok(()),
    }
}
