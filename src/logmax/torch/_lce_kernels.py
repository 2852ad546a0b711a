r"""Row statistics and gradients of one block of logits, for linear cross-entropy.

A *block* is a ``(rows, K)`` slice of the logits ``x = h W^T + b`` (columns ``col0 .. col0 + K``),
in a workspace the block may overwrite. Each kernel turns a block into the statistics of
:mod:`logmax._core.rowstats` (:class:`logmax._core.blocks.Stats`, the ones every backend
merges and finishes) and, once the whole row's statistics are merged and finished
(:func:`logmax.kernels.array.ce_finish`), the block into its gradient. Nothing here is a rule of
its own: merging, the loss, the logsumexp and the gradient's row factors are the algebra's.

Two kernels:

- :class:`ExactKernel` (float64 logits): the block through :func:`logmax.kernels.array.ce_block`
  and :func:`~logmax.kernels.array.ce_block_grad`, double-double throughout (2 ULP).
- :class:`FastKernel` (float32 logits, also those of 16-bit inputs): the element-wise hot loop in
  plain torch, in a *hot* dtype -- float64 for float32 results, float32 for 16-bit ones -- and the
  rest in the algebra. The hot loop computes :math:`m`, :math:`k`, :math:`d = (u - m)/T` and
  :math:`s = \sum_{j \ne k} e^{d_j}` with one rounding per term; see :class:`FastKernel` for the
  bound.

The gradient of a block is :math:`g_j = (\alpha p_j - c_j)\sigma_j + b\,p_j\sigma'_j`
(:func:`logmax._core.rowstats.grad_coefficients`; :math:`b` is the upstream gradient of the row's
logsumexp, when it is returned and used). :func:`row_factors` computes, per row, the bulk factor
:math:`r = (\alpha\sigma + b/T)/(1+s)` and the two entries where the bulk formula would cancel
or does not apply -- the maximum's column :math:`k` and the target's :math:`y` -- with
:func:`logmax._core.rowstats.grad_entry` itself.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import torch

from logmax._core import blocks
from logmax.kernels import array

INF = float("inf")
NAN = float("nan")
ARGMAX_BLOCK = 512  # columns per step of first_argmax's two-level search


# ---------------------------------------------------------------------------------------------
# Rows of the loss and of the statistics.
def loss_rows_slice(lr: array.LossRows, start: int, stop: int) -> array.LossRows:
    """The rows ``start:stop`` of ``lr`` (class-vector coefficients are shared by every row)."""
    coef = lr.coef
    if coef is not None and coef.ndim == 2:
        coef = coef[start:stop]
    return array.LossRows(
        lr.counted[start:stop], lr.y[start:stop], lr.row_w[start:stop], lr.hard[start:stop],
        coef, lr.den,
    )  # fmt: skip


def loss_rows_take(lr: array.LossRows, idx: torch.Tensor) -> array.LossRows:
    """The rows ``idx`` of ``lr``."""
    coef = lr.coef
    if coef is not None and coef.ndim == 2:
        coef = coef.index_select(0, idx)
    pick = lambda v: v.index_select(0, idx)  # noqa: E731
    return array.LossRows(pick(lr.counted), pick(lr.y), pick(lr.row_w), pick(lr.hard), coef, lr.den)


def cat_stats(parts: list[blocks.Stats]) -> blocks.Stats:
    """The statistics of row groups one after the other (the same columns)."""
    if len(parts) == 1:
        return parts[0]
    out = {}
    for f in fields(blocks.Stats):
        values = [getattr(p, f.name) for p in parts]
        out[f.name] = None if values[0] is None else torch.cat(values)
    return blocks.Stats(**out)


def stats_rows(st: blocks.Stats, start: int, stop: int) -> blocks.Stats:
    """The rows ``start:stop`` of ``st``."""
    return blocks.Stats(**{
        f.name: None if getattr(st, f.name) is None else getattr(st, f.name)[start:stop]
        for f in fields(blocks.Stats)
    })  # fmt: skip


def first_argmax(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """The first column of each row of ``x`` (2-D, contiguous rows) holding its maximum ``m``.

    ``x.max(dim=1)`` is a scalar loop on the CPU, ten times slower than ``amax``: this finds the
    first block of :data:`ARGMAX_BLOCK` columns that holds the maximum (from the blocks' maxima)
    and searches only that block. Rows without a match (NaN) give 0.
    """
    n_rows, n = x.shape
    nb = n // ARGMAX_BLOCK
    mc = m[:, None]
    if nb == 0:
        return (x == mc).to(torch.uint8).argmax(dim=1)
    main = x[:, : nb * ARGMAX_BLOCK].reshape(n_rows, nb, ARGMAX_BLOCK)
    hit = main.amax(dim=2) == mc
    first = hit.to(torch.uint8).argmax(dim=1)
    block = main[torch.arange(n_rows, device=x.device), first]
    k = first * ARGMAX_BLOCK + (block == mc).to(torch.uint8).argmax(dim=1)
    if nb * ARGMAX_BLOCK == n:
        return k
    tail = nb * ARGMAX_BLOCK + (x[:, nb * ARGMAX_BLOCK :] == mc).to(torch.uint8).argmax(dim=1)
    return torch.where(hit.any(dim=1), k, tail)


def _pick_rows(v: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """``v[r, cols[r]]`` for a ``(rows, K)`` tensor, or ``v[cols]`` for a class vector."""
    if v.ndim == 1:
        return v[cols]
    return v.gather(1, cols[:, None])[:, 0]


def _put(x: torch.Tensor, local: torch.Tensor, inside: torch.Tensor, value: torch.Tensor) -> None:
    """``x[r, local[r]] = value[r]`` where ``inside[r]`` (in place)."""
    idx = torch.where(inside, local, torch.zeros_like(local))[:, None]
    current = x.gather(1, idx)[:, 0]
    x.scatter_(1, idx, torch.where(inside, value.to(x.dtype), current)[:, None])


# ---------------------------------------------------------------------------------------------
# The gradient's row factors.
@dataclass
class RowFactors:
    """Per row (arrays of shape ``(rows,)``, the ops' work dtype): see the module docstring.

    ``g_k`` and ``g_y`` are the gradient at the maximum's and the target's column before the
    softcap's derivative; ``y_apart`` says where the target's entry is separate (a counted row
    whose target is not its maximum).
    """

    scale: Any  # d(total)/d(row loss): 0 on rows that do not count
    sigma: Any  # scale / T
    bt: Any  # the logsumexp's upstream gradient / T (0 without one)
    r: Any  # bulk factor: g_j = (r e^{d_j} - sigma a_j) sech^2_j
    g_k: Any
    g_y: Any
    y_apart: Any
    k: Any  # the maximum's column (global)
    y: Any  # the target's column (global)


def row_factors(ops: Any, st: blocks.Stats, fin: array.Finished, lr: array.LossRows,
                scale: Any, lse_grad: Any, temperature: float) -> RowFactors:  # fmt: skip
    """The gradient's row factors from a whole row's statistics ``st`` and finish ``fin``.

    ``scale`` is d(total)/d(row loss) (0 on rows that do not count), ``lse_grad`` the upstream
    gradient of each row's logsumexp or None. Rows holding NaN or ``+inf`` whose gradient is
    asked for get NaN factors.
    """
    alg = ops.alg
    t = temperature
    alpha_hi, alpha_lo, top_hi, top_lo, c_k, s_hi, s_lo, inv_hi, inv_lo = fin.grad
    sigma = scale / t
    bt = 0.0 * sigma if lse_grad is None else lse_grad / t
    r = (alpha_hi * sigma + bt) * inv_hi
    sh, sl = alg.finite_shift(st.m_hi, st.m_lo)

    def entry(d_hi, d_lo, c, is_k):
        g = alg.grad_entry(d_hi, d_lo, c, is_k, alpha_hi, alpha_lo, top_hi, top_lo, c_k, s_hi,
                           s_lo, inv_hi, inv_lo, sigma)  # fmt: skip
        return g + bt * alg.softmax_entry(d_hi, d_lo, inv_hi, inv_lo)

    dk_hi, dk_lo = alg.shift(st.m_hi, st.m_lo, sh, sl, t)  # 0, or -inf on a fully masked row
    always = torch.ones_like(lr.counted)
    g_k = entry(dk_hi, dk_lo, c_k, always)
    dy_hi, dy_lo = alg.shift(st.uy_hi, st.uy_lo, sh, sl, t)
    c_y = lr.hard
    if lr.coef is not None:
        c_y = c_y + _pick_rows(lr.coef, lr.y)
    g_y = entry(dy_hi, dy_lo, c_y, ~always)
    poison = st.bad & (lr.counted | (bt != 0.0))
    r, g_k, g_y = (torch.where(poison, NAN, v) for v in (r, g_k, g_y))
    y_apart = lr.counted & (lr.y != st.k)
    return RowFactors(scale, sigma, bt, r, g_k, g_y, y_apart, st.k, lr.y)


def factors_rows(f: RowFactors, start: int, stop: int) -> RowFactors:
    return RowFactors(**{k.name: getattr(f, k.name)[start:stop] for k in fields(RowFactors)})


# ---------------------------------------------------------------------------------------------
# The kernels.
class ExactKernel:
    """float64 logits, through the double-double phases of :mod:`logmax.kernels.array`."""

    fold = False
    bytes_per_logit = 400  # the double-double temporaries of one block

    def __init__(self, ops: Any, opts: Any) -> None:
        self.ops, self.opts = ops, opts

    def stats(self, x: torch.Tensor, col0: int, lr: array.LossRows) -> blocks.Stats:
        return array.ce_block(self.ops, x, lr, self.opts, col0)[0]

    def grad(self, x: torch.Tensor, col0: int, st: blocks.Stats, fin: array.Finished,
             lr: array.LossRows, f: RowFactors) -> None:  # fmt: skip
        """The block's gradient, in place of its logits ``x``."""
        ops, opts = self.ops, self.opts
        alg, col = ops.alg, ops.col
        u_hi, u_lo, dcap = array.transform(ops, x, opts.softcap)
        g = array.ce_block_grad(ops, u_hi, u_lo, dcap, st, fin, lr, f.scale, opts, col0)
        if bool((f.bt != 0.0).any()):  # the logsumexp's gradient b p_j / T (times sech^2)
            sh, sl = alg.finite_shift(st.m_hi, st.m_lo)
            d_hi, d_lo = alg.shift(u_hi, u_lo, col(sh), col(sl), opts.temperature)
            _, _, _, _, _, _, _, inv_hi, inv_lo = fin.grad
            p = alg.softmax_entry(d_hi, d_lo, col(inv_hi), col(inv_lo))
            lse_part = p * col(f.bt) if dcap is None else p * col(f.bt) * dcap
            g = g + torch.where(col(st.bad), NAN, lse_part)
        x.copy_(g)


class FastKernel:
    r"""float32 logits: the element-wise work in plain torch operations in the ``hot`` dtype.

    Bound (float32 results, hot float64): the maximum :math:`m` and the target's logit are exact;
    each :math:`d_j = (u_j - m)/T` is within :math:`2^{-52}|d_j|` (the subtraction of two floats
    of 24 bits is exact in float64, the division and a softcap's ``tanh`` round once), so each
    term :math:`e^{d_j}` is within :math:`(1 + |d_j|) 2^{-52}` relative, and the sum of
    :math:`K` non-negative terms within :math:`(\log_2 K + 1) 2^{-53}` more. Terms with
    :math:`|d_j| > 745` are 0 in float64 and below :math:`2^{-1000}` of the maximum's: so
    :math:`s` is good to about :math:`2^{-40}` relative, :math:`L = \operatorname{log1p}(s)` to
    :math:`2^{-40} L`, and every loss term (:func:`logmax._core.rowstats.loss_row`, a sum of
    non-negative terms, each at least its share of :math:`L`) to :math:`2^{-40}` relative: far
    within the half ULP of float32 that correct rounding leaves. 16-bit results use a float32
    hot dtype: :math:`2^{-20}` against their half ULP of :math:`2^{-9}` (bfloat16) or
    :math:`2^{-12}` (float16).

    ``fold``: without a softcap or dense coefficients (label smoothing, soft targets) the gradient
    is :math:`g_j = r\,e^{d_j}` except at :math:`k` and :math:`y`: the stats pass leaves
    :math:`e^{d_j}` in the block (0 at :math:`k` and :math:`y`) and the row factor :math:`r` is
    applied to the operands of the matrix products instead of the block (one pass fewer).
    """

    def __init__(self, ops: Any, opts: Any, hot: torch.dtype, dense: bool) -> None:
        self.ops, self.opts, self.hot = ops, opts, hot
        self.fold = opts.softcap is None and not dense
        # the hot temporaries (two with a softcap) and a mask
        self.bytes_per_logit = hot.itemsize * (1 if opts.softcap is None else 2) + 1
        self._temps: dict[str, torch.Tensor] = {}

    def _temp(self, name: str, like: torch.Tensor) -> torch.Tensor:
        n = like.numel()
        buf = self._temps.get(name)
        if buf is None or buf.numel() < n or buf.device != like.device:
            buf = torch.empty(n, dtype=self.hot, device=like.device)
            self._temps[name] = buf
        return buf[:n].view(like.shape)

    def _transform(self, x: torch.Tensor):
        """``u`` (hot temporary) and the softcap's derivative (another one, or None) of ``x``;
        with a softcap ``+inf`` becomes ``cap`` and ``-inf`` stays masked (as
        :func:`logmax.kernels.array.transform`)."""
        cap = self.opts.softcap
        u = self._temp("u", x)
        if cap is None:
            return u.copy_(x), None
        q = self._temp("q", x)
        torch.div(x, cap, out=q)
        torch.tanh(q, out=u).mul_(cap)
        u.masked_fill_(x == -INF, -INF)
        dcap = torch.cosh(q, out=q).square_().reciprocal_()  # sech^2: no 1 - tanh^2 cancellation
        return u, dcap

    def stats(self, x: torch.Tensor, col0: int, lr: array.LossRows) -> blocks.Stats:
        """Statistics of the block ``x``; in ``fold`` mode ``x`` is left holding
        :math:`e^{d_j}` (0 at :math:`k` and at the target)."""
        opts, wd = self.opts, self.ops.work_dtype
        n_rows, n = x.shape
        if opts.softcap is None:
            m = x.amax(dim=1) if n else x.new_full((n_rows,), -INF)
            bad = torch.isnan(m) | (m == INF)
        else:
            bad = torch.isnan(x).any(dim=1)
        if bool(bad.any()):  # the algebra's rule: a bad row's statistics are those of zeros
            x.masked_fill_(bad[:, None], 0.0)
            if opts.softcap is None:
                m = torch.where(bad, 0.0, m)
        local = lr.y - col0
        has_y = (local >= 0) & (local < n)
        ly = torch.where(has_y, local, torch.zeros_like(local))
        if n == 0:
            zero = torch.zeros(n_rows, dtype=wd, device=x.device)
            return blocks.Stats(zero - INF, zero, ly + col0, zero, zero, bad, zero, zero, has_y,
                                *self._dense_empty(lr, zero))  # fmt: skip
        u, _ = self._transform(x)
        if opts.softcap is not None:
            m = u.amax(dim=1)
        k = first_argmax(x, m) if opts.softcap is None else first_argmax(u, m)
        uy = u.gather(1, ly[:, None])[:, 0]
        shift = torch.where(m == -INF, 0.0, m).to(self.hot)
        d = u.sub_(shift[:, None])
        if opts.temperature != 1.0:
            d.div_(opts.temperature)
        dense = self._dense(d, lr, col0, n, k)
        e = d.exp_()
        e.scatter_(1, k[:, None], 0.0)  # the maximum's own term is the 1 of log1p(s)
        s = e.sum(dim=1)
        if self.fold:  # the target's entry is added apart (see RowFactors.y_apart)
            _put(e, ly, has_y & lr.counted & (ly != k), torch.zeros_like(s))
            x.copy_(e)
        zero = torch.zeros_like(s, dtype=wd)
        return blocks.Stats(m.to(wd), zero, k + col0, s.to(wd), zero, bad, uy.to(wd), zero, has_y,
                            *dense)  # fmt: skip

    def _dense_empty(self, lr, zero):
        if lr.coef is None:
            return (None, None, None, None)
        return (zero, zero, zero, zero)

    def _dense(self, d: torch.Tensor, lr: array.LossRows, col0: int, n: int, k: torch.Tensor):
        r"""``a_rest``, ``a_k`` and :math:`\sum_c a_c d_c` (``-inf`` where a positive coefficient
        meets a masked entry) of the block's dense coefficients, or Nones."""
        if lr.coef is None:
            return (None, None, None, None)
        wd = self.ops.work_dtype
        a = array.coef_block(lr, col0, col0 + n).to(self.hot)
        a_k = _pick_rows(a, k)
        total = a.sum(dim=-1)
        a_rest = total - a_k
        masked = d == -INF
        dm = d.masked_fill(masked, 0.0)
        ad = dm @ a if a.ndim == 1 else (dm * a).sum(dim=1)
        lost = (masked & (a > 0.0)).any(dim=1)
        ad = torch.where(lost, -INF, ad)
        zero = torch.zeros_like(ad, dtype=wd)
        return (a_rest.to(wd), a_k.to(wd), ad.to(wd), zero)

    def grad(self, x: torch.Tensor, col0: int, st: blocks.Stats, fin: array.Finished,
             lr: array.LossRows, f: RowFactors) -> None:  # fmt: skip
        """The block's gradient, in place of its logits ``x`` (``st``: the whole row's)."""
        opts = self.opts
        n = x.shape[1]
        if n == 0:
            return
        if bool(st.bad.any()):
            x.masked_fill_(st.bad[:, None], 0.0)
        u, dcap = self._transform(x)
        shift = torch.where(st.m_hi == -INF, 0.0, st.m_hi).to(self.hot)
        d = u.sub_(shift[:, None])
        if opts.temperature != 1.0:
            d.div_(opts.temperature)
        g = d.exp_().mul_(f.r.to(self.hot)[:, None])
        if lr.coef is not None:
            a = array.coef_block(lr, col0, col0 + n).to(self.hot)
            sig = f.sigma.to(self.hot)
            if a.ndim == 1:
                g.addr_(sig, a, alpha=-1.0)
            else:
                g.addcmul_(a, sig[:, None], value=-1.0)
        lk, ly = f.k - col0, f.y - col0
        k_in = (lk >= 0) & (lk < n)
        y_in = f.y_apart & (ly >= 0) & (ly < n)
        g_k, g_y = f.g_k, f.g_y
        if dcap is not None:
            g.mul_(dcap)
            g_k = g_k * _pick_rows(dcap, torch.where(k_in, lk, torch.zeros_like(lk)))
            g_y = g_y * _pick_rows(dcap, torch.where(y_in, ly, torch.zeros_like(ly)))
        _put(g, lk, k_in, g_k)
        _put(g, ly, y_in, g_y)
        x.copy_(g)


def fold_corrections(f: RowFactors) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For ``fold`` mode: the columns and values to add to the gradient ``r e^{d}`` (zero at
    ``k`` and ``y``): ``(cols, values, rows)`` with the target entries only where apart."""
    n = f.k.shape[0]
    rows = torch.arange(n, device=f.k.device)
    g_y = torch.where(f.y_apart, f.g_y, 0.0)
    return torch.cat([f.k, f.y]), torch.cat([f.g_k, g_y]), torch.cat([rows, rows])


def merge(ops: Any, a: blocks.Stats | None, b: blocks.Stats, temperature: float) -> blocks.Stats:
    """:func:`logmax._core.blocks.merge`, with nothing seen yet (``a`` None) allowed."""
    return b if a is None else blocks.merge(ops, a, b, temperature)


__all__ = [
    "ExactKernel", "FastKernel", "RowFactors", "cat_stats", "factors_rows", "first_argmax",
    "fold_corrections", "loss_rows_slice", "loss_rows_take", "merge", "row_factors", "stats_rows",
]  # fmt: skip
