r"""The contract on whole arrays, for any array library: the NumPy reference and plain torch.

Each op lays the data out as rows (class axis last), reduces each row to its statistics with
:func:`logmax._core.blocks.block_stats` and turns them into results with the finishers of
:mod:`logmax._core.rowstats`; nothing here is maths of its own. ``ops`` is an
:class:`~logmax._core.blocks.ArrayOps` (NumPy or torch, a precision profile) that also provides
the layout helpers ``rows``/``unrows``, ``work``, ``fill`` and ``to_output``.

Precision: double-double in float64 (or the plain profile in float32 for 16-bit results in
torch), then one rounding into the output dtype. Rows whose result cancels beyond what the
working precision carries (a logsumexp near 0) and float64 rows whose result is subnormal are
recomputed exactly or rescaled (:func:`_tiny_log1p`, :mod:`logmax._core.exact`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from logmax._core import blocks
from logmax._core.options import LossOptions, RowOptions

INF = float("inf")
NAN = float("nan")
TINY_S = 2.0**-900  # below this, s's terms are subnormal in float64: rescale (see _tiny_log1p)
RESCALE = 1000.0


# ---------------------------------------------------------------------------------------------
# Inputs.
def transform(ops: Any, x2: Any, softcap: float | None) -> tuple[Any, Any, Any]:
    """``u = softcap(x)`` as a double-double and the softcap's derivative, a double-double
    ``(hi, lo)`` (None without one).

    NaN stays NaN and, without a softcap, so does ``+inf`` (the row is bad); with one, see
    :func:`logmax._core.rowstats.softcap`.
    """
    alg = ops.alg
    x2 = ops.work(x2)
    if softcap is None:
        return alg.where(x2 == INF, NAN, x2), ops.zeros_like(x2), None
    u_hi, u_lo = alg.softcap(x2, softcap)
    return u_hi, u_lo, alg.softcap_slope(x2, softcap)


def row_stats(ops: Any, u_hi: Any, u_lo: Any, t: float, **kw: Any):
    """:func:`blocks.block_stats` of whole rows, with the log1p sum of tiny rows rescaled."""
    st, d_hi, d_lo = blocks.block_stats(ops, u_hi, u_lo, t, **kw)
    l_hi, l_lo = ops.alg.log1p_s(st.s_hi, st.s_lo)
    return st, d_hi, d_lo, l_hi, l_lo


def _tiny_log1p(ops: Any, st: blocks.Stats, d_hi: Any, d_lo: Any) -> tuple[Any, Any] | None:
    r""":math:`L \cdot 2^{1000}` for rows whose :math:`s` is below :data:`TINY_S`, else None.

    There every term of :math:`s` is subnormal in float64 and keeps only a few bits; summed at
    :math:`2^{1000}` times their size they keep all of them, and :math:`L = s` to far beyond the
    working precision (:math:`s^2/2 < 2^{-1800}`). Only results of the size of :math:`L` need
    it: the logsumexp of a row whose maximum is near 0 and the log-probability of the maximum.
    """
    if not ops.profile_dd:
        return None
    tiny = (st.s_hi < TINY_S) & (st.s_hi > 0.0)
    if not ops.any(tiny):
        return None
    alg = ops.alg
    e_hi, e_lo, k = alg.exp_dd(d_hi, d_lo)
    e_hi = alg.scale2(e_hi, k + RESCALE)
    e_lo = alg.scale2(e_lo, k + RESCALE)
    # the maximum's own term is not in s
    s_hi, s_lo = blocks.exact_sum(
        ops, [ops.put_rows(e_hi, st.k, 0.0), ops.put_rows(e_lo, st.k, 0.0)]
    )
    return alg.where(tiny, s_hi, NAN), alg.where(tiny, s_lo, 0.0)


def _descale(ops: Any, v_hi: Any, v_lo: Any) -> Any:
    return ops.alg.scale2(v_hi + v_lo, 0.0 * v_hi - RESCALE)


# ---------------------------------------------------------------------------------------------
# softmax, log_softmax, logsumexp.
def softmax(ops: Any, x: Any, axis: int, opts: RowOptions) -> Any:
    """:math:`e^{d_i}/(1+s)` along ``axis`` (see :func:`logmax._core.rowstats.softmax_entry`)."""
    x2, shape = ops.rows(x, axis)
    p, bad = _probabilities(ops, x2, opts.temperature)
    return ops.to_output(ops.unrows(ops.alg.where(bad, NAN, p), shape, axis), x)


def _probabilities(ops: Any, x2: Any, temperature: float) -> tuple[Any, Any]:
    """``(p, bad)``: the softmax of the rows of ``x2`` (working precision) and the rows whose
    result is NaN, as a column."""
    alg = ops.alg
    u_hi, u_lo, _ = transform(ops, x2, None)
    st, d_hi, d_lo = blocks.block_stats(ops, u_hi, u_lo, temperature)
    inv_hi, inv_lo = alg.inverse(st.s_hi, st.s_lo)
    return alg.softmax_entry(d_hi, d_lo, ops.col(inv_hi), ops.col(inv_lo)), ops.col(st.bad)


def log_softmax(ops: Any, x: Any, axis: int, opts: RowOptions) -> Any:
    """:math:`d_i - \\operatorname{log1p}(s)` along ``axis``."""
    alg = ops.alg
    x2, shape = ops.rows(x, axis)
    u_hi, u_lo, _ = transform(ops, x2, None)
    st, d_hi, d_lo, l_hi, l_lo = row_stats(ops, u_hi, u_lo, opts.temperature)
    y = alg.log_softmax_entry(d_hi, d_lo, ops.col(l_hi), ops.col(l_lo))
    tiny = _tiny_log1p(ops, st, d_hi, d_lo)
    if tiny is not None:  # the maximum's entry is -L
        small = -_descale(ops, *tiny)
        at_k = ops.take_rows(y, st.k)
        y = ops.put_rows_values(y, st.k, alg.where(small == small, small, at_k))
    y = alg.where(ops.col(st.bad), NAN, y)
    return ops.to_output(ops.unrows(y, shape, axis), x)


def lse_cancels_rows(ops: Any, st: blocks.Stats, l_hi: Any, v_hi: Any, t: float, bits: int):
    """The rows whose logsumexp ``v = m/T + L`` (``L = log1p(s)``, of size ``l_hi``) cancels
    beyond ``bits`` of the pass's precision (:func:`rowstats.lse_cancels`); a bad row never
    does (it is NaN)."""
    return ops.alg.lse_cancels(st.m_hi, t, l_hi, v_hi, bits) & ~st.bad


def _lse_stage(ops: Any, u_hi: Any, u_lo: Any, t: float, accurate: bool, need: int):
    """One pass of the logsumexp of rows ``u``: ``(lse_hi, lse_lo, cancels)``, where ``cancels``
    marks the rows whose value cancels beyond what this pass's precision carries for ``need``
    bits of result."""
    alg = ops.alg
    st, d_hi, d_lo = blocks.block_stats(ops, u_hi, u_lo, t, accurate=accurate)
    l_hi, l_lo = alg.log1p_s(st.s_hi, st.s_lo)
    v_hi, v_lo = alg.lse(st.m_hi, st.m_lo, l_hi, l_lo, st.bad, t)
    tiny = _tiny_log1p(ops, st, d_hi, d_lo)
    if tiny is not None:
        q_hi, q_lo = alg.dd_div_d(st.m_hi, st.m_lo, t)
        near0 = abs(q_hi) < 2.0**-500
        big_hi, big_lo = alg.dd_add(
            alg.where(near0, q_hi, 0.0) * 2.0**RESCALE,
            alg.where(near0, q_lo, 0.0) * 2.0**RESCALE,
            *tiny,
        )
        small = _descale(ops, big_hi, big_lo)
        use = near0 & (small == small)
        v_hi = alg.where(use, small, v_hi)
        v_lo = alg.where(use, 0.0, v_lo)
    bits = (ops.accurate_bits if accurate else ops.term_bits) - need
    return v_hi, v_lo, lse_cancels_rows(ops, st, l_hi, v_hi, t, bits)


def lse_rows(ops: Any, u_hi: Any, u_lo: Any, t: float, need: int) -> Any:
    """Each row's logsumexp (work dtype), with ``need`` bits right: the rows that cancel are
    computed again with accurate terms, and beyond that exactly (:mod:`logmax._core.exact`)."""
    v_hi, v_lo, cancels = _lse_stage(ops, u_hi, u_lo, t, False, need)
    return _refine_lse(ops, v_hi, v_lo, cancels, u_hi, u_lo, t, need)[0]


def _refine_lse(ops: Any, v_hi: Any, v_lo: Any, cancels: Any, u_hi: Any, u_lo: Any, t: float,
                need: int) -> tuple[Any, Any]:  # fmt: skip
    """The logsumexp ``v`` (a double-double) with its ``cancels`` rows computed again with
    accurate terms and, where those cancel too, exactly: ``(sum, lo)``, the work-dtype value
    and the low part left."""
    v = v_hi + v_lo
    lo = ops.alg.where(abs(v) < INF, v_lo - (v - v_hi), 0.0)
    if not ops.any(cancels):
        return v, lo
    idx = ops.nonzero(cancels)
    fine = ops.refined()
    r_hi, r_lo, again = _lse_stage(
        fine, fine.work(ops.select_rows(u_hi, idx)), fine.work(ops.select_rows(u_lo, idx)),
        t, True, need,
    )  # fmt: skip
    r = r_hi + r_lo
    r_lo = ops.alg.where(abs(r) < INF, r_lo - (r - r_hi), 0.0)
    if fine.any(again):
        r, r_lo = fine.exact_lse_rows(
            r, r_lo, again, ops.select_rows(u_hi, idx), ops.select_rows(u_lo, idx), t
        )
    return ops.assign_rows(v, idx, r), ops.assign_rows(lo, idx, r_lo)


# bits of each row's logsumexp that its z-loss needs beyond its output's: the term
# zeta w lse^2 doubles lse's relative error, and alpha p_j carries it
Z_LOSS_BITS = 4


def z_loss_lse(ops: Any, st: blocks.Stats, u_hi: Any, u_lo: Any, t: float, need: int):
    """The rows' logsumexp as a double-double, or None where ``m/T + L`` (which
    :func:`ce_finish` takes) carries enough bits for the z-loss in every row: a z-loss on a row
    whose logsumexp cancels (log-probabilities: lse near 0) squares that lse, and its relative
    error, so those rows are computed again (:func:`_refine_lse`)."""
    alg = ops.alg
    l_hi, l_lo = alg.log1p_s(st.s_hi, st.s_lo)
    v_hi, v_lo = alg.lse(st.m_hi, st.m_lo, l_hi, l_lo, st.bad, t)
    need = need + Z_LOSS_BITS
    cancels = lse_cancels_rows(ops, st, l_hi, v_hi, t, ops.term_bits - need)
    if not ops.any(cancels):
        return None
    return _refine_lse(ops, v_hi, v_lo, cancels, u_hi, u_lo, t, need)


def logsumexp(ops: Any, x: Any, axis: int, opts: RowOptions) -> Any:
    """:math:`m/T + \\operatorname{log1p}(s)` over ``axis`` (reduced away); ``+inf`` for a row
    holding ``+inf`` and no NaN (see :func:`posinf_rows`)."""
    x2, shape = ops.rows(x, axis)
    u_hi, u_lo, _ = transform(ops, x2, None)
    v = posinf_rows(ops, lse_rows(ops, u_hi, u_lo, opts.temperature, ops.need_bits(x)), x2)
    return ops.to_output(ops.reshape(v, ops.reduced_shape(shape, axis)), x)


def posinf_rows(ops: Any, lse: Any, x2: Any) -> Any:
    """The logsumexp of a row holding ``+inf`` and no NaN is ``+inf`` (its sum is infinite), as in
    SciPy and torch; softmax and log_softmax of such a row are NaN (``inf / inf``)."""
    alg = ops.alg
    if not ops.any(ops.isnan(lse)):
        return lse
    w = ops.work(x2)
    pos = ops.any_rows(w == INF) & ~ops.any_rows(ops.isnan(w))
    return alg.where(pos, INF, lse)


# ---------------------------------------------------------------------------------------------
# Losses: the rows that count, their weights, the reductions.
def counted_rows(ops: Any, target: Any, soft: bool, w_cls: Any, opts: LossOptions, like: Any):
    """``(counted, y, row_w)`` per row: whether it counts, its class (0 when ignored) and its
    weight :math:`w_y` (0 when ignored; 1 for soft targets)."""
    alg = ops.alg
    if soft:
        return ops.ones_rows(like, True), ops.zeros_rows_int(like), ops.ones_rows(like, 1.0)
    labels = ops.flat_labels(target)
    if -(2**63) <= opts.ignore_index < 2**63:
        counted = labels != opts.ignore_index
    else:  # no int64 label can equal it
        counted = labels == labels
    y = alg.where(counted, labels, 0)
    return counted, y, alg.where(counted, ops.gather(w_cls, y), 0.0)


def denominator(ops: Any, row_w: Any, soft: bool, opts: LossOptions) -> Any:
    """The mean's divisor: torch's :math:`\\sum_i w_{y_i}` over counted rows (soft targets: the
    row count), or the user's ``normalizer``."""
    device = getattr(row_w, "device", None)
    if opts.normalizer is not None:
        return ops.work_rows(opts.normalizer, 1, device)[0]
    if soft:
        return ops.work_rows(float(ops.shape2(ops.col(row_w))[0]), 1, device)[0]
    hi, lo = blocks.exact_sum(ops, [row_w[None, :]], levels=2)
    return hi[0] + lo[0]


