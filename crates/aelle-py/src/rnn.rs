//! Spectra of recurrent networks: `le_engine::rnn::population_spectra` on networks loaded by
//! `Network::load` (a safetensors path) or `Network::from_bytes` (a state dict, serialised to
//! safetensors bytes in memory so that the one loader checks names, shapes and values).

use std::path::PathBuf;
use std::time::Instant;

use numpy::{Element, PyReadonlyArray3, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use safetensors::{Dtype, tensor::TensorView};

use le_engine::rnn::{CellKind, InputSet, LoadOptions, Network, RnnSpectrumConfig};
use le_engine::{Precision, Real};

use crate::convert::{self, engine_error};
use crate::detached;

/// Where a network comes from: a safetensors file, or a state dict already serialised to
/// safetensors bytes (named `state_dict[i]` in messages).
enum Source {
    File(PathBuf),
    Bytes { name: PathBuf, bytes: Vec<u8> },
}

impl Source {
    fn label(&self) -> String {
        match self {
            Source::File(p) => p.display().to_string(),
            Source::Bytes { name, .. } => name.display().to_string(),
        }
    }

    fn load<T: Real>(&self, opts: &LoadOptions) -> PyResult<Network<T>> {
        match self {
            Source::File(p) => Network::load(p, opts),
            Source::Bytes { name, bytes } => Network::from_bytes(bytes, name, opts),
        }
        .map_err(engine_error)
    }
}

/// A path (`str`), or a list of `(name, float64 array)` pairs.
fn source(index: usize, obj: &Bound<'_, PyAny>) -> PyResult<Source> {
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Source::File(PathBuf::from(s.to_str()?)));
    }
    let pairs: Vec<(String, PyReadonlyArrayDyn<'_, f64>)> = obj.extract().map_err(|e: PyErr| {
        PyValueError::new_err(format!(
            "model {index}: expected a safetensors path or (name, float64 array) pairs: {e}"
        ))
    })?;
    let owned: Vec<(String, Vec<usize>, Vec<u8>)> = pairs
        .iter()
        .map(|(name, a)| {
            let bytes = a.as_array().iter().flat_map(|x| x.to_le_bytes()).collect();
            (name.clone(), a.shape().to_vec(), bytes)
        })
        .collect();
    let views = owned
        .iter()
        .map(|(name, shape, bytes)| {
            TensorView::new(Dtype::F64, shape.clone(), bytes)
                .map(|v| (name.as_str(), v))
                .map_err(|e| PyValueError::new_err(format!("tensor `{name}`: {e}")))
        })
        .collect::<PyResult<Vec<_>>>()?;
    let bytes = safetensors::serialize(views, None)
        .map_err(|e| PyValueError::new_err(format!("model {index}: {e}")))?;
    let name = if index == 0 { "state_dict".into() } else { format!("state_dict[{index}]") };
    Ok(Source::Bytes { name: PathBuf::from(name), bytes })
}

/// The settings of the CLI's `spectrum --weights` from the same options: the standard
/// schedule, or (`reference_mode`) `RnnSpectrumConfig::reference` with the given options on
/// top.
#[allow(clippy::too_many_arguments)]
fn config(
    k: Option<usize>,
    warmup: Option<usize>,
    ons: usize,
    precision: Precision,
    lstm_state: Option<&str>,
    log_base: Option<&str>,
    reference_mode: bool,
    trace_every: Option<usize>,
    zero_tol: f64,
) -> PyResult<RnnSpectrumConfig> {
    let mut cfg = if reference_mode {
        RnnSpectrumConfig::reference(k, warmup)
    } else {
        let mut cfg = RnnSpectrumConfig::default();
        cfg.spectrum.k = k;
        cfg.spectrum.warmup = warmup.unwrap_or(0);
        cfg
    };
    cfg.spectrum.ons_interval = ons;
    cfg.spectrum.precision = precision;
    cfg.spectrum.trace_every = trace_every;
    cfg.spectrum.zero_tolerance = zero_tol;
    if let Some(s) = lstm_state {
        cfg.lstm_state = convert::lstm_state(s)?;
    }
    if let Some(b) = log_base {
        cfg.spectrum.log_base = convert::log_base(b)?;
    }
    cfg.spectrum.validate().map_err(engine_error)?;
    Ok(cfg)
}

