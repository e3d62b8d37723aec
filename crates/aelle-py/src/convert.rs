//! Conversions at the boundary: option strings to the engine's enums, engine errors to Python
//! exceptions, spectra to dicts of numpy arrays.

use numpy::{PyArray1, PyArrayMethods};
use pyo3::exceptions::{PyOSError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use le_engine::rnn::LstmState;
use le_engine::{LeError, LogBase, Orientation, Precision, Spectrum, SpectrumStats};

/// An engine error as the Python exception a user expects: unsupported dtype -> `TypeError`,
/// unreadable file -> `OSError`, everything else (shape, missing tensor, non-finite value,
/// metadata, option) -> `ValueError`. The message is the engine's, which names the file or
/// tensor and what was expected.
pub fn engine_error(e: LeError) -> PyErr {
    match e {
        LeError::BadDtype { .. } => PyTypeError::new_err(e.to_string()),
        LeError::Io { ref source, .. } => PyOSError::new_err(format!("{e}: {source}")),
        _ => PyValueError::new_err(e.to_string()),
    }
}

/// An AeLLE error: unreadable file -> `OSError`, everything else -> `ValueError`.
pub fn aelle_error(e: aelle::AelleError) -> PyErr {
    match e {
        aelle::AelleError::Io { .. } => PyOSError::new_err(e.to_string()),
        _ => PyValueError::new_err(e.to_string()),
    }
}

fn bad_option(name: &str, got: &str, expected: &str) -> PyErr {
    PyValueError::new_err(format!("{name}: expected {expected}, got {got:?}"))
}

/// `"float64"` / `"f64"`, `"float32"` / `"f32"`.
pub fn precision(s: &str) -> PyResult<Precision> {
    match s {
        "float64" | "f64" | "double" => Ok(Precision::F64),
        "float32" | "f32" | "float" => Ok(Precision::F32),
        _ => Err(bad_option("precision", s, "\"float64\" or \"float32\"")),
    }
}

/// `"full"`, `"h_only"` / `"h-only"`.
pub fn lstm_state(s: &str) -> PyResult<LstmState> {
    match s {
        "full" => Ok(LstmState::Full),
        "h_only" | "h-only" | "h" => Ok(LstmState::HOnly),
        _ => Err(bad_option("lstm_state", s, "\"full\" or \"h_only\"")),
    }
}

/// `"e"`, `"2"`.
pub fn log_base(s: &str) -> PyResult<LogBase> {
    match s {
        "e" | "ln" => Ok(LogBase::E),
        "2" | "two" | "log2" => Ok(LogBase::Two),
        _ => Err(bad_option("log_base", s, "\"e\" or 2")),
    }
}

/// `"jq"`, `"jtq"`.
pub fn orientation(s: &str) -> PyResult<Orientation> {
    match s.to_ascii_lowercase().as_str() {
        "jq" => Ok(Orientation::JQ),
        "jtq" => Ok(Orientation::JtQ),
        _ => Err(bad_option("orientation", s, "\"jq\" or \"jtq\"")),
    }
}

/// `v` as a numpy array of shape `dims` (`v.len()` must be their product).
pub fn array<'py, T: numpy::Element>(
    py: Python<'py>,
    v: Vec<T>,
    dims: &[usize],
) -> PyResult<Bound<'py, PyAny>> {
    Ok(PyArray1::from_vec(py, v).reshape(dims.to_vec())?.into_any())
}

/// The result of one network (or one batch of Jacobian sequences) as a dict of arrays: per
/// sequence `exponents` / `exponents_qr_order` `[B, k]`, `sum`, `kaplan_yorke`, `entropy_rate`,
/// `mean_log_abs_det` (NaN where not computed) `[B]`, `n_positive` `[B]`, `finite` `[B]`,
/// `status` (list of strings); over the finite sequences `mean`, `std` `[k]`, `n_finite`; the
/// trace `history` `[B, P, k]` (QR order, NaN after a divergence) with `history_steps` `[P]`;
/// `steps`, `dt`, `log_base`.
pub fn spectra_dict<'py>(
    py: Python<'py>,
    spectra: &[Spectrum],
    stats: &SpectrumStats,
) -> PyResult<Bound<'py, PyDict>> {
    let b = spectra.len();
    let k = stats.mean.len();
    let d = PyDict::new(py);
    let flat = |f: &dyn Fn(&Spectrum) -> &[f64]| -> Vec<f64> {
        spectra.iter().flat_map(|s| f(s).iter().copied()).collect()
    };
    let each = |f: &dyn Fn(&Spectrum) -> f64| -> Vec<f64> { spectra.iter().map(f).collect() };
    d.set_item("exponents", array(py, flat(&|s| &s.exponents), &[b, k])?)?;
    d.set_item("exponents_qr_order", array(py, flat(&|s| &s.exponents_qr_order), &[b, k])?)?;
    d.set_item("sum", array(py, each(&|s| s.sum), &[b])?)?;
    d.set_item("kaplan_yorke", array(py, each(&|s| s.kaplan_yorke), &[b])?)?;
    d.set_item("entropy_rate", array(py, each(&|s| s.entropy_rate), &[b])?)?;
    d.set_item(
        "mean_log_abs_det",
        array(py, each(&|s| s.mean_log_abs_det.unwrap_or(f64::NAN)), &[b])?,
    )?;
    let n_positive: Vec<i64> = spectra.iter().map(|s| s.n_positive as i64).collect();
    d.set_item("n_positive", array(py, n_positive, &[b])?)?;
    let finite: Vec<bool> = spectra.iter().map(|s| s.status.is_finite()).collect();
    d.set_item("finite", array(py, finite, &[b])?)?;
    let status: Vec<String> = spectra.iter().map(|s| s.status.to_string()).collect();
    d.set_item("status", status)?;
    d.set_item("mean", array(py, stats.mean.clone(), &[k])?)?;
    d.set_item("std", array(py, stats.std.clone(), &[k])?)?;
    d.set_item("n_finite", stats.n_finite)?;
    // the trace: the longest sequence's steps; shorter (diverged) traces padded with NaN
    let longest = spectra.iter().map(|s| s.trace.len()).max().unwrap_or(0);
    let steps: Vec<i64> = spectra
        .iter()
        .find(|s| s.trace.len() == longest)
        .map(|s| s.trace.iter().map(|p| p.step as i64).collect())
        .unwrap_or_default();
    let mut history = vec![f64::NAN; b * longest * k];
    for (i, s) in spectra.iter().enumerate() {
        for (p, point) in s.trace.iter().enumerate() {
            let at = (i * longest + p) * k;
            history[at..at + point.exponents.len()].copy_from_slice(&point.exponents);
        }
    }
    d.set_item("history", array(py, history, &[b, longest, k])?)?;
    d.set_item("history_steps", array(py, steps, &[longest])?)?;
    let first = spectra.first();
    d.set_item("steps", first.map_or(0, |s| s.steps))?;
    d.set_item("dt", first.map_or(1.0, |s| s.dt))?;
    d.set_item("log_base", first.map_or("e", |s| s.log_base.label()))?;
    Ok(d)
}
