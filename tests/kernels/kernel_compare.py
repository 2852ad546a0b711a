"""Comparing kernel outputs with the reference: the distance in ULPs of the output's own format,
counted on the bit patterns (exact and portable: no wider float needed)."""

from __future__ import annotations

import numpy as np

from logmax.audit.metric import BOUNDS

BOUND = BOUNDS  # the promise, in ULPs of the output format


def _ordered(a: np.ndarray) -> np.ndarray:
    """Integers that order the values of a float array like the floats (-0 and +0 equal)."""
    width = a.dtype.itemsize * 8
    u = a.view({16: np.uint16, 32: np.uint32, 64: np.uint64}[width]).astype(np.int64)
    if width == 64:
        u = a.view(np.int64)
    sign = np.int64(1) << np.int64(width - 1)
    neg = (u & sign) != 0 if width < 64 else u < 0
    mag = u & (sign - 1) if width < 64 else u & np.int64(0x7FFFFFFFFFFFFFFF)
    return np.where(neg, -mag, mag)


def ulp_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """How many representable values of ``b``'s format lie between ``a`` and ``b``; equal values
    (NaN with NaN, inf with inf) give 0 and a special value against a different one gives inf."""
    a = np.asarray(a)
    b = np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    assert a.dtype == b.dtype, (a.dtype, b.dtype)
    af = a.astype(np.float64)
    bf = b.astype(np.float64)
    same = (af == bf) | (np.isnan(af) & np.isnan(bf))
    finite = np.isfinite(af) & np.isfinite(bf)
    dist = np.abs(_ordered(a) - _ordered(b)).astype(np.float64)
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
