"""Independent oracles for the audit's tests: exact values from mpmath at high precision and the
nearest value of a format found by comparing neighbours with exact fractions (no shared code with
``logmax.audit.formats``)."""

from __future__ import annotations

import math
from fractions import Fraction

import mpmath
import numpy as np

_UINT = {"float16": np.uint16, "bfloat16": np.uint16, "float32": np.uint32, "float64": np.uint64}


def mp_fraction(v: mpmath.mpf) -> Fraction:
    """An mpf as an exact fraction."""
    v = mpmath.mpf(v)
    man, exp = v.man_exp  # the magnitude's mantissa: the sign is apart
    frac = Fraction(int(man)) * (Fraction(2) ** int(exp))
    return -frac if v < 0 else frac


def nearest(x: Fraction, fmt) -> float:
    """``x`` rounded to nearest even in ``fmt``, by comparing the neighbours of a first guess."""
    if x == 0:
        return 0.0
    sign = -1.0 if x < 0 else 1.0
    a = abs(x)
    top_ulp = Fraction(math.ldexp(1.0, fmt.emax - fmt.precision + 1))
    if a >= Fraction(fmt.max_finite) + top_ulp / 2:
        return sign * math.inf
    guess = np.array(min(float(a), fmt.max_finite)).astype(fmt.dtype)
    bits = int(guess.reshape(1).view(_UINT[fmt.name])[0])
    best = None
    for b in range(max(bits - 2, 0), bits + 3):
        v = np.array([b], dtype=_UINT[fmt.name]).view(fmt.dtype)[0]
        fv = float(v)
        if not math.isfinite(fv):
            continue
        key = (abs(a - Fraction(fv)), b & 1)  # nearest, then the even significand
        if best is None or key < best[0]:
            best = (key, fv)
    return sign * best[1]
