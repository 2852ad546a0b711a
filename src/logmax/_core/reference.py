r"""The reference implementation of the contract: clear, exact, not built for speed.

Every function here receives validated arguments (see :mod:`logmax._core.checks`) and computes in
the wider precision of :func:`logmax._core.dtypes.compute_dtype`. Kernels must give the same
results; this module is their oracle.

The log1p forms
---------------
For a row :math:`x` with maximum :math:`m` at index :math:`k`, let
:math:`s = \sum_{i \ne k} e^{x_i - m}`. Then

.. math::
    \operatorname{logsumexp}(x) = m + \operatorname{log1p}(s), \qquad
    \log\operatorname{softmax}(x)_i = (x_i - m) - \operatorname{log1p}(s), \qquad
    \operatorname{softmax}(x)_i = e^{x_i - m} / (1 + s).

Leaving the maximum's own term out of :math:`s` keeps a tiny :math:`s` (a confident row) exact:
``log(1 + s)`` would round it away, ``log1p(s)`` keeps every digit.

Edge rules
----------
- ``-inf`` entries (and ``where=False`` entries) are masked: probability 0, log-probability
  ``-inf``, ignored by logsumexp, gradient 0.
- A fully masked row: softmax all 0, log_softmax all ``-inf``, logsumexp ``-inf``, gradient 0.
- A row holding NaN or ``+inf`` gives a NaN row (``nan_policy='raise'`` is checked before).
- An empty reduction axis: empty results, logsumexp ``-inf``.
"""

from __future__ import annotations

import decimal
import fractions
from dataclasses import dataclass

import numpy as np

from logmax._core.dtypes import compute_dtype, result_dtype, round_to


# ---------------------------------------------------------------------------------------------
# Layout: every reduction is done on a (rows, K) matrix with the reduced axes last.
def to_rows(x: np.ndarray, axes: tuple[int, ...]) -> tuple[np.ndarray, tuple[int, ...]]:
    """Move ``axes`` last and flatten: returns the (rows, K) matrix and the batch shape."""
    rest = tuple(a for a in range(x.ndim) if a not in axes)
    moved = np.transpose(x, rest + axes)
    batch_shape = tuple(x.shape[a] for a in rest)
    k = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
    return moved.reshape(int(np.prod(batch_shape, dtype=np.int64)), k), batch_shape


def from_rows(y: np.ndarray, shape: tuple[int, ...], axes: tuple[int, ...]) -> np.ndarray:
    """Inverse of :func:`to_rows` for a full-shape result."""
    rest = tuple(a for a in range(len(shape)) if a not in axes)
    order = rest + axes
    moved = y.reshape(tuple(shape[a] for a in order))
    return np.transpose(moved, np.argsort(order))


def prepare(
    x: np.ndarray,
    axes: tuple[int, ...],
    where: np.ndarray | None,
    temperature: float,
    softcap: float | None = None,
) -> tuple[np.ndarray, tuple[int, ...], np.ndarray | None]:
    """The rows in compute precision with softcap, temperature and mask applied.

    ``-inf`` means masked before and after the softcap (``c * tanh(-inf / c)`` would be ``-c``).

    Returns ``(z, batch_shape, dcap)``; ``dcap`` is the softcap's derivative, for the gradient.
    """
    rows, batch_shape = to_rows(x, axes)
    z = rows.astype(compute_dtype(result_dtype(x.dtype)))  # a copy: inputs stay untouched
    dcap = None
    if softcap is not None:
        u = z / softcap
        with np.errstate(over="ignore"):
            dcap = 1.0 / np.cosh(u) ** 2  # = 1 - tanh^2 without its cancellation near |tanh| = 1
        z = np.where(np.isneginf(z), -np.inf, softcap * np.tanh(u))  # masked stays masked
    if temperature != 1.0:
        z = z / temperature
    if where is not None:
        z = np.where(to_rows(where, axes)[0], z, -np.inf)
    return z, batch_shape, dcap


