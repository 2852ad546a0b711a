r"""Scalar building blocks the row kernels inline: bit casts, ``fma``, a vectorisable ``exp`` and
double-double helpers.

``exp`` comes from here, not from libm: ``math.exp`` is a call LLVM cannot vectorise (Numba ships
no SVML here), while this one is straight-line arithmetic that becomes 8-wide AVX-512 code.

Both versions take :math:`d \le 0` (the kernels only ever exponentiate :math:`x - m`) and reduce
:math:`d = k \ln 2 + r`, :math:`|r| \le \ln 2 / 2`, with Cody and Waite's two-part :math:`\ln 2`
(the first product is exact, so :math:`r` carries only the rounding of the last step):

- :func:`exp_f64` (float32 and 16-bit inputs, computed in float64): a degree-10 Taylor polynomial,
  truncation :math:`< 3 \cdot 10^{-13}` relative, far below half a float32 ULP (:math:`3 \cdot
  10^{-8}`).
- :func:`exp_dd` (float64 inputs): takes :math:`d` as a double-double :math:`d_{hi} + d_{lo}`
  (the exact :math:`x - m`) and returns :math:`e^d` as a double-double: the final ``1 + p`` and
  the ``r + r^2 q(r)`` step are error-free sums, so the pair is good to about :math:`0.1` ULP.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

LOG2E = 1.4426950408889634
# fdlibm's split of ln 2: LN2_HI has 32 trailing zero bits, so k * LN2_HI is exact for |k| < 2^20.
LN2_HI = 6.93147180369123816490e-01
LN2_LO = 1.90821492927058770002e-10
SHIFT = 6755399441055744.0  # 1.5 * 2**52: adding it rounds a double to an integer
# Below these, e^d is 0 in the target format (float32 path) or in float64 (float64 path); the
# clamps keep the scale factor 2^k a normal number (the float64 path splits it in two halves).
LOWEST_F64_PATH = -708.0
LOWEST_DD_PATH = -1100.0

# float32 ordering keys: the int32 bits with the magnitude bits of negatives flipped sort like the
# floats (see ``float_key32``); these are the keys of +inf and -inf.
KEY32_POS_INF = np.int32(0x7F800000)
KEY32_NEG_INF = np.int32(-0x7F800000 - 1)  # 0xFF800000 ^ 0x7FFFFFFF as int32
KEY64_POS_INF = np.int64(0x7FF0000000000000)
KEY64_NEG_INF = np.int64(-0x7FF0000000000000 - 1)

FM = {"contract"}  # fused multiply-add allowed, nothing that would reorder the error-free sums


@intrinsic
def i64_as_f64(typingctx, x):
    """Reinterpret the bits of an int64 as a float64."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return sig, codegen


