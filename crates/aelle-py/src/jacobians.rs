//! Spectra of given Jacobian sequences: `le_engine::jacobian_sequences_batch`.

use std::time::Instant;

use numpy::{Element, PyReadonlyArray4, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use le_engine::{Precision, Real, SpectrumConfig};

use crate::convert::{self, engine_error};
use crate::detached;

/// Spectra of `B` sequences of `T` Jacobians `J` (a C-contiguous `[B, T, D, D]` array of the
/// dtype of `precision`; rows are outputs, `J[b, t, i, j] = d x_{t+1, i} / d x_{t, j}`),
/// exponents per unit time `dt` (`1 / (T dt) sum ln R_ii`). Returns the dict of
/// `convert::spectra_dict` plus `dim`, `k`, `precision`, `orientation` and `engine_seconds`.
#[pyfunction]
#[pyo3(signature = (
    jacobians, *, k=None, dt=1.0, warmup=0, ons=1, precision="float64", log_base="e",
    orientation="jq", trace_every=None, zero_tol=1e-3
))]
#[allow(clippy::too_many_arguments)]
pub fn jacobian_spectra<'py>(
    py: Python<'py>,
    jacobians: Bound<'py, PyAny>,
    k: Option<usize>,
    dt: f64,
    warmup: usize,
    ons: usize,
    precision: &str,
    log_base: &str,
    orientation: &str,
    trace_every: Option<usize>,
    zero_tol: f64,
) -> PyResult<Bound<'py, PyDict>> {
    if !dt.is_finite() || dt <= 0.0 {
        return Err(PyValueError::new_err(format!(
            "dt: expected a finite time step > 0, got {dt}"
        )));
    }
    let precision = convert::precision(precision)?;
    let cfg = SpectrumConfig {
        k,
        warmup,
        ons_interval: ons,
        orientation: convert::orientation(orientation)?,
        log_base: convert::log_base(log_base)?,
        precision,
        trace_every,
        zero_tolerance: zero_tol,
        ..SpectrumConfig::default()
    };
    cfg.validate().map_err(engine_error)?;
    match precision {
        Precision::F64 => run::<f64>(py, &jacobians, dt, &cfg),
        Precision::F32 => run::<f32>(py, &jacobians, dt, &cfg),
    }
}

fn run<'py, T: Real + Element>(
    py: Python<'py>,
    jacobians: &Bound<'py, PyAny>,
    dt: f64,
    cfg: &SpectrumConfig,
) -> PyResult<Bound<'py, PyDict>> {
    let array = jacobians.extract::<PyReadonlyArray4<'py, T>>().map_err(|e| {
        PyValueError::new_err(format!(
            "J: expected a C-contiguous {} array [B, T, D, D]: {e}",
            T::NAME
        ))
    })?;
    let [b, t, d, d2] = [array.shape()[0], array.shape()[1], array.shape()[2], array.shape()[3]];
    if b == 0 || t == 0 || d == 0 || d != d2 {
        return Err(PyValueError::new_err(format!(
            "J: shape [{b}, {t}, {d}, {d2}], expected [B, T, D, D] with B, T, D >= 1"
        )));
    }
    let data =
        array.as_slice().map_err(|_| PyValueError::new_err("J: expected a C-contiguous array"))?;
    let (batch, seconds) = detached(py, || {
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            let per = t * d * d;
            return Err(PyValueError::new_err(format!(
                "J: non-finite value {} at [{}, {}, {}, {}]",
                data[i].as_f64(),
                i / per,
                (i % per) / (d * d),
                (i % (d * d)) / d,
                i % d
            )));
        }
        let sequences: Vec<&[T]> = data.chunks_exact(t * d * d).collect();
        let start = Instant::now();
        let batch =
            le_engine::jacobian_sequences_batch(&sequences, d, dt, cfg).map_err(engine_error)?;
        Ok((batch, start.elapsed().as_secs_f64()))
    })?;
    let out = convert::spectra_dict(py, &batch.members, &batch.stats)?;
    out.set_item("dim", d)?;
    out.set_item("k", batch.stats.mean.len())?;
    out.set_item("precision", cfg.precision.label())?;
    out.set_item("orientation", cfg.orientation.label())?;
    out.set_item("engine_seconds", seconds)?;
    Ok(out)
}