# ---------------------------------------------------------------------------------------------
@dataclass
class RowStats:
    """The pieces of the log1p forms for a (rows, K) matrix ``z``."""

    d: np.ndarray  # z - m, -inf where masked
    e: np.ndarray  # exp(d)
    s: np.ndarray  # sum of e without the argmax's own term
    m: np.ndarray  # row maximum, -inf on fully masked rows
    k: np.ndarray  # argmax index
    bad: np.ndarray  # row holds NaN or +inf

    @property
    def log1p_s(self) -> np.ndarray:
        return np.log1p(self.s)

    @property
    def lse(self) -> np.ndarray:
        return np.where(self.bad, np.nan, self.m + np.log1p(self.s))


def row_stats(z: np.ndarray) -> RowStats:
    n_rows, n_cols = z.shape
    bad = np.any(np.isnan(z) | (z == np.inf), axis=1)
    clean = np.where(bad[:, None], 0.0, z) if np.any(bad) else z
    if n_cols == 0:
        m = np.full(n_rows, -np.inf, dtype=z.dtype)
        k = np.zeros(n_rows, dtype=np.intp)
    else:
        k = np.argmax(clean, axis=1)
        m = clean[np.arange(n_rows), k]
    shift = np.where(np.isfinite(m), m, 0.0)  # a fully masked row stays -inf, not NaN
    d = clean - shift[:, None]
    e = np.exp(d)
    without_max = e.copy()
    if n_cols:
        without_max[np.arange(n_rows), k] = 0.0  # the max's own term is the 1 in log1p(s)
    s = without_max.sum(axis=1)
    return RowStats(d=d, e=e, s=s, m=m, k=k, bad=bad)


# ---------------------------------------------------------------------------------------------
def softmax(x, axes, where, temperature):
    """softmax_i = exp(x_i - m) / (1 + s) along ``axes``; result in the input's dtype."""
    z, _, _ = prepare(x, axes, where, temperature)
    st = row_stats(z)
    y = st.e / (1.0 + st.s)[:, None]
    y[st.bad] = np.nan
    return round_to(from_rows(y, x.shape, axes), result_dtype(x.dtype))


def log_softmax(x, axes, where, temperature):
    """log_softmax_i = (x_i - m) - log1p(s) along ``axes``; result in the input's dtype."""
    z, _, _ = prepare(x, axes, where, temperature)
    st = row_stats(z)
    y = st.d - st.log1p_s[:, None]
    y[st.bad] = np.nan
    return round_to(from_rows(y, x.shape, axes), result_dtype(x.dtype))


def logsumexp(x, axes, where, temperature):
    """logsumexp = m + log1p(s) along ``axes`` (reduced away); result in the input's dtype."""
    z, batch_shape, _ = prepare(x, axes, where, temperature)
    return round_to(row_stats(z).lse.reshape(batch_shape), result_dtype(x.dtype))


