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

import platform

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from logmax.kernels.cpu._scalar import FM, f32_as_i32, i32_as_f32

BF16 = 1  # the kinds of 16-bit input and output the kernels take
F16 = 2


def _host_converts_halves() -> bool:
    """Whether this CPU converts float16 to and from float32 in hardware (x86-64's F16C, every
    AArch64): LLVM then lowers ``fpext``/``fptrunc`` of ``half`` to vector instructions."""
    try:
        from llvmlite import binding

        features = binding.get_host_cpu_features()
        if "f16c" in features:
            return bool(features["f16c"])
    except RuntimeError:  # (no feature map on some hosts)
        pass
    return platform.machine().lower() in ("arm64", "aarch64")


HARDWARE_F16 = _host_converts_halves()


@intrinsic
def _f16_bits_to_f32(typingctx, h):
    """``fpext half to float`` of a float16 pattern: exact (the hardware conversion)."""
    sig = types.float32(types.uint16)

    def codegen(context, builder, signature, args):
        return builder.fpext(builder.bitcast(args[0], ir.HalfType()), ir.FloatType())

    return sig, codegen


@intrinsic
def _f32_to_f16_bits(typingctx, f):
    """``fptrunc float to half``: the float16 pattern rounded to nearest even, with subnormals,
    overflow to infinity and NaN (the hardware conversion)."""
    sig = types.uint16(types.float32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(builder.fptrunc(args[0], ir.HalfType()), ir.IntType(16))

    return sig, codegen


@njit(fastmath=FM, cache=True, error_model="numpy")
def bf16_to_f32(h):
    """The float32 of a bfloat16 pattern (exact)."""
    return i32_as_f32(np.int32(np.uint32(h) << np.uint32(16)))


@njit(fastmath=FM, cache=True, error_model="numpy")
def f16_to_f32(h):
    """The float32 of a float16 pattern (exact, subnormals, infinities and NaN included): the
    hardware's conversion where the CPU has one (:data:`HARDWARE_F16`), else
    :func:`f16_to_f32_fields`."""
    if HARDWARE_F16:
        return _f16_bits_to_f32(np.uint16(h))
    return f16_to_f32_fields(h)


@njit(fastmath=FM, cache=True, error_model="numpy")
def f16_to_f32_fields(h):
    """:func:`f16_to_f32` by integer operations: the fields shifted into float32's, the
    exponent re-biased by a product with :math:`2^{112}` (exact, and it also normalises a
    float16 subnormal)."""
    u = np.int32(h)
    mag = u & np.int32(0x7FFF)
    sign = (u & np.int32(0x8000)) << np.int32(16)
    finite = i32_as_f32(mag << np.int32(13)) * np.float32(5.192296858534828e33)  # 2^112
    special = i32_as_f32((mag << np.int32(13)) | np.int32(0x7F800000))
    v = special if mag >= np.int32(0x7C00) else finite
    return i32_as_f32(f32_as_i32(v) | sign)


@njit(fastmath=FM, cache=True, error_model="numpy")
def widen(h, kind):
    """The float64 of a 16-bit pattern of ``kind`` (:data:`BF16` or :data:`F16`)."""
    return np.float64(bf16_to_f32(h) if kind == BF16 else f16_to_f32(h))


@njit(fastmath=FM, cache=True, error_model="numpy")
def round_odd32(v):
    """``v`` (float64) rounded to float32 *to odd*: truncated toward zero, with the last bit set
    when inexact. A second rounding of it, to nearest even into a format with at least two bits
    fewer (bfloat16, float16), is then the correct rounding of ``v`` (Boldo and Melquiond, 2008);
    NaN stays NaN."""
    f = np.float32(v)
    back = np.float64(f)
    bits = f32_as_i32(f)
    inexact = back != v
    away = (np.abs(back) > np.abs(v)) & inexact
    bits = bits - (np.int32(1) if away else np.int32(0))
    bits = bits | (np.int32(1) if inexact else np.int32(0))
    return i32_as_f32(bits) if v == v else f


@njit(fastmath=FM, cache=True, error_model="numpy")
def f32_to_bf16(f):
    """The bfloat16 pattern of float32 ``f``, rounded to nearest even (NaN stays NaN)."""
    u = np.uint32(f32_as_i32(f))
    r = (u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)
    return np.uint16(r) if f == f else np.uint16(0x7FC0)


@njit(fastmath=FM, cache=True, error_model="numpy")
def f32_to_f16(f):
    """The float16 pattern of float32 ``f``, rounded to nearest even: subnormals, overflow to
    infinity, NaN. The hardware's conversion where the CPU has one (four times faster), else
    :func:`f32_to_f16_fields`."""
    if HARDWARE_F16:
        return _f32_to_f16_bits(np.float32(f))
    return f32_to_f16_fields(f)


@njit(fastmath=FM, cache=True, error_model="numpy")
def f32_to_f16_fields(f):
    """:func:`f32_to_f16` by integer operations (the rounding bias on the bits; below
    :math:`2^{-14}` the float32 shift trick)."""
    u = np.uint32(f32_as_i32(f))
    sign = np.uint16((u >> np.uint32(16)) & np.uint32(0x8000))
    a = u & np.uint32(0x7FFFFFFF)
    r = a + np.uint32(0x0FFF) + ((a >> np.uint32(13)) & np.uint32(1))
    normal = np.uint16(((r >> np.uint32(13)) - np.uint32(112 << 10)) & np.uint32(0xFFFF))
    # below 2^-14: a multiple of 2^-24, rounded by the float32 shift trick (1.5 * 2^23)
    scaled = np.abs(f) * np.float32(16777216.0)
    tiny = np.uint16(np.int32((scaled + np.float32(12582912.0)) - np.float32(12582912.0)))
    out = tiny if a < np.uint32(0x38800000) else normal
    out = np.uint16(0x7C00) if a >= np.uint32(0x477FF000) else out
    out = np.uint16(0x7E00) if a > np.uint32(0x7F800000) else out
    return sign | out


@njit(fastmath=FM, cache=True, error_model="numpy")
def narrow(v, kind):
    """The 16-bit pattern of ``kind`` of float64 ``v``, correctly rounded (to odd into float32,
    then to nearest even)."""
    f = round_odd32(v)
    return f32_to_bf16(f) if kind == BF16 else f32_to_f16(f)
