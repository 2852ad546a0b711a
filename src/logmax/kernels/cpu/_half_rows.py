r"""Row kernels for float16 and bfloat16, computed in float32 (the sums in float64).

A 16-bit result needs 11 (float16) or 8 (bfloat16) correct bits: float32 arithmetic, with 24,
keeps the row kernels within 1 ULP with room to spare, and runs twice as many lanes as float64.
The rows are read as their 16-bit patterns: the maximum is found on integer keys of the patterns
themselves, and each sweep widens the values it reads (exactly, :mod:`._halves`).

Error budget of a log-probability :math:`\log p_i = d_i - L`, :math:`d_i = (x_i - m)/T`,
:math:`L = \operatorname{log1p}(s)`: each term :math:`e^{d_j}` is within :math:`2^{-22}` relative
(:func:`exp_f32`), their sum is taken in float64, so :math:`L` carries a relative error below
:math:`2^{-21}`; :math:`d_i - L` is a sum of two non-positive float32 terms, so the float32 result
is within :math:`2^{-21}` relative before the final rounding into 16 bits -- against the
:math:`2^{-9}` (bfloat16) or :math:`2^{-12}` (float16) that half an ULP allows. softmax
:math:`e^{d_i} / (1 + s)` likewise. The float32 value is rounded to odd and then to nearest even
into 16 bits (:func:`narrow32`): the rounding of a value within :math:`2^{-21}` of the
true one, hence within 1 ULP of it.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from logmax.kernels.cpu._halves import BF16, F16, bf16_to_f32, f16_to_f32, f32_to_bf16, f32_to_f16
from logmax.kernels.cpu._rows import BAD, FM_SUM, MASKED, OK
from logmax.kernels.cpu._scalar import FM, i32_as_f32

LOG2E32 = np.float32(1.4426950408889634)
LN2_HI32 = np.float32(0.693359375)  # few bits: k * LN2_HI32 is exact for |k| < 2^12
LN2_LO32 = np.float32(-2.12194440e-4)
LOWEST32 = np.float32(-104.0)  # e^-104 is below every float32 (and 16-bit) number: 0


@njit(fastmath=FM, cache=True, error_model="numpy")
def exp_f32(d):
    """:math:`e^d` for ``d <= 0`` in float32, within :math:`2^{-22}` relative; 0 below
    :math:`e^{-104}` and at ``-inf``; subnormal results through a two-step scaling."""
    dc = d if d > LOWEST32 else LOWEST32
    k = np.float32(np.rint(dc * LOG2E32))
    r = (dc - k * LN2_HI32) - k * LN2_LO32
    p = np.float32(1.0 / 720.0)
    p = p * r + np.float32(1.0 / 120.0)
    p = p * r + np.float32(1.0 / 24.0)
    p = p * r + np.float32(1.0 / 6.0)
    p = p * r + np.float32(0.5)
    p = p * r + np.float32(1.0)
    p = p * r + np.float32(1.0)
    ki = np.int32(k) + np.int32(64)  # 2^(k + 64) is a normal float32 for k >= -190
    e = (p * i32_as_f32((ki + np.int32(127)) << np.int32(23))) * np.float32(5.421010862427522e-20)
    return e if d > LOWEST32 else np.float32(0.0)


@njit(fastmath=FM, cache=True, error_model="numpy")
def widen32(h, kind):
    return bf16_to_f32(h) if kind == BF16 else f16_to_f32(h)


@njit(fastmath=FM, cache=True, error_model="numpy")
def narrow32(f, kind):
    """The 16-bit pattern of float32 ``f``, rounded to nearest even."""
    return f32_to_bf16(f) if kind == BF16 else f32_to_f16(f)


@njit(fastmath=FM, cache=True, error_model="numpy")
def _key(h):
    """An int32 key ordering the 16-bit patterns of either format like their values."""
    b = np.int32(np.int16(h))
    return b ^ ((b >> np.int32(31)) & np.int32(0x7FFF))


@njit(fastmath=FM, cache=True, error_model="numpy")
def row_max16(bits, kind):
    """``(status, m)``: the row's status and maximum (float32), from the keys of its patterns."""
    kmax = np.int32(-(1 << 30))
    kmin = np.int32(1 << 30)
    for j in range(bits.shape[0]):
        k = _key(bits[j])
        kmax = k if k > kmax else kmax
        kmin = k if k < kmin else kmin
    if bits.shape[0] == 0:
        return MASKED, np.float32(-np.inf)
    inf = np.int32(0x7F80 if kind == BF16 else 0x7C00)
    if kmax >= inf or kmin < _key(np.uint16(inf | 0x8000)):
        return BAD, np.float32(np.nan)
    m = widen32(np.uint16(np.int32(kmax) ^ ((np.int32(kmax) >> np.int32(31)) & 0x7FFF)), kind)
    return (MASKED if m == -np.inf else OK), m


