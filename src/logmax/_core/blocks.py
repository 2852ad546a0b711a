r"""Row statistics of whole blocks of an array: the reductions around :mod:`logmax._core.rowstats`.

A block is a ``(rows, K)`` array of one row's columns ``col0 .. col0 + K``. :func:`block_stats`
reduces it to the statistics of :mod:`logmax._core.rowstats` (one value per row), :func:`merge`
combines two blocks' statistics (left block first), and :func:`exact_sum` adds a row's terms with
error-free extraction so that sums are good to about :math:`2^{-100}` relative whatever their
order. The functions take an *array namespace* ``xp`` (see :class:`ArrayOps`): NumPy's for the
reference backend, torch's for the plain-torch backend on any device; ``xp.alg`` holds the
algebra specialised to it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Protocol

INF = float("inf")


class ArrayOps(Protocol):
    """What :mod:`logmax._core.blocks` needs of an array library (NumPy, torch)."""

    alg: Any  # rowstats + ddarith specialised to this library
    grid_exponent_limit: float  # exact_sum's grids stay below 2^this (the work format's range)

    def max_rows(self, x: Any) -> tuple[Any, Any]: ...  # values and first argmax, per row
    def take_rows(self, x: Any, idx: Any) -> Any: ...  # x[r, idx[r]]
    def put_rows(self, x: Any, idx: Any, value: float) -> Any: ...  # a copy, x[r, idx[r]] = v
    def sum_rows(self, x: Any) -> Any: ...
    def any_rows(self, x: Any) -> Any: ...
    def exponent(self, x: Any) -> Any: ...  # e with x < 2^e (float), for x > 0
    def col(self, v: Any) -> Any: ...  # (rows,) -> (rows, 1)
    def zeros_like(self, x: Any) -> Any: ...
    def isnan(self, x: Any) -> Any: ...


@dataclass
class Stats:
    """Statistics of a block, one value per row (see :mod:`logmax._core.rowstats`)."""

    m_hi: Any
    m_lo: Any
    k: Any
    s_hi: Any
    s_lo: Any
    bad: Any
    uy_hi: Any = None
    uy_lo: Any = None
    has_y: Any = None
    a_rest: Any = None
    a_k: Any = None
    ad_hi: Any = None
    ad_lo: Any = None
    a_rest_lo: Any = None  # (after the fields that positional construction fills)


def exact_sum(xp: ArrayOps, parts: list[Any], levels: int = 3) -> tuple[Any, Any]:
    """Each row's sum of the entries of every array in ``parts`` (finite), as a double-double.

    Error-free extraction (Rump, Ogita and Oishi, "Accurate floating-point summation", SIAM J.
    Sci. Comput. 31, 2008): each term is split on the grid of ``ulp(sigma)``, where
    ``sigma >= 2 n max|term|``, so that the parts on the grid add up exactly in any order; the
    remainders go to the next, finer grid. Three levels leave an error below
    :math:`2^{-100}` of the largest term.
    """
    alg = xp.alg
    n = sum(int(p.shape[1]) for p in parts)
    nb = max(int(n).bit_length() + 1, 1)
    top = None
    for p in parts:
        t, _ = xp.max_rows(abs(p))
        top = t if top is None else alg.where(t > top, t, top)
    e = xp.exponent(alg.where(top > 0, top, 1.0))
    # near the overflow threshold the grid itself would overflow: sum 2^-k times the terms
    # (k = 0 elsewhere; no branch on the values, so no device synchronisation)
    limit = xp.grid_exponent_limit
    down = alg.where(e + nb > limit, e + nb - limit, 0.0)
    scale = xp.col(alg.pow2(-down))
    parts = [p * scale for p in parts]
    sigma = alg.pow2(e - down + nb)
    hi = lo = None
    for _ in range(levels):
        sig = xp.col(sigma)
        level = None
        rests = []
        for p in parts:
            q = (sig + p) - sig
            qs = xp.sum_rows(q)
            level = qs if level is None else level + qs
            rests.append(p - q)
        parts = rests
        if hi is None:
            hi, lo = level, xp.zeros_like(level)
        else:
            hi, lo = alg.dd_add_d(hi, lo, level)
        sigma = sigma * 2.0 ** (nb - 53)
    rest = None
    for p in parts:
        r = xp.sum_rows(p)
        rest = r if rest is None else rest + r
    hi, lo = alg.dd_add_d(hi, lo, rest)
    return alg.scale2(hi, down), alg.scale2(lo, down)


def block_stats(
    xp: ArrayOps,
    u_hi: Any,
    u_lo: Any,
    t: float,
    *,
    col0: int = 0,
    target: Any = None,
    coef: Any = None,
    accurate: bool = False,
) -> tuple[Stats, Any, Any]:
    """Statistics of the block ``u = u_hi + u_lo`` (``(rows, K)``, the softcapped logits).

    Args:
        t: the temperature.
        col0: the block's first column in the row (for ``k`` and the target).
        target: ``(rows,)`` target columns (global), or None when no hard label is needed.
        coef: the dense loss coefficients :math:`a_c \\ge 0`, ``(rows, K)`` or ``(K,)``, or None.
        accurate: the terms of :math:`s` to :math:`2^{-100}` instead of :math:`2^{-57}` (for
            rows whose logsumexp cancels).

    Returns:
        ``(stats, d_hi, d_lo)``: the statistics and the shifted values :math:`(u - m)/T` of the
        block (``-inf`` where masked), which the finishers turn into outputs.
    """
    alg = xp.alg
    bad = xp.any_rows(xp.isnan(u_hi) | (u_hi == INF))
    col_bad = xp.col(bad)
    u_hi = alg.where(col_bad, 0.0, u_hi)
    u_lo = alg.where(col_bad, 0.0, u_lo)
    m_hi, k = xp.max_rows(u_hi)
    m_lo = xp.take_rows(u_lo, k)
    sh, sl = alg.finite_shift(m_hi, m_lo)
    d_hi, d_lo = alg.shift(u_hi, u_lo, xp.col(sh), xp.col(sl), t)
    e_hi, e_lo = (alg.term_accurate if accurate else alg.term)(d_hi, d_lo)
    s_hi, s_lo = exact_sum(xp, [xp.put_rows(e_hi, k, 0.0), xp.put_rows(e_lo, k, 0.0)])
    st = Stats(m_hi, m_lo, k + col0, s_hi, s_lo, bad)
    n_cols = int(u_hi.shape[1])
    if target is not None:
        local = target - col0
        st.has_y = (local >= 0) & (local < n_cols)
        idx = alg.where(st.has_y, local, 0)
        st.uy_hi = xp.take_rows(u_hi, idx)
        st.uy_lo = xp.take_rows(u_lo, idx)
    if coef is not None:
        a = coef + xp.zeros_like(u_hi)  # broadcast a class vector over the rows
        st.a_k = xp.take_rows(a, k)
        st.a_rest, st.a_rest_lo = exact_sum(xp, [xp.put_rows(a, k, 0.0)], levels=2)
        p_hi, p_lo = alg.two_prod(a, alg.where(d_hi == -INF, 0.0, d_hi))
        p_lo = p_lo + a * d_lo
        live = a != 0.0
        over = abs(p_hi) == INF  # a d beyond the range: the sum is -inf (every term is <= 0)
        p_hi = alg.where(live & ~over, p_hi, 0.0)
        p_lo = alg.where(live & ~over, p_lo, 0.0)
        ad_hi, ad_lo = exact_sum(xp, [p_hi, p_lo])
        # a positive coefficient on a masked class, or a sum of such terms beyond the range
        lost = xp.any_rows(live & ((d_hi == -INF) | over)) | (ad_hi != ad_hi) | (ad_hi == -INF)
        st.ad_hi = alg.where(lost, -INF, ad_hi)
        st.ad_lo = alg.where(lost, 0.0, ad_lo)
    return st, d_hi, d_lo


def a_rest_lo(st: Stats) -> Any:
    """``a_rest``'s low part (0 where a producer keeps only its high part)."""
    return st.a_rest_lo if st.a_rest_lo is not None else 0.0 * st.a_rest