def mean_weights(ops: Any, w_cls: Any, soft: bool, opts: LossOptions) -> Any:
    """Class weights scaled by a power of two below 1 for a hard-label mean (which does not
    change): huge weights then overflow neither the rows nor their sum."""
    if soft or opts.reduction != "mean" or opts.normalizer is not None:
        return w_cls
    alg = ops.alg
    top = ops.max_rows(abs(w_cls)[None, :])[0]  # (1,)
    e = ops.exponent(alg.where(top > 1.0, top, 1.0))
    return w_cls * alg.pow2(alg.where(top > 1.0, -e, 0.0))


def _total(ops: Any, rows: Any) -> Any:
    """The sum of the per-row losses, exact (then rounded once) when every row is finite."""
    alg = ops.alg
    finite = (rows == rows) & (abs(rows) < INF)
    hi, lo = blocks.exact_sum(ops, [alg.where(finite, rows, 0.0)[None, :]])
    plain = ops.sum_rows(rows[None, :])  # inf and NaN propagate through the plain sum
    return alg.where(ops.all_rows(finite[None, :]), hi + lo, plain)[0]


def reduce_rows(ops: Any, rows: Any, den: Any, opts: LossOptions) -> Any:
    """torch's reductions of the per-row losses (summed exactly); a mean over zero counted rows
    (or zero total weight) is 0, whatever the rows hold (an infinite or NaN row of zero weight
    does not count). A mean whose sum is beyond the work dtype's range (float32 work for 16-bit
    torch tensors) is summed at :math:`2^{-k}` of its size, :math:`2^k` above the row count (exact
    but for subnormal rows, which do not matter beside an overflow), and scaled back."""
    if opts.reduction == "none":
        return rows
    total = _total(ops, rows)
    if opts.reduction == "sum":
        return total
    alg = ops.alg
    safe = alg.where(den != 0, den, 1.0)
    scale = 2.0 ** -max(ops.shape2(rows[None, :])[1], 1).bit_length()
    small = (_total(ops, rows * scale) / safe) / scale
    mean = alg.where(abs(total) < INF, total / safe, small)
    return alg.where(den != 0, mean, 0.0 * abs(den))


