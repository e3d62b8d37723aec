"""``AeLLE`` (a trained AeLLE model) and ``EpochMonitor`` (spectra, latent and prediction of a
user's own training run, epoch by epoch)."""

from __future__ import annotations

import csv
import os
from typing import Any, NamedTuple

import numpy as np

from . import _native
from ._api import lyapunov_spectrum
from ._convert import to_numpy


class Prediction(NamedTuple):
    """What :meth:`AeLLE.predict_high_performing` returns."""

    probability: np.ndarray
    """float64 [n]: probability of ending high performing (final loss below the fitting
    population's median)."""
    high: np.ndarray
    """bool [n]: ``probability >= cut``."""
    cut: float
    """The read-out's threshold, chosen on the fit's validation networks."""
    point: str
    """The evaluation point whose read-out was used."""


def _spectra(spectra, name: str = "spectra") -> list[list[float]]:
    """Spectra as rows: a :class:`Spectrum` (its ``mean``), one spectrum ``[k]``, an array
    ``[n, k]``, or a list of spectra of different lengths (e.g. LSTM and GRU networks)."""
    from ._spectrum import Spectrum

    if isinstance(spectra, Spectrum):
        spectra = spectra.mean
    if isinstance(spectra, (list, tuple)) and len(spectra) > 0 and not np.isscalar(spectra[0]):
        return [to_numpy(s, f"{name}[{i}]", ndim=1, dtype=np.float64).tolist() for i, s in enumerate(spectra)]
    x = to_numpy(spectra, name, ndim=(1, 2), dtype=np.float64)
    return (x[None] if x.ndim == 1 else x).tolist()


class AeLLE:
    """A trained AeLLE model: the autoencoder embedding of Lyapunov spectra and its read-outs.

    Load what ``orchestrator run`` fitted on a whole population (``RUN/aelle/pretrained/``) with
    :meth:`load`. Spectra are what the run computed for its networks: the mean over the driving
    sequences, sorted descending, natural log per step (``lyapunov_spectrum(...).mean`` with the
    default options and the run's driving inputs); any length (the model resamples them).
    """

    def __init__(self, native: Any):
        self._m = native

    @classmethod
    def load(cls, path: str | os.PathLike) -> "AeLLE":
        """A run folder (``RUN/aelle/pretrained/model.safetensors`` is used), a folder holding
        ``model.safetensors``, or the model file itself (``model.json`` and
        ``model.readout.json`` beside it)."""
        p = os.fspath(path)
        if os.path.isdir(p):
            for candidate in (os.path.join(p, "aelle", "pretrained", "model.safetensors"),
                              os.path.join(p, "model.safetensors")):
                if os.path.exists(candidate):
                    p = candidate
                    break
            else:
                raise FileNotFoundError(
                    f"{path}: no aelle/pretrained/model.safetensors (a run folder) nor model.safetensors in it")
        return cls(_native.PretrainedAelle.load(p))

    @property
    def path(self) -> str:
        """The model file."""
        return os.fspath(self._m.path)

    @property
    def latent_dim(self) -> int:
        """Dimension ``d`` of the latent code."""
        return self._m.latent_dim

    @property
    def fitted_networks(self) -> int:
        """Networks the model was fitted on."""
        return self._m.fitted_networks

    @property
    def points(self) -> list[str]:
        """Labels of the evaluation points (``"0 % of training"``, ...) that have a read-out."""
        return [label for label, _, _, ok in self._m.points() if ok]

    def _point_index(self, point) -> int:
        pts = self._m.points()
        if point is None:
            for i, (_, _, _, ok) in enumerate(pts):
                if ok:
                    return i
            raise ValueError("the model has no read-out at any evaluation point")
        if isinstance(point, str):
            for i, (label, _, _, _) in enumerate(pts):
                if label == point:
                    return i
            raise ValueError(f"point: {point!r} is not one of {[p[0] for p in pts]}")
        if isinstance(point, float):
            fr = [(abs(f - point), i) for i, (_, f, _, ok) in enumerate(pts) if f is not None and ok]
            if not fr:
                raise ValueError("point: the model has no read-out at a training fraction")
            return min(fr)[1]
        raise TypeError(f"point: expected None, a label or a training fraction (float), got {point!r}")

    def embed(self, spectra) -> np.ndarray:
        """Latent codes ``[n, d]`` of spectra: ``[n, k]``, one ``[k]``, a list of spectra of
        any lengths, or a :class:`Spectrum` (its ``mean``)."""
        return self._m.latent(_spectra(spectra))

    def predict_final_loss(self, spectra) -> np.ndarray:
        """The predictor head's final test loss ``[n]`` (the units of the run's loss)."""
        return self._m.predict_final_loss(_spectra(spectra))

    def predict_high_performing(self, spectra, point=None) -> Prediction:
        """Probability that each network ends high performing, from the logistic read-out on
        the latent at evaluation ``point`` (a label from :attr:`points`, a training fraction such
        as ``0.1`` for the nearest one, or ``None``: the earliest point with a read-out)."""
        i = self._point_index(point)
        prob, cut = self._m.logistic(_spectra(spectra), i)
        return Prediction(prob, prob >= cut, float(cut), self._m.points()[i][0])

    def __repr__(self) -> str:
        return f"AeLLE({self.path!r}, latent_dim={self.latent_dim}, points={self.points})"


