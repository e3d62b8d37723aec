"""``lyapunov_spectrum``, ``population_spectra``, ``spectrum_from_jacobians``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from . import _native
from ._convert import log_base_name, model_source, precision_name, sequence_inputs, to_numpy
from ._spectrum import Spectrum

_DTYPE = {"float64": np.float64, "float32": np.float32}


def _check_int(name: str, value, minimum: int, allow_none: bool = False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")
    return int(value)


def _check_float(name: str, value, allow_none: bool = True):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__} {value!r}")
    if not np.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value}")
    return float(value)


def population_spectra(
    models: Sequence[Any],
    inputs,
    *,
    k: int | None = None,
    warmup: int | None = None,
    ons: int = 1,
    precision="float64",
    lstm_state: str | None = None,
    log_base=None,
    reference_mode: bool = False,
    trace_every: int | None = None,
    batch_first: bool | None = None,
    arch: str | None = None,
    prefix: str | None = None,
    eps: float | None = None,
    gamma: float | None = None,
    dt: float | None = None,
    zero_tol: float = 1e-3,
) -> list[Spectrum]:
    """Spectra of ``M`` same-shaped networks in one engine call (networks run in parallel).

    ``models``: a sequence of models as :func:`lyapunov_spectrum` takes them (all of one cell,
    hidden size, input size and layer count). ``inputs``: one ``[B, T, I]`` set driving every
    network, or one per network (``[M, B, T, I]`` or a list of ``M`` ``[B, T, I]``). Returns one
    :class:`Spectrum` per network, in order. Options as in :func:`lyapunov_spectrum`.
    """
    if isinstance(models, (str, bytes, Mapping)) or not hasattr(models, "__iter__"):
        raise TypeError(f"models: expected a sequence of models (a list, a torch.nn.ModuleList, ...), "
                        f"got {type(models).__name__}")
    models = list(models)
    if len(models) == 0:
        raise ValueError("models: expected at least one network")
    prec = precision_name(precision)
    sources, kinds, firsts = [], [], []
    for i, m in enumerate(models):
        src, kind, bf = model_source(m, arch, prefix, i)
        sources.append(src)
        kinds.append(kind)
        firsts.append(bf)
    if batch_first is None:
        module_bf = {bf for bf in firsts if bf is not None}
        if len(module_bf) > 1:
            raise ValueError("models: the modules disagree on batch_first; pass batch_first= explicitly")
        batch_first = module_bf.pop() if module_bf else True
    if not isinstance(batch_first, bool):
        raise TypeError(f"batch_first: expected a bool, got {batch_first!r}")
    arches = {a for a in kinds if a is not None}
    if len(arches) > 1:
        raise ValueError(f"models: a population needs one cell kind, got {sorted(arches)}")
    cell = arch if arch is not None else (arches.pop() if arches else None)
    xs = sequence_inputs(inputs, "inputs", batch_first, _DTYPE[prec], per_network=len(models) > 1)
    if len(xs) not in (1, len(models)):
        raise ValueError(f"inputs: {len(xs)} input sets for {len(models)} networks (expected 1 or one per network)")
    out = _native.rnn_spectra(
        sources,
        xs,
        arch=cell,
        prefix=prefix,
        eps=_check_float("eps", eps),
        gamma=_check_float("gamma", gamma),
        dt=_check_float("dt", dt),
        k=_check_int("k", k, 1, allow_none=True),
        warmup=_check_int("warmup", warmup, 0, allow_none=True),
        ons=_check_int("ons", ons, 1),
        precision=prec,
        lstm_state=None if lstm_state is None else str(lstm_state),
        log_base=log_base_name(log_base),
        reference_mode=bool(reference_mode),
        trace_every=_check_int("trace_every", trace_every, 1, allow_none=True),
        zero_tol=_check_float("zero_tol", zero_tol, allow_none=False),
    )
    return [Spectrum(d, trace_every is not None) for d in out]


def lyapunov_spectrum(
    model,
    inputs,
    *,
    k: int | None = None,
    warmup: int | None = None,
    ons: int = 1,
    precision="float64",
    lstm_state: str | None = None,
    log_base=None,
    reference_mode: bool = False,
    trace_every: int | None = None,
    batch_first: bool | None = None,
    arch: str | None = None,
    prefix: str | None = None,
    eps: float | None = None,
    gamma: float | None = None,
    dt: float | None = None,
    zero_tol: float = 1e-3,
) -> Spectrum:
    """Lyapunov spectra of a recurrent network driven by ``B`` input sequences.

    Parameters
    ----------
    model
        A ``torch.nn.RNN`` (tanh) / ``GRU`` / ``LSTM`` (any number of layers, with or without
        bias, unidirectional, no projection); or a ``state_dict``-like mapping of tensors or
        numpy arrays with PyTorch names (``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``, ...;
        ASRNN and CoRNN as in ``docs/checkpoint-format.md``), optionally under a prefix such as
        ``rnn.``; or the path of a safetensors file with those names.
    inputs
        Driving inputs, torch tensor or numpy array, ``[B, T, I]`` (``[T, B, I]`` when
        ``batch_first`` is false). Integer and float16 data are converted; ``float64`` arrays
        (``float32`` with ``precision="float32"``) are used without a copy.
    k
        Number of exponents (default: all, the tangent dimension ``D``: ``N`` per layer; ``2 N``
        for LSTM full state and CoRNN).
    warmup
        Inputs consumed before accumulation (state and basis advance, re-orthonormalised, not
        accumulated); default 0. In reference mode the published code's unnormalised warm-up over
        ``min(warmup, T)`` inputs, default 500.
    ons
        Re-orthonormalisation interval ``T_ons`` (a QR is always done at the last step, except
        in reference mode).
    precision
        ``"float64"`` (default) or ``"float32"`` for state and tangent vectors; log sums are
        always float64.
    lstm_state
        ``"full"``: the ``(h, c)`` state, ``2 N`` exponents per layer (default); ``"h_only"``:
        ``dh'/dh`` with ``c`` frozen (the published code's; default in reference mode).
    log_base
        ``"e"`` (nats, default) or ``2`` (bits, default in reference mode).
    reference_mode
        Reproduce the published PyTorch code (``calc_LEs_an``): ``J^T Q``, log2, ``Q_0 = I``,
        LSTM h-only, unnormalised warm-up then a replay of all ``T`` inputs with a QR at
        ``t mod T_ons = 0``; as the CLI's ``spectrum --reference-mode``.
    trace_every
        Record the running estimate every ``n`` accumulated steps (``Spectrum.history``).
    batch_first
        Layout of ``inputs``; default: the module's ``batch_first``, ``True`` for mappings and
        files.
    arch, prefix
        Cell kind (``"rnn"``, ``"gru"``, ``"lstm"``, ``"asrnn"``, ``"cornn"``) and tensor-name
        prefix of a mapping or file, when its names and metadata do not say.
    eps, gamma, dt
        ASRNN ``eps`` (default 0.01), ``gamma`` (required); CoRNN ``eps`` (4.7), ``gamma`` (2.7),
        ``dt`` (0.042). A file's metadata may set them; a value given here must agree with it.
    zero_tol
        Exponents above it count as positive (``n_positive``, ``entropy_rate``).

    Returns
    -------
    Spectrum
        ``exponents`` ``[B, k]`` sorted descending, in ``log_base`` units per step, and the
        derived quantities.

    Raises
    ------
    ValueError
        Wrong shape, missing or misnamed tensor, non-finite weights or inputs, bad option.
    TypeError
        Unsupported model type or dtype.
    OSError
        Unreadable file.
    aelle.RustPanic
        A bug inside the engine (never an abort of the interpreter).
    """
    return population_spectra(
        [model], inputs, k=k, warmup=warmup, ons=ons, precision=precision, lstm_state=lstm_state,
        log_base=log_base, reference_mode=reference_mode, trace_every=trace_every,
        batch_first=batch_first, arch=arch, prefix=prefix, eps=eps, gamma=gamma, dt=dt,
        zero_tol=zero_tol,
    )[0]


def spectrum_from_jacobians(
    J,
    *,
    k: int | None = None,
    dt: float = 1.0,
    warmup: int = 0,
    ons: int = 1,
    precision="float64",
    log_base="e",
    orientation: str = "jq",
    trace_every: int | None = None,
    zero_tol: float = 1e-3,
) -> Spectrum:
    """Lyapunov spectrum of a given sequence of Jacobians (any model whose Jacobians you have,
    e.g. from ``torch.func.jacrev``).

    ``J``: ``[T, D, D]`` (one sequence) or ``[B, T, D, D]``, rows are outputs:
    ``J[t, i, j] = d x_{t+1, i} / d x_{t, j}``, ``J_t`` applied at step ``t``. Exponents are
    ``(1 / ((T - warmup) dt)) sum_t ln R_ii(t)`` with ``J_t Q_{t-1} = Q_t R_t``, ``Q_0 = I``:
    per step for ``dt = 1``, per unit time for a flow map sampled every ``dt``. ``orientation``
    ``"jtq"`` multiplies by ``J_t^T`` (the published code's convention). Returns a
    :class:`Spectrum` with ``B = 1`` for a ``[T, D, D]`` input; ``mean_log_abs_det`` is the time
    mean of ``ln |det J_t|`` (a check: it equals ``sum`` when ``k = D``).
    """
    prec = precision_name(precision)
    jac = to_numpy(J, "J", ndim=(3, 4), dtype=_DTYPE[prec])
    if jac.ndim == 3:
        jac = jac[None]
    if jac.shape[-1] != jac.shape[-2]:
        raise ValueError(f"J: expected square Jacobians [.., D, D], got shape {list(jac.shape)}")
    out = _native.jacobian_spectra(
        jac,
        k=_check_int("k", k, 1, allow_none=True),
        dt=_check_float("dt", dt, allow_none=False),
        warmup=_check_int("warmup", warmup, 0),
        ons=_check_int("ons", ons, 1),
        precision=prec,
        log_base=log_base_name(log_base) or "e",
        orientation=str(orientation),
        trace_every=_check_int("trace_every", trace_every, 1, allow_none=True),
        zero_tol=_check_float("zero_tol", zero_tol, allow_none=False),
    )
    return Spectrum(out, trace_every is not None)