def reduce_losses(ops: Any, rows: Any, den: Any, opts: LossOptions,
                  quarter: Callable[[Any], Any] | None = None) -> Any:  # fmt: skip
    """:func:`reduce_rows`, with the rows whose loss is beyond the range (``+inf`` rows, while the
    mean or sum need not be) summed at a quarter of their size: ``quarter(over)`` gives the
    losses of the rows ``over`` divided by 4 (``+inf`` where the loss is infinite: a masked
    target)."""
    loss = reduce_rows(ops, rows, den, opts)
    if opts.reduction == "none" or quarter is None:
        return loss
    over = rows == INF
    if not ops.any(over):
        return loss
    q = rows * 0.25  # exact, but for subnormal rows, which do not matter beside an overflow
    q[over] = quarter(over)
    return 4.0 * reduce_rows(ops, q, den, opts)


def row_scale_lo(ops: Any, grad_output: Any, row_w: Any, soft: bool, scale: Any,
                 opts: LossOptions, n: int) -> Any:  # fmt: skip
    r"""The low part of :func:`row_scale`'s ``scale`` (0 but for a mean): :math:`g/D` with the
    divisor :math:`D` the exact sum of the row weights (:func:`denominator` rounds it), so
    that the gradient's only roundings are its own: the rest
    :math:`(g - \lambda D_{hi} - \lambda D_{lo})/D`."""
    if opts.reduction != "mean":
        return 0.0 * scale
    alg = ops.alg
    if soft or opts.normalizer is not None:
        d_hi = denominator(ops, row_w, soft, opts) + 0.0 * scale
        d_lo = 0.0 * scale
    else:
        hi, lo = blocks.exact_sum(ops, [row_w[None, :]], levels=2)
        d_hi, d_lo = hi[0] + 0.0 * scale, lo[0] + 0.0 * scale
    g = ops.work_rows(grad_output, n, getattr(scale, "device", None))
    live = (scale != 0.0) & (abs(scale) < INF) & (d_hi != 0.0)
    lam = alg.where(live, scale, 0.0)
    p_hi, p_lo = alg.two_prod(lam, alg.where(live, d_hi, 0.0))
    rest = (((alg.where(live, g, 0.0) - p_hi) - p_lo) - lam * d_lo) / alg.where(live, d_hi, 1.0)
    return alg.where(live, rest, 0.0)


