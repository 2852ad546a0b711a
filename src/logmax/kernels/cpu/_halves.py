r"""float16 and bfloat16 in the kernels: read from their 16-bit patterns, written with one correct
rounding from float64.

The kernels see 16-bit arrays as ``uint16`` (bfloat16 has no NumPy dtype of its own; reading the
bits also spares a widening pass over the whole array). Widening is exact: a bfloat16 is the top
half of a float32; a float16's fields are moved into a float32's (subnormals through an exact
product). Narrowing rounds a float64 once, to nearest even, straight into the 16-bit format --
also in its subnormal range and with overflow to infinity -- so no double rounding through
float32 can happen. All branch-free, so that the loops vectorise.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from logmax.kernels.cpu._scalar import FM, f32_as_i32, f64_as_i64, i32_as_f32, i64_as_f64

BF16 = 1  # the kinds of 16-bit input and output the kernels take
F16 = 2


@njit(fastmath=FM, cache=True, error_model="numpy")
def bf16_to_f32(h):
    """The float32 of a bfloat16 pattern (exact)."""
    return i32_as_f32(np.int32(np.uint32(h) << np.uint32(16)))


@njit(fastmath=FM, cache=True, error_model="numpy")
def f16_to_f32(h):
    """The float32 of a float16 pattern (exact, subnormals, infinities and NaN included)."""
    u = np.int32(h)
    sign = (u & np.int32(0x8000)) << np.int32(16)
    e = (u >> np.int32(10)) & np.int32(0x1F)
    m = u & np.int32(0x3FF)
    normal = i32_as_f32(sign | ((e + np.int32(112)) << np.int32(23)) | (m << np.int32(13)))
    special = i32_as_f32(sign | np.int32(0x7F800000) | (m << np.int32(13)))
    tiny = np.float32(m) * np.float32(5.960464477539063e-08)  # m * 2^-24, exact
    tiny = -tiny if sign != 0 else tiny
    return tiny if e == 0 else (special if e == 31 else normal)


@njit(fastmath=FM, cache=True, error_model="numpy")
def widen(h, kind):
    """The float64 of a 16-bit pattern of ``kind`` (:data:`BF16` or :data:`F16`)."""
    return np.float64(bf16_to_f32(h) if kind == BF16 else f16_to_f32(h))


SHIFT = 6755399441055744.0  # 1.5 * 2**52: adding it rounds a double to an integer (ties to even)


@njit(fastmath=FM, cache=True, error_model="numpy")
def _round_bits(v, keep, emin, emax):
    """``v`` (float64) rounded to nearest even on ``keep`` significand bits, with the format's
    smallest normal exponent ``emin`` (below it, the step of its subnormals) and overflow above
    ``emax``; returns the rounded value as a float64 (exact in the format) or +-inf."""
    bits = f64_as_i64(v)
    e = ((bits >> np.int64(52)) & np.int64(0x7FF)) - np.int64(1023)
    drop = np.int64(52 - (keep - 1))
    # normal range: round the 52-bit fraction to keep - 1 bits, ties to even (carries may raise
    # the exponent, which is right)
    half = (np.int64(1) << (drop - np.int64(1))) - np.int64(1)
    odd = (bits >> drop) & np.int64(1)
    rounded = ((bits + half + odd) >> drop) << drop
    normal = i64_as_f64(rounded)
    # subnormal range: a multiple of 2^(emin - keep + 1), rounded with the shift trick
    step_exp = emin - (keep - 1)
    scaled = v * np.float64(2.0) ** np.float64(-step_exp)
    sub = np.copysign(((scaled + SHIFT) - SHIFT) * np.float64(2.0) ** np.float64(step_exp), v)
    out = sub if e < emin else normal
    big = np.abs(out) >= np.float64(2.0) ** np.float64(emax + 1)
    inf = np.inf if v > 0 else -np.inf
    return inf if big else out


@njit(fastmath=FM, cache=True, error_model="numpy")
def f64_to_bf16(v):
    """The bfloat16 pattern of ``v`` rounded once to nearest even (NaN stays NaN)."""
    r = _round_bits(v, 8, -126, 127)  # a bfloat16 value, hence exact in float32
    b = np.uint16(np.uint32(f32_as_i32(np.float32(r))) >> np.uint32(16))
    return b if v == v else np.uint16(0x7FC0)


@njit(fastmath=FM, cache=True, error_model="numpy")
def f64_to_f16(v):
    """The float16 pattern of ``v`` rounded once to nearest even (NaN stays NaN)."""
    r = _round_bits(v, 11, -14, 15)  # a float16 value (or +-inf)
    d = f64_as_i64(r)
    sign = np.uint16(0x8000) if d < 0 else np.uint16(0)
    a = np.abs(r)
    e = ((f64_as_i64(a) >> np.int64(52)) & np.int64(0x7FF)) - np.int64(1023)
    mant = (f64_as_i64(a) >> np.int64(42)) & np.int64(0x3FF)
    normal = np.uint16((((e + np.int64(15)) & np.int64(0x1F)) << np.int64(10)) | mant)
    sub = np.uint16(a * 16777216.0)  # a multiple of 2^-24 below 2^-14, exact
    out = sub if e < -14 else normal
    out = np.uint16(0x7C00) if a == np.inf else out
    return (sign | out) if v == v else np.uint16(0x7E00)


@njit(fastmath=FM, cache=True, error_model="numpy")
def narrow(v, kind):
    """The 16-bit pattern of ``kind`` of float64 ``v``, rounded once."""
    return f64_to_bf16(v) if kind == BF16 else f64_to_f16(v)
