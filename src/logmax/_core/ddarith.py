r"""Double-double arithmetic and the elementary functions logmax needs, written once for every
backend.

A double-double is an unevaluated sum :math:`h + l` of two floats with :math:`|l| \le
\mathrm{ulp}(h)/2`: about twice the working precision (106 bits in float64). The functions here
use only arithmetic and the *primitives* named in :data:`PRIMITIVES` (``where``, ``exp``,
``log1p``, ``rint``, ``pow2``, ``two_prod``), looked up as module globals. Bound to NumPy here,
the same source is re-bound to torch's functions (the torch backend) and to Numba's scalar
functions (the CPU kernels) by :func:`logmax._core.specialise.specialise`; so it must stay
branch-free (``where``, never ``if`` on a value) and must not reassociate.

The error-free transformations are those of Knuth (``two_sum``) and Dekker (``two_prod``); the
double-double operations follow Joldes, Muller and Popescu, "Tight and rigorous error bounds for
basic building blocks of double-word arithmetic" (ACM TOMS 44, 2017).

References:
    Blanchard, Higham and Higham, "Accurately computing the log-sum-exp and softmax functions",
    IMA J. Numer. Anal. 41 (2021): the log1p forms used throughout logmax.

See also:
    :mod:`logmax._core.rowstats`, which builds the row statistics on these.
"""

from __future__ import annotations

import numpy as np

# ---------------------------------------------------------------------------------------------
# Primitives: the only non-arithmetic names the sources below use. NumPy versions here.
where = np.where
exp = np.exp
log1p = np.log1p
rint = np.rint

INF = float("inf")
SPLITTER = 134217729.0  # 2^27 + 1: Veltkamp's split of a float64 into two 26-bit halves
BIG = 2.0**996  # above this a split would overflow: scale first


def pow2(k):
    """:math:`2^k` for integer-valued ``k`` in ``[-1022, 1023]`` (a float array)."""
    return np.ldexp(1.0, np.asarray(k).astype(np.int64))


def two_prod(a, b):
    """``(p, e)`` with ``p = fl(a b)`` and ``p + e = a b`` exactly (Dekker, without ``fma``)."""
    big_a = np.abs(a) > BIG
    big_b = np.abs(b) > BIG
    sa = np.where(big_a, 2.0**-60, 1.0)
    sb = np.where(big_b, 2.0**-60, 1.0)
    a2, b2 = a * sa, b * sb
    p2 = a2 * b2
    ah, al = _split(a2)
    bh, bl = _split(b2)
    e2 = ((ah * bh - p2) + ah * bl + al * bh) + al * bl
    return a * b, e2 / (sa * sb)


def _split(a):
    c = SPLITTER * a
    hi = c - (c - a)
    return hi, a - hi


PRIMITIVES = ("where", "exp", "log1p", "rint", "pow2", "two_prod")


