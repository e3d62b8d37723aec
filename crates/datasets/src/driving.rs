//! Driving sequences for Lyapunov spectra, and their safetensors file.
//!
//! A spectrum is computed by driving a network with fixed input sequences; to compare networks
//! and epochs the *same* sequences must be used everywhere. [`crate::Task::driving_sequences`]
//! picks them from the test split with a seed; [`DrivingSequences::save_safetensors`] stores
//! them so that other tools (or PyTorch) use the identical inputs.
//!
//! File layout: one tensor `inputs`, dtype `F32`, shape `[B, T, I]`; metadata keys `task`,
//! `seed`, `test_indices` (JSON array of the test-split indices, in batch order) and `format`
//! (`"aelle-driving-sequences-v1"`).

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::error::{DatasetError, Result};

/// Name of the tensor holding the inputs in the safetensors file.
pub const DRIVING_INPUTS_TENSOR: &str = "inputs";
/// Value of the `format` metadata key.
pub const DRIVING_FORMAT: &str = "aelle-driving-sequences-v1";

/// A fixed batch of input sequences, `inputs` row-major `[num_sequences, seq_len, input_size]`.
#[derive(Clone, Debug, PartialEq)]
pub struct DrivingSequences {
    /// Row-major `f32` inputs, shape `[num_sequences, seq_len, input_size]`.
    pub inputs: Vec<f32>,
    /// `B`.
    pub num_sequences: usize,
    /// `T`.
    pub seq_len: usize,
    /// `I`.
    pub input_size: usize,
    /// Name of the task they come from.
    pub task: String,
    /// Seed that chose them.
    pub seed: u64,
    /// Indices into the task's test split, in batch order (length `B`).
    pub test_indices: Vec<usize>,
}

impl DrivingSequences {
    /// Shape `[B, T, I]`.
    pub fn shape(&self) -> [usize; 3] {
        [self.num_sequences, self.seq_len, self.input_size]
    }

    /// The inputs of sequence `b`, row-major `[T, I]`. Panics if `b >= num_sequences`.
    pub fn sequence(&self, b: usize) -> &[f32] {
        let n = self.seq_len * self.input_size;
        &self.inputs[b * n..(b + 1) * n]
    }

    /// A candle tensor `[B, T, I]` (`f32`) of the inputs (copies: the struct keeps its data).
    pub fn to_tensor(&self, device: &candle_core::Device) -> Result<candle_core::Tensor> {
        Ok(candle_core::Tensor::from_slice(
            &self.inputs,
            (self.num_sequences, self.seq_len, self.input_size),
            device,
        )?)
    }

    /// Serialises to safetensors bytes (layout in the module docs).
    pub fn to_safetensors_bytes(&self) -> Result<Vec<u8>> {
        let bytes: Vec<u8> = self.inputs.iter().flat_map(|v| v.to_le_bytes()).collect();
        let err = |message: String| DatasetError::Safetensors {
            path: format!("<driving sequences of {}>", self.task).into(),
            message,
        };
        let view = TensorView::new(Dtype::F32, self.shape().to_vec(), &bytes)
            .map_err(|e| err(e.to_string()))?;
        let indices = serde_json::to_string(&self.test_indices).map_err(|e| err(e.to_string()))?;
        let metadata = HashMap::from([
            ("format".to_string(), DRIVING_FORMAT.to_string()),
            ("task".to_string(), self.task.clone()),
            ("seed".to_string(), self.seed.to_string()),
            ("test_indices".to_string(), indices),
        ]);
        safetensors::serialize([(DRIVING_INPUTS_TENSOR, view)], Some(metadata))
            .map_err(|e| err(e.to_string()))
    }

    /// Writes the file through a temporary file and a rename, so a crash never leaves a half
    /// file at `path`.
    pub fn save_safetensors(&self, path: &Path) -> Result<()> {
        let bytes = self.to_safetensors_bytes()?;
        aelle_support::fs::write_atomic(path, &bytes)
            .map_err(|e| DatasetError::Io { path: e.path.clone(), source: e.source })
    }

    /// Reads a file written by [`DrivingSequences::save_safetensors`] (or by any tool that
    /// writes an `F32` tensor `inputs` of rank 3; missing metadata is left empty / zero).
    pub fn load_safetensors(path: &Path) -> Result<Self> {
        let bytes = aelle_support::fs::read_input_file(path)
            .map_err(|source| DatasetError::Io { path: path.to_path_buf(), source })?;
        Self::from_safetensors_bytes(&bytes, path)
    }

    /// Parses safetensors bytes; `path` only names the source in errors.
    pub fn from_safetensors_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        let err = |message: String| DatasetError::Safetensors { path: path.to_path_buf(), message };
        let tensors = SafeTensors::deserialize(bytes).map_err(|e| err(e.to_string()))?;
        let view = tensors
            .tensor(DRIVING_INPUTS_TENSOR)
            .map_err(|e| err(format!("{e}; expected a tensor named {DRIVING_INPUTS_TENSOR:?}")))?;
        if view.dtype() != Dtype::F32 {
            return Err(err(format!(
                "tensor {DRIVING_INPUTS_TENSOR:?} has dtype {:?}, expected F32",
                view.dtype()
            )));
        }
        let &[b, t, i] = view.shape() else {
            return Err(err(format!(
                "tensor {DRIVING_INPUTS_TENSOR:?} has shape {:?}, expected [B, T, I]",
                view.shape()
            )));
        };
        let inputs: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| err(e.to_string()))?;
        let meta = header.metadata().clone().unwrap_or_default();
        let seed = match meta.get("seed") {
            Some(s) => s.parse().map_err(|_| err(format!("metadata seed {s:?} is not a u64")))?,
            None => 0,
        };
        let test_indices: Vec<usize> = match meta.get("test_indices") {
            Some(s) => serde_json::from_str(s)
                .map_err(|e| err(format!("metadata test_indices is not a JSON array: {e}")))?,
            None => Vec::new(),
        };
        if !test_indices.is_empty() && test_indices.len() != b {
            return Err(err(format!(
                "metadata test_indices has {} entries, expected {b} (one per sequence)",
                test_indices.len()
            )));
        }
        Ok(Self {
            inputs,
            num_sequences: b,
            seq_len: t,
            input_size: i,
            task: meta.get("task").cloned().unwrap_or_default(),
            seed,
            test_indices,
        })
    }
}
