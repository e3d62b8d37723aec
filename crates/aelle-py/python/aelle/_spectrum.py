"""The result object of every spectrum function."""

from __future__ import annotations

from typing import Any

import numpy as np


class Spectrum:
    """Lyapunov spectra of ``B`` driving sequences (or Jacobian sequences) of one system.

    Units: ``log_base`` (``"e"``: nats, ``"2"``: bits) per step for networks and Jacobian
    sequences with ``dt = 1``, per unit time otherwise (``units`` says which). Exponents of a
    diverged sequence are NaN and its ``status`` says where and why; ``mean`` and ``std`` use the
    finite sequences only.

    Attributes
    ----------
    exponents : ndarray, float64, shape [B, k]
        Each sequence's exponents, sorted descending.
    exponents_qr_order : ndarray, float64, shape [B, k]
        The same in the order of the QR columns.
    mean, std : ndarray, float64, shape [k]
        Mean and sample standard deviation (``n - 1``) over the finite sequences.
    sum, kaplan_yorke, entropy_rate : ndarray, float64, shape [B]
        Sum of the ``k`` exponents; Kaplan-Yorke dimension; sum of the positive exponents
        (exponents above ``zero_tol``).
    n_positive : ndarray, int64, shape [B]
        Exponents above ``zero_tol``.
    mean_log_abs_det : ndarray, float64, shape [B]
        Time mean of ``ln |det J_t|`` (Jacobian sequences; NaN for networks).
    finite : ndarray, bool, shape [B]
    status : list[str], length B
        ``"finite"`` or ``"diverged at step t: reason"``.
    history : ndarray, float64, shape [B, P, k] or None
        Running estimates (QR order) every ``trace_every`` accumulated steps, NaN after a
        divergence; ``None`` without ``trace_every``.
    history_steps : ndarray, int64, shape [P] or None
        The accumulated steps of ``history``.
    info : dict
        Everything else the engine reported (``arch``, ``hidden_size``, ``num_layers``, ``dim``,
        ``k``, ``precision``, ``lstm_state``, ``orientation``, ``steps``, ``dt``, ``log_base``,
        ``reference_mode``, ``engine_seconds`` (wall time of the engine call), ...).
    """

    __slots__ = (
        "exponents", "exponents_qr_order", "mean", "std", "sum", "kaplan_yorke", "entropy_rate",
        "n_positive", "mean_log_abs_det", "finite", "status", "history", "history_steps", "info",
    )

    def __init__(self, native: dict[str, Any], traced: bool):
        d = dict(native)
        for key in ("exponents", "exponents_qr_order", "mean", "std", "sum", "kaplan_yorke",
                    "entropy_rate", "n_positive", "mean_log_abs_det", "finite", "status"):
            setattr(self, key, d.pop(key))
        history, steps = d.pop("history"), d.pop("history_steps")
        self.history = history if traced else None
        self.history_steps = steps if traced else None
        self.info = d

    @property
    def k(self) -> int:
        """Number of exponents."""
        return int(self.exponents.shape[-1])

    @property
    def batch(self) -> int:
        """Number of sequences ``B``."""
        return int(self.exponents.shape[0])

    @property
    def n_finite(self) -> int:
        """Sequences that stayed finite."""
        return int(self.info["n_finite"])

    @property
    def log_base(self) -> str:
        """``"e"`` or ``"2"``."""
        return self.info["log_base"]

    @property
    def units(self) -> str:
        """``"nats/step"``, ``"bits/step"``, or ``"nats/time"`` / ``"bits/time"`` when ``dt != 1``."""
        what = "nats" if self.log_base == "e" else "bits"
        return f"{what}/step" if self.info.get("dt", 1.0) == 1.0 else f"{what}/time"

    @property
    def max_exponent(self) -> np.ndarray:
        """Largest exponent of each sequence, shape [B]."""
        return self.exponents[:, 0]

    def to_dict(self) -> dict[str, Any]:
        """Every array and the info as one plain dict (lists instead of arrays)."""
        out = {k: getattr(self, k) for k in self.__slots__ if k != "info"}
        out = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in out.items()}
        out.update(self.info)
        return out

    def __repr__(self) -> str:
        mean = np.array2string(self.mean[:6], precision=4, separator=", ")
        more = ", ..." if self.k > 6 else ""
        return (f"Spectrum(B={self.batch}, k={self.k}, mean={mean[:-1]}{more}], "
                f"{self.n_finite}/{self.batch} finite, {self.units})")
