"""Python values -> what ``aelle._native`` takes: torch modules and state dicts become lists of
``(name, float64 array)`` pairs, tensors become C-contiguous numpy arrays of the computation's
dtype. Nothing here computes a spectrum; every check that the engine's loader makes (names,
shapes, finite values) is left to it, so that files and state dicts get the same messages."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

# torch is optional: imported lazily, only when a torch object is passed.


def _torch():
    try:
        import torch
    except ImportError:  # pragma: no cover - torch missing
        return None
    return torch


def _is_tensor(x: Any) -> bool:
    torch = _torch()
    return torch is not None and isinstance(x, torch.Tensor)


def _is_module(x: Any) -> bool:
    torch = _torch()
    return torch is not None and isinstance(x, torch.nn.Module)


_PRECISIONS = {
    "float64": np.float64,
    "f64": np.float64,
    "double": np.float64,
    "float32": np.float32,
    "f32": np.float32,
    "float": np.float32,
}


def precision_name(precision: Any) -> str:
    """``"float64"`` or ``"float32"`` from a string, a numpy dtype or a torch dtype."""
    torch = _torch()
    if torch is not None and isinstance(precision, torch.dtype):
        precision = str(precision).removeprefix("torch.")
    elif not isinstance(precision, str):
        try:
            precision = np.dtype(precision).name
        except TypeError:
            raise TypeError(
                f"precision: expected \"float64\" or \"float32\", got {precision!r}"
            ) from None
    if precision not in _PRECISIONS:
        raise ValueError(f"precision: expected \"float64\" or \"float32\", got {precision!r}")
    return "float64" if _PRECISIONS[precision] is np.float64 else "float32"


def log_base_name(log_base: Any) -> str | None:
    """``"e"`` or ``"2"`` (``None`` stays ``None``: the mode's default)."""
    if log_base is None:
        return None
    if isinstance(log_base, (int, float)) and not isinstance(log_base, bool) and log_base == 2:
        return "2"
    if isinstance(log_base, str) and log_base in ("e", "2", "ln", "log2", "two"):
        return "2" if log_base in ("2", "log2", "two") else "e"
    if isinstance(log_base, float) and abs(log_base - np.e) < 1e-12:
        return "e"
    raise ValueError(f"log_base: expected \"e\" or 2, got {log_base!r}")


def to_numpy(x: Any, name: str, *, ndim: int | tuple[int, ...], dtype) -> np.ndarray:
    """``x`` (torch tensor, numpy array or nested sequence of numbers) as a C-contiguous array of
    ``dtype`` with ``ndim`` dimensions; zero-copy when it already is one. Errors name ``name``."""
    if _is_tensor(x):
        if x.is_complex():
            raise TypeError(f"{name}: expected a real floating-point tensor, got dtype {x.dtype}")
        x = x.detach()
        if x.device.type != "cpu":
            x = x.cpu()
        if x.dtype in (_torch().float16, _torch().bfloat16):
            x = x.float()  # exact: every half / bfloat16 value is a float32
        x = x.numpy()
    elif not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except (ValueError, TypeError) as e:
            raise TypeError(f"{name}: expected an array or tensor, got {type(x).__name__}: {e}") from None
    if x.dtype == object or not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)
                                 or x.dtype == np.bool_):
        raise TypeError(f"{name}: expected real numbers, got dtype {x.dtype}")
    if np.issubdtype(x.dtype, np.complexfloating):  # pragma: no cover - excluded above
        raise TypeError(f"{name}: expected real numbers, got dtype {x.dtype}")
    wanted = (ndim,) if isinstance(ndim, int) else ndim
    if x.ndim not in wanted:
        shape = " or ".join(f"{d}-D" for d in wanted)
        raise ValueError(f"{name}: expected a {shape} array, got shape {list(x.shape)}")
    return np.ascontiguousarray(x, dtype=dtype)


_MODULE_ARCH = {"RNN": "rnn", "GRU": "gru", "LSTM": "lstm"}


def module_state(module) -> tuple[list[tuple[str, np.ndarray]], str, bool]:
    """The state dict of a ``torch.nn.RNN | GRU | LSTM`` as ``(name, float64 array)`` pairs, its
    cell name and its ``batch_first``. Unsupported variants raise ``TypeError`` / ``ValueError``."""
    torch = _torch()
    kind = None
    for cls_name, arch in _MODULE_ARCH.items():
        if isinstance(module, getattr(torch.nn, cls_name)):
            kind = arch
    if kind is None:
        raise TypeError(
            f"model: expected torch.nn.RNN, GRU or LSTM (or a state_dict mapping or a safetensors "
            f"path), got {type(module).__name__}; for another cell pass its state_dict and arch="
        )
    if getattr(module, "bidirectional", False):
        raise ValueError("model: bidirectional RNNs are not supported (a spectrum needs one direction of time)")
    if getattr(module, "proj_size", 0):
        raise ValueError(f"model: LSTM with proj_size = {module.proj_size} is not supported (proj_size must be 0)")
    if kind == "rnn" and getattr(module, "nonlinearity", "tanh") != "tanh":
        raise ValueError(f"model: nn.RNN with nonlinearity={module.nonlinearity!r} is not supported (only 'tanh')")
    pairs = state_pairs(module.state_dict(), "model")
    return pairs, kind, bool(module.batch_first)


