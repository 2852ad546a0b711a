r"""Row statistics and gradients of one block of logits, for linear cross-entropy.

A *block* is the logits ``x = h W^T + b`` of a chunk of rows and the classes ``col0 .. col0 + K``,
held *transposed* (``xT`` of shape ``(K, rows)``: the layout in which the product ``W_b h_c^T``
runs fastest) in a workspace the block may overwrite. Each kernel turns a block into the
statistics of :mod:`logmax._core.rowstats` (:class:`logmax._core.blocks.Stats`, the ones
every backend merges and finishes) and, once the whole row's statistics are merged and finished
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

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from typing import Any

import torch

from logmax._core import blocks
from logmax.kernels import array

INF = float("inf")
NAN = float("nan")
MAX_THREADS = 4  # element-wise work on the CPU: at most this many threads (and torch's count)


class _Pool:
    """Runs a function over slabs on several Python threads, each running torch on one thread
    (torch's operations release the GIL). Small element-wise operations split by torch's own
    threads spend more in synchronisation than they gain, catastrophically on a busy machine;
    whole slabs per thread do not. Results come back in the slabs' order, so that sums over
    them do not depend on the scheduling. Recreated after a ``fork`` (its threads stay behind).
    """

    def __init__(self) -> None:
        self.pid: int | None = None
        self.pool: ThreadPoolExecutor | None = None
        self.size = 0

    def map(self, fn, items: list, threads: int) -> list:
        """``[fn(x) for x in items]`` on up to ``threads`` threads (this one included)."""
        n = min(threads, len(items))
        if n <= 1:
            return [fn(x) for x in items]
        if self.pid != os.getpid() or self.size < n - 1:
            self.pool = ThreadPoolExecutor(n - 1, initializer=torch.set_num_threads, initargs=(1,))
            self.pid, self.size = os.getpid(), n - 1

        def share(w: int) -> list:
            return [fn(items[j]) for j in range(w, len(items), n)]

        futures = [self.pool.submit(share, w) for w in range(1, n)]
        parts = [share(0)] + [f.result() for f in futures]
        return [parts[j % n][j // n] for j in range(len(items))]


POOL = _Pool()


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


def _pick_rows(v: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """``v[r, cols[r]]`` for a ``(rows, K)`` tensor, or ``v[cols]`` for a class vector."""
    if v.ndim == 1:
        return v[cols]
    return v.gather(1, cols[:, None])[:, 0]


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

    def entry(d_hi, d_lo, c, is_k, masked):
        g = alg.grad_entry(d_hi, d_lo, c, is_k, alpha_hi, alpha_lo, top_hi, top_lo, c_k, s_hi,
                           s_lo, inv_hi, inv_lo, sigma, 0.0 * sigma, masked)  # fmt: skip
        return g + bt * alg.softmax_entry(d_hi, d_lo, inv_hi, inv_lo)

    dk_hi, dk_lo = alg.shift(st.m_hi, st.m_lo, sh, sl, t)  # 0, or -inf on a fully masked row
    always = torch.ones_like(lr.counted)
    g_k = entry(dk_hi, dk_lo, c_k, always, st.m_hi == -INF)
    dy_hi, dy_lo = alg.shift(st.uy_hi, st.uy_lo, sh, sl, t)
    c_y = lr.hard
    if lr.coef is not None:
        c_y = c_y + _pick_rows(lr.coef, lr.y)
    g_y = entry(dy_hi, dy_lo, c_y, ~always, st.uy_hi == -INF)
    poison = st.bad & (lr.counted | (bt != 0.0))
    r, g_k, g_y = (torch.where(poison, NAN, v) for v in (r, g_k, g_y))
    y_apart = lr.counted & (lr.y != st.k)
    return RowFactors(scale, sigma, bt, r, g_k, g_y, y_apart, st.k, lr.y)


def factors_rows(f: RowFactors, start: int, stop: int) -> RowFactors:
    return RowFactors(**{k.name: getattr(f, k.name)[start:stop] for k in fields(RowFactors)})


# ---------------------------------------------------------------------------------------------
# The kernels. Both take a block *transposed*: ``xT`` of shape ``(K, rows)`` (class-major, the
# layout in which the product ``W_b h_c^T`` runs fastest), and overwrite it.
def _groups(n: int, size: int):
    for g0 in range(0, n, size):
        yield g0, min(g0 + size, n)


class ExactKernel:
    """float64 logits, through the double-double phases of :mod:`logmax.kernels.array`, on row
    groups whose temporaries fit in :data:`GROUP_BYTES`."""

    fold = False
    bytes_per_logit = 400  # the double-double temporaries of one block

    def __init__(self, ops: Any, opts: Any, group_bytes: int) -> None:
        self.ops, self.opts, self.group_bytes = ops, opts, group_bytes

    def _rows(self, xT: torch.Tensor):
        size = max(1, self.group_bytes // (max(xT.shape[0], 1) * self.bytes_per_logit))
        return _groups(xT.shape[1], size)

    def stats(self, xT: torch.Tensor, col0: int, lr: array.LossRows) -> blocks.Stats:
        return cat_stats([
            array.ce_block(self.ops, xT[:, g0:g1].t(), loss_rows_slice(lr, g0, g1), self.opts,
                           col0)[0]
            for g0, g1 in self._rows(xT)
        ])  # fmt: skip

    def grad(self, xT: torch.Tensor, col0: int, st: blocks.Stats, fin: array.Finished,
             lr: array.LossRows, f: RowFactors) -> None:  # fmt: skip
        """The block's gradient, in place of its logits."""
        for g0, g1 in self._rows(xT):
            x = xT[:, g0:g1].t()
            g = self._grad(x, col0, stats_rows(st, g0, g1), finished_rows(fin, g0, g1),
                           loss_rows_slice(lr, g0, g1), factors_rows(f, g0, g1))  # fmt: skip
            xT[:, g0:g1].copy_(g.t())

    def _grad(self, x, col0, st, fin, lr, f):
        ops, opts = self.ops, self.opts
        alg, col = ops.alg, ops.col
        u_hi, u_lo, dcap = array.transform(ops, x, opts.softcap)
        g = array.ce_block_grad(ops, u_hi, u_lo, dcap, st, fin, lr, f.scale, opts, col0)
        if bool((f.bt != 0.0).any()):  # the logsumexp's gradient b p_j / T (times sech^2)
            sh, sl = alg.finite_shift(st.m_hi, st.m_lo)
            d_hi, d_lo = alg.shift(u_hi, u_lo, col(sh), col(sl), opts.temperature)
            inv_hi, inv_lo = fin.grad[7], fin.grad[8]
            p = alg.softmax_entry(d_hi, d_lo, col(inv_hi), col(inv_lo))
            lse_part = p * col(f.bt) if dcap is None else p * col(f.bt) * (dcap[0] + dcap[1])
            g = g + torch.where(col(st.bad), NAN, lse_part)
        return g


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

    The block is processed in *slabs* of classes (all its rows at once) whose hot temporary fits
    in ``group_bytes``: a first pass takes each slab's maxima, a second the terms. With a softcap
    :math:`m = \mathrm{cap}\tanh(\max x/\mathrm{cap})` (the softcap is monotone).

    ``fold``: without a softcap or dense coefficients (label smoothing, soft targets) the gradient
    is :math:`g_j = r\,e^{d_j}` except at :math:`k` and :math:`y`: the stats pass leaves
    :math:`e^{d_j}` in the block, :func:`fold_entries` writes :math:`g/r` at :math:`k` and
    :math:`y`, and the row factor :math:`r` is applied to the operands of the matrix products
    instead of the block (one pass fewer).
    """

    def __init__(self, ops: Any, opts: Any, hot: torch.dtype, dense: bool, group_bytes: int,
                 device: torch.device) -> None:  # fmt: skip
        self.ops, self.opts, self.hot, self.group_bytes = ops, opts, hot, group_bytes
        self.fold = opts.softcap is None and not dense
        # threads for the slabs: torch's count (read here, outside the one-thread sections)
        self.threads = min(MAX_THREADS, torch.get_num_threads()) if device.type == "cpu" else 1
        # the hot temporaries (two with a softcap) and a mask
        self.bytes_per_logit = hot.itemsize * (1 if opts.softcap is None else 2) + 1
        self._temps: dict[str, torch.Tensor] = {}

    def _slabs(self, xT: torch.Tensor):
        size = max(1, self.group_bytes // (max(xT.shape[1], 1) * self.bytes_per_logit))
        return list(_groups(xT.shape[0], size))

    def _temp(self, name: str, like: torch.Tensor) -> torch.Tensor:
        """A reusable hot temporary of ``like``'s shape (one set per thread)."""
        key = (name, threading.get_ident())
        n = like.numel()
        buf = self._temps.get(key)
        if buf is None or buf.numel() < n or buf.device != like.device:
            buf = torch.empty(n, dtype=self.hot, device=like.device)
            self._temps[key] = buf
        return buf[:n].view(like.shape)

    def _transform(self, x: torch.Tensor, into: torch.Tensor | None = None):
        """``u`` (hot) and the softcap's derivative (hot, or None) of ``x``; with a softcap
        ``+inf`` becomes ``cap`` and ``-inf`` stays masked (as
        :func:`logmax.kernels.array.transform`)."""
        cap = self.opts.softcap
        u = self._temp("u", x) if into is None else into
        if cap is None:
            return u.copy_(x), None
        q = self._temp("q", x) if into is None else torch.empty_like(u)
        torch.div(x, cap, out=q)
        torch.tanh(q, out=u).mul_(cap)
        u.masked_fill_(x == -INF, -INF)
        dcap = torch.cosh(q, out=q).square_().reciprocal_()  # sech^2: no 1 - tanh^2 cancellation
        return u, dcap

    def _maxima(self, xT: torch.Tensor, slabs):
        """Per row: the raw maximum, the first slab holding it and the bad rows (zeroed: the
        algebra's rule is that a bad row's statistics are those of zeros)."""
        table = torch.stack(POOL.map(lambda ab: xT[ab[0] : ab[1]].amax(dim=0), slabs, self.threads))
        mx = table.amax(dim=0)
        bad = torch.isnan(mx) if self.opts.softcap is not None else torch.isnan(mx) | (mx == INF)
        if bool(bad.any()):
            xT.masked_fill_(bad[None, :], 0.0)
            table.masked_fill_(bad[None, :], 0.0)
            mx = torch.where(bad, 0.0, mx)
        first = (table == mx[None, :]).to(torch.uint8).argmax(dim=0)
        return mx, first, bad

    def stats(self, xT: torch.Tensor, col0: int, lr: array.LossRows) -> blocks.Stats:
        """Statistics of the block; in ``fold`` mode the block is left holding
        :math:`e^{d_j}` (for :func:`fold_entries`)."""
        opts, wd = self.opts, self.ops.work_dtype
        n, n_rows = xT.shape
        dev = xT.device
        local = lr.y - col0
        has_y = (local >= 0) & (local < n)
        ly = torch.where(has_y, local, torch.zeros_like(local))
        zero = torch.zeros(n_rows, dtype=wd, device=dev)
        if n == 0:
            return blocks.Stats(zero - INF, zero, ly + col0, zero, zero, zero != 0, zero, zero,
                                has_y, *self._dense_empty(lr, zero))  # fmt: skip
        slabs = self._slabs(xT)
        mx, first, bad = self._maxima(xT, slabs)
        rows = torch.arange(n_rows, device=dev)
        m = self._transform(mx[None, :])[0][0].clone()
        uy = self._transform(xT[ly, rows][None, :])[0][0].clone()
        shift = torch.where(m == -INF, 0.0, m)
        k = torch.zeros(n_rows, dtype=torch.long, device=dev)

        def slab(i: int):
            a, b = slabs[i]
            x = xT[a:b]
            here = (first == i).nonzero()[:, 0]
            if here.numel():  # the first column holding the maximum (while x is in the cache)
                hit = x[:, here] == mx[here][None, :]
                k[here] = a + hit.to(torch.uint8).argmax(dim=0)
            d = self._transform(x)[0].sub_(shift[None, :])
            if opts.temperature != 1.0:
                d.div_(opts.temperature)
            dense = None if lr.coef is None else self._dense_part(d, lr, col0 + a, col0 + b)
            e = d.exp_()
            e[k[here] - a, here] = 0.0  # the maximum's own term is the 1 of log1p(s)
            part = e.sum(dim=0)
            if self.fold:  # (k and y are overwritten by fold_entries)
                x.copy_(e)
            return part, dense

        parts = POOL.map(slab, list(range(len(slabs))), self.threads)
        s = parts[0][0]
        for p, _ in parts[1:]:  # in the slabs' order: the same sum whatever the threads
            s = s + p
        st = blocks.Stats(m.to(wd), zero, k + col0, s.to(wd), zero, bad, uy.to(wd), zero, has_y)
        if lr.coef is not None:
            self._dense_finish(st, [d for _, d in parts], lr, col0, n, k, zero)
        return st

    def _dense_empty(self, lr, zero):
        return (None, None, None, None) if lr.coef is None else (zero, zero, zero, zero)

    def _coef_slab(self, lr: array.LossRows, c0: int, c1: int) -> torch.Tensor:
        """The dense coefficients of columns ``c0:c1``, class-major: ``(K,)`` or ``(K, rows)``."""
        a = array.coef_block(lr, c0, c1).to(self.hot)
        return a if a.ndim == 1 else a.t()

    def _dense_part(self, d: torch.Tensor, lr, c0: int, c1: int):
        r"""A slab's :math:`\sum_c a_c d_c` and where a positive coefficient meets a masked
        entry."""
        a = self._coef_slab(lr, c0, c1)
        masked = d == -INF
        dm = d.masked_fill(masked, 0.0)
        if a.ndim == 1:
            return a @ dm, (masked & (a[:, None] > 0.0)).any(dim=0)
        return (dm * a).sum(dim=0), (masked & (a > 0.0)).any(dim=0)

    def _dense_finish(self, st, parts, lr, col0: int, n: int, k: torch.Tensor, zero) -> None:
        wd = self.ops.work_dtype
        ad, lost = parts[0]
        for a_p, l_p in parts[1:]:
            ad, lost = ad + a_p, lost | l_p
        a = array.coef_block(lr, col0, col0 + n).to(self.hot)
        a_k = _pick_rows(a, k)
        st.a_k = a_k.to(wd)
        st.a_rest = (a.sum(dim=-1) - a_k).to(wd)
        st.a_rest_lo = zero
        st.ad_hi = torch.where(lost, -INF, ad).to(wd)
        st.ad_lo = zero

    def grad(self, xT: torch.Tensor, col0: int, st: blocks.Stats, fin: array.Finished,
             lr: array.LossRows, f: RowFactors) -> None:  # fmt: skip
        """The block's gradient, in place of its logits (``st``: the whole row's statistics)."""
        opts, hot = self.opts, self.hot
        n, n_rows = xT.shape
        if n == 0:
            return
        if bool(st.bad.any()):
            xT.masked_fill_(st.bad[None, :], 0.0)
        shift = torch.where(st.m_hi == -INF, 0.0, st.m_hi).to(hot)
        r = f.r.to(hot)
        sig = f.sigma.to(hot)
        lk, ly = f.k - col0, f.y - col0
        y_apart = f.y_apart

        def slab(ab) -> None:
            a, b = ab
            x = xT[a:b]
            d, dcap = self._transform(x)
            d.sub_(shift[None, :])
            if opts.temperature != 1.0:
                d.div_(opts.temperature)
            g = d.exp_().mul_(r[None, :])
            if lr.coef is not None:
                c = self._coef_slab(lr, col0 + a, col0 + b)
                if c.ndim == 1:
                    g.addr_(c, sig, alpha=-1.0)
                else:
                    g.addcmul_(c, sig[None, :], value=-1.0)
            if dcap is not None:
                g.mul_(dcap)
            for cols, inside, value in ((lk, (lk >= a) & (lk < b), f.g_k),
                                        (ly, y_apart & (ly >= a) & (ly < b), f.g_y)):  # fmt: skip
                at = inside.nonzero()[:, 0]
                if at.numel():
                    v = value[at].to(hot)
                    g[cols[at] - a, at] = v if dcap is None else v * dcap[cols[at] - a, at]
            x.copy_(g)

        POOL.map(slab, self._slabs(xT), self.threads)


def finished_rows(fin: array.Finished, start: int, stop: int) -> array.Finished:
    return array.Finished(
        fin.loss[start:stop], fin.lse_hi[start:stop], fin.lse_lo[start:stop],
        tuple(v[start:stop] for v in fin.grad),
    )  # fmt: skip


def fold_entries(eT: torch.Tensor, f: RowFactors):
    """Fold mode (whole rows, ``eT`` holding :math:`e^{d}` class-major): write
    ``g_k / r`` and ``g_y / r`` at ``k`` and ``y`` so that ``r e`` is the whole gradient.

    Returns None, or ``(cols, values, rows)`` for the rows where ``r`` is 0 but not the entries
    (a z-loss cancelling the rest of :math:`\alpha`, a logsumexp gradient cancelling the loss's):
    those entries must be added to the products apart.
    """
    r = f.r
    g_y = torch.where(f.y_apart, f.g_y, 0.0)
    zero = r == 0.0
    safe = torch.where(zero, 1.0, r)
    rows = torch.arange(r.shape[0], device=r.device)
    eT[f.k, rows] = torch.where(zero, 0.0, f.g_k / safe).to(eT.dtype)
    at = f.y_apart.nonzero()[:, 0]
    eT[f.y[at], at] = torch.where(zero, 0.0, g_y / safe)[at].to(eT.dtype)
    lost = zero & ((f.g_k != 0.0) | (g_y != 0.0))
    if not bool(lost.any()):
        return None
    rows = lost.nonzero()[:, 0]
    cols = torch.cat([f.k[rows], f.y[rows]])
    vals = torch.cat([f.g_k[rows], g_y[rows]]).to(eT.dtype)
    return cols, vals, torch.cat([rows, rows])


def merge(ops: Any, a: blocks.Stats | None, b: blocks.Stats, temperature: float) -> blocks.Stats:
    """:func:`logmax._core.blocks.merge`, with nothing seen yet (``a`` None) allowed."""
    return b if a is None else blocks.merge(ops, a, b, temperature)


__all__ = [
    "ExactKernel", "FastKernel", "RowFactors", "cat_stats", "factors_rows", "finished_rows",
    "fold_entries", "loss_rows_slice", "loss_rows_take", "merge", "row_factors", "stats_rows",
]  # fmt: skip