def row_scale(ops: Any, grad_output: Any, den: Any, counted: Any, opts: LossOptions, n: int):
    """d(loss)/d(row loss) per row for the upstream gradient ``grad_output`` (0 where a row does
    not count; 1/den for the mean, 0 when den is 0)."""
    alg = ops.alg
    g = ops.work_rows(grad_output, n, getattr(counted, "device", None))  # on counted's device
    if opts.reduction == "mean":
        g = alg.where(den != 0, g / alg.where(den != 0, den, 1.0), 0.0 * g)
    return alg.where(counted, g, 0.0)


# ---------------------------------------------------------------------------------------------
# Cross-entropy in phases: the same phases serve a whole row, vocabulary blocks and shards.
@dataclass
class LossRows:
    """What the loss knows of each row before seeing its logits (arrays of shape ``(rows,)``
    unless said): whether it counts, its class, its weight :math:`w_y`, the hard coefficient
    :math:`c_y = (1-\varepsilon) w_y` (0 for soft targets) and the dense coefficients
    :math:`a_c` (a class vector ``(C,)``, ``(rows, C)`` for soft targets, or None)."""

    counted: Any
    y: Any
    row_w: Any
    hard: Any
    coef: Any
    den: Any


def loss_rows(ops: Any, target2: Any, soft: bool, w_cls: Any, opts: LossOptions, like: Any,
              n_cls: int) -> LossRows:  # fmt: skip
    r"""The rows' coefficients for ``target2`` (hard labels ``(rows,)`` or soft targets
    ``(rows, C)``), class weights ``w_cls`` (already through :func:`mean_weights`) and the
    options: label smoothing :math:`a_c = \varepsilon w_c / C`, soft targets
    :math:`a_c = w_c ((1-\varepsilon) t_c + \varepsilon / C)`."""
    eps = opts.label_smoothing
    counted, y, row_w = counted_rows(ops, target2, soft, w_cls, opts, like)
    if soft:
        tw = ops.work(target2)
        if eps:
            tw = (1.0 - eps) * tw + eps / n_cls
        coef, hard = tw * w_cls, 0.0 * row_w
    else:
        hard = (1.0 - eps) * row_w
        coef = (eps / n_cls) * w_cls if eps else None
    return LossRows(counted, y, row_w, hard, coef, denominator(ops, row_w, soft, opts))