/// Spectra of networks of one kind and shape, each a safetensors path or a list of
/// `(name, float64 array)` pairs with PyTorch names, driven by `inputs`: one C-contiguous
/// `[B, T, I]` array for all networks or one per network, of the dtype of `precision`
/// (`float64` or `float32`). Returns one dict per network (see `convert::spectra_dict`) plus
/// the network's `arch`, `hidden_size`, `input_size`, `num_layers`, `bias`, `dim` (tangent
/// dimension), `k`, `precision`, `lstm_state`, `orientation`, `reference_mode`, `source` and
/// `engine_seconds` (wall time of the engine call, without loading and conversions).
#[pyfunction]
#[pyo3(signature = (
    sources, inputs, *, arch=None, prefix=None, eps=None, gamma=None, dt=None, k=None,
    warmup=None, ons=1, precision="float64", lstm_state=None, log_base=None,
    reference_mode=false, trace_every=None, zero_tol=1e-3
))]
#[allow(clippy::too_many_arguments)]
pub fn rnn_spectra<'py>(
    py: Python<'py>,
    sources: Vec<Bound<'py, PyAny>>,
    inputs: Vec<Bound<'py, PyAny>>,
    arch: Option<&str>,
    prefix: Option<String>,
    eps: Option<f64>,
    gamma: Option<f64>,
    dt: Option<f64>,
    k: Option<usize>,
    warmup: Option<usize>,
    ons: usize,
    precision: &str,
    lstm_state: Option<&str>,
    log_base: Option<&str>,
    reference_mode: bool,
    trace_every: Option<usize>,
    zero_tol: f64,
) -> PyResult<Vec<Bound<'py, PyDict>>> {
    if sources.is_empty() {
        return Err(PyValueError::new_err("models: expected at least one network"));
    }
    let arch = match arch {
        None => None,
        Some(a) => Some(CellKind::parse(a).ok_or_else(|| {
            PyValueError::new_err(format!(
                "arch: unknown cell {a:?} (expected rnn, gru, lstm, asrnn or cornn)"
            ))
        })?),
    };
    let opts = LoadOptions { arch, prefix, eps, gamma, dt };
    let precision = convert::precision(precision)?;
    let cfg = config(
        k,
        warmup,
        ons,
        precision,
        lstm_state,
        log_base,
        reference_mode,
        trace_every,
        zero_tol,
    )?;
    let sources =
        sources.iter().enumerate().map(|(i, s)| source(i, s)).collect::<PyResult<Vec<_>>>()?;
    match precision {
        Precision::F64 => run::<f64>(py, &sources, &inputs, &opts, &cfg),
        Precision::F32 => run::<f32>(py, &sources, &inputs, &opts, &cfg),
    }
}

fn run<'py, T: Real + Element>(
    py: Python<'py>,
    sources: &[Source],
    inputs: &[Bound<'py, PyAny>],
    opts: &LoadOptions,
    cfg: &RnnSpectrumConfig,
) -> PyResult<Vec<Bound<'py, PyDict>>> {
    let arrays = inputs
        .iter()
        .enumerate()
        .map(|(i, a)| {
            a.extract::<PyReadonlyArray3<'py, T>>().map_err(|e| {
                PyValueError::new_err(format!(
                    "inputs[{i}]: expected a C-contiguous {} array [B, T, I]: {e}",
                    T::NAME
                ))
            })
        })
        .collect::<PyResult<Vec<_>>>()?;
    let Some(first) = arrays.first() else {
        return Err(PyValueError::new_err("inputs: expected at least one [B, T, I] array"));
    };
    let [batch, steps, input] = [first.shape()[0], first.shape()[1], first.shape()[2]];
    for (i, a) in arrays.iter().enumerate() {
        if a.shape() != [batch, steps, input] {
            return Err(PyValueError::new_err(format!(
                "inputs[{i}]: shape {:?}, but inputs[0] is [{batch}, {steps}, {input}] (every network's inputs must have one shape)",
                a.shape()
            )));
        }
    }
    let slices = arrays
        .iter()
        .enumerate()
        .map(|(i, a)| {
            a.as_slice().map_err(|_| {
                PyValueError::new_err(format!("inputs[{i}]: expected a C-contiguous array"))
            })
        })
        .collect::<PyResult<Vec<&[T]>>>()?;
    let (nets, pop, seconds) = detached(py, || {
        let nets =
            sources.iter().map(|s| s.load::<T>(opts)).collect::<PyResult<Vec<Network<T>>>>()?;
        let net = &nets[0];
        if input != net.input {
            return Err(PyValueError::new_err(format!(
                "inputs: shape [{batch}, {steps}, {input}] has I = {input} per step, but {} expects input_size = {} ([B, T, {}])",
                sources[0].label(),
                net.input,
                net.input
            )));
        }
        let set = if slices.len() == 1 {
            InputSet::shared(slices[0], batch, steps)
        } else {
            InputSet::per_network(slices.clone(), batch, steps)
        };
        let start = Instant::now();
        let pop = le_engine::rnn::population_spectra(&nets, &set, cfg).map_err(engine_error)?;
        Ok((nets, pop, start.elapsed().as_secs_f64()))
    })?;
    let sc = &cfg.spectrum;
    nets.iter()
        .zip(sources)
        .zip(pop.spectra.iter().zip(&pop.stats))
        .map(|((net, src), (spectra, stats))| {
            let d = convert::spectra_dict(py, spectra, stats)?;
            d.set_item("arch", net.kind.name())?;
            d.set_item("hidden_size", net.hidden)?;
            d.set_item("input_size", net.input)?;
            d.set_item("num_layers", net.num_layers())?;
            d.set_item("bias", net.bias)?;
            d.set_item("dim", net.tangent_dim(cfg.lstm_state))?;
            d.set_item("k", stats.mean.len())?;
            d.set_item("precision", sc.precision.label())?;
            d.set_item("lstm_state", cfg.lstm_state.label())?;
            d.set_item("orientation", sc.orientation.label())?;
            d.set_item("reference_mode", cfg.warmup_mode == le_engine::rnn::WarmupMode::Reference)?;
            d.set_item("source", src.label())?;
            d.set_item("engine_seconds", seconds)?;
            Ok(d)
        })
        .collect()
}
