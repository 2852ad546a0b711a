"""Exact values for the study's small examples, rounded correctly to a floating-point format.

The examples are tiny (a handful of numbers), so the study evaluates them with mpmath and raises
the working precision until the value rounded to the target format no longer changes between two
precisions (the DESIGN's "precision raised until stable"). Rounding to the format is done on the
exact binary mantissa (round to nearest, ties to even, subnormals and overflow included), so
nothing is rounded twice.

Exact log_softmax of a row ``x`` (``m = max x``, ``s = Σ_{i≠argmax} exp(x_i - m)``):

.. math:: \\log\\mathrm{softmax}(x)_i = (x_i - m) - \\operatorname{log1p}(s)

ULP error of a computed value ``c`` against the exact value ``v``: ``|c - v| / ulp(v)`` with
``ulp(v) = 2^(max(floor(log2 |v|), emin) - p + 1)`` for a format with ``p`` mantissa bits and
smallest normal exponent ``emin`` (``inf`` if ``c`` is not finite while ``v`` is).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import mpmath
import numpy as np

# (mantissa bits with the hidden bit, smallest normal exponent, largest exponent) per format
FORMATS = {
    "float16": (11, -14, 15),
    "bfloat16": (8, -126, 127),
    "float32": (24, -126, 127),
    "float64": (53, -1022, 1023),
}


def _format(fmt: str | np.dtype) -> tuple[int, int, int]:
    return FORMATS[fmt if isinstance(fmt, str) else np.dtype(fmt).name]


def _quantum_exponent(value: mpmath.mpf, fmt: str | np.dtype) -> int:
    """Exponent of the spacing of ``fmt`` at the (nonzero, finite) ``value``: log2 ulp(value)."""
    bits, emin, _ = _format(fmt)
    man, exp = value.man_exp
    exponent = exp + abs(int(man)).bit_length() - 1  # 2**exponent <= |value| < 2**(exponent+1)
    return max(exponent, emin) - (bits - 1)  # below 2**emin the spacing is the subnormal one


def round_to(value: mpmath.mpf, fmt: str | np.dtype) -> float:
    """Round an exact mpmath value to the nearest number of ``fmt`` (ties to even).

    Done on the integer mantissa, so it is exact, subnormals and overflow to infinity included.
    The result is returned as a Python float (every number of the formats is one exactly).
    """
    if not mpmath.isfinite(value) or value == 0:
        return float(value)
    _, _, emax = _format(fmt)
    man, exp = value.man_exp
    sign, man = (-1 if value < 0 else 1), abs(int(man))  # man_exp gives |mantissa|
    q_exp = _quantum_exponent(value, fmt)
    shift = q_exp - exp
    if shift <= 0:
        q = man << -shift
    else:
        q, rem = man >> shift, man & ((1 << shift) - 1)
        half = 1 << (shift - 1)
        if rem > half or (rem == half and q & 1):
            q += 1
    if q.bit_length() + q_exp > emax + 1:  # |rounded| >= 2**(emax+1): overflow
        return sign * math.inf
    return sign * math.ldexp(q, q_exp)


def stable(
    compute: Callable[[], Sequence[mpmath.mpf]], fmt: str | np.dtype, start_bits: int = 128
) -> tuple[list[mpmath.mpf], list[float]]:
    """Evaluate ``compute`` at rising precision until its rounding to ``fmt`` is stable.

    Returns the values at the final precision and their roundings to ``fmt``.
    """
    bits = start_bits
    previous: list[float] | None = None
    while True:
        with mpmath.workprec(bits):
            values = [+v for v in compute()]
        rounded = [round_to(v, fmt) for v in values]
        if previous is not None and rounded == previous:
            return values, rounded
        previous, bits = rounded, bits * 2
        if bits > 1 << 16:
            raise ArithmeticError("exact value did not stabilise below 65536 bits")


def _mp_row(row: Sequence[float]) -> list[mpmath.mpf]:
    return [mpmath.mpf(float(v)) for v in row]  # float inputs are exact in mpmath


def log_softmax(row: Sequence[float], fmt: str | np.dtype) -> tuple[list[mpmath.mpf], list[float]]:
    """Exact ``log_softmax`` of one row of floating-point numbers, and its rounding to ``fmt``."""

    def compute() -> list[mpmath.mpf]:
        x = _mp_row(row)
        m = max(x)
        lse = m + mpmath.log(mpmath.fsum(mpmath.exp(v - m) for v in x))
        return [v - lse for v in x]

    return stable(compute, fmt)


def softmax(row: Sequence[float], fmt: str | np.dtype) -> tuple[list[mpmath.mpf], list[float]]:
    """Exact ``softmax`` of one row of floating-point numbers, and its rounding to ``fmt``."""

    def compute() -> list[mpmath.mpf]:
        x = _mp_row(row)
        m = max(x)
        e = [mpmath.exp(v - m) for v in x]
        total = mpmath.fsum(e)
        return [v / total for v in e]

    return stable(compute, fmt)


def cross_entropy(
    logits: np.ndarray, target: Sequence[int], fmt: str | np.dtype
) -> tuple[mpmath.mpf, float]:
    """Exact mean cross-entropy ``mean_r(logsumexp(x_r) - x_r[y_r])``, and rounded to ``fmt``."""

    def compute() -> list[mpmath.mpf]:
        losses = []
        for row, y in zip(logits, target, strict=True):
            x = _mp_row(row)
            m = max(x)
            lse = m + mpmath.log(mpmath.fsum(mpmath.exp(v - m) for v in x))
            losses.append(lse - x[int(y)])
        return [mpmath.fsum(losses) / len(losses)]

    values, rounded = stable(compute, fmt)
    return values[0], rounded[0]


def ulp_error(computed: float, exact: mpmath.mpf, fmt: str | np.dtype) -> float:
    """``|computed - exact|`` in units in the last place of ``fmt`` at the exact value."""
    if not np.isfinite(computed):
        return 0.0 if (mpmath.isinf(exact) and float(exact) == computed) else float("inf")
    if exact == 0:
        return 0.0 if computed == 0 else float("inf")
    ulp = mpmath.ldexp(1, _quantum_exponent(exact, fmt))
    with mpmath.workprec(256):  # plenty for an error quoted to a few digits
        return float(abs(mpmath.mpf(computed) - exact) / ulp)