def quarter_ce_rows(ops: Any, x2: Any, target2: Any, soft: bool, w_cls: Any,
                    opts: LossOptions) -> Any:  # fmt: skip
    """A quarter of the cross-entropy of each row of ``x2`` (for :func:`reduce_losses`): the
    row's own statistics, and its shifts from those of ``u/4`` (:func:`ce_finish`)."""
    lr = loss_rows(ops, target2, soft, w_cls, opts, x2, ops.shape2(x2)[1])
    st, u_hi, u_lo, _ = ce_block(ops, x2, lr, opts)
    quarter, _, _ = blocks.block_stats(
        ops, 0.25 * u_hi, 0.25 * u_lo, opts.temperature, target=lr.y, coef=lr.coef
    )
    return ce_finish(ops, st, lr, opts, quarter).loss


def coef_block(lr: LossRows, col0: int, col1: int) -> Any:
    """The dense coefficients of columns ``col0:col1``."""
    if lr.coef is None:
        return None
    return lr.coef[..., col0:col1]


def ce_block(ops: Any, x2: Any, lr: LossRows, opts: LossOptions, col0: int = 0):
    """Statistics of a block of logits ``x2`` (columns ``col0 ..``): ``(stats, u_hi, u_lo,
    dcap)`` with ``u`` the softcapped block and ``dcap`` the softcap's derivative (or None)."""
    u_hi, u_lo, dcap = transform(ops, x2, opts.softcap)
    n = ops.shape2(x2)[1]
    st, _, _ = blocks.block_stats(
        ops, u_hi, u_lo, opts.temperature, col0=col0, target=lr.y,
        coef=coef_block(lr, col0, col0 + n),
    )  # fmt: skip
    return st, u_hi, u_lo, dcap


@dataclass
class Finished:
    """A row's loss and logsumexp (double-doubles) and the gradient's row factors."""

    loss: Any  # per row, work dtype (NaN on bad rows, 0 on rows that do not count)
    lse_hi: Any
    lse_lo: Any
    grad: tuple[Any, ...]  # (alpha_hi, alpha_lo, top_hi, top_lo, c_k, s_hi, s_lo, inv_hi, inv_lo)


def ce_finish(ops: Any, st: blocks.Stats, lr: LossRows, opts: LossOptions,
              quarter: blocks.Stats | None = None, lse: tuple[Any, Any] | None = None,
              ) -> Finished:  # fmt: skip
    """Loss, logsumexp and the gradient's row factors from a whole row's merged statistics.

    ``quarter``: the statistics of the same rows at a quarter of their size (``u/4``), whose
    shifts :math:`(u_c - m)/4T` do not overflow where :math:`(u_c - m)/T` does; the loss is then
    a quarter of the row's (:func:`quarter_ce_rows`). ``lse``: each row's logsumexp (a
    double-double) where the caller knows it better than ``m/T + L`` does (:func:`z_loss_lse`)."""
    alg = ops.alg
    t = opts.temperature
    zero = 0.0 * lr.row_w
    dense = lr.coef is not None
    at = st if quarter is None else quarter  # the shifts d_y and sum a_c d_c
    a_rest = st.a_rest if dense else zero
    a_rest_lo = blocks.a_rest_lo(st) if dense else zero
    a_k = st.a_k if dense else zero
    ad_hi = at.ad_hi if dense else zero
    ad_lo = at.ad_lo if dense else zero
    a_tot, a_tot_lo = alg.dd_add_d(a_rest, a_rest_lo, a_k)
    l_hi, l_lo = alg.log1p_s(st.s_hi, st.s_lo)
    lse_hi, lse_lo = alg.lse(st.m_hi, st.m_lo, l_hi, l_lo, st.bad, t) if lse is None else lse
    sh, sl = alg.finite_shift(at.m_hi, at.m_lo)
    dy_hi, dy_lo = alg.shift(at.uy_hi, at.uy_lo, sh, sl, t)
    h = 1.0 if quarter is None else 0.5  # exact scalings: L/4, and lse/2 in the z-loss's square
    loss_hi, loss_lo = alg.loss_row(
        lr.hard, dy_hi, dy_lo, st.has_y, a_tot, ad_hi, ad_lo, (h * h) * l_hi, (h * h) * l_lo,
        opts.z_loss, lr.row_w, h * lse_hi, h * lse_lo,
    )  # fmt: skip
    loss = alg.where(lr.counted, alg.where(st.bad, NAN, loss_hi + loss_lo), 0.0)
    alpha_hi, alpha_lo, top_hi, top_lo, c_k = alg.grad_coefficients(
        lr.hard,
        lr.y == st.k,
        a_tot,
        a_tot_lo,
        a_rest,
        a_rest_lo,
        a_k,
        opts.z_loss,
        lr.row_w,
        lse_hi,
        lse_lo,
    )
    inv_hi, inv_lo = alg.inverse(st.s_hi, st.s_lo)
    factors = (alpha_hi, alpha_lo, top_hi, top_lo, c_k, st.s_hi, st.s_lo, inv_hi, inv_lo)
    return Finished(loss, lse_hi, lse_lo, factors)