@np.errstate(invalid="ignore", divide="ignore")  # masked entries are set to 0 / -inf below
def logsumexp_weighted(x, axes, where, temperature, b):
    r"""log|sum b_i exp(x_i)| and its sign (SciPy's ``b`` and ``return_sign``).

    Entries with ``b == 0`` are masked. With :math:`d_i = x_i - m \le 0`, the sum is
    :math:`e^m P`, :math:`P = \sum_i b_i e^{d_i}`, and :math:`\log|{\rm sum}| = m + \log|P|`
    (``log1p(|P| - 1)`` when ``|P|`` is near 1). Each term near the maximum (:math:`d_i > -1`)
    is split exactly as :math:`b_i + b_i \operatorname{expm1}(d_i)`, the others kept as
    :math:`b_i e^{d_i}`:

    .. math:: \pm P - 1 = \Big(\pm\sum_{d_i > -1} b_i - 1\Big)
        \pm \Big(\sum_{d_i > -1} b_i \operatorname{expm1}(d_i) + \sum_{d_i \le -1} b_i e^{d_i}\Big)

    The first bracket sums the weights as given, so weights that cancel on nearly equal ``x``
    (the sum tiny beside its terms) and a confident row (``P - 1`` tiny) both keep their digits.

    Returns ``(lse, sign)`` in the compute dtype, with the batch shape.
    """
    b = np.broadcast_to(b, x.shape)
    keep = b != 0 if where is None else (where & (b != 0))
    z, batch_shape, _ = prepare(x, axes, keep, temperature)
    st = row_stats(z)
    live = ~np.isneginf(st.d)
    bw = np.where(live, to_rows(b, axes)[0], 0.0).astype(z.dtype)
    near = st.d > -1.0
    const = np.where(near, bw, 0.0).sum(axis=1)
    var = np.where(near, bw * np.expm1(st.d), bw * st.e).sum(axis=1)
    p = const + var
    sp = np.where(p < 0, -1.0, 1.0)
    q = (sp * const - 1.0) + sp * var  # |P| - 1, without rounding |P| first
    log_p = np.where(np.abs(q) < 0.5, np.log1p(q), np.log(np.abs(p)))
    sign = np.sign(p)
    lse = np.where(sign == 0, -np.inf, st.m + log_p)
    # Rows where the terms cancel (|P| far below sum |b_i e^d_i|) or where m and log|P| cancel
    # are recomputed exactly: rare, and only there is the wide precision not enough (long double
    # has 11 bits beyond float64, so a cancellation of 2^8 is the most it absorbs).
    size = np.abs(bw * st.e).sum(axis=1)
    cancels = (np.abs(p) < 2.0**-8 * size) | (
        np.abs(lse) < 2.0**-8 * np.maximum(np.abs(st.m), np.abs(log_p))
    )
    for r in np.flatnonzero(cancels & np.isfinite(st.m) & ~st.bad):
        lse[r], sign[r] = _exact_logsumexp_row(z[r], bw[r], z.dtype)
    lse = np.where(np.isneginf(st.m), -np.inf, lse)
    sign = np.where(np.isneginf(st.m), 0.0, sign)
    lse = np.where(st.bad, np.nan, lse)
    sign = np.where(st.bad, np.nan, sign)
    return lse.reshape(batch_shape), sign.reshape(batch_shape)


def _exact_logsumexp_row(z: np.ndarray, b: np.ndarray, dtype: np.dtype) -> tuple[float, float]:
    """log|sum b_i e^{z_i}| and its sign with ``decimal``, precision raised until the value
    rounded to ``dtype`` no longer changes. ``z`` and ``b`` are exact binary numbers."""
    # Equal exponents are merged first, their weights summed exactly: only such terms can cancel
    # exactly, and a Decimal sum would let them swallow smaller terms before cancelling.
    merged: dict[fractions.Fraction, fractions.Fraction] = {}
    for zi, bi in zip(z, b, strict=True):
        if bi != 0 and not np.isneginf(zi):
            key = _exact(zi)
            merged[key] = merged.get(key, fractions.Fraction(0)) + _exact(bi)
    terms = [(_to_decimal(k), _to_decimal(v)) for k, v in merged.items() if v != 0]
    if not terms:
        return -np.inf, 0.0
    zs, bs = [t[0] for t in terms], [t[1] for t in terms]
    m = max(zs)
    previous = None
    rounded = dtype.type(-np.inf)
    for prec in (60, 120, 240, 480, 960, 1920, 3840, 7680):
        ctx = decimal.Context(prec=prec, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)
        acc = decimal.Decimal(0)
        for bi, zi in zip(bs, zs, strict=True):
            acc = ctx.add(acc, ctx.multiply(bi, ctx.exp(ctx.subtract(zi, m))))
        if acc == 0:  # distinct exponents cannot cancel exactly: more digits are needed
            continue
        value = ctx.add(m, ctx.ln(acc.copy_abs()))
        rounded = dtype.type(str(value))
        if previous is not None and rounded == previous:
            break
        previous = rounded
    return rounded, (1.0 if acc > 0 else -1.0) if acc != 0 else 0.0


def _exact(v) -> fractions.Fraction:
    """A binary float (float64 or long double) as an exact fraction."""
    return fractions.Fraction(*np.longdouble(v).as_integer_ratio())