# ---------------------------------------------------------------------------------------------
# Error-free sums and the double-double operations.
def two_sum(a, b):
    """``(s, t)`` with ``s = fl(a + b)`` and ``s + t = a + b`` exactly (Knuth)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def fast_two_sum(a, b):
    """``two_sum`` for ``|a| >= |b|`` (or ``a == 0``): three operations (Dekker)."""
    s = a + b
    return s, b - (s - a)


def dd_add(ah, al, bh, bl):
    """:math:`(a_h + a_l) + (b_h + b_l)`, relative error below :math:`3u^2` (accurate sum)."""
    sh, sl = two_sum(ah, bh)
    th, tl = two_sum(al, bl)
    sl = sl + th
    sh, sl = fast_two_sum(sh, sl)
    sl = sl + tl
    return fast_two_sum(sh, sl)


def dd_add_d(ah, al, b):
    """:math:`(a_h + a_l) + b` for a float ``b``."""
    sh, sl = two_sum(ah, b)
    return fast_two_sum(sh, sl + al)


def dd_mul_d(ah, al, b):
    """:math:`(a_h + a_l)\\,b` for a float ``b``."""
    ph, pl = two_prod(ah, b)
    return fast_two_sum(ph, pl + al * b)


def dd_mul(ah, al, bh, bl):
    """:math:`(a_h + a_l)(b_h + b_l)`."""
    ph, pl = two_prod(ah, bh)
    return fast_two_sum(ph, pl + (ah * bl + al * bh))


TINY_PRODUCT = 2.0**-969  # below it a product's rounding error may itself be rounded away


def dd_div_d(ah, al, b):
    """:math:`(a_h + a_l) / b` for a float ``b`` (one correction step). Where :math:`a_h` is below
    :data:`TINY_PRODUCT` the correction (whose product error is no longer exact, and which the
    division by a small ``b`` would magnify) is left out: the quotient is then correctly
    rounded."""
    q = ah / b
    ph, pl = two_prod(q, b)
    fin = (abs(q) < INF) & (abs(ah) >= TINY_PRODUCT)  # an overflowing quotient has no low part
    r = where(fin, ((ah - ph) - pl + al) / b, 0.0)
    s, e = fast_two_sum(q, r)
    return where(fin, s, q), where(fin, e, 0.0)


def dd_div(ah, al, bh, bl):
    """:math:`(a_h + a_l) / (b_h + b_l)`."""
    q = ah / bh
    ph, pl = dd_mul_d(bh, bl, q)
    rh, rl = dd_add(ah, al, -ph, -pl)
    return fast_two_sum(q, (rh + rl) / bh)


def scale2(v, k):
    """:math:`v \\cdot 2^k` with one rounding, for ``k`` down to ``-2044`` (two half steps, so
    that a subnormal result is rounded only by the last product)."""
    k1 = rint(k * 0.5 - 0.25)  # floor(k / 2) for integer k
    return (v * pow2(k1)) * pow2(k - k1)


# ---------------------------------------------------------------------------------------------
# exp and log1p in double-double (float64 working precision).
LOG2E = 1.4426950408889634
# fdlibm's split of ln 2: LN2_HI has 32 trailing zero bits, so k * LN2_HI is exact for |k| < 2^20.
LN2_HI = 6.93147180369123816490e-01
LN2_LO = 1.90821492927058770002e-10
LOWEST_DD = -1100.0  # e^d is 0 in float64 below this (2^-1587): clamped, then zeroed


def _expm1_core(r):
    """:math:`e^r - 1 - r` for :math:`|r| \\le \\ln 2 / 2`: ``r^2 q(r)`` with the Taylor
    coefficients to degree 13 (truncation below :math:`10^{-18}`)."""
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
    q = q * r + 0.5
    return r * r * q


def exp_dd(d_hi, d_lo):
    """:math:`e^{d_h + d_l} = (h + l)\\,2^k` for :math:`d \\le 0` (and slightly above).

    Returns ``(h, l, k)`` with :math:`h + l \\in [0.7, 1.42]` good to about :math:`2^{-57}`
    relative and ``k`` an integer-valued float; ``scale2(h + l, k)`` rounds the value once, also
    where it is subnormal. :math:`d = -\\infty` (a masked entry) gives ``h = l = 0``.

    Cody and Waite's reduction :math:`d = k \\ln 2 + r`, :math:`|r| \\le \\ln 2/2` (the first
    product exact), then :math:`e^r = 1 + r + r^2 q(r)` with the last two additions error-free.
    """
    inside = d_hi > LOWEST_DD
    dc = where(inside, d_hi, LOWEST_DD)
    dl = where(inside, d_lo, 0.0)  # the error term of -inf is NaN
    k = rint(dc * LOG2E)
    r_hi = dc - k * LN2_HI  # exact
    r, r_err = two_sum(r_hi, dl - k * LN2_LO)
    p_hi, p_lo = fast_two_sum(r, _expm1_core(r))
    hi, lo = fast_two_sum(1.0, p_hi)
    lo = lo + (p_lo + r_err * (1.0 + p_hi))  # e^(r + r_err) = e^r (1 + r_err)
    return where(inside, hi, 0.0), where(inside, lo, 0.0), k


# 1/n! as double-doubles, n = 12 .. 2 (Horner order), for exp_dd_accurate.
INV_FACT_HI = (
    2.08767569878681e-09, 2.505210838544172e-08, 2.755731922398589e-07, 2.7557319223985893e-06,
    2.48015873015873e-05, 0.0001984126984126984, 0.001388888888888889, 0.008333333333333333,
    0.041666666666666664, 0.16666666666666666, 0.5,
)  # fmt: skip
INV_FACT_LO = (
    -1.20734505911326e-25, -1.448814070935912e-24, 2.3767714622250297e-23, -1.858393274046472e-22,
    2.1511947866775882e-23, 1.7209558293420705e-22, -5.300543954373577e-20,
    1.1564823173178714e-19, 2.3129646346357427e-18, 9.25185853854297e-18, 0.0,
)  # fmt: skip
LN2_LO2 = 1.1612227229362532e-26  # ln 2 = LN2_HI + LN2_LO + LN2_LO2 to 2^-140
HALVINGS = 5


def expm1_reduced(r_hi, r_lo):
    """:math:`e^r - 1` for :math:`|r| \\le 0.35` as a double-double good to about
    :math:`2^{-100}` relative (also for tiny :math:`r`): :math:`r` is halved 5 times, the degree-12
    Taylor polynomial is evaluated in double-double (Horner) and squared back as
    :math:`p \\leftarrow p(2 + p)`."""
    h = 2.0**-HALVINGS
    r_hi, r_lo = r_hi * h, r_lo * h
    q_hi, q_lo = 0.0 * r_hi + 1.6059043836821613e-10, 0.0 * r_hi
    for i in range(len(INV_FACT_HI)):
        q_hi, q_lo = dd_mul(q_hi, q_lo, r_hi, r_lo)
        q_hi, q_lo = dd_add(q_hi, q_lo, INV_FACT_HI[i], INV_FACT_LO[i])
    q_hi, q_lo = dd_mul(q_hi, q_lo, r_hi, r_lo)
    q_hi, q_lo = dd_add_d(q_hi, q_lo, 1.0)
    e_hi, e_lo = dd_mul(q_hi, q_lo, r_hi, r_lo)  # e^(r / 32) - 1
    for _ in range(HALVINGS):
        t_hi, t_lo = dd_add_d(e_hi, e_lo, 2.0)
        e_hi, e_lo = dd_mul(e_hi, e_lo, t_hi, t_lo)
    return e_hi, e_lo


def exp_dd_accurate(d_hi, d_lo):
    """:func:`exp_dd` to about :math:`2^{-100}` relative: ``(h, l, k)`` with
    :math:`e^{d} = (h + l) 2^k`.

    The reduction keeps :math:`\\ln 2` to 140 bits and :func:`expm1_reduced` does the rest. An
    order of magnitude slower than :func:`exp_dd`: for the rows where the last bits matter (a
    logsumexp near 0) and the Newton step of :func:`log1p_dd`.
    """
    inside = d_hi > LOWEST_DD
    dc = where(inside, d_hi, LOWEST_DD)
    dl = where(inside, d_lo, 0.0)
    k = rint(dc * LOG2E)
    r_hi = dc - k * LN2_HI  # exact
    p_hi, p_lo = two_prod(k, LN2_LO)
    r_hi, r_lo = dd_add(r_hi, dl, -p_hi, -(p_lo + k * LN2_LO2))
    e_hi, e_lo = expm1_reduced(r_hi, r_lo)
    hi, lo = dd_add_d(e_hi, e_lo, 1.0)
    return where(inside, hi, 0.0), where(inside, lo, 0.0), k


def expm1_dd(x_hi, x_lo):
    """:math:`e^x - 1` as a double-double for :math:`x \\le 0`, about :math:`2^{-100}` relative
    (no cancellation near 0: :func:`expm1_reduced` there, :func:`exp_dd_accurate` beyond). The
    softcap's :math:`\\tanh` needs those bits where a tiny temperature multiplies its error."""
    small = x_hi > -0.34
    xs = where(small, x_hi, 0.0)
    xl = where(small, x_lo, 0.0)
    p_hi, p_lo = expm1_reduced(xs, xl)
    e_hi, e_lo, k = exp_dd_accurate(x_hi, x_lo)
    kk = where(small, 0.0, k)  # down to -1587: scale2, not pow2 (whose range ends at -1022)
    b_hi, b_lo = dd_add_d(scale2(e_hi, kk), scale2(e_lo, kk), -1.0)
    return where(small, p_hi, b_hi), where(small, p_lo, b_lo)


