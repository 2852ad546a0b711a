"""Data types: which ones logmax accepts, the precision it computes in, and the final rounding.

Rules
-----
- Accepted inputs: float16, bfloat16 (``ml_dtypes``), float32, float64; integer and boolean arrays
  are promoted to float64 as SciPy does. Anything else raises ``TypeError`` naming the dtypes
  expected.
- Compute precision: the reference computes every dtype in double-double float64 (about 106
  bits; :mod:`logmax._core.ddarith`), portable to every platform (no ``long double`` needed);
  the fast backends use float32 or float64 where that keeps the promise. A reduction never
  accumulates in 16-bit.
- The result is rounded once, to nearest even, into the input's dtype. float64 -> bfloat16 goes
  through float32 with round-to-odd, because a plain cast rounds twice.
- Big-endian arrays are read like native ones.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

BFLOAT16 = np.dtype(ml_dtypes.bfloat16)
FLOAT_DTYPES: tuple[np.dtype, ...] = (
    np.dtype(np.float16),
    BFLOAT16,
    np.dtype(np.float32),
    np.dtype(np.float64),
)
EXPECTED = "float16, bfloat16, float32 or float64 (integer and bool inputs become float64)"


def numpy_dtype(name: str) -> np.dtype:
    """The NumPy dtype called ``name`` (``'bfloat16'`` is ml_dtypes')."""
    return BFLOAT16 if name == "bfloat16" else np.dtype(name)


def result_dtype(dtype: np.dtype, name: str = "input") -> np.dtype:
    """The dtype of the result for an input of ``dtype`` (SciPy's promotion of integers)."""
    dtype = np.dtype(dtype)
    if dtype.byteorder == ">":
        dtype = dtype.newbyteorder("=")
    if dtype in FLOAT_DTYPES:
        return dtype
    if dtype.kind in "biu":
        return np.dtype(np.float64)
    raise TypeError(f"{name} has dtype {dtype}; expected {EXPECTED}")


def round_to(y: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Round ``y`` (float64 or wider) to ``dtype`` once, to nearest even (a value beyond the
    format's range becomes infinite, without a warning: that is its rounding)."""
    dtype = np.dtype(dtype)
    y = np.asarray(y)
    if dtype == BFLOAT16:
        return _round_to_bfloat16(y)
    with np.errstate(over="ignore"):
        return y.astype(dtype)


def _round_to_bfloat16(y: np.ndarray) -> np.ndarray:
    # Round to odd into float32 (16 spare bits), then to nearest even: one correct rounding.
    # On the bit pattern: step the magnitude back toward zero where float32 rounded away from it,
    # then set the last bit wherever the float32 value is inexact (NaN stays NaN).
    y64 = y.astype(np.float64, copy=False)
    with np.errstate(over="ignore"):  # beyond float32's range: inf, stepped back below
        f = y64.astype(np.float32)
    back = f.astype(np.float64)
    inexact = back != y64
    away = (back > y64) ^ (y64 < 0)  # |back| > |y| where inexact
    bits = f.view(np.uint32)
    bits -= (inexact & away).view(np.uint8)
    bits |= inexact.view(np.uint8)
    return f.astype(BFLOAT16)
