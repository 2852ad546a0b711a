"""Helpers for the core tests: dtypes, a high-precision oracle for small rows, ULP distances."""

from __future__ import annotations

import ml_dtypes
import mpmath
import numpy as np
import pytest

DTYPES = [np.float16, ml_dtypes.bfloat16, np.float32, np.float64]
DTYPE_IDS = ["float16", "bfloat16", "float32", "float64"]
# The promise: 1 ULP for 16/32-bit, 2 ULP for float64.
MAX_ULP = {np.dtype(np.float16): 1, np.dtype(ml_dtypes.bfloat16): 1, np.dtype(np.float32): 1,
           np.dtype(np.float64): 2}  # fmt: skip


@pytest.fixture(params=DTYPES, ids=DTYPE_IDS)
def dtype(request):
    return np.dtype(request.param)


def spacing(ref: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """The ULP of ``dtype`` at each (finite) reference value."""
    r = np.abs(np.asarray(ref, dtype=np.float64))
    if dtype == np.dtype(ml_dtypes.bfloat16):
        # bfloat16 has float32's exponent range and 8 significand bits (16 fewer than float32).
        return np.maximum(np.spacing(r.astype(np.float32)).astype(np.float64) * 2.0**16, 2.0**-133)
    return np.spacing(r.astype(dtype)).astype(np.float64)


def ulp_error(got: np.ndarray, exact: np.ndarray, dtype: np.dtype) -> float:
    """Max error in ULPs of ``dtype`` at the exact values; an inf/NaN mismatch is inf."""
    g = np.asarray(got, dtype=np.float64)
    e = np.asarray(exact, dtype=np.float64)
    same_special = (np.isnan(g) & np.isnan(e)) | (np.isinf(e) & (g == e))
    finite = np.isfinite(e) & np.isfinite(g)
    if np.any(~finite & ~same_special):
        return float("inf")
    if not np.any(finite):
        return 0.0
    err = np.abs(g[finite] - e[finite]) / spacing(e[finite], dtype)
    return float(err.max())


def mp_log_softmax(row) -> list:
    """log_softmax of a short row with 300-digit mpmath (enough for the rows used here)."""
    with mpmath.workdps(300):
        xs = [mpmath.mpf(float(v)) for v in row]
        lse = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in xs))
        return [float(v - lse) for v in xs]


def mp_softmax(row) -> list:
    with mpmath.workdps(300):
        xs = [mpmath.mpf(float(v)) for v in row]
        total = mpmath.fsum(mpmath.exp(v) for v in xs)
        return [float(mpmath.exp(v) / total) for v in xs]


def mp_logsumexp(row) -> float:
    with mpmath.workdps(300):
        return float(mpmath.log(mpmath.fsum(mpmath.exp(mpmath.mpf(float(v))) for v in row)))