def log1p_dd(s_hi, s_lo):
    """:math:`\\log(1 + s)` for :math:`s = s_h + s_l > -1` as a double-double, about
    :math:`2^{-100}` relative.

    ``log1p(s_hi)`` (within an ULP) and one Newton step on :math:`e^L - 1 = s`,
    :math:`L \\leftarrow L + (s - \\operatorname{expm1}(L)) / e^L`, with
    :math:`\\operatorname{expm1}(L)` from :func:`expm1_reduced` for small :math:`L` (relative
    accuracy down to tiny :math:`s`) and from :func:`exp_dd_accurate` otherwise. The extra bits
    matter where a caller cancels against :math:`L`: ``m + log1p(s)`` near 0 (logsumexp of
    log-probabilities).
    """
    base = log1p(s_hi)
    small = abs(base) < 0.34
    b = where(small, base, 0.0)
    m_hi, m_lo = expm1_reduced(b, 0.0 * b)
    e_hi, e_lo, k = exp_dd_accurate(where(small, 0.0, base), 0.0 * base)
    e_hi, e_lo = scale2(e_hi, k), scale2(e_lo, k)  # e^L, up to 1 + s ~ 1.8e308
    big_hi, big_lo = dd_add_d(e_hi, e_lo, -1.0)
    x_hi = where(small, m_hi, big_hi)
    x_lo = where(small, m_lo, big_lo)
    n_hi, n_lo = dd_add(s_hi, s_lo, -x_hi, -x_lo)
    return fast_two_sum(base, (n_hi + n_lo) / (x_hi + 1.0))


