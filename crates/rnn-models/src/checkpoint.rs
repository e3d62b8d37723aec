//! Safetensors checkpoints with PyTorch parameter names (`docs/checkpoint-format.md`).
//!
//! A checkpoint holds one network: cell tensors `rnn.weight_ih_l0`, `rnn.weight_hh_l0`,
//! `rnn.bias_ih_l0`, `rnn.bias_hh_l0` (rnn/gru/lstm), `rnn.bias_l0` (asrnn/cornn),
//! `rnn.weight_hy_l0`, `rnn.weight_hz_l0` (cornn), ..., and the readout `fc.weight` `[C, N]`,
//! `fc.bias` `[C]`, all `F32`, row-major. `__metadata__` (strings): `arch`, `hidden_size`,
//! `input_size`, `num_layers`, `bias`, the cell constants (`eps`, `gamma` for asrnn; `dt`,
//! `gamma`, `eps` for cornn), `output_size`, `head`, `p`, `seed`, `lr`, `init`, `epoch`,
//! `train_loss`, `test_loss`, `test_accuracy` (when known), `format`.
//!
//! Files are written to `<name>.tmp`, flushed and renamed ([`aelle_support::fs`]), so a crash
//! never leaves a half file.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use le_engine::rnn::CellKind;

use crate::config::NetSpec;
use crate::error::{ModelError, Result};
use crate::model::{ModelShape, ParamSpec};

/// Value of the `format` metadata key.
pub const CHECKPOINT_FORMAT: &str = "aelle-rnn-checkpoint/1";

/// The training record stored with a checkpoint.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CheckpointRecord {
    /// Epoch (0 = untrained).
    pub epoch: usize,
    /// Mean training loss of the epoch (epoch 0: evaluated on the train split, if done).
    pub train_loss: Option<f64>,
    /// Test loss.
    pub test_loss: Option<f64>,
    /// Test accuracy in `[0, 1]` (classification).
    pub test_accuracy: Option<f64>,
}

/// Writes `bytes` to `path` with the workspace's one crash-safe write
/// ([`aelle_support::fs::write_atomic`]: `<name>.tmp`, `fsync`, rename); a failure is a
/// [`ModelError::Io`] naming the path it happened on and the step.
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    aelle_support::fs::write_atomic(path, bytes).map_err(|e| {
        let source =
            std::io::Error::new(e.source.kind(), format!("cannot {}: {}", e.action, e.source));
        ModelError::io(e.path, source)
    })
}

/// Serialises named `F32` tensors with metadata into safetensors bytes, deterministically:
/// tensors in name order, metadata keys sorted, header padded with spaces to a multiple of 8
/// (as the reference implementation does). The same input always gives the same bytes, so
/// a resumed sweep rewrites identical files. (`safetensors::serialize` takes a `HashMap`
/// whose order changes between runs.)
pub fn serialize_f32(
    path_for_errors: &Path,
    tensors: &[(String, Vec<usize>, Vec<f32>)],
    metadata: HashMap<String, String>,
) -> Result<Vec<u8>> {
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by(|&a, &b| tensors[a].0.cmp(&tensors[b].0));
    let mut header = serde_json::Map::new();
    let sorted_md: std::collections::BTreeMap<String, String> = metadata.into_iter().collect();
    if !sorted_md.is_empty() {
        header.insert(
            "__metadata__".into(),
            serde_json::Value::Object(
                sorted_md.into_iter().map(|(k, v)| (k, serde_json::Value::String(v))).collect(),
            ),
        );
    }
    let mut offset = 0usize;
    for &i in &order {
        let (name, shape, values) = &tensors[i];
        if name == "__metadata__" || header.contains_key(name) {
            return Err(ModelError::Safetensors {
                path: path_for_errors.into(),
                message: format!("duplicate or reserved tensor name {name:?}"),
            });
        }
        if shape.iter().product::<usize>() != values.len() {
            return Err(ModelError::Safetensors {
                path: path_for_errors.into(),
                message: format!("tensor {name}: shape {shape:?} but {} values", values.len()),
            });
        }
        let end = offset + 4 * values.len();
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [offset, end]}),
        );
        offset = end;
    }
    let mut head = serde_json::to_vec(&serde_json::Value::Object(header)).map_err(|e| {
        ModelError::Safetensors { path: path_for_errors.into(), message: e.to_string() }
    })?;
    while head.len() % 8 != 0 {
        head.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + head.len() + offset);
    out.extend_from_slice(&(head.len() as u64).to_le_bytes());
    out.extend_from_slice(&head);
    for &i in &order {
        out.extend(tensors[i].2.iter().flat_map(|v| v.to_le_bytes()));
    }
    Ok(out)
}

