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
    """``u = softcap(x)`` as a double-double and the softcap's derivative (None without one).

    NaN stays NaN and, without a softcap, so does ``+inf`` (the row is bad); the softcap takes
    ``+inf`` to ``c`` (its limit) and keeps ``-inf`` at ``-inf`` (masked).
    """
    alg = ops.alg
    x2 = ops.work(x2)
    if softcap is None:
        return alg.where(x2 == INF, NAN, x2), ops.zeros_like(x2), None
    bad = ops.isnan(x2)
    q_hi, q_lo = alg.dd_div_d(x2, 0.0 * x2, softcap)
    q_lo = alg.where(bad | (abs(x2) == INF), 0.0, q_lo)
    t_hi, t_lo = alg.tanh_dd(q_hi, q_lo)
    u_hi, u_lo = alg.dd_mul_d(t_hi, t_lo, softcap)
    masked = x2 == -INF
    u_hi = alg.where(bad, NAN, alg.where(masked, -INF, u_hi))
    u_lo = alg.where(bad | masked, 0.0, u_lo)
    big = abs(q_hi) == INF
    c_hi, c_lo = alg.sech2_dd(alg.where(bad | masked | big, 0.0, q_hi), q_lo)
    return u_hi, u_lo, alg.where(big, 0.0, c_hi + c_lo)


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
    alg = ops.alg
    x2, shape = ops.rows(x, axis)
    u_hi, u_lo, _ = transform(ops, x2, None)
    st, d_hi, d_lo = blocks.block_stats(ops, u_hi, u_lo, opts.temperature)
    inv_hi, inv_lo = alg.inverse(st.s_hi, st.s_lo)
    y = alg.softmax_entry(d_hi, d_lo, ops.col(inv_hi), ops.col(inv_lo))
    y = alg.where(ops.col(st.bad), NAN, y)
    return ops.to_output(ops.unrows(y, shape, axis), x)


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
    cancels = alg.lse_cancels(st.m_hi, t, l_hi, v_hi, bits) & ~st.bad
    return v_hi, v_lo, cancels


def lse_rows(ops: Any, u_hi: Any, u_lo: Any, t: float, need: int) -> Any:
    """Each row's logsumexp (work dtype), with ``need`` bits right: the rows that cancel are
    computed again with accurate terms, and beyond that exactly (:mod:`logmax._core.exact`)."""
    v_hi, v_lo, cancels = _lse_stage(ops, u_hi, u_lo, t, False, need)
    v = v_hi + v_lo
    if not ops.any(cancels):
        return v
    idx = ops.nonzero(cancels)
    fine = ops.refined()
    r_hi, r_lo, again = _lse_stage(
        fine, fine.work(ops.select_rows(u_hi, idx)), fine.work(ops.select_rows(u_lo, idx)),
        t, True, need,
    )  # fmt: skip
    r = r_hi + r_lo
    if fine.any(again):
        r = fine.exact_lse_rows(r, again, ops.select_rows(u_hi, idx), ops.select_rows(u_lo, idx), t)
    return ops.assign_rows(v, idx, r)


def logsumexp(ops: Any, x: Any, axis: int, opts: RowOptions) -> Any:
    """:math:`m/T + \\operatorname{log1p}(s)` over ``axis`` (reduced away)."""
    x2, shape = ops.rows(x, axis)
    u_hi, u_lo, _ = transform(ops, x2, None)
    v = lse_rows(ops, u_hi, u_lo, opts.temperature, ops.need_bits(x))
    return ops.to_output(ops.reshape(v, ops.reduced_shape(shape, axis)), x)


# ---------------------------------------------------------------------------------------------
# Losses: the rows that count, their weights, the reductions.
def counted_rows(ops: Any, target: Any, soft: bool, w_cls: Any, opts: LossOptions, like: Any):
    """``(counted, y, row_w)`` per row: whether it counts, its class (0 when ignored) and its
    weight :math:`w_y` (0 when ignored; 1 for soft targets)."""
    alg = ops.alg
    if soft:
        return ops.ones_rows(like, True), ops.zeros_rows_int(like), ops.ones_rows(like, 1.0)
    labels = ops.flat_labels(target)
    counted = labels != opts.ignore_index
    y = alg.where(counted, labels, 0)
    return counted, y, alg.where(counted, ops.gather(w_cls, y), 0.0)


