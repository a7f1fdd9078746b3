"""Range-checked conversions of option values to the C types of ``umfa.h``.

ctypes stores a Python int into a C integer field modulo 2**bits and a float into a C ``float``
as ``inf`` or ``0`` when it does not fit, without a word. Every option value therefore passes
through one of these functions first; a value that is not of the expected kind, or that the C
type cannot hold, raises :class:`UmfaError` (``UMFA_STATUS_INVALID_ARGUMENT``) naming the
option, before anything is converted.

Integers: ``int`` and objects with ``__index__`` (numpy integer scalars, 0-d integer tensors).
``bool`` is refused where a number is meant (``num_threads=True`` is a mistake, not 1), as are
floats (``2.0``) and strings. Reals: ints, floats and objects with ``__float__`` (numpy
floating scalars); ``bool`` and strings are refused.
"""

from __future__ import annotations

import ctypes
import math
import operator
from typing import Any, Optional, Tuple

import numpy as np

from ._native import Status, UmfaError

INT32 = (-(1 << 31), (1 << 31) - 1)
UINT32 = (0, (1 << 32) - 1)
INT64 = (-(1 << 63), (1 << 63) - 1)
UINT64 = (0, (1 << 64) - 1)


def invalid(message: str) -> UmfaError:
    """An ``UMFA_STATUS_INVALID_ARGUMENT`` error raised by the binding itself."""
    return UmfaError(Status.INVALID_ARGUMENT, None, message)


def _kind(value: Any) -> str:
    return type(value).__name__


def integer(value: Any, name: str, bounds: Tuple[int, int]) -> int:
    """``value`` as a Python int within ``bounds`` (inclusive), else :class:`UmfaError`."""
    if isinstance(value, (bool, np.bool_)):
        raise invalid(f"{name} must be an integer, not a bool ({value!r})")
    try:
        n = operator.index(value)
    except TypeError:
        raise invalid(f"{name} must be an integer, not {_kind(value)} ({value!r})") from None
    lo, hi = bounds
    if not lo <= n <= hi:
        raise invalid(f"{name}={n} is out of range [{lo}, {hi}]")
    return n


def optional_integer(value: Any, name: str, bounds: Tuple[int, int]) -> int:
    """:func:`integer`, with ``None`` meaning 0 (the C default)."""
    return 0 if value is None else integer(value, name, bounds)


def number(value: Any, name: str) -> float:
    """``value`` as a Python float (possibly inf or NaN), else :class:`UmfaError`."""
    if isinstance(value, (bool, np.bool_, str, bytes)):
        raise invalid(f"{name} must be a real number, not {_kind(value)} ({value!r})")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise invalid(f"{name} must be a real number, not {_kind(value)} ({value!r})") from None
    except OverflowError:  # an int beyond the double range
        raise invalid(f"{name}={value} is out of the float32 range") from None


def real(value: Any, name: str) -> float:
    """``value`` as a finite Python float, else :class:`UmfaError`."""
    x = number(value, name)
    if not math.isfinite(x):
        raise invalid(f"{name} must be finite, not {x!r}")
    return x


def float32(value: Any, name: str, *, nonzero_stays_nonzero: bool = True) -> float:
    """:func:`real`, also representable as a finite C ``float``; with
    ``nonzero_stays_nonzero``, a nonzero value that would round to 0 (which the C API reads as
    "default" or "off") is refused too. Returns the value as the float32 will hold it."""
    x = real(value, name)
    y = ctypes.c_float(x).value
    if not math.isfinite(y):
        raise invalid(f"{name}={x!r} is out of the float32 range (|x| <= 3.4028235e38)")
    if nonzero_stays_nonzero and x != 0.0 and y == 0.0:
        raise invalid(f"{name}={x!r} rounds to 0 in float32 (which would mean the default)")
    return y


def flag(value: Any, name: str) -> bool:
    """A yes/no option: ``bool``, ``numpy.bool_`` or the integers 0 and 1."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    try:
        n = operator.index(value)
    except TypeError:
        n = None
    if n in (0, 1):
        return bool(n)
    raise invalid(f"{name} must be a bool, not {_kind(value)} ({value!r})")


def window(value: Any, name: str = "window_size") -> Optional[Tuple[int, int]]:
    """``None`` or a ``(left, right)`` pair of int64 values."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)):
        raise invalid(f"{name} must be a (left, right) pair of integers, not {value!r}")
    try:
        items = tuple(value)
    except TypeError:
        raise invalid(f"{name} must be a (left, right) pair of integers, not "
                      f"{_kind(value)}") from None
    if len(items) != 2:
        raise invalid(f"{name} must be a (left, right) pair of integers, not {len(items)} "
                      "values")
    return (integer(items[0], f"{name}[0]", INT64), integer(items[1], f"{name}[1]", INT64))


def pointer(value: Any, name: str) -> int:
    """An address (or handle) for a ``void*`` field: ``None``/0 or an integer below 2**64."""
    return 0 if value is None else integer(value, name, UINT64)


def softmax_scale(value: Any, name: str = "softmax_scale") -> float:
    """A softmax scale given explicitly: finite, nonzero, a float32 (None, not 0, selects the
    default 1/sqrt(head_dim))."""
    x = real(value, name)
    if x == 0.0:
        raise invalid(f"{name} must be nonzero (None selects 1/sqrt(head_dim))")
    return float32(x, name)


def int32_array(a: np.ndarray, name: str) -> np.ndarray:
    """An integer array as int32, refusing values int32 cannot hold (``astype`` would wrap
    them)."""
    if a.dtype == np.int32 or not np.issubdtype(a.dtype, np.integer):
        return a
    if a.size and (a.min() < INT32[0] or a.max() > INT32[1]):
        raise invalid(f"{name} holds values outside the int32 range")
    return _converted(a, np.int32, name)


def float32_array(a: np.ndarray, name: str) -> np.ndarray:
    """A real array as float32, refusing finite values float32 cannot hold (``astype`` would
    make them infinite)."""
    if a.dtype == np.float32:
        return a
    if a.dtype == object or not (np.issubdtype(a.dtype, np.floating)
                                 or np.issubdtype(a.dtype, np.integer)):
        return a  # not a real array: the core refuses its dtype with its own status
    try:
        wide = np.abs(a.astype(np.float64))
    except MemoryError:
        raise _too_big(a, name) from None
    if np.any(np.isfinite(wide) & (wide > np.finfo(np.float32).max)):
        raise invalid(f"{name} holds values outside the float32 range")
    return _converted(a, np.float32, name)


def _converted(a: np.ndarray, dtype: Any, name: str) -> np.ndarray:
    try:
        return a.astype(dtype)
    except MemoryError:
        raise _too_big(a, name) from None


def _too_big(a: np.ndarray, name: str) -> UmfaError:
    # A broadcast (stride-0) array can describe more elements than memory holds.
    return UmfaError(Status.OUT_OF_MEMORY, None,
                     f"{name}: converting its {a.size} elements needs more memory than there is")
