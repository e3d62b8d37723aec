//! Shared test helpers: a tiny seeded classification / regression task and tolerances.
#![allow(dead_code)]

use aelle_support::tolerance::{self, Tol};
use candle_core::{DType, Device};
use datasets::{Batch, OutputKind, Split, Targets, Task};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rnn_models::{ModelShape, NetSpec, PopulationModel, TrainConfig};

/// Tolerance rule for f32 results: `|a - b| <= ABS + REL * |b|`.
pub const F32_ABS: f64 = 2e-5;
/// See [`F32_ABS`].
pub const F32_REL: f64 = 2e-4;
/// Tolerance for f64 results against PyTorch f64 (same maths, other summation order).
pub const F64_ABS: f64 = 1e-10;
/// See [`F64_ABS`].
pub const F64_REL: f64 = 1e-9;

/// A population of the one network `spec` with parameter values `values`, on the CPU.
pub fn one_network(
    shape: ModelShape,
    spec: &NetSpec,
    values: Vec<Vec<f64>>,
    dtype: DType,
) -> PopulationModel {
    PopulationModel::from_values(
        shape,
        std::slice::from_ref(spec),
        vec![values],
        dtype,
        &Device::Cpu,
    )
    .unwrap()
}

/// `a` close to `b` entry by entry: `|a - b| <= abs + rel |b|` (the workspace's rule,
/// [`aelle_support::tolerance`]; finite vs non-finite never close).
#[track_caller]
pub fn assert_close(what: &str, a: &[f64], b: &[f64], abs: f64, rel: f64) {
    tolerance::assert_close(what, a, b, Tol::abs_rel(abs, rel));
}

/// A small task with random inputs whose class is the sign pattern of the input sum over
/// time (learnable), or, for `ValuePerStep`, the running mean of the first feature.
pub struct TinyTask {
    pub kind: OutputKind,
    pub seq_len: usize,
    pub input_size: usize,
    pub train: Vec<(Vec<f32>, Vec<u32>, Vec<f32>)>,
    pub test: Vec<(Vec<f32>, Vec<u32>, Vec<f32>)>,
}

impl TinyTask {
    pub fn new(
        kind: OutputKind,
        n_train: usize,
        n_test: usize,
        seq_len: usize,
        input_size: usize,
        seed: u64,
    ) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut make = |n: usize| {
            (0..n)
                .map(|_| {
                    let x: Vec<f32> = (0..seq_len * input_size)
                        .map(|_| rng.random::<f32>() * 2.0 - 1.0)
                        .collect();
                    let mut classes = Vec::new();
                    let mut values = Vec::new();
                    let mut acc = 0.0f32;
                    for t in 0..seq_len {
                        acc += x[t * input_size];
                        let c = match kind {
                            OutputKind::ClassPerSequence { num_classes }
                            | OutputKind::ClassPerStep { num_classes } => {
                                ((acc + 2.0).max(0.0) as usize).min(num_classes - 1) as u32
                            }
                            _ => 0,
                        };
                        classes.push(c);
                        values.push(acc / (t + 1) as f32);
                    }
                    let classes = match kind {
                        OutputKind::ClassPerSequence { .. } => vec![*classes.last().unwrap()],
                        _ => classes,
                    };
                    (x, classes, values)
                })
                .collect::<Vec<_>>()
        };
        let train = make(n_train);
        let test = make(n_test);
        Self { kind, seq_len, input_size, train, test }
    }
}

impl Task for TinyTask {
    fn name(&self) -> String {
        "tiny".into()
    }
    fn num_train(&self) -> usize {
        self.train.len()
    }
    fn num_test(&self) -> usize {
        self.test.len()
    }
    fn seq_len(&self) -> usize {
        self.seq_len
    }
    fn input_size(&self) -> usize {
        self.input_size
    }
    fn output_kind(&self) -> OutputKind {
        self.kind
    }
    fn batch(&self, split: Split, indices: &[usize]) -> datasets::Result<Batch> {
        let data = match split {
            Split::Train => &self.train,
            Split::Test => &self.test,
        };
        let mut inputs = Vec::new();
        let mut classes = Vec::new();
        let mut values = Vec::new();
        for &i in indices {
            let (x, c, v) = &data[i];
            inputs.extend_from_slice(x);
            classes.extend_from_slice(c);
            values.extend_from_slice(v);
        }
        let targets = match self.kind {
            OutputKind::ClassPerSequence { .. } => Targets::ClassPerSequence(classes),
            OutputKind::ClassPerStep { .. } => Targets::ClassPerStep(classes),
            OutputKind::ValuePerStep { .. } => Targets::ValuePerStep(values),
            OutputKind::ValuePerSequence { .. } => Targets::ValuePerSequence(
                values.chunks(self.seq_len).map(|c| *c.last().unwrap()).collect(),
            ),
        };
        Ok(Batch {
            inputs,
            targets,
            batch_size: indices.len(),
            seq_len: self.seq_len,
            input_size: self.input_size,
            output_kind: self.kind,
            example_indices: indices.to_vec(),
        })
    }
}

/// Two short epochs of batch 8 with clipping and readout dropout: the training setting the
/// equality tests (fused = candle, population = alone) share.
pub fn small_config() -> TrainConfig {
    TrainConfig {
        epochs: 2,
        batch_size: 8,
        grad_clip: Some(0.5),
        readout_dropout: 0.2,
        eval_batch_size: 16,
        ..TrainConfig::default()
    }
}
