r"""Scalar building blocks the row kernels inline: bit casts, ``fma``, ordering keys and a
vectorisable ``exp`` for float32 results.

:func:`exp_f64` comes from here, not from libm: ``math.exp`` is a call LLVM cannot vectorise
(Numba ships no SVML here), while this one is straight-line arithmetic that becomes 8-wide
AVX-512 code. It takes :math:`d \le 0` (the kernels only ever exponentiate :math:`x - m`) and
reduces :math:`d = k \ln 2 + r`, :math:`|r| \le \ln 2 / 2`, with Cody and Waite's two-part
:math:`\ln 2`; its polynomial keeps the relative error below :math:`6 \cdot 10^{-11}`, far below
half a float32 ULP. The double-double arithmetic of the float64 kernels is the algebra's own
(:mod:`logmax.kernels.cpu._algebra`).
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
# Below this, e^d is 0 in the float32 results; the clamp keeps the scale factor 2^k normal.
LOWEST_F64_PATH = -708.0

# float32 ordering keys: the int32 bits with the magnitude bits of negatives flipped sort like the
# floats (see ``float_key32``); these are the keys of +inf and -inf.
KEY32_POS_INF = np.int32(0x7F800000)
KEY32_NEG_INF = np.int32(-0x7F800000 - 1)  # 0xFF800000 ^ 0x7FFFFFFF as int32
KEY64_POS_INF = np.int64(0x7FF0000000000000)
KEY64_NEG_INF = np.int64(-0x7FF0000000000000 - 1)

FM = {"contract"}  # fused multiply-add allowed, nothing that would reorder the error-free sums


def _bitcast(name: str, result, argument, ir_type) -> object:
    """An intrinsic ``name`` that reinterprets the bits of an ``argument`` as a ``result``."""

    def typer(typingctx, x):
        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], ir_type)

        return result(argument), codegen

    typer.__name__ = typer.__qualname__ = name
    typer.__doc__ = f"Reinterpret the bits of an {argument} as a {result}."
    return intrinsic(typer)


i64_as_f64 = _bitcast("i64_as_f64", types.float64, types.int64, ir.DoubleType())
f64_as_i64 = _bitcast("f64_as_i64", types.int64, types.float64, ir.IntType(64))
i32_as_f32 = _bitcast("i32_as_f32", types.float32, types.int32, ir.FloatType())
f32_as_i32 = _bitcast("f32_as_i32", types.int32, types.float32, ir.IntType(32))


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