def state_pairs(mapping: Mapping, name: str) -> list[tuple[str, np.ndarray]]:
    """A ``state_dict``-like mapping as ``(name, float64 array)`` pairs (integer buffers such as
    batch-norm counters are skipped; every floating tensor is passed on, the loader picks the ones
    it needs by PyTorch name)."""
    pairs = []
    for key, value in mapping.items():
        if not isinstance(key, str):
            raise TypeError(f"{name}: keys must be tensor names (str), got {key!r}")
        if _is_tensor(value):
            if not value.is_floating_point():
                continue
        elif isinstance(value, np.ndarray):
            if not np.issubdtype(value.dtype, np.floating):
                raise TypeError(f"{name}: tensor `{key}` has dtype {value.dtype}, expected a floating-point dtype")
        else:
            raise TypeError(f"{name}: `{key}` is a {type(value).__name__}, expected a tensor or numpy array")
        arr = to_numpy(value, f"{name}: tensor `{key}`", ndim=(0, 1, 2, 3, 4), dtype=np.float64)
        pairs.append((key, arr))
    for key, _ in pairs:
        if key.endswith("_reverse") or "_reverse." in key:
            raise ValueError(f"{name}: tensor `{key}`: bidirectional RNNs are not supported")
        if key.split(".")[-1].startswith("weight_hr_l"):
            raise ValueError(f"{name}: tensor `{key}`: LSTM projections (proj_size > 0) are not supported")
    return pairs


def infer_arch(pairs: list[tuple[str, np.ndarray]], prefix: str | None) -> str | None:
    """The cell of a state dict where its tensors say so without doubt: ``weight_hy_l0`` ->
    CoRNN; ``weight_hh_l0`` of ``[4 N, N]`` -> LSTM, ``[3 N, N]`` -> GRU, ``[N, N]`` with a
    ``bias_ih_l0`` -> RNN. ``None`` otherwise (an ``[N, N]`` ``weight_hh_l0`` without biases may
    be a vanilla RNN or an ASRNN: the caller must say ``arch=``)."""
    names = {k: v for k, v in pairs if prefix is None or k.startswith(prefix)}
    if any(k.endswith("weight_hy_l0") for k in names):
        return "cornn"
    rec = [v for k, v in names.items() if k.endswith("weight_hh_l0")]
    if len(rec) != 1 or rec[0].ndim != 2 or rec[0].shape[1] == 0:
        return None  # let the loader name what is missing or ambiguous
    g, rem = divmod(rec[0].shape[0], rec[0].shape[1])
    if rem:
        return None
    if g == 4:
        return "lstm"
    if g == 3:
        return "gru"
    if g == 1 and any(k.endswith("bias_ih_l0") for k in names):
        return "rnn"
    return None


def model_source(model, arch: str | None, prefix: str | None, index: int):
    """``(source, arch, batch_first)`` of a model: a module, a mapping or a path."""
    label = "model" if index == 0 else f"models[{index}]"
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if not os.path.exists(path):
            raise FileNotFoundError(f"{label}: no such safetensors file: {path}")
        return path, arch, None
    if _is_module(model):
        pairs, kind, batch_first = module_state(model)
        if arch is not None and arch != kind:
            raise ValueError(f"{label}: arch={arch!r} but the module is a {type(model).__name__}")
        return pairs, kind, batch_first
    if isinstance(model, Mapping):
        pairs = state_pairs(model, label)
        if not pairs:
            raise ValueError(f"{label}: the mapping holds no floating-point tensors")
        inferred = arch or infer_arch(pairs, prefix)
        if inferred is None:
            raise ValueError(
                f"{label}: cannot tell the cell from the tensor names and shapes; pass "
                f"arch='rnn'|'gru'|'lstm'|'asrnn'|'cornn'"
            )
        return pairs, inferred, None
    raise TypeError(
        f"{label}: expected a torch.nn.RNN/GRU/LSTM, a state_dict-like mapping of tensors or arrays, "
        f"or a safetensors path; got {type(model).__name__}"
    )


def sequence_inputs(inputs, name: str, batch_first: bool, dtype, *, per_network: bool = False) -> list[np.ndarray]:
    """Driving inputs as C-contiguous ``[B, T, I]`` arrays (``batch_first=False``: given as
    ``[T, B, I]``, transposed). ``per_network``: a ``[M, B, T, I]`` array or a list of ``M``
    ``[B, T, I]`` arrays is one set per network."""
    if per_network and isinstance(inputs, (list, tuple)):
        return [sequence_inputs(x, f"{name}[{i}]", batch_first, dtype)[0] for i, x in enumerate(inputs)]
    x = to_numpy(inputs, name, ndim=(3, 4) if per_network else 3, dtype=dtype)
    if x.ndim == 4:
        return [sequence_inputs(x[m], f"{name}[{m}]", batch_first, dtype)[0] for m in range(x.shape[0])]
    if not batch_first:
        x = np.ascontiguousarray(x.transpose(1, 0, 2))
    return [x]
