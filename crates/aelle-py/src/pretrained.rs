//! A trained AeLLE model (`aelle::PretrainedAelle`, as the orchestrator writes it to
//! `RUN/aelle/pretrained/model.safetensors` + `model.json` + `model.readout.json`): the latent
//! of spectra and the logistic read-out's probability of ending high performing.

use std::path::PathBuf;

use pyo3::exceptions::{PyIndexError, PyValueError};
use pyo3::prelude::*;

use aelle::pipeline::{ClassifierKind, EvaluationPoint};
use aelle::{PretrainedAelle, matrix::Matrix};

use crate::convert::{aelle_error, array};
use crate::detached;

/// A loaded pre-trained AeLLE model (the Python class `aelle.AeLLE` wraps it).
#[pyclass(name = "PretrainedAelle", module = "aelle._native", frozen)]
pub struct PyPretrained {
    inner: PretrainedAelle,
    path: PathBuf,
}

/// Spectra (each sorted descending, any length `>= 1`, all finite) as the model's rows.
fn spectra_rows(spectra: Vec<Vec<f64>>) -> PyResult<Vec<Vec<f64>>> {
    for (i, s) in spectra.iter().enumerate() {
        if s.is_empty() {
            return Err(PyValueError::new_err(format!(
                "spectra[{i}]: empty, expected k >= 1 exponents"
            )));
        }
        if let Some(j) = s.iter().position(|v| !v.is_finite()) {
            return Err(PyValueError::new_err(format!(
                "spectra: non-finite value {} at [{i}, {j}] (a diverged spectrum has no embedding)",
                s[j]
            )));
        }
    }
    Ok(spectra)
}

fn point_label(p: &EvaluationPoint) -> String {
    match p {
        EvaluationPoint::Fraction(f) => format!("{} % of training", 100.0 * f),
        EvaluationPoint::Epoch(e) => format!("epoch {e}"),
    }
}

#[pymethods]
impl PyPretrained {
    /// Loads `model.safetensors` (with `model.json` and `model.readout.json` beside it).
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let inner = detached(py, || PretrainedAelle::load(&path).map_err(aelle_error))?;
        Ok(Self { inner, path })
    }

    /// The file it was loaded from.
    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// Dimension of the latent code.
    #[getter]
    fn latent_dim(&self) -> usize {
        self.inner.model.network.shape().latent_dim
    }

    /// Networks the model was fitted on.
    #[getter]
    fn fitted_networks(&self) -> usize {
        self.inner.readout.fitted_networks
    }

    /// `(label, fraction or None, epoch or None, has_readout)` of every evaluation point.
    fn points(&self) -> Vec<(String, Option<f64>, Option<u32>, bool)> {
        self.inner
            .readout
            .evaluation_points
            .iter()
            .zip(&self.inner.readout.points)
            .map(|(p, r)| {
                let (f, e) = match p {
                    EvaluationPoint::Fraction(f) => (Some(*f), None),
                    EvaluationPoint::Epoch(e) => (None, Some(*e)),
                };
                (point_label(p), f, e, r.is_some())
            })
            .collect()
    }

    /// Latent codes `[n, latent_dim]` of `n` spectra (lists of any length) (the model's feature transform and
    /// encoder).
    fn latent<'py>(&self, py: Python<'py>, spectra: Vec<Vec<f64>>) -> PyResult<Bound<'py, PyAny>> {
        let rows = spectra_rows(spectra)?;
        let latent: Matrix = detached(py, || self.inner.model.latent(&rows).map_err(aelle_error))?;
        array(py, latent.data().to_vec(), &[latent.rows(), latent.cols()])
    }

    /// Predicted final loss `[n]` of the predictor head.
    fn predict_final_loss<'py>(
        &self,
        py: Python<'py>,
        spectra: Vec<Vec<f64>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let rows = spectra_rows(spectra)?;
        let loss =
            detached(py, || self.inner.model.predict_final_loss(&rows).map_err(aelle_error))?;
        let n = loss.len();
        array(py, loss, &[n])
    }

    /// The logistic read-out on the latent at evaluation point `point` (an index into
    /// [`Self::points`]): the probability `[n]` of ending high performing (final loss below the
    /// fitting population's median) and its cut (chosen on the fit's validation networks).
    fn logistic<'py>(
        &self,
        py: Python<'py>,
        spectra: Vec<Vec<f64>>,
        point: usize,
    ) -> PyResult<(Bound<'py, PyAny>, f64)> {
        let points = &self.inner.readout.points;
        let readout = match points.get(point) {
            None => {
                return Err(PyIndexError::new_err(format!(
                    "point: {point} is out of range (the model has {} evaluation points)",
                    points.len()
                )));
            }
            Some(None) => {
                return Err(PyValueError::new_err(format!(
                    "point: the model has no read-out at {} (too few fitting networks had a checkpoint there)",
                    point_label(&self.inner.readout.evaluation_points[point])
                )));
            }
            Some(Some(r)) => r,
        };
        let cut_index = ClassifierKind::ALL
            .iter()
            .position(|c| *c == ClassifierKind::AelleLogistic)
            .expect("AelleLogistic is one of ClassifierKind::ALL");
        let cut = readout.cuts[cut_index];
        let rows = spectra_rows(spectra)?;
        let probability = detached(py, || {
            let latent = self.inner.model.latent(&rows).map_err(aelle_error)?;
            readout.logistic.predict_probability(&latent).map_err(aelle_error)
        })?;
        let n = probability.len();
        Ok((array(py, probability, &[n])?, cut))
    }
}