def ce_block_grad(ops: Any, u_hi: Any, u_lo: Any, dcap: Any, st: blocks.Stats, fin: Finished,
                  lr: LossRows, scale: Any, opts: LossOptions, col0: int = 0,
                  scale_lo: Any = None) -> Any:  # fmt: skip
    """The gradient of a block (columns ``col0 ..``) of the softcapped logits ``u``, from the
    row's merged statistics ``st`` and factors ``fin``; ``scale`` is each row's
    d(total)/d(row loss) (0 where the row does not count)."""
    alg = ops.alg
    col = ops.col
    t = opts.temperature
    n_rows, n = ops.shape2(u_hi)
    sh, sl = alg.finite_shift(st.m_hi, st.m_lo)
    d_hi, d_lo = alg.shift(u_hi, u_lo, col(sh), col(sl), t)
    c = ops.at_label(lr.hard, lr.y - col0, n, u_hi)
    cb = coef_block(lr, col0, col0 + n)
    if cb is not None:
        c = c + cb
    lo = 0.0 * scale if scale_lo is None else scale_lo
    slope = (1.0, 0.0) if dcap is None else dcap
    sigma_hi, sigma_lo = alg.grad_sigma(col(scale), col(lo), t, *slope)
    g = alg.grad_entry(
        d_hi, d_lo, c, ops.is_col(st.k - col0, n, u_hi), *(col(f) for f in fin.grad[:5]),
        *(col(f) for f in fin.grad[5:]), sigma_hi, sigma_lo, u_hi == -INF,
    )  # fmt: skip
    g = alg.where(col(lr.counted), g, 0.0)  # exactly 0, even where the softcap's is NaN
    return alg.where(col(lr.counted & st.bad), NAN, g)


def cross_entropy(
    ops: Any,
    x: Any,
    axis: int,
    target: Any,
    soft: bool,
    weight: Any,
    opts: LossOptions,
    grad_output: Any,
    want_lse: bool = True,
) -> tuple[Any, Any, Any]:
    r"""The loss (reduced as ``opts.reduction`` says, work dtype), each row's logsumexp (work
    dtype, batch shape) and the gradient for ``grad_output`` (None: no gradient).

    The loss of a row is :func:`logmax._core.rowstats.loss_row` with the coefficients of
    :func:`loss_rows`. ``grad_output`` is a scalar for ``'mean'``/``'sum'`` and has the batch
    shape for ``'none'``. ``want_lse``: the logsumexp is returned to the user (its cancelling rows
    are refined). Ignored rows give loss 0 and gradient 0; masked entries gradient 0.
    """
    alg = ops.alg
    x2, shape = ops.rows(x, axis)
    n_rows, n_cls = ops.shape2(x2)
    w_cls = mean_weights(ops, ops.class_weights(weight, n_cls, x2), soft, opts)
    target2 = ops.rows(target, axis)[0] if soft else target
    lr = loss_rows(ops, target2, soft, w_cls, opts, x2, n_cls)
    st, u_hi, u_lo, dcap = ce_block(ops, x2, lr, opts)
    better = None  # a z-loss squares lse: rows where it cancels get it computed again
    if opts.z_loss != 0.0 and ops.profile_dd:
        better = z_loss_lse(ops, st, u_hi, u_lo, opts.temperature, ops.need_bits(x))
    fin = ce_finish(ops, st, lr, opts, lse=better)
    rows = fin.loss
    if ops.profile_dd:  # a confident row's loss c_y L below the normal range
        sh, sl = alg.finite_shift(st.m_hi, st.m_lo)
        d_hi, d_lo = alg.shift(u_hi, u_lo, ops.col(sh), ops.col(sl), opts.temperature)
        tiny = _tiny_log1p(ops, st, d_hi, d_lo)
        if tiny is not None:
            small = lr.hard * _descale(ops, *tiny)
            if lr.coef is None and opts.z_loss == 0.0:
                use = (small == small) & (lr.y == st.k) & lr.counted & ~st.bad
                rows = alg.where(use, small, rows)
    labels = target2 if soft else ops.flat_labels(target)
    loss = reduce_losses(ops, rows, lr.den, opts, lambda over: quarter_ce_rows(
        ops, x2[over], labels[over], soft, w_cls, opts))  # fmt: skip
    t = opts.temperature
    lse_v = lse_rows(ops, u_hi, u_lo, t, ops.need_bits(x)) if want_lse else fin.lse_hi + fin.lse_lo
    grad = None
    if grad_output is not None:
        scale = row_scale(ops, grad_output, lr.den, lr.counted, opts, n_rows)
        scale_lo = row_scale_lo(ops, grad_output, lr.row_w, soft, scale, opts, n_rows)
        g = ce_block_grad(ops, u_hi, u_lo, dcap, st, fin, lr, scale, opts, scale_lo=scale_lo)
        grad = ops.to_output(ops.unrows(g, shape, axis), x)
    batch = ops.batch_shape(shape, axis)
    if opts.reduction == "none":
        loss = ops.reshape(loss, batch)
    return loss, ops.reshape(lse_v, batch), grad


