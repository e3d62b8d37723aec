//! `aelle._native`: the Rust half of the `aelle` Python package.
//!
//! Thin bindings: every function converts Python values (numpy arrays, strings, lists) into the
//! types of `le-engine` and `aelle`, runs the engine with the GIL released ([`detached`]) on the
//! engine's rayon pool, and converts the result into numpy arrays. The user-facing API (torch
//! modules, state dicts, `Spectrum`, `AeLLE`, `EpochMonitor`) is the pure-Python part in
//! `python/aelle/`, which calls these functions with arrays it has already made contiguous.
//!
//! | module | binds |
//! | --- | --- |
//! | [`rnn`] | `le_engine::rnn::{Network::load, Network::from_bytes, population_spectra}` |
//! | [`jacobians`] | `le_engine::jacobian_sequences_batch` |
//! | [`pretrained`] | `aelle::PretrainedAelle` (load, latent, logistic read-out) |
//! | [`convert`] | option strings -> engine enums, spectra -> numpy, engine errors -> exceptions |
//!
//! Errors: engine errors become `ValueError` (wrong shape, missing tensor, non-finite values,
//! bad option), `TypeError` (unsupported dtype) or `OSError` (unreadable file); a Rust panic is
//! caught and raised as `aelle.RustPanic` (a `RuntimeError`), never an abort.

// A library returns values and errors; the Python caller prints.
#![warn(clippy::print_stdout, clippy::print_stderr)]

mod convert;
mod jacobians;
mod pretrained;
mod rnn;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};

use pyo3::create_exception;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

create_exception!(
    _native,
    RustPanic,
    PyRuntimeError,
    "A panic inside the Rust engine, caught at the boundary (a bug: please report it with the inputs)."
);

/// Calls currently inside [`detached`] (GIL released), and the most seen at once since the last
/// [`_reset_peak_concurrency`]: the thread test reads it to show that two calls overlapped.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// Runs `work` with the GIL released and any panic caught: the one way every binding enters
/// the engine. `work` may use rayon (the engine's global pool); a panic on a pool thread
/// propagates to this thread and is caught here too.
pub(crate) fn detached<T, F>(py: Python<'_>, work: F) -> PyResult<T>
where
    F: FnOnce() -> PyResult<T> + Send,
    T: Send,
{
    let outcome = py.detach(|| {
        let now = ACTIVE.fetch_add(1, Ordering::SeqCst) + 1;
        PEAK.fetch_max(now, Ordering::SeqCst);
        let outcome = catch_unwind(AssertUnwindSafe(work));
        ACTIVE.fetch_sub(1, Ordering::SeqCst);
        outcome
    });
    match outcome {
        Ok(result) => result,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic with a non-string payload".into());
            Err(RustPanic::new_err(format!("panic inside the Rust engine: {message}")))
        }
    }
}

/// Test hook: panics inside [`detached`], on the calling thread or (`in_pool`) on a rayon pool
/// thread, so the tests can show that a panic surfaces as `RustPanic` and the interpreter
/// lives on.
#[pyfunction]
#[pyo3(signature = (in_pool = false))]
fn _debug_panic(py: Python<'_>, in_pool: bool) -> PyResult<()> {
    detached(py, move || {
        if in_pool {
            rayon::join(|| panic!("test panic on a pool thread"), || ());
        } else {
            panic!("test panic on the calling thread");
        }
        Ok(())
    })
}

/// The most calls that were inside the engine with the GIL released at the same time since the
/// last reset.
#[pyfunction]
fn _peak_concurrency() -> usize {
    PEAK.load(Ordering::SeqCst)
}

/// Resets [`_peak_concurrency`] to the number of calls inside the engine now.
#[pyfunction]
fn _reset_peak_concurrency() {
    PEAK.store(ACTIVE.load(Ordering::SeqCst), Ordering::SeqCst);
}

/// Number of threads of the engine's pool (rayon's global pool; `RAYON_NUM_THREADS` sets it).
#[pyfunction]
fn num_threads() -> usize {
    rayon::current_num_threads()
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("RustPanic", m.py().get_type::<RustPanic>())?;
    m.add_function(wrap_pyfunction!(rnn::rnn_spectra, m)?)?;
    m.add_function(wrap_pyfunction!(jacobians::jacobian_spectra, m)?)?;
    m.add_function(wrap_pyfunction!(num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(_debug_panic, m)?)?;
    m.add_function(wrap_pyfunction!(_peak_concurrency, m)?)?;
    m.add_function(wrap_pyfunction!(_reset_peak_concurrency, m)?)?;
    m.add_class::<pretrained::PyPretrained>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