def tanh_dd(u_hi, u_lo):
    """:math:`\\tanh(u)` as a double-double: :math:`-\\operatorname{sign}(u)\\,E / (2 + E)` with
    :math:`E = \\operatorname{expm1}(-2|u|)` (no cancellation for small or large :math:`|u|`)."""
    neg = u_hi < 0.0
    a_hi = where(neg, u_hi, -u_hi)  # -|u|
    a_lo = where(neg, u_lo, -u_lo)
    e_hi, e_lo = expm1_dd(2.0 * a_hi, 2.0 * a_lo)
    d_hi, d_lo = dd_add_d(e_hi, e_lo, 2.0)
    t_hi, t_lo = dd_div(e_hi, e_lo, d_hi, d_lo)  # = -tanh|u|
    return where(neg, t_hi, -t_hi), where(neg, t_lo, -t_lo)


def sech2_dd(u_hi, u_lo):
    """:math:`\\operatorname{sech}^2(u) = 4E/(1+E)^2` with :math:`E = e^{-2|u|}`: the softcap's
    derivative, without the cancellation of :math:`1 - \\tanh^2` near :math:`|\\tanh| = 1`."""
    neg = u_hi < 0.0
    a_hi = where(neg, u_hi, -u_hi)
    a_lo = where(neg, u_lo, -u_lo)
    e_hi, e_lo, k = exp_dd(2.0 * a_hi, 2.0 * a_lo)
    k = where(k < -2044.0, -2044.0, k)  # (E is 0 there: below the subnormals)
    e_hi, e_lo = scale2(e_hi, k), scale2(e_lo, k)  # E, subnormal or 0 where it underflows
    d_hi, d_lo = dd_add_d(e_hi, e_lo, 1.0)
    q_hi, q_lo = dd_div(4.0 * e_hi, 4.0 * e_lo, d_hi, d_lo)
    return dd_div(q_hi, q_lo, d_hi, d_lo)