def nll_loss(
    ops: Any,
    logp: Any,
    axis: int,
    target: Any,
    soft: bool,
    weight: Any,
    opts: LossOptions,
    grad_output: Any,
) -> tuple[Any, Any]:
    r"""The loss :math:`-w_y \log p_y` per row (soft: :math:`-\sum_c w_c t_c \log p_c`, with
    :math:`0 \cdot (-\infty) = 0`), reduced, and its gradient for ``grad_output`` (or None)."""
    alg = ops.alg
    lp2, shape = ops.rows(logp, axis)
    lp = ops.work(lp2)
    n_rows, n_cls = ops.shape2(lp)
    w_cls = mean_weights(ops, ops.class_weights(weight, n_cls, lp), soft, opts)
    counted, y, row_w = counted_rows(ops, target, soft, w_cls, opts, lp)
    if soft:
        t2, _ = ops.rows(target, axis)
        tw = ops.work(t2) * w_cls
        live = tw != 0.0
        # rows of tiny log-probabilities are scaled up (exactly) so that the products' errors
        # stay above the subnormals: the sum is exact, then rounded (twice, within the bound)
        fin = alg.where(live & (abs(lp) < INF), lp, 0.0)
        top = ops.max_rows(abs(fin))[0]
        e = 0.6 * ops.grid_exponent_limit
        up = alg.where(top < 2.0 ** (-0.4 * ops.grid_exponent_limit), 2.0**e, 1.0)
        p_hi, p_lo = alg.two_prod(tw, alg.where(live, lp * ops.col(up), 0.0))
        s_hi, s_lo = blocks.exact_sum(ops, [alg.where(live, p_hi, 0.0), alg.where(live, p_lo, 0.0)])
        lost = ops.any_rows(live & (lp == -INF))
        rows = alg.where(lost, INF, -(s_hi + s_lo) / up)
        rows = alg.where(ops.any_rows(live & ops.isnan(lp)), NAN, rows)
    else:
        picked = ops.take_rows(lp, y) if n_cls else 0.0 * row_w
        keep = counted & (row_w != 0.0)
        rows = alg.where(keep, -row_w * alg.where(keep, picked, 0.0), 0.0)
        rows = alg.where(keep & ops.isnan(picked), NAN, rows)
    den = denominator(ops, row_w, soft, opts)
    loss = reduce_rows(ops, rows, den, opts)
    if not soft and opts.reduction != "none":
        # a sum of tiny products (subnormal: each rounded to a few bits) is summed at 2^e times
        # their size and scaled back once, as the soft rows are
        top = ops.max_rows(abs(alg.where(keep, picked, 0.0))[None, :])[0]
        top_w = ops.max_rows(abs(alg.where(keep, row_w, 0.0))[None, :])[0]
        lim = ops.grid_exponent_limit
        e = 0.6 * lim  # the scaled products stay below 2^(0.2 lim): no overflow
        fits = (top * 2.0**e) * top_w < 2.0 ** (0.2 * lim)
        if ops.any((top > 0.0) & (top < 2.0 ** (-0.4 * lim)) & fits):
            up = alg.where(keep, -row_w * (alg.where(keep, picked, 0.0) * 2.0**e), 0.0)
            small = reduce_rows(ops, up, den, opts)
            loss = alg.scale2(small, 0.0 * small - e)
    grad = None
    if grad_output is not None:
        scale = row_scale(ops, grad_output, den, counted, opts, n_rows)
        g = -tw * ops.col(scale) if soft else ops.at_label(-row_w * scale, y, n_cls, lp)
        grad = ops.to_output(ops.unrows(g, shape, axis), logp)
    if opts.reduction == "none":
        loss = ops.reshape(loss, ops.batch_shape(shape, axis))
    return loss, grad


# ---------------------------------------------------------------------------------------------
# Vector-Jacobian products of the element-wise ops.
def softmax_vjp(ops: Any, y: Any, g: Any, axis: int, temperature: float) -> Any:
    r""":math:`y \odot (g - \sum_j g_j y_j) / T` (0 where :math:`y = 0`)."""
    y2, shape = ops.rows(y, axis)
    g2, _ = ops.rows(g, axis)
    yy, gg = ops.work(y2), ops.work(g2)
    dot = ops.col(ops.sum_rows(gg * yy))
    return ops.to_output(ops.unrows(yy * (gg - dot) / temperature, shape, axis), y, g)


def log_softmax_vjp(ops: Any, y: Any, g: Any, axis: int, temperature: float) -> Any:
    r""":math:`(g - e^{y} \sum_j g_j)/T`; exactly 0 where :math:`y = -\infty` (masked)."""
    alg = ops.alg
    y2, shape = ops.rows(y, axis)
    g2, _ = ops.rows(g, axis)
    yy, gg = ops.work(y2), ops.work(g2)
    masked = yy == -INF
    total = ops.col(ops.sum_rows(alg.where(masked, 0.0, gg)))
    dx = alg.where(masked, 0.0, gg - alg.exp(yy) * total)
    return ops.to_output(ops.unrows(dx / temperature, shape, axis), y, g)