def denominator(ops: Any, row_w: Any, soft: bool, opts: LossOptions) -> Any:
    """The mean's divisor: torch's :math:`\\sum_i w_{y_i}` over counted rows (soft targets: the
    row count), or the user's ``normalizer``."""
    if opts.normalizer is not None:
        return ops.work_rows(opts.normalizer, 1)[0]
    if soft:
        return ops.work_rows(float(ops.shape2(ops.col(row_w))[0]), 1)[0]
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


def reduce_rows(ops: Any, rows: Any, den: Any, opts: LossOptions) -> Any:
    """torch's reductions of the per-row losses (summed exactly); a mean over zero counted rows
    (or zero total weight) is 0."""
    if opts.reduction == "none":
        return rows
    alg = ops.alg
    finite = (rows == rows) & (abs(rows) < INF)
    hi, lo = blocks.exact_sum(ops, [alg.where(finite, rows, 0.0)[None, :]])
    plain = ops.sum_rows(rows[None, :])  # inf and NaN propagate through the plain sum
    total = alg.where(ops.all_rows(finite[None, :]), hi + lo, plain)[0]
    if opts.reduction == "sum":
        return total
    return alg.where(den != 0, total / alg.where(den != 0, den, 1.0), 0.0 * total)


def row_scale(ops: Any, grad_output: Any, den: Any, counted: Any, opts: LossOptions, n: int):
    """d(loss)/d(row loss) per row for the upstream gradient ``grad_output`` (0 where a row does
    not count; 1/den for the mean, 0 when den is 0)."""
    alg = ops.alg
    g = ops.work_rows(grad_output, n)
    if opts.reduction == "mean":
        g = alg.where(den != 0, g / alg.where(den != 0, den, 1.0), 0.0 * g)
    return alg.where(counted, g, 0.0)


