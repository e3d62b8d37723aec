"""Type stubs of the ``aelle`` package. Shapes: ``B`` driving sequences, ``T`` steps, ``I``
inputs per step, ``D`` tangent dimension, ``k`` exponents, ``M`` networks, ``d`` latent size.
Units: exponents in ``log_base`` units (nats for ``"e"``, bits for ``2``) per step, or per unit
time for Jacobian sequences with ``dt != 1``."""

import os
from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt

__version__: str

ArrayLike = npt.ArrayLike  # numpy array, torch tensor or nested sequence
Model = Any  # torch.nn.RNN | torch.nn.GRU | torch.nn.LSTM | Mapping[str, tensor | ndarray] | str | os.PathLike
Precision = Literal["float64", "float32", "f64", "f32"] | Any
LogBase = Literal["e", "2", 2] | None
LstmStateName = Literal["full", "h_only"] | None

class RustPanic(RuntimeError):
    """A panic inside the Rust engine, caught at the boundary (a bug; never an abort)."""

class Spectrum:
    exponents: np.ndarray  # float64 [B, k], sorted descending
    exponents_qr_order: np.ndarray  # float64 [B, k]
    mean: np.ndarray  # float64 [k], over finite sequences
    std: np.ndarray  # float64 [k], sample std (n - 1)
    sum: np.ndarray  # float64 [B]
    kaplan_yorke: np.ndarray  # float64 [B], dimensionless
    entropy_rate: np.ndarray  # float64 [B], sum of positive exponents
    n_positive: np.ndarray  # int64 [B]
    mean_log_abs_det: np.ndarray  # float64 [B], NaN for networks
    finite: np.ndarray  # bool [B]
    status: list[str]  # "finite" | "diverged at step t: reason"
    history: np.ndarray | None  # float64 [B, P, k] (QR order) with trace_every
    history_steps: np.ndarray | None  # int64 [P]
    info: dict[str, Any]
    @property
    def k(self) -> int: ...
    @property
    def batch(self) -> int: ...
    @property
    def n_finite(self) -> int: ...
    @property
    def log_base(self) -> str: ...
    @property
    def units(self) -> str: ...
    @property
    def max_exponent(self) -> np.ndarray: ...  # float64 [B]
    def to_dict(self) -> dict[str, Any]: ...

def lyapunov_spectrum(
    model: Model,
    inputs: ArrayLike,  # [B, T, I] ([T, B, I] if not batch_first)
    *,
    k: int | None = None,
    warmup: int | None = None,
    ons: int = 1,
    precision: Precision = "float64",
    lstm_state: LstmStateName = None,
    log_base: LogBase = None,
    reference_mode: bool = False,
    trace_every: int | None = None,
    batch_first: bool | None = None,
    arch: Literal["rnn", "gru", "lstm", "asrnn", "cornn"] | None = None,
    prefix: str | None = None,
    eps: float | None = None,
    gamma: float | None = None,
    dt: float | None = None,
    zero_tol: float = 1e-3,
) -> Spectrum: ...
def population_spectra(
    models: Sequence[Model],
    inputs: ArrayLike,  # [B, T, I] shared, or [M, B, T, I] / list of M [B, T, I]
    *,
    k: int | None = None,
    warmup: int | None = None,
    ons: int = 1,
    precision: Precision = "float64",
    lstm_state: LstmStateName = None,
    log_base: LogBase = None,
    reference_mode: bool = False,
    trace_every: int | None = None,
    batch_first: bool | None = None,
    arch: Literal["rnn", "gru", "lstm", "asrnn", "cornn"] | None = None,
    prefix: str | None = None,
    eps: float | None = None,
    gamma: float | None = None,
    dt: float | None = None,
    zero_tol: float = 1e-3,
) -> list[Spectrum]: ...
def spectrum_from_jacobians(
    J: ArrayLike,  # [T, D, D] or [B, T, D, D], rows are outputs
    *,
    k: int | None = None,
    dt: float = 1.0,
    warmup: int = 0,
    ons: int = 1,
    precision: Precision = "float64",
    log_base: LogBase = "e",
    orientation: Literal["jq", "jtq"] = "jq",
    trace_every: int | None = None,
    zero_tol: float = 1e-3,
) -> Spectrum: ...
def num_threads() -> int: ...

class Prediction(NamedTuple):
    probability: np.ndarray  # float64 [n], in (0, 1)
    high: np.ndarray  # bool [n]
    cut: float
    point: str

class AeLLE:
    @classmethod
    def load(cls, path: str | os.PathLike) -> AeLLE: ...
    @property
    def path(self) -> str: ...
    @property
    def latent_dim(self) -> int: ...
    @property
    def fitted_networks(self) -> int: ...
    @property
    def points(self) -> list[str]: ...
    def embed(self, spectra: ArrayLike | Spectrum | Sequence[ArrayLike]) -> np.ndarray: ...  # [n, d]
    def predict_final_loss(self, spectra: ArrayLike | Spectrum | Sequence[ArrayLike]) -> np.ndarray: ...  # [n]
    def predict_high_performing(
        self, spectra: ArrayLike | Spectrum | Sequence[ArrayLike], point: str | float | None = None
    ) -> Prediction: ...

class EpochMonitor:
    inputs: ArrayLike
    model: AeLLE | None
    rows: list[dict[str, Any]]
    spectra: list[Spectrum]
    def __init__(self, inputs: ArrayLike, *, model: AeLLE | None = None, point: str | float | None = None,
                 **spectrum_options: Any) -> None: ...
    def record(self, network: Model, *, epoch: int | None = None, **metrics: Any) -> dict[str, Any]: ...
    def __call__(self, network: Model, *, epoch: int | None = None, **metrics: Any) -> dict[str, Any]: ...
    def column(self, name: str) -> np.ndarray: ...
    def to_csv(self, path: str | os.PathLike) -> None: ...