/// Metadata describing a network (everything but the per-epoch record).
pub fn network_metadata(shape: &ModelShape, spec: &NetSpec) -> HashMap<String, String> {
    let mut md = HashMap::new();
    let mut put = |k: &str, v: String| {
        md.insert(k.to_string(), v);
    };
    put("format", CHECKPOINT_FORMAT.into());
    put("arch", shape.arch.name().into());
    put("hidden_size", shape.hidden_size.to_string());
    put("input_size", shape.input_size.to_string());
    put("num_layers", shape.num_layers.to_string());
    put("bias", shape.bias.to_string());
    put("output_size", shape.head.readout_size().to_string());
    put("head", shape.head.name().into());
    put("p", spec.p.to_string());
    put("seed", spec.seed.to_string());
    put("lr", spec.lr.to_string());
    put(
        "init",
        match spec.init {
            crate::config::InitScheme::UniformP => "uniform_p",
            crate::config::InitScheme::PytorchDefault => "pytorch_default",
            crate::config::InitScheme::OrthogonalRecurrent => "orthogonal_recurrent",
        }
        .into(),
    );
    let c = spec.resolved_constants();
    match shape.arch {
        CellKind::Asrnn => {
            put("eps", c.eps.to_string());
            put("gamma", c.gamma.to_string());
        }
        CellKind::Cornn => {
            put("dt", c.dt.to_string());
            put("gamma", c.gamma.to_string());
            put("eps", c.eps.to_string());
        }
        CellKind::Rnn | CellKind::Gru | CellKind::Lstm => {}
    }
    md
}

/// Writes one network's checkpoint (`values` per parameter in `param_specs` order).
pub fn write_checkpoint(
    path: &Path,
    shape: &ModelShape,
    spec: &NetSpec,
    param_specs: &[ParamSpec],
    values: &[Vec<f32>],
    record: &CheckpointRecord,
) -> Result<()> {
    if values.len() != param_specs.len() {
        return Err(ModelError::checkpoint(
            path,
            format!("{} tensors for {} parameters", values.len(), param_specs.len()),
        ));
    }
    let mut md = network_metadata(shape, spec);
    md.insert("epoch".into(), record.epoch.to_string());
    for (k, v) in [
        ("train_loss", record.train_loss),
        ("test_loss", record.test_loss),
        ("test_accuracy", record.test_accuracy),
    ] {
        if let Some(v) = v {
            md.insert(k.into(), v.to_string());
        }
    }
    let tensors: Vec<_> = param_specs
        .iter()
        .zip(values)
        .map(|(ps, v)| (ps.name.clone(), ps.shape.clone(), v.clone()))
        .collect();
    let bytes = serialize_f32(path, &tensors, md)?;
    write_file(path, &bytes)
}

/// A loaded checkpoint.
#[derive(Clone, Debug)]
pub struct LoadedCheckpoint {
    /// Values per parameter (flat, `f64`) in the requested order.
    pub values: Vec<Vec<f64>>,
    /// The `__metadata__` map (empty when absent).
    pub metadata: HashMap<String, String>,
}

fn read_view_f64(
    path: &Path,
    name: &str,
    view: &TensorView<'_>,
    shape: &[usize],
) -> Result<Vec<f64>> {
    if view.shape() != shape {
        return Err(ModelError::checkpoint(
            path,
            format!("tensor {name} has shape {:?}, expected {shape:?}", view.shape()),
        ));
    }
    let data = view.data();
    Ok(match view.dtype() {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        Dtype::F64 => data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect(),
        other => {
            return Err(ModelError::checkpoint(
                path,
                format!("tensor {name} has dtype {other:?}; F32 or F64 expected"),
            ));
        }
    })
}