class EpochMonitor:
    """Spectra, AeLLE latent and predicted probability of a training run, one row per epoch.

    ::

        monitor = aelle.EpochMonitor(driving_inputs, model=aelle.AeLLE.load("runs/default"))
        for epoch in range(epochs):
            train_one_epoch(net)
            monitor.record(net.lstm, epoch=epoch, test_loss=loss)
        monitor.to_csv("monitor.csv"); monitor.column("lambda_max")

    ``inputs`` are fixed driving sequences ``[B, T, I]`` (the same every epoch, so the rows are
    comparable); ``spectrum_options`` go to :func:`lyapunov_spectrum`. Without an AeLLE model the
    rows hold the spectra only.
    """

    def __init__(self, inputs, *, model: AeLLE | None = None, point=None, **spectrum_options):
        self.inputs = inputs
        self.model = model
        self.point = point
        self.spectrum_options = spectrum_options
        self.rows: list[dict[str, Any]] = []
        self.spectra: list[Any] = []

    def record(self, network, *, epoch: int | None = None, **metrics) -> dict[str, Any]:
        """Computes the spectrum of ``network`` (anything :func:`lyapunov_spectrum` takes) on
        the fixed inputs and appends a row: ``epoch``, ``lambda_max``, ``sum``,
        ``kaplan_yorke``, ``n_positive``, ``n_finite``, ``spectrum`` (mean, ``[k]``), with a
        model also ``latent`` (``[d]``), ``p_high`` and ``predicted_high``, and the given
        ``metrics`` (e.g. ``test_loss=...``). Returns the row."""
        s = lyapunov_spectrum(network, self.inputs, **self.spectrum_options)
        mean = s.mean
        row: dict[str, Any] = {
            "epoch": len(self.rows) if epoch is None else epoch,
            "lambda_max": float(mean[0]),
            "sum": float(np.sum(mean)),
            "kaplan_yorke": float(np.nanmean(s.kaplan_yorke)),
            "n_positive": int(np.sum(mean > self.spectrum_options.get("zero_tol", 1e-3))),
            "n_finite": s.n_finite,
            "spectrum": mean,
        }
        if self.model is not None and s.n_finite > 0:
            row["latent"] = self.model.embed(mean)[0]
            pred = self.model.predict_high_performing(mean, self.point)
            row["p_high"] = float(pred.probability[0])
            row["predicted_high"] = bool(pred.high[0])
        row.update(metrics)
        self.rows.append(row)
        self.spectra.append(s)
        return row

    __call__ = record

    def column(self, name: str) -> np.ndarray:
        """One column over the epochs (``[E]``, or ``[E, k]`` / ``[E, d]`` for ``spectrum`` /
        ``latent``)."""
        return np.array([r.get(name, np.nan) for r in self.rows])

    def to_csv(self, path: str | os.PathLike) -> None:
        """The scalar columns, one row per epoch (vectors as ``name_0``, ``name_1``, ...)."""
        rows = []
        for r in self.rows:
            flat = {}
            for key, value in r.items():
                if isinstance(value, np.ndarray):
                    flat.update({f"{key}_{i}": float(v) for i, v in enumerate(value)})
                else:
                    flat[key] = value
            rows.append(flat)
        fields: list[str] = []
        for r in rows:
            fields += [f for f in r if f not in fields]
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            w.writerows(rows)
