r"""The last resort for rows whose logsumexp cancels beyond double-double: exact evaluation.

:math:`\log|\sum_i b_i e^{z_i}|` can be arbitrarily close to 0 (the logsumexp of
log-probabilities is 0 up to their rounding), so no fixed precision is always enough. This
evaluates such a row with Python's :mod:`decimal`, raising the precision until the value rounded to
float64 no longer changes. The inputs are binary floats, hence exact rationals; equal exponents
are merged first with their weights summed exactly, because only such terms can cancel exactly.
It is slow (milliseconds per row): the backends send it only the rows that need it.
"""

from __future__ import annotations

import decimal
import fractions
from collections.abc import Iterable

import numpy as np

PRECISIONS = (60, 120, 240, 480, 960, 1920, 3840, 7680)


def logsumexp_row(
    z: Iterable[float],
    b: Iterable[float] | None = None,
    t: float = 1.0,
    z_lo: Iterable[float] | None = None,
) -> tuple[float, float]:
    r"""``(log|sum_i b_i e^(z_i / t)|, sign)`` of one row, correctly rounded to float64.

    ``z_lo`` adds low parts to ``z`` (double-double entries). ``-inf`` entries and zero weights
    are left out; an empty sum gives ``(-inf, 0)``.
    """
    hi, _, sign = _logsumexp(z, b, t, z_lo, parts=1)
    return hi, sign


def logsumexp_row_dd(
    z: Iterable[float],
    b: Iterable[float] | None = None,
    t: float = 1.0,
    z_lo: Iterable[float] | None = None,
) -> tuple[float, float, float]:
    r"""``(hi, lo, sign)``: :func:`logsumexp_row` as a double-double, ``hi`` correctly rounded
    and ``lo`` the rounded rest (0 where ``hi`` is not finite) -- for a caller that squares the
    value (the z-loss) or takes more than its 53 bits."""
    return _logsumexp(z, b, t, z_lo, parts=2)


def _logsumexp(z, b, t, z_lo, parts: int) -> tuple[float, float, float]:
    """The value's first ``parts`` float64 parts (``hi``, then the rest rounded), the precision
    raised until they no longer change; then ``(hi, lo, sign)``."""
    z = list(z)
    b = [1.0] * len(z) if b is None else list(b)
    lo = [0.0] * len(z) if z_lo is None else list(z_lo)
    merged: dict[fractions.Fraction, fractions.Fraction] = {}
    for zi, li, bi in zip(z, lo, b, strict=True):
        if bi != 0 and not np.isneginf(zi):
            key = _exact(zi) + _exact(li)
            merged[key] = merged.get(key, fractions.Fraction(0)) + _exact(bi)
    terms = [(k, v) for k, v in merged.items() if v != 0]
    if not terms:
        return -np.inf, 0.0, 0.0
    tq = _exact(t)
    previous = None
    value = (-np.inf, 0.0)
    acc = decimal.Decimal(0)
    for prec in PRECISIONS:
        ctx = decimal.Context(prec=prec, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)
        zs = [ctx.divide(_to_decimal(k, ctx), _to_decimal(tq, ctx)) for k, _ in terms]
        m = max(zs)
        acc = decimal.Decimal(0)
        for (_, v), zi in zip(terms, zs, strict=True):
            acc = ctx.add(acc, ctx.multiply(_to_decimal(v, ctx), ctx.exp(ctx.subtract(zi, m))))
        if acc == 0:  # distinct exponents cannot cancel exactly: more digits are needed
            continue
        exact = ctx.add(m, ctx.ln(acc.copy_abs()))
        hi = float(exact)
        rest = (
            float(ctx.subtract(exact, decimal.Decimal(hi)))
            if parts > 1 and np.isfinite(hi)
            else 0.0
        )
        value = (hi, rest)
        # certain: the evaluation's error (about 10^-prec of the terms and of m) is far below
        # the result (two precisions agreeing is not enough: both may be too few for a sum
        # that cancels to 1 - 1e-316); one term has no cancellation
        bound = decimal.Decimal(10) ** (2 - prec) * (1 + abs(m))
        certain = len(terms) == 1 or abs(exact) * decimal.Decimal(2) ** -64 > bound
        if previous is not None and value[:parts] == previous[:parts] and certain:
            break
        previous = value
    return value[0], value[1], (1.0 if acc > 0 else -1.0) if acc != 0 else 0.0


def _exact(v: float) -> fractions.Fraction:
    return fractions.Fraction(*float(v).as_integer_ratio())


def _to_decimal(q: fractions.Fraction, ctx: decimal.Context) -> decimal.Decimal:
    wide = decimal.Context(prec=ctx.prec + 40, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)
    return wide.divide(decimal.Decimal(q.numerator), decimal.Decimal(q.denominator))
