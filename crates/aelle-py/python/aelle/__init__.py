"""aelle: Lyapunov spectra of recurrent networks (the le-engine Rust engine) and the AeLLE
performance predictor, for PyTorch users.

    import aelle, torch
    lstm = torch.nn.LSTM(28, 64, batch_first=True)
    s = aelle.lyapunov_spectrum(lstm, torch.randn(16, 100, 28))
    s.exponents        # [16, 128], sorted descending, nats per step
    s.mean, s.std      # [128]

Functions: :func:`lyapunov_spectrum`, :func:`population_spectra`,
:func:`spectrum_from_jacobians`. Classes: :class:`Spectrum`, :class:`AeLLE`,
:class:`EpochMonitor`. The Rust work runs with the GIL released on the engine's thread pool
(``RAYON_NUM_THREADS`` sets its size); engine panics surface as :class:`RustPanic`.
"""

from . import _native
from ._aelle import AeLLE, EpochMonitor, Prediction
from ._api import lyapunov_spectrum, population_spectra, spectrum_from_jacobians
from ._native import RustPanic, num_threads
from ._spectrum import Spectrum

__version__ = _native.__version__

__all__ = [
    "AeLLE",
    "EpochMonitor",
    "Prediction",
    "RustPanic",
    "Spectrum",
    "lyapunov_spectrum",
    "num_threads",
    "population_spectra",
    "spectrum_from_jacobians",
]