@njit(fastmath=FM, cache=True, error_model="numpy")
def _shifted32(h, kind, m, t):
    d = widen32(h, kind) - m
    return d if t == 1.0 else np.float32(np.float64(d) / t)


@njit(fastmath=FM_SUM, cache=True, error_model="numpy")
def row_sum16(bits, kind, m, t):
    """:math:`s` (float64) of a 16-bit row with maximum ``m``; ties beyond the first count 1."""
    s = 0.0
    ties = 0
    if kind == BF16:  # the format's branch out of the loop, so that each loop vectorises
        for j in range(bits.shape[0]):
            d = _shifted32(bits[j], BF16, m, t)
            s += np.float64(exp_f32(d)) if d < 0.0 else 0.0
            ties += 1 if d == 0.0 else 0
    else:
        for j in range(bits.shape[0]):
            d = _shifted32(bits[j], F16, m, t)
            s += np.float64(exp_f32(d)) if d < 0.0 else 0.0
            ties += 1 if d == 0.0 else 0
    return s + np.float64(ties - 1)


@njit(fastmath=FM_SUM, cache=True, error_model="numpy")
def row_sum16_keep(bits, kind, m, t, keep):
    """:func:`row_sum16` that also leaves :math:`e^{d_j}` (float32, 1 at the ties) in
    ``keep[j]``, for softmax's output sweep to scale instead of exponentiating again."""
    s = 0.0
    ties = 0
    if kind == BF16:
        for j in range(bits.shape[0]):
            d = _shifted32(bits[j], BF16, m, t)
            e = exp_f32(d)
            keep[j] = e
            s += np.float64(e) if d < 0.0 else 0.0
            ties += 1 if d == 0.0 else 0
    else:
        for j in range(bits.shape[0]):
            d = _shifted32(bits[j], F16, m, t)
            e = exp_f32(d)
            keep[j] = e
            s += np.float64(e) if d < 0.0 else 0.0
            ties += 1 if d == 0.0 else 0
    return s + np.float64(ties - 1)


@njit(fastmath=FM, cache=True, error_model="numpy")
def _fill16(o, value, kind):
    b = narrow32(np.float32(value), kind)
    for j in range(o.shape[0]):
        o[j] = b


@njit(nogil=True, fastmath=FM, cache=True, error_model="numpy")
def softmax16(x, kind, out, t, r0, r1):
    """softmax of 16-bit rows ``x`` (patterns of ``kind``) into 16-bit ``out``."""
    e = np.empty(x.shape[1], dtype=np.float32)  # one row of e^d: stays in the core's cache
    for i in range(r0, r1):
        row = x[i]
        o = out[i]
        status, m = row_max16(row, kind)
        if status != OK:
            _fill16(o, np.nan if status == BAD else 0.0, kind)
            continue
        inv = np.float32(1.0 / (1.0 + row_sum16_keep(row, kind, m, t, e)))
        if kind == BF16:
            for j in range(row.shape[0]):
                o[j] = f32_to_bf16(e[j] * inv)
        else:
            for j in range(row.shape[0]):
                o[j] = f32_to_f16(e[j] * inv)


@njit(nogil=True, fastmath=FM, cache=True, error_model="numpy")
def log_softmax16(x, kind, out, t, r0, r1):
    for i in range(r0, r1):
        row = x[i]
        o = out[i]
        status, m = row_max16(row, kind)
        if status != OK:
            _fill16(o, np.nan if status == BAD else -np.inf, kind)
            continue
        lg = np.float32(np.log1p(row_sum16(row, kind, m, t)))
        if kind == BF16:
            for j in range(row.shape[0]):
                o[j] = f32_to_bf16(_shifted32(row[j], BF16, m, t) - lg)
        else:
            for j in range(row.shape[0]):
                o[j] = f32_to_f16(_shifted32(row[j], F16, m, t) - lg)


@njit(nogil=True, fastmath=FM, cache=True, error_model="numpy")
def logsumexp16(x, kind, out, t, r0, r1):
    """``out``: float64 per row (the caller rounds the few values)."""
    for i in range(r0, r1):
        row = x[i]
        status, m = row_max16(row, kind)
        if status != OK:
            out[i] = np.nan if status == BAD else -np.inf
            continue
        mt = np.float64(m) if t == 1.0 else np.float64(m) / t
        out[i] = mt + np.log1p(row_sum16(row, kind, m, t))
