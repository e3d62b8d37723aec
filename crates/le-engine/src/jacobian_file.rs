//! Jacobian sequences stored in safetensors files — the exchange format for users of other
//! frameworks.
//!
//! Format: a tensor `jacobians` of shape `[T, D, D]`, dtype F32 or F64, row-major, with
//! `jacobians[t][i][j] = d x_{t+1,i} / d x_{t,j}` (rows are outputs) and `J_t` applied at step
//! `t`; optionally a scalar tensor `dt` (shape `[]` or `[1]`, F32 or F64; default 1) giving
//! the time per step, so exponents come out per unit time.

use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

use crate::config::{Precision, SpectrumConfig};
use crate::engine::jacobian_sequence_spectrum;
use crate::error::{LeError, Result};
use crate::spectrum::Spectrum;
use crate::tensor_data::{FLOAT_DTYPES, decode_floats};

/// The element storage of a loaded sequence (kept in the file's precision).
#[derive(Debug, Clone)]
pub enum JacobianData {
    /// `f32` entries (an F32 file), `[T, D, D]` row-major.
    F32(Vec<f32>),
    /// `f64` entries (an F64 file), `[T, D, D]` row-major.
    F64(Vec<f64>),
}

/// A validated `[T, D, D]` Jacobian sequence loaded from a file.
#[derive(Debug, Clone)]
pub struct JacobianFile {
    /// The file it was loaded from.
    pub path: PathBuf,
    /// Sequence length `T`.
    pub len: usize,
    /// State dimension `D`.
    pub dim: usize,
    /// Time per step.
    pub dt: f64,
    /// The Jacobians.
    pub data: JacobianData,
}

impl JacobianFile {
    /// Read and validate `path`. Errors name the file, the tensor and what was expected.
    /// Regular files only (a pipe or device is refused before anything is read).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let bytes = aelle_support::fs::read_input_file(&path)
            .map_err(|source| LeError::Io { path: path.clone(), source })?;
        Self::from_bytes(&bytes, &path)
    }

    /// [`JacobianFile::load`] from bytes already in memory (`path` names them in messages).
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        let path = path.to_path_buf();
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| LeError::Safetensors { path: path.clone(), message: e.to_string() })?;
        let name = "jacobians";
        let expected_shape = "[T, D, D] with T >= 1 and D >= 1";
        let view = st.tensor(name).map_err(|_| LeError::MissingTensor {
            path: path.clone(),
            name: name.into(),
            expected: format!("shape {expected_shape}, dtype F32 or F64"),
        })?;
        let shape = view.shape().to_vec();
        if shape.len() != 3 || shape[1] != shape[2] || shape[0] == 0 || shape[1] == 0 {
            let what = if shape.len() == 3 && shape[1] != shape[2] {
                format!("{expected_shape} (square Jacobians, got {} x {})", shape[1], shape[2])
            } else {
                expected_shape.to_string()
            };
            return Err(LeError::BadShape {
                path,
                name: name.into(),
                expected: what,
                found: shape,
            });
        }
        let (len, dim) = (shape[0], shape[1]);
        let data = match view.dtype() {
            Dtype::F32 => JacobianData::F32(
                view.data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                    .collect(),
            ),
            Dtype::F64 => JacobianData::F64(
                view.data()
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                    .collect(),
            ),
            other => {
                return Err(LeError::BadDtype {
                    path,
                    name: name.into(),
                    expected: "F32 or F64".into(),
                    found: format!("{other:?}"),
                });
            }
        };
        let nonfinite = match &data {
            JacobianData::F32(v) => v.iter().position(|x| !x.is_finite()).map(|i| (i, v[i] as f64)),
            JacobianData::F64(v) => v.iter().position(|x| !x.is_finite()).map(|i| (i, v[i])),
        };
        if let Some((i, value)) = nonfinite {
            let dd = dim * dim;
            return Err(LeError::NonFinite {
                path,
                name: name.into(),
                index: vec![i / dd, (i % dd) / dim, i % dim],
                value,
            });
        }
        let dt = match st.tensor("dt") {
            Err(_) => 1.0,
            Ok(v) => {
                let n: usize = v.shape().iter().product();
                if n != 1 || v.shape().len() > 1 {
                    return Err(LeError::BadShape {
                        path,
                        name: "dt".into(),
                        expected: "a scalar: shape [] or [1]".into(),
                        found: v.shape().to_vec(),
                    });
                }
                let Some(vals) = decode_floats(v.dtype(), v.data()) else {
                    return Err(LeError::BadDtype {
                        path,
                        name: "dt".into(),
                        expected: FLOAT_DTYPES.into(),
                        found: format!("{:?}", v.dtype()),
                    });
                };
                let dt = vals[0];
                if !dt.is_finite() {
                    return Err(LeError::NonFinite {
                        path,
                        name: "dt".into(),
                        index: vec![],
                        value: dt,
                    });
                }
                if dt <= 0.0 {
                    return Err(LeError::BadShape {
                        path,
                        name: "dt".into(),
                        expected: format!("a time step > 0 (got {dt})"),
                        found: v.shape().to_vec(),
                    });
                }
                dt
            }
        };
        Ok(Self { path, len, dim, dt, data })
    }

    /// Spectrum of the sequence with `cfg` (precision as configured: the data are converted
    /// when the file's dtype differs).
    pub fn spectrum(&self, cfg: &SpectrumConfig) -> Result<Spectrum> {
        match (cfg.precision, &self.data) {
            (Precision::F64, JacobianData::F64(v)) => {
                jacobian_sequence_spectrum(v, self.dim, self.dt, cfg)
            }
            (Precision::F64, JacobianData::F32(v)) => {
                let v: Vec<f64> = v.iter().map(|&x| x as f64).collect();
                jacobian_sequence_spectrum(&v, self.dim, self.dt, cfg)
            }
            (Precision::F32, JacobianData::F32(v)) => {
                jacobian_sequence_spectrum(v, self.dim, self.dt, cfg)
            }
            (Precision::F32, JacobianData::F64(v)) => {
                let v: Vec<f32> = v.iter().map(|&x| x as f32).collect();
                jacobian_sequence_spectrum(&v, self.dim, self.dt, cfg)
            }
        }
    }
}

/// Write a `[T, D, D]` f64 Jacobian sequence (row-major) and its `dt` in the format
/// [`JacobianFile::load`] reads.
pub fn save_jacobians(path: impl AsRef<Path>, jacobians: &[f64], d: usize, dt: f64) -> Result<()> {
    let path = path.as_ref();
    let dd = d * d;
    if d == 0 || !jacobians.len().is_multiple_of(dd) {
        return Err(LeError::InvalidConfig {
            field: "jacobians",
            message: format!("{} values do not form a [T, {d}, {d}] sequence", jacobians.len()),
        });
    }
    let t = jacobians.len() / dd;
    let jac_bytes: Vec<u8> = jacobians.iter().flat_map(|v| v.to_le_bytes()).collect();
    let dt_bytes = dt.to_le_bytes().to_vec();
    let views = vec![
        (
            "jacobians".to_string(),
            safetensors::tensor::TensorView::new(Dtype::F64, vec![t, d, d], &jac_bytes)
                .expect("shape matches data"),
        ),
        (
            "dt".to_string(),
            safetensors::tensor::TensorView::new(Dtype::F64, vec![], &dt_bytes)
                .expect("scalar matches data"),
        ),
    ];
    safetensors::serialize_to_file(views, None, path)
        .map_err(|e| LeError::Safetensors { path: path.to_path_buf(), message: e.to_string() })
}