/// Reads named `F32`/`F64` tensors (`prefix` + spec name) of the given shapes.
pub fn read_tensors(path: &Path, specs: &[(String, Vec<usize>)]) -> Result<LoadedCheckpoint> {
    let bytes = aelle_support::fs::read_input_file(path).map_err(|e| ModelError::io(path, e))?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| ModelError::Safetensors { path: path.into(), message: e.to_string() })?;
    let (_, header) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| ModelError::Safetensors { path: path.into(), message: e.to_string() })?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let values = specs
        .iter()
        .map(|(name, shape)| {
            let view = st
                .tensor(name)
                .map_err(|_| ModelError::checkpoint(path, format!("missing tensor {name}")))?;
            read_view_f64(path, name, &view, shape)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(LoadedCheckpoint { values, metadata })
}

/// Reads a checkpoint written by [`write_checkpoint`] for `shape` (or exported from PyTorch
/// with the same names), checking shapes and the `arch` metadata when present.
pub fn read_checkpoint(path: &Path, shape: &ModelShape) -> Result<LoadedCheckpoint> {
    let specs: Vec<_> = shape.param_specs().into_iter().map(|p| (p.name, p.shape)).collect();
    let loaded = read_tensors(path, &specs)?;
    if let Some(arch) = loaded.metadata.get("arch")
        && arch != shape.arch.name()
    {
        return Err(ModelError::checkpoint(
            path,
            format!("arch is {arch:?}, expected {:?}", shape.arch.name()),
        ));
    }
    Ok(loaded)
}

/// Parses a metadata value.
pub fn metadata_value<T: std::str::FromStr>(
    path: &Path,
    md: &HashMap<String, String>,
    key: &str,
) -> Result<T> {
    let raw = md
        .get(key)
        .ok_or_else(|| ModelError::checkpoint(path, format!("metadata key {key:?} missing")))?;
    raw.parse().map_err(|_| {
        ModelError::checkpoint(path, format!("metadata {key:?} = {raw:?} does not parse"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Head;

    #[test]
    fn checkpoint_round_trips_and_is_deterministic() {
        let dir = tempfile::tempdir().unwrap();
        let shape = ModelShape {
            arch: CellKind::Cornn,
            input_size: 2,
            hidden_size: 3,
            num_layers: 2,
            bias: true,
            head: Head::PerStepClass { classes: 4 },
        };
        let spec = NetSpec::new("c", CellKind::Cornn, 3, 0.25, 0.01, 5);
        let specs = shape.param_specs();
        let values: Vec<Vec<f32>> = specs
            .iter()
            .enumerate()
            .map(|(k, p)| (0..p.numel()).map(|i| (k * 100 + i) as f32 * 0.5).collect())
            .collect();
        let record = CheckpointRecord {
            epoch: 3,
            train_loss: Some(1.5),
            test_loss: Some(2.25),
            test_accuracy: None,
        };
        let a = dir.path().join("a.safetensors");
        let b = dir.path().join("b.safetensors");
        write_checkpoint(&a, &shape, &spec, &specs, &values, &record).unwrap();
        write_checkpoint(&b, &shape, &spec, &specs, &values, &record).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        assert!(!dir.path().join("a.safetensors.tmp").exists());
        let loaded = read_checkpoint(&a, &shape).unwrap();
        for (x, y) in loaded.values.iter().zip(&values) {
            assert_eq!(x, &y.iter().map(|&v| f64::from(v)).collect::<Vec<_>>());
        }
        let md = &loaded.metadata;
        for (k, v) in [
            ("arch", "cornn"),
            ("dt", "0.042"),
            ("gamma", "2.7"),
            ("eps", "4.7"),
            ("epoch", "3"),
            ("test_loss", "2.25"),
            ("num_layers", "2"),
        ] {
            assert_eq!(md.get(k).map(String::as_str), Some(v), "{k}");
        }
        assert!(!md.contains_key("test_accuracy"));
        // the reference safetensors parser agrees
        let bytes = std::fs::read(&a).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(st.tensor("rnn.weight_hz_l1").unwrap().shape(), &[3, 3]);
        assert_eq!(st.tensor("fc.weight").unwrap().shape(), &[4, 3]);
    }

    #[test]
    fn reading_a_wrong_or_broken_file_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        let shape = ModelShape {
            arch: CellKind::Rnn,
            input_size: 2,
            hidden_size: 3,
            num_layers: 1,
            bias: true,
            head: Head::LastStepClass { classes: 2 },
        };
        let missing = dir.path().join("none.safetensors");
        assert!(matches!(read_checkpoint(&missing, &shape), Err(ModelError::Io { .. })));
        let junk = dir.path().join("junk.safetensors");
        std::fs::write(&junk, b"not a safetensors file").unwrap();
        assert!(matches!(read_checkpoint(&junk, &shape), Err(ModelError::Safetensors { .. })));
        // an LSTM file read as an RNN: wrong shapes / arch
        let lstm = ModelShape { arch: CellKind::Lstm, ..shape };
        let spec = NetSpec::new("l", CellKind::Lstm, 3, 0.1, 0.01, 0);
        let specs = lstm.param_specs();
        let values: Vec<Vec<f32>> = specs.iter().map(|p| vec![0.0; p.numel()]).collect();
        let path = dir.path().join("lstm.safetensors");
        write_checkpoint(&path, &lstm, &spec, &specs, &values, &CheckpointRecord::default())
            .unwrap();
        let err = read_checkpoint(&path, &shape).unwrap_err();
        assert!(err.to_string().contains("lstm.safetensors"), "{err}");
    }
}