def logsumexp_vjp(ops: Any, x: Any, g: Any, axis: int, opts: RowOptions) -> Any:
    r""":math:`g \cdot \operatorname{softmax}(x/T) / T`; 0 on fully masked rows."""
    x2, shape = ops.rows(x, axis)
    p, bad = _probabilities(ops, x2, opts.temperature)
    gg = ops.col(ops.work_rows(g, ops.shape2(x2)[0]))
    gx = ops.alg.where(bad, NAN, p * gg / opts.temperature)
    return ops.to_output(ops.unrows(gx, shape, axis), x, g)


# ---------------------------------------------------------------------------------------------
# Bounded memory: the ops above keep about twenty double-double temporaries of their input's
# size; on big inputs they run on blocks of rows, so that the extra memory is the output plus a
# workspace of about BLOCK_ELEMENTS entries.
BLOCK_ELEMENTS = 1 << 18


def _blocks(n_rows: int, n_cols: int):
    step = max(1, BLOCK_ELEMENTS // max(n_cols, 1))
    for r0 in range(0, n_rows, step):
        yield r0, min(r0 + step, n_rows)


def rows_in_blocks(ops: Any, op: Any, x: Any, axis: int, *args: Any, reduced: bool = False,
                   others: tuple[Any, ...] = ()) -> Any:  # fmt: skip
    """``op(ops, x, *others, axis, *args)`` of an element-wise op (or a reduction over ``axis``
    with ``reduced``), computed on blocks of rows. ``others`` are arrays of ``x``'s layout (the
    upstream gradient of a VJP: ``x``'s shape, or the reduced shape with ``reduced``)."""
    x2, shape = ops.rows(x, axis)
    n_rows, n_cols = ops.shape2(x2)
    if n_rows * n_cols <= BLOCK_ELEMENTS or n_rows <= 1:
        return op(ops, x, *others, axis, *args)
    parts = [ops.rows(o, axis)[0] if not reduced else ops.reshape(o, (n_rows,)) for o in others]
    out = None
    for r0, r1 in _blocks(n_rows, n_cols):
        y = op(ops, x2[r0:r1], *(p[r0:r1] for p in parts), 1, *args)
        if out is None:
            out = ops.empty_like_block(y, (n_rows,) if reduced and not others else
                                       (n_rows, n_cols))  # fmt: skip
        out[r0:r1] = y
    if reduced and not others:
        return ops.reshape(out, ops.reduced_shape(shape, axis))
    return ops.unrows(out, shape, axis)


def loss_in_blocks(ops: Any, op: Any, x: Any, axis: int, target: Any, soft: bool, weight: Any,
                   opts: LossOptions, grad_output: Any, *extra: Any) -> Any:  # fmt: skip
    """A loss op (:func:`cross_entropy` or :func:`nll_loss`) on blocks of rows: the rows'
    weights, the mean's denominator and each row's gradient scale are found on the whole batch
    first, each block is computed with ``reduction='none'``, and the rows are reduced at the
    end (:func:`reduce_rows`)."""
    x2, shape = ops.rows(x, axis)
    n_rows, n_cls = ops.shape2(x2)
    if n_rows * n_cls <= BLOCK_ELEMENTS or n_rows <= 1:
        return op(ops, x, axis, target, soft, weight, opts, grad_output, *extra)
    w = mean_weights(ops, ops.class_weights(weight, n_cls, x2), soft, opts)
    t2 = ops.rows(target, axis)[0] if soft else ops.flat_labels(target)
    counted, _, row_w = counted_rows(ops, t2, soft, w, opts, x2)
    den = denominator(ops, row_w, soft, opts)
    scale = None if grad_output is None else row_scale(ops, grad_output, den, counted, opts, n_rows)
    per_row = replace(opts, reduction="none", normalizer=None)
    rows = lse = grad = None
    for r0, r1 in _blocks(n_rows, n_cls):
        out = op(ops, x2[r0:r1], 1, t2[r0:r1], soft, w, per_row,
                 None if scale is None else scale[r0:r1], *extra)  # fmt: skip
        if rows is None:
            rows = ops.empty_like_block(out[0], (n_rows,))
            if len(out) == 3:
                lse = ops.empty_like_block(out[1], (n_rows,))
            if out[-1] is not None:
                grad = ops.empty_like_block(out[-1], (n_rows, n_cls))
        rows[r0:r1] = out[0]
        if lse is not None:
            lse[r0:r1] = out[1]
        if grad is not None:
            grad[r0:r1] = out[-1]
    quarter = None  # a row's cross-entropy may overflow where the mean does not
    if op is cross_entropy:
        quarter = lambda over: quarter_ce_rows(ops, x2[over], t2[over], soft, w, opts)  # noqa: E731
    loss = reduce_losses(ops, rows, den, opts, quarter)
    batch = ops.batch_shape(shape, axis)
    if opts.reduction == "none":
        loss = ops.reshape(loss, batch)
    g = None if grad is None else ops.unrows(grad, shape, axis)
    if lse is None:
        return loss, g
    return loss, ops.reshape(lse, batch), g