# ---------------------------------------------------------------------------------------------
# Cross-entropy.
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

    The loss of a row (:func:`logmax._core.rowstats.loss_row`) with :math:`c_y = (1-\varepsilon)
    w_y` for a hard label and the dense coefficients :math:`a_c = \varepsilon w_c / C` (label
    smoothing) or :math:`a_c = w_c t'_c`, :math:`t' = (1 - \varepsilon) t + \varepsilon/C` (soft
    targets). ``grad_output`` is a scalar for ``'mean'``/``'sum'`` and has the batch shape for
    ``'none'``. ``want_lse``: the logsumexp is returned to the user (its cancelling rows are
    refined). Ignored rows give loss 0 and gradient 0; masked entries gradient 0.
    """
    alg = ops.alg
    x2, shape = ops.rows(x, axis)
    n_rows, n_cls = ops.shape2(x2)
    eps, t = opts.label_smoothing, opts.temperature
    w_cls = mean_weights(ops, ops.class_weights(weight, n_cls, x2), soft, opts)
    counted, y, row_w = counted_rows(ops, target, soft, w_cls, opts, x2)
    if soft:
        t2, _ = ops.rows(target, axis)
        tw = ops.work(t2)
        if eps:
            tw = (1.0 - eps) * tw + eps / n_cls
        coef = tw * w_cls
        hard = 0.0 * row_w
    else:
        hard = (1.0 - eps) * row_w
        coef = (eps / n_cls) * w_cls if eps else None
    u_hi, u_lo, dcap = transform(ops, x2, opts.softcap)
    st, d_hi, d_lo, l_hi, l_lo = row_stats(ops, u_hi, u_lo, t, target=y, coef=coef)
    zero = 0.0 * row_w
    a_rest = zero if coef is None else st.a_rest
    a_k = zero if coef is None else st.a_k
    ad_hi = zero if coef is None else st.ad_hi
    ad_lo = zero if coef is None else st.ad_lo
    a_tot = a_rest + a_k
    lse_hi, lse_lo = alg.lse(st.m_hi, st.m_lo, l_hi, l_lo, st.bad, t)
    sh, sl = alg.finite_shift(st.m_hi, st.m_lo)
    dy_hi, dy_lo = alg.shift(st.uy_hi, st.uy_lo, sh, sl, t)
    loss_hi, loss_lo = alg.loss_row(
        hard, dy_hi, dy_lo, st.has_y, a_tot, ad_hi, ad_lo, l_hi, l_lo,
        opts.z_loss, row_w, lse_hi, lse_lo,
    )  # fmt: skip
    tiny = _tiny_log1p(ops, st, d_hi, d_lo)
    if tiny is not None:  # a confident row's loss c_y L below the normal range
        small = hard * _descale(ops, *tiny)
        use = (small == small) & (y == st.k) & (a_tot == 0.0) & (opts.z_loss * row_w == 0.0)
        loss_hi = alg.where(use, small, loss_hi)
        loss_lo = alg.where(use, 0.0, loss_lo)
    rows = alg.where(counted, alg.where(st.bad, NAN, loss_hi + loss_lo), 0.0)
    den = denominator(ops, row_w, soft, opts)
    loss = reduce_rows(ops, rows, den, opts)
    lse_v = lse_rows(ops, u_hi, u_lo, t, ops.need_bits(x)) if want_lse else lse_hi + lse_lo
    grad = None
    if grad_output is not None:
        alpha_hi, alpha_lo, top_hi, top_lo, c_k = alg.grad_coefficients(
            hard, y == st.k, a_tot, a_rest, a_k, opts.z_loss, row_w, lse_hi, lse_lo
        )
        inv_hi, inv_lo = alg.inverse(st.s_hi, st.s_lo)
        c = ops.at_label(hard, y, n_cls, x2)
        if coef is not None:
            c = c + coef
        scale = row_scale(ops, grad_output, den, counted, opts, n_rows) / t
        col = ops.col
        sigma = col(scale) if dcap is None else col(scale) * dcap
        g = alg.grad_entry(
            d_hi, d_lo, c, ops.is_col(st.k, n_cls, x2), col(alpha_hi), col(alpha_lo),
            col(top_hi), col(top_lo), col(c_k), col(st.s_hi), col(st.s_lo),
            col(inv_hi), col(inv_lo), sigma,
        )  # fmt: skip
        g = alg.where(col(counted), g, 0.0)  # exactly 0, even where the softcap's is NaN
        g = alg.where(col(counted & st.bad), NAN, g)
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
        p_hi, p_lo = alg.two_prod(tw, alg.where(live, lp, 0.0))
        s_hi, s_lo = blocks.exact_sum(ops, [alg.where(live, p_hi, 0.0), alg.where(live, p_lo, 0.0)])
        lost = ops.any_rows(live & (lp == -INF))
        rows = alg.where(lost, INF, -(s_hi + s_lo))
        rows = alg.where(ops.any_rows(live & ops.isnan(lp)), NAN, rows)
    else:
        picked = ops.take_rows(lp, y) if n_cls else 0.0 * row_w
        keep = counted & (row_w != 0.0)
        rows = alg.where(keep, -row_w * alg.where(keep, picked, 0.0), 0.0)
        rows = alg.where(keep & ops.isnan(picked), NAN, rows)
    den = denominator(ops, row_w, soft, opts)
    loss = reduce_rows(ops, rows, den, opts)
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
    alg = ops.alg
    x2, shape = ops.rows(x, axis)
    u_hi, u_lo, _ = transform(ops, x2, None)
    st, d_hi, d_lo = blocks.block_stats(ops, u_hi, u_lo, opts.temperature)
    inv_hi, inv_lo = alg.inverse(st.s_hi, st.s_lo)
    p = alg.softmax_entry(d_hi, d_lo, ops.col(inv_hi), ops.col(inv_lo))
    gg = ops.col(ops.work_rows(g, ops.shape2(x2)[0]))
    gx = alg.where(ops.col(st.bad), NAN, p * gg / opts.temperature)
    return ops.to_output(ops.unrows(gx, shape, axis), x, g)
