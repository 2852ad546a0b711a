r"""The softcap :math:`u = c \tanh(x / c)` and its slope, written against the algebra's primitives.

The same lines as :func:`logmax.kernels.array.transform` (which takes an array namespace), as
plain functions of :mod:`logmax._core.ddarith`'s names, so that
:mod:`logmax.kernels.triton._algebra` specialises them with the rest of the algebra (and NumPy
runs them as they are: the tests compare the two). NaN stays NaN, ``+inf`` becomes ``c`` (the
limit), ``-inf`` stays ``-inf`` (masked).
"""

from __future__ import annotations

from logmax._core.ddarith import dd_div_d, dd_mul_d, sech2_dd, tanh_dd, where

INF = float("inf")
NAN = float("nan")


def softcap(x, cap):
    """``(u_hi, u_lo)``: :math:`c \\tanh(x / c)` as a double-word."""
    bad = x != x
    q_hi, q_lo = dd_div_d(x, 0.0 * x, cap)
    q_lo = where(bad | (abs(x) == INF), 0.0, q_lo)
    t_hi, t_lo = tanh_dd(q_hi, q_lo)
    u_hi, u_lo = dd_mul_d(t_hi, t_lo, cap)
    masked = x == -INF
    u_hi = where(bad, NAN, where(masked, -INF, u_hi))
    u_lo = where(bad | masked, 0.0, u_lo)
    return u_hi, u_lo


def softcap_slope(x, cap):
    """:math:`\\operatorname{sech}^2(x / c)`, the softcap's derivative (0 where ``x / c``
    overflows or ``x`` is masked)."""
    bad = x != x
    q_hi, q_lo = dd_div_d(x, 0.0 * x, cap)
    q_lo = where(bad | (abs(x) == INF), 0.0, q_lo)
    masked = x == -INF
    big = abs(q_hi) == INF
    c_hi, c_lo = sech2_dd(where(bad | masked | big, 0.0, q_hi), q_lo)
    return where(big, 0.0, c_hi + c_lo)