def merge(xp: ArrayOps, a: Stats, b: Stats, t: float) -> Stats:
    """The statistics of block ``a`` followed by block ``b`` (see :func:`rowstats.merge_max`)."""
    alg = xp.alg
    m_hi, m_lo, k, b_wins = alg.merge_max(a.m_hi, a.m_lo, a.k, b.m_hi, b.m_lo, b.k)
    fa_hi, fa_lo = alg.rescale(a.m_hi, a.m_lo, m_hi, m_lo, t)
    fb_hi, fb_lo = alg.rescale(b.m_hi, b.m_lo, m_hi, m_lo, t)
    s_hi, s_lo = alg.merge_sum(a.s_hi, a.s_lo, fa_hi, fa_lo, b.s_hi, b.s_lo, fb_hi, fb_lo, b_wins)
    out = Stats(m_hi, m_lo, k, s_hi, s_lo, a.bad | b.bad)
    if a.has_y is not None:
        out = replace(
            out,
            has_y=a.has_y | b.has_y,
            uy_hi=alg.where(b.has_y, b.uy_hi, a.uy_hi),
            uy_lo=alg.where(b.has_y, b.uy_lo, a.uy_lo),
        )
    if a.a_rest is not None:
        rest, rest_lo, top, ad_hi, ad_lo = alg.merge_dense(
            a.a_rest, a_rest_lo(a), a.a_k, a.ad_hi, a.ad_lo, a.m_hi, a.m_lo,
            b.a_rest, a_rest_lo(b), b.a_k, b.ad_hi, b.ad_lo, b.m_hi, b.m_lo, m_hi, m_lo, b_wins, t,
        )  # fmt: skip
        out = replace(out, a_rest=rest, a_rest_lo=rest_lo, a_k=top, ad_hi=ad_hi, ad_lo=ad_lo)
    return out