@intrinsic
def f64_as_i64(typingctx, x):
    """Reinterpret the bits of a float64 as an int64."""
    sig = types.int64(types.float64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return sig, codegen


@intrinsic
def i32_as_f32(typingctx, x):
    """Reinterpret the bits of an int32 as a float32."""
    sig = types.float32(types.int32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return sig, codegen


@intrinsic
def f32_as_i32(typingctx, x):
    """Reinterpret the bits of a float32 as an int32."""
    sig = types.int32(types.float32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return sig, codegen


@intrinsic
def fma(typingctx, a, b, c):
    """``a * b + c`` with one rounding (the hardware instruction on x86-64 with FMA)."""
    sig = types.float64(types.float64, types.float64, types.float64)

    def codegen(context, builder, signature, args):
        return builder.fma(args[0], args[1], args[2])

    return sig, codegen


@njit(fastmath=FM, cache=True, error_model="numpy")
def float_key32(bits):
    """An int32 key that orders float32 values (given by their bits) like the floats.

    Non-negative floats keep their bits; negative ones get their magnitude bits flipped. NaNs land
    above +inf (positive sign) or below -inf (negative sign), which is how rows with NaN are
    spotted in the same pass that finds the maximum.
    """
    return bits ^ ((bits >> np.int32(31)) & np.int32(0x7FFFFFFF))


@njit(fastmath=FM, cache=True, error_model="numpy")
def float_key64(bits):
    """The float64 version of :func:`float_key32`."""
    return bits ^ ((bits >> np.int64(63)) & np.int64(0x7FFFFFFFFFFFFFFF))


@njit(fastmath=FM, cache=True, error_model="numpy")
def pow2(k):
    """:math:`2^k` for integer ``k`` in ``[-1022, 1023]``, built from its bits."""
    return i64_as_f64((k + np.int64(1023)) << np.int64(52))


@njit(fastmath=FM, cache=True, error_model="numpy")
def exp_f64(d):
    """:math:`e^d` for ``d <= 0`` in float64 with relative error below :math:`6 \\cdot 10^{-11}`
    (0.001 float32 ULP); exactly 0 below :math:`e^{-708}` and at ``-inf``.

    The polynomial interpolates :math:`e^r` at the 8 Chebyshev nodes of
    :math:`|r| \\le \\ln 2 / 2` (near-minimax; degree 10 Taylor would cost 3 more FMAs for
    accuracy that float32 results cannot show). :math:`2^k` comes straight from the bits of the
    rounding shift: ``t = d log2(e) + 1.5 * 2^52`` holds ``k`` in its low mantissa bits.
    """
    dc = d if d > LOWEST_F64_PATH else LOWEST_F64_PATH
    t = dc * LOG2E + SHIFT
    k = t - SHIFT
    r = (dc - k * LN2_HI) - k * LN2_LO
    p = 0.00019907635726592097
    p = p * r + 0.0013948638140525332
    p = p * r + 0.008333283438946465
    p = p * r + 0.041666217420844996
    p = p * r + 0.1666666678666822
    p = p * r + 0.5000000108053041
    p = p * r + 0.999999999995491
    p = p * r + 0.9999999999593996
    e = p * i64_as_f64((f64_as_i64(t) + np.int64(1023)) << np.int64(52))
    return e if d > LOWEST_F64_PATH else 0.0


@njit(fastmath=FM, cache=True, error_model="numpy")
def two_sum(a, b):
    """``(s, t)`` with ``s = fl(a + b)`` and ``s + t = a + b`` exactly (Knuth)."""
    s = a + b
    bb = s - a
    t = (a - (s - bb)) + (b - bb)
    return s, t


@njit(fastmath=FM, cache=True, error_model="numpy")
def exp_dd(d_hi, d_lo):
    """:math:`e^{d_{hi} + d_{lo}} = (hi + lo) \\cdot s_1 s_2` for ``d_hi <= 0``.

    Returns ``(hi, lo, s1, s2)``: the double-double mantissa part and two powers of two; scale as
    ``(v * s1) * s2`` so that a subnormal result is rounded once. ``d_lo`` is the rounding error of
    ``d_hi``. Results below the float64 range come out as 0 (``-inf`` included).
    """
    inside = d_hi > LOWEST_DD_PATH
    dc = d_hi if inside else LOWEST_DD_PATH
    d_lo = d_lo if inside else 0.0  # the error term of -inf is NaN
    k = (dc * LOG2E + SHIFT) - SHIFT
    r_hi = dc - k * LN2_HI  # exact: Cody-Waite
    r, r_err = two_sum(r_hi, d_lo - k * LN2_LO)
    # e^r = 1 + r + r^2 q(r); degree 13 Taylor: truncation < 1e-18 on |r| <= ln2/2
    q = 1.6059043836821613e-10
    q = q * r + 2.08767569878681e-09
    q = q * r + 2.5052108385441720e-08
    q = q * r + 2.755731922398589e-07
    q = q * r + 2.7557319223985888e-06
    q = q * r + 2.4801587301587302e-05
    q = q * r + 1.9841269841269841e-04
    q = q * r + 1.3888888888888889e-03
    q = q * r + 8.3333333333333332e-03
    q = q * r + 4.1666666666666664e-02
    q = q * r + 1.6666666666666666e-01
    q = q * r + 0.5
    p_hi, p_lo = two_sum(r, r * r * q)
    hi, lo = two_sum(1.0, p_hi)
    lo = lo + (p_lo + r_err * (1.0 + p_hi))  # e^(r + r_err) = e^r (1 + r_err)
    # 2^k in two halves, so that a subnormal result is rounded once, at the last product
    ki = np.int64(k)
    k1 = ki >> np.int64(1)
    return hi, lo, pow2(k1), pow2(ki - k1)


@njit(fastmath=FM, cache=True, error_model="numpy")
def exp_small_dd(a_hi, a_lo):
    """:math:`e^{a_{hi} + a_{lo}}` to about :math:`2^{-59}` relative, as a double-double, for
    :math:`0 \\le a \\le 700`.

    Slower than :func:`exp_dd` (its :math:`r^2` is exact and its low-order sum error-free); used
    once per row, to refine :math:`\\operatorname{log1p}(s)`.
    """
    k = (a_hi * LOG2E + SHIFT) - SHIFT
    r_hi = a_hi - k * LN2_HI  # exact
    r, r_err = two_sum(r_hi, a_lo - k * LN2_LO)
    q = 1.6059043836821613e-10
    q = q * r + 2.08767569878681e-09
    q = q * r + 2.505210838544172e-08
    q = q * r + 2.755731922398589e-07
    q = q * r + 2.7557319223985893e-06
    q = q * r + 2.48015873015873e-05
    q = q * r + 1.984126984126984e-04
    q = q * r + 1.388888888888889e-03
    q = q * r + 8.333333333333333e-03
    q = q * r + 4.1666666666666664e-02
    q = q * r + 1.6666666666666666e-01
    r2 = r * r
    r2_err = fma(r, r, -r2)  # r^2 = r2 + r2_err exactly
    s1, e1 = two_sum(1.0, r)
    s2, e2 = two_sum(s1, 0.5 * r2)
    s3, e3 = two_sum(s2, r * r2 * q + 0.5 * r2_err)  # the r^3 tail: below 0.007
    lo = (e1 + e2) + e3 + r_err * s3  # e^(r + r_err) = e^r (1 + r_err)
    hi, lo = two_sum(s3, lo)
    scale = pow2(np.int64(k))
    return hi * scale, lo * scale


@njit(fastmath=FM, cache=True, error_model="numpy")
def log1p_dd(s_hi, s_lo):
    """:math:`\\log(1 + s)` for :math:`s = s_{hi} + s_{lo} \\ge 0`, as a double-double good to
    about :math:`2^{-58}` relative.

    libm's ``log1p(s_hi)`` (within an ULP) and one Newton step,
    :math:`L \\leftarrow L + ((1 + s) - e^L) / e^L`, with :math:`e^L` from
    :func:`exp_small_dd` and the difference taken error-free. The extra bits matter where a
    caller cancels against :math:`L`: ``m + log1p(s)`` near 0 (logsumexp of ``[-1, -1, -1]``).
    """
    base = np.log1p(s_hi)
    if s_hi < 9.094947017729282e-13:  # 2^-40: 1 + s as a double-double has too few bits of s;
        return base, s_lo / (1.0 + s_hi)  # libm's log1p is relatively accurate here anyway
    e_hi, e_lo = exp_small_dd(base, 0.0)
    a, a_err = two_sum(1.0, s_hi)
    diff = (a - e_hi) + ((a_err + s_lo) - e_lo)  # a - e_hi is exact (Sterbenz)
    return base, diff / e_hi
