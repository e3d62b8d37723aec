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