def _to_decimal(q: fractions.Fraction) -> decimal.Decimal:
    # 1100 digits hold any float64 or long double fraction here to far beyond the working precision
    with decimal.localcontext(decimal.Context(prec=1100, Emax=decimal.MAX_EMAX,
                                              Emin=decimal.MIN_EMIN)):  # fmt: skip
        return decimal.Decimal(q.numerator) / decimal.Decimal(q.denominator)


# ---------------------------------------------------------------------------------------------
@np.errstate(invalid="ignore")  # 0 * inf on ignored or masked entries is replaced by 0 below
def cross_entropy_rows(
    x: np.ndarray,
    axis: int,
    *,
    target: np.ndarray,
    soft: bool,
    weight: np.ndarray | None,
    ignore_index: int,
    label_smoothing: float,
    temperature: float,
    softcap: float | None,
    z_loss: float,
    where: np.ndarray | None,
    grad_scale: float | np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    r"""Per-row cross-entropy, logsumexp and (optionally) the gradient, in one sweep.

    With :math:`z = \operatorname{softcap}(x) / T`, :math:`\ell_c = \mathrm{lse}(z) - z_c`
    (:math:`= -\log p_c \ge 0`, computed as :math:`(m - z_c) + \operatorname{log1p}(s)`, a sum of
    non-negative terms), :math:`\varepsilon` the label smoothing and :math:`C` the class count:

    - hard label :math:`y` (row weight :math:`w_y`):
      :math:`(1-\varepsilon) w_y \ell_y + \frac{\varepsilon}{C}\sum_c w_c \ell_c
      + \zeta w_y \mathrm{lse}^2`
    - soft target :math:`t`: with :math:`t' = (1-\varepsilon)t + \varepsilon/C`,
      :math:`\sum_c w_c t'_c \ell_c + \zeta\,\mathrm{lse}^2` (:math:`0 \cdot \infty = 0`).

    Ignored rows give loss 0 and gradient 0. ``grad_scale`` (scalar or per row) multiplies the
    gradient; ``None`` skips it. Returns ``(row_loss, row_lse, grad)``: losses and lse in
    compute precision with the batch shape, the gradient in the input's dtype and shape.
    """
    axes = (axis,)
    z, batch_shape, dcap = prepare(x, axes, where, temperature, softcap)
    n_rows, n_cls = z.shape
    st = row_stats(z)
    l1 = st.log1p_s
    lse = st.lse
    ell = l1[:, None] - st.d  # -log p, +inf on masked entries
    w_cls = np.ones(n_cls, dtype=z.dtype) if weight is None else weight.astype(z.dtype)
    eps = label_smoothing
    rows = np.arange(n_rows)
    lse_sq = np.where(np.isfinite(lse), lse, 0.0)
    if soft:
        t = to_rows(target, axes)[0].astype(z.dtype)
        if eps:
            t = (1.0 - eps) * t + eps / n_cls
        tw = t * w_cls
        counted = np.ones(n_rows, dtype=bool)
        row_w = np.ones(n_rows, dtype=z.dtype)
        loss = np.where(tw == 0, 0.0, tw * ell).sum(axis=1)
    else:
        y_all = target.reshape(n_rows)
        counted = y_all != ignore_index
        y = np.where(counted, y_all, 0)
        row_w = np.where(counted, w_cls[y] if n_cls else 0.0, 0.0)
        loss = (1.0 - eps) * row_w * ell[rows, y] if n_cls else np.zeros(n_rows, z.dtype)
        if eps:
            loss = loss + (eps / n_cls) * (w_cls * ell).sum(axis=1)
    if z_loss:
        loss = loss + z_loss * row_w * np.where(np.isfinite(lse), lse * lse, np.inf)
    loss = np.where(counted, np.where(st.bad, np.nan, loss), 0.0)

    grad = None
    if grad_scale is not None:
        p = st.e / (1.0 + st.s)[:, None]
        if soft:
            g = tw.sum(axis=1)[:, None] * p - tw
        else:
            g = ((1.0 - eps) * row_w)[:, None] * p
            if n_cls:
                # p_y - 1 without cancellation: 1 - p_y = (s + 1 - e_y) / (1 + s), and = s / (1+s)
                # when y is the argmax (the confident case, where 1 - p_y may be 1e-30).
                e_y = st.e[rows, y]
                one_minus_py = np.where(y == st.k, st.s, (st.s - e_y) + 1.0) / (1.0 + st.s)
                g[rows, y] = -(1.0 - eps) * row_w * one_minus_py
            if eps:
                g = g + (eps / n_cls) * (w_cls.sum() * p - w_cls)
        if z_loss:
            g = g + (2.0 * z_loss * row_w * lse_sq)[:, None] * p
        scale = np.broadcast_to(np.asarray(grad_scale, dtype=z.dtype), batch_shape).reshape(-1)
        g = g * np.where(counted, scale, 0.0)[:, None]
        g = np.where(np.isneginf(st.d), 0.0, g)  # masked entries: gradient exactly 0
        if temperature != 1.0:
            g = g / temperature
        if dcap is not None:
            g = g * dcap
        g[~counted] = 0.0  # exactly 0, even where the row's softcap derivative is NaN
        g[counted & st.bad] = np.nan
        grad = round_to(from_rows(g, x.shape, axes), result_dtype(x.dtype))
    return loss.reshape(batch_shape), lse.reshape(batch_shape), grad


def nll_rows(
    logp: np.ndarray,
    axis: int,
    *,
    target: np.ndarray,
    soft: bool,
    weight: np.ndarray | None,
    ignore_index: int,
    grad_scale: float | np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray | None]:
    r"""Per-row negative log-likelihood :math:`-w_y \log p_y` (soft: :math:`-\sum_c w_c t_c
    \log p_c`, with :math:`0 \cdot (-\infty) = 0`) and optionally its gradient."""
    axes = (axis,)
    lp, batch_shape, _ = prepare(logp, axes, None, 1.0)
    n_rows, n_cls = lp.shape
    w_cls = np.ones(n_cls, dtype=lp.dtype) if weight is None else weight.astype(lp.dtype)
    rows = np.arange(n_rows)
    if soft:
        tw = to_rows(target, axes)[0].astype(lp.dtype) * w_cls
        with np.errstate(invalid="ignore"):
            loss = -np.where(tw == 0, 0.0, tw * lp).sum(axis=1)
        counted = np.ones(n_rows, dtype=bool)
        dense = -tw
    else:
        y_all = target.reshape(n_rows)
        counted = y_all != ignore_index
        y = np.where(counted, y_all, 0)
        row_w = np.where(counted, w_cls[y] if n_cls else 0.0, 0.0)
        picked = lp[rows, y] if n_cls else np.zeros(n_rows, lp.dtype)
        with np.errstate(invalid="ignore"):  # weight 0 on a -inf entry: replaced by 0
            loss = np.where(counted & (row_w != 0), -row_w * picked, 0.0)
        dense = None
    grad = None
    if grad_scale is not None:
        scale = np.broadcast_to(np.asarray(grad_scale, dtype=lp.dtype), batch_shape).reshape(-1)
        scale = np.where(counted, scale, 0.0)
        if dense is None:
            g = np.zeros_like(lp)
            if n_cls:
                g[rows, y] = -row_w * scale
        else:
            g = dense * scale[:, None]
        grad = round_to(from_rows(g, logp.shape, axes), result_dtype(logp.dtype))
    return loss.reshape(batch_shape), grad


def nonfinite_rows(x: np.ndarray, axes: tuple[int, ...], where: np.ndarray | None) -> np.ndarray:
    """Boolean per row (batch shape): the row holds NaN or +inf among its unmasked entries."""
    rows, batch_shape = to_rows(x, axes)
    bad = np.isnan(rows) | (rows == np.inf)
    if where is not None:
        bad &= to_rows(where, axes)[0]
    return np.any(bad, axis=1).reshape(batch_shape)
