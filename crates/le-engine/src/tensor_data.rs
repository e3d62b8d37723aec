//! Decoding the element data of safetensors tensors.

use safetensors::Dtype;

/// The little-endian elements of a floating-point tensor (`F64`, `F32`, `F16`, `BF16`) as
/// `f64`; `None` for any other dtype. Shapes are the caller's business.
pub fn decode_floats(dtype: Dtype, bytes: &[u8]) -> Option<Vec<f64>> {
    Some(match dtype {
        Dtype::F64 => {
            bytes.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8"))).collect()
        }
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4")) as f64)
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes(c.try_into().expect("2")).to_f64())
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes(c.try_into().expect("2")).to_f64())
            .collect(),
        _ => return None,
    })
}

/// Name of the dtypes [`decode_floats`] accepts, for error messages.
pub const FLOAT_DTYPES: &str = "F32, F64, F16 or BF16";

/// Largest safetensors header read by [`check_safetensors_size`] (the `safetensors` crate's
/// own limit is 100 MB).
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// A cheap integrity check of a safetensors file on disk that reads only its header: the
/// 8-byte header length, the JSON header, and the file's size, which must be exactly
/// `8 + header + the largest tensor end offset`. A truncated or extended file (a killed copy,
/// a partial download) fails with a message naming the file, without reading the tensors.
/// Used where a stage would skip work because the file exists.
pub fn check_safetensors_size(path: &std::path::Path) -> crate::Result<()> {
    use std::io::Read;
    let bad = |message: String| crate::LeError::Safetensors { path: path.to_path_buf(), message };
    let io = |source| crate::LeError::Io { path: path.to_path_buf(), source };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(bad("not a regular file".into()));
    }
    let len = meta.len();
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut n = [0u8; 8];
    file.read_exact(&mut n).map_err(|_| bad(format!("{len} bytes, shorter than the header")))?;
    let n = u64::from_le_bytes(n);
    if n > MAX_HEADER_BYTES || n.saturating_add(8) > len {
        return Err(bad(format!("header of {n} bytes does not fit in the file's {len} bytes")));
    }
    let mut header = vec![0u8; n as usize];
    file.read_exact(&mut header).map_err(io)?;
    let value: serde_json::Value = serde_json::from_slice(&header)
        .map_err(|e| bad(format!("header is not valid JSON: {e}")))?;
    let end = value
        .as_object()
        .ok_or_else(|| bad("header is not a JSON object".into()))?
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(k, v)| {
            v.get("data_offsets")
                .and_then(|o| o.get(1))
                .and_then(serde_json::Value::as_u64)
                .ok_or_else(|| bad(format!("tensor `{k}` has no data_offsets")))
        })
        .try_fold(0u64, |acc, e| e.map(|e| acc.max(e)))?;
    let expected = 8 + n + end;
    if len != expected {
        return Err(bad(format!(
            "{len} bytes, the header describes {expected} (truncated or overwritten)"
        )));
    }
    Ok(())
}
