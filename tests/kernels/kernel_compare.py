"""Comparing kernel outputs with the reference: ULP distance in the output's own format."""

from __future__ import annotations

import ml_dtypes
import numpy as np

# The promise, in ULPs of the output format. The reference (logmax._core.reference) rounds once
# from float64 (16/32-bit) or long double (float64); a kernel within the promise of the exact
# value is at most this far from the reference's rounded value.
BOUND = {"float16": 1, "bfloat16": 1, "float32": 1, "float64": 2}


def _spacing(b: np.ndarray) -> np.ndarray:
    """ULP of each value of ``b`` in ``b``'s format, as float64 (subnormal spacing at 0)."""
    if b.dtype == np.dtype(ml_dtypes.bfloat16):
        f = ml_dtypes.finfo(ml_dtypes.bfloat16)
        mag = np.abs(b.astype(np.float64))
        exp = np.floor(np.log2(np.maximum(mag, float(f.smallest_normal))))
        return np.exp2(exp - f.nmant)
    return np.spacing(np.abs(b)).astype(np.float64)


def ulp_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a - b| in ULPs of ``b``'s format; equal values (NaN with NaN, inf with inf) give 0 and a
    special value against a different one gives inf."""
    a = np.asarray(a)
    b = np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    assert a.dtype == b.dtype, (a.dtype, b.dtype)
    af = a.astype(np.float64)
    bf = b.astype(np.float64)
    same = (af == bf) | (np.isnan(af) & np.isnan(bf))
    finite = np.isfinite(af) & np.isfinite(bf)
    with np.errstate(invalid="ignore", over="ignore"):
        if a.dtype == np.float64:
            diff = np.abs(a.astype(np.longdouble) - b.astype(np.longdouble))
            dist = (diff / np.spacing(np.abs(b)).astype(np.longdouble)).astype(np.float64)
        else:
            dist = np.abs(af - bf) / _spacing(b)
    return np.where(same, 0.0, np.where(finite, dist, np.inf))


def assert_within(a: np.ndarray, b: np.ndarray, dtype_name: str, what: str = "") -> None:
    d = ulp_distance(a, b)
    worst = float(d.max()) if d.size else 0.0
    bound = BOUND[dtype_name]
    if worst > bound:
        i = np.unravel_index(int(np.argmax(d)), d.shape)
        raise AssertionError(
            f"{what} {dtype_name}: {worst} ULP > {bound} at {i}: "
            f"kernel {a[i]!r}, reference {b[i]!r}"
        )
