r"""The four target formats and exact rounding into them.

A binary floating-point format is fixed by its precision :math:`p` (significand bits, the hidden
bit included) and its exponent range :math:`[e_{min}, e_{max}]`. Its finite values are
:math:`\pm M \cdot 2^{q}` with :math:`0 \le M < 2^p` and :math:`q \ge e_{min} - p + 1`; values below
:math:`2^{e_{min}}` are the subnormals, spaced :math:`2^{e_{min} - p + 1}` apart.

Rounding here is exact integer arithmetic on a rational :math:`n/d` (or a dyadic
:math:`m \cdot 2^e`): round to nearest, ties to even, in the format's exponent range, subnormals
included, and to :math:`\pm\infty` when the rounded magnitude exceeds the largest finite value
(IEEE 754 overflow). ``float(mpf)`` or a cast from float64 would round twice near the subnormal
range of float64 and for every format narrower than float64.

Every value of the four formats is a float64, so a rounded result is returned as a Python float.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import ml_dtypes
import numpy as np


@dataclass(frozen=True)
class Format:
    """A binary floating-point format: precision ``p`` (with the hidden bit) and exponent range."""

    name: str
    precision: int
    emin: int
    emax: int

    @property
    def dtype(self) -> np.dtype:
        """The NumPy dtype holding this format (``ml_dtypes.bfloat16`` for bfloat16)."""
        return np.dtype(ml_dtypes.bfloat16) if self.name == "bfloat16" else np.dtype(self.name)

    @property
    def max_finite(self) -> float:
        """Largest finite value, :math:`(2 - 2^{1-p}) \\cdot 2^{e_{max}}`."""
        return math.ldexp((1 << self.precision) - 1, self.emax - self.precision + 1)

    @property
    def min_subnormal(self) -> float:
        """Smallest positive value, :math:`2^{e_{min} - p + 1}`: the ULP of the subnormals."""
        return math.ldexp(1.0, self.emin - self.precision + 1)

    @property
    def min_normal(self) -> float:
        return math.ldexp(1.0, self.emin)

    def ulp_at_exponent(self, exponent: int) -> float:
        """ULP of the binade :math:`[2^E, 2^{E+1})`: :math:`2^{\\max(E, e_{min}) - p + 1}`."""
        return math.ldexp(1.0, max(exponent, self.emin) - self.precision + 1)

    def round_rational(self, num: int, den: int = 1) -> float:
        """``num / den`` rounded to nearest even in this format (``den > 0``), as a float.

        Example:
            >>> FLOAT16.round_rational(1, 3)
            0.333251953125
            >>> FLOAT16.round_rational(1, 2**25)  # half the smallest subnormal: ties to 0
            0.0
            >>> FLOAT16.round_rational(65520)  # the midpoint above 65504 overflows
            inf
        """
        if den <= 0:
            raise ValueError("den must be positive")
        if num == 0:
            return 0.0
        negative = num < 0
        a = -num if negative else num
        # exponent E with 2^E <= a/den < 2^(E+1)
        e = a.bit_length() - den.bit_length()
        if (a << -e if e < 0 else a) < (den << e if e > 0 else den):
            e -= 1
        q = max(e, self.emin) - self.precision + 1  # exponent of the last significand bit
        n, d = (a << -q, den) if q <= 0 else (a, den << q)
        m, r = divmod(n, d)
        if 2 * r > d or (2 * r == d and m & 1):
            m += 1
        return self._pack(negative, m, q)

    def round_dyadic(self, man: int, exp: int) -> float:
        """``man * 2**exp`` rounded to nearest even in this format, as a float."""
        if man == 0:
            return 0.0
        negative = man < 0
        a = -man if negative else man
        k = a.bit_length()
        q = max(exp + k - 1, self.emin) - self.precision + 1
        shift = q - exp
        if shift <= 0:
            return self._pack(negative, a << -shift, q)
        if shift > k:  # below half of the last place: 0 (a < 2^k <= 2^(shift-1))
            return -0.0 if negative else 0.0
        m = a >> shift
        r = a & ((1 << shift) - 1)
        half = 1 << (shift - 1)
        if r > half or (r == half and m & 1):
            m += 1
        return self._pack(negative, m, q)

    def _pack(self, negative: bool, m: int, q: int) -> float:
        # m * 2^q with m <= 2^p; overflow if above the largest finite value
        top = self.emax - self.precision + 1
        overflow = q > top or (q == top and m >= 1 << self.precision)
        value = math.inf if overflow else math.ldexp(m, q)
        return -value if negative else value


FLOAT16 = Format("float16", 11, -14, 15)
BFLOAT16 = Format("bfloat16", 8, -126, 127)
FLOAT32 = Format("float32", 24, -126, 127)
FLOAT64 = Format("float64", 53, -1022, 1023)

FORMATS: dict[str, Format] = {f.name: f for f in (FLOAT16, BFLOAT16, FLOAT32, FLOAT64)}


def format_of(dtype: object) -> Format:
    """The :class:`Format` of a NumPy dtype or a name (``'float16'``, ``'bfloat16'``, ...)."""
    if isinstance(dtype, Format):
        return dtype
    name = dtype if isinstance(dtype, str) else np.dtype(dtype).name
    try:
        return FORMATS[name]
    except KeyError:
        raise TypeError(
            f"no target format for {name!r}; expected one of {', '.join(FORMATS)}"
        ) from None
