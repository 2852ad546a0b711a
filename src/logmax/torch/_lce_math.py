r"""Cross-entropy and its gradient on one block of logits, in place, in plain torch operations.

The block is a ``(rows, classes)`` slice of the logits ``x = h W^T + b`` that
:mod:`logmax.torch._lce_engine` computes chunk by chunk. Notation per row, as in
:func:`logmax._core.reference.cross_entropy_rows`:

.. math::
    z = \operatorname{softcap}(x)/T,\quad m = \max_c z_c \text{ (at } k),\quad d = z - m,\quad
    s = \sum_{c \ne k} e^{d_c},\quad \mathrm{lse} = m + \operatorname{log1p}(s),\quad
    -\log p_c = \operatorname{log1p}(s) - d_c

    \ell = (1-\varepsilon)\,w_y(-\log p_y) + \tfrac{\varepsilon}{C}\sum_c w_c(-\log p_c)
          + \zeta\,w_y\,\mathrm{lse}^2

With ``a`` the upstream gradient of the row's loss and ``b`` that of its lse, and
:math:`\alpha = (1-\varepsilon) w_y + \varepsilon W / C + 2\zeta w_y \mathrm{lse}`
(:math:`W = \sum_c w_c`):

.. math::
    \partial z_c = a\,[\alpha p_c - (1-\varepsilon) w_y [c = y] - \tfrac{\varepsilon}{C} w_c]
                   + b\,p_c,\qquad
    \partial x_c = \partial z_c\,\operatorname{sech}^2(x_c/\mathrm{cap}) / T

The target entry uses :math:`1 - p_y = s/(1+s)` when ``y`` is the argmax (no cancellation for
confident rows). ``-inf`` logits (a ``-inf`` bias entry) are masked: probability 0, gradient 0.

Large vocabularies are cut into column blocks: :class:`RowStats` of each block merge into the
statistics of the whole row (a streaming logsumexp), then each block turns into its gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

_INF = float("inf")


@dataclass(frozen=True)
class LossSpec:
    """The options of the loss, shared by every block."""

    n_classes: int
    weight: torch.Tensor | None  # (C,) compute dtype, or None for all ones
    weight_sum: float  # W = sum_c w_c
    label_smoothing: float
    softcap: float | None
    temperature: float
    z_loss: float
    masked: torch.Tensor | None  # (C,) bool: columns whose logit is -inf (bias -inf), or None


@dataclass
class Rows:
    """What the loss knows about the rows of one chunk (all tensors of shape ``(rows,)``)."""

    target: torch.Tensor  # int64 class index, 0 on ignored rows
    row_weight: torch.Tensor  # w_y, 0 on ignored rows (compute dtype)
    counted: torch.Tensor  # 1.0 on counted rows, 0.0 on ignored rows (compute dtype)
    loss_grad: torch.Tensor | None  # a: d(total)/d(row loss), 0 on ignored rows
    lse_grad: torch.Tensor | None  # b: d(total)/d(row lse), or None

    def slice(self, start: int, stop: int) -> Rows:
        def cut(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t[start:stop]

        return Rows(
            cut(self.target),
            cut(self.row_weight),
            cut(self.counted),
            cut(self.loss_grad),
            cut(self.lse_grad),
        )


@dataclass
class RowStats:
    """Streaming statistics of ``z`` over the columns seen so far (shape ``(rows,)`` each).

    ``s`` sums :math:`e^{z_c - m}` over every column but the argmax ``k``; ``sw`` is
    :math:`\\sum_c w_c (z_c - \\hat m)` with :math:`\\hat m` the finite shift (``m``, or 0 on
    rows that are all ``-inf`` so far), a sum of non-positive terms; ``zy`` is ``z`` at the
    target (valid once the target's block was seen); ``wsum`` is the weight of the seen columns.
    """

    m: torch.Tensor
    k: torch.Tensor
    s: torch.Tensor
    sw: torch.Tensor | None
    zy: torch.Tensor
    wsum: float | torch.Tensor

    @property
    def shift(self) -> torch.Tensor:
        return _finite_shift(self.m)

    @property
    def bad(self) -> torch.Tensor:
        """Rows holding NaN or +inf: their loss, lse and gradient are NaN."""
        return torch.isnan(self.m) | (self.m == _INF)


def _finite_shift(m: torch.Tensor) -> torch.Tensor:
    # a row that is all -inf is shifted by 0, so that it stays -inf and not NaN
    return torch.where(torch.isneginf(m), torch.zeros_like(m), m)


def transform(x: torch.Tensor, u: torch.Tensor | None, col0: int, spec: LossSpec) -> torch.Tensor:
    """Raw logits ``x`` (columns ``col0 ..``) become ``z = softcap(x)/T`` in place.

    With a softcap, ``u`` keeps ``x / cap`` for the gradient, and masked (``-inf``) columns stay
    ``-inf`` (``cap tanh(-inf)`` would unmask them as ``-cap``), as in the core.
    """
    if spec.softcap is not None:
        assert u is not None
        torch.div(x, spec.softcap, out=u)
        torch.tanh(u, out=x)
        x.mul_(spec.softcap)  # cap * tanh(x / cap), then / T: the reference's order
        if spec.masked is not None:
            x.masked_fill_(spec.masked[col0 : col0 + x.shape[1]][None, :], -_INF)
    if spec.temperature != 1.0:
        x.div_(spec.temperature)
    return x


def block_stats(z: torch.Tensor, rows: Rows, col0: int, spec: LossSpec, keep_exp: bool) -> RowStats:
    """Statistics of one column block ``z`` (columns ``col0 ..``), turning ``z`` into ``e^{z - m}``.

    With ``keep_exp`` the block is left holding ``e^{z_c - m}`` (``m`` the block's maximum) for
    :func:`block_grad`; otherwise its content is scratch afterwards.
    """
    n_cols = z.shape[1]
    m, k = z.max(dim=1)
    shift = _finite_shift(m)
    local = (rows.target - col0).clamp_(0, n_cols - 1)[:, None]
    zy = z.gather(1, local)[:, 0]
    z.sub_(shift[:, None])  # d = z - m <= 0: the sums below add terms of one sign
    sw = None
    if spec.label_smoothing:
        w = spec.weight
        sw = z.sum(dim=1) if w is None else z @ w[col0 : col0 + n_cols]
    z.exp_()
    kk = k[:, None]
    e_k = z.gather(1, kk)  # 1, or 0 on an all -inf row
    z.scatter_(1, kk, 0.0)  # the max's own term is the 1 in log1p(s)
    s = z.sum(dim=1)
    if keep_exp:
        z.scatter_(1, kk, e_k)
    wsum = float(n_cols) if spec.weight is None else spec.weight[col0 : col0 + n_cols].sum()
    return RowStats(m, k + col0, s, sw, zy, wsum)


def merge(run: RowStats | None, blk: RowStats, in_block: torch.Tensor) -> RowStats:
    """The statistics of two column ranges together (``run`` may be ``None``: nothing seen yet)."""
    if run is None:
        return blk
    m = torch.maximum(run.m, blk.m)
    newer = blk.m > run.m
    # the old max's term (1, or 0 if all -inf so far) and the old sum, rescaled to the new max
    one_run = torch.isfinite(run.m).to(run.s.dtype)
    one_blk = torch.isfinite(blk.m).to(blk.s.dtype)
    gap_run = torch.where(torch.isneginf(run.m), -_INF, run.m - m)
    gap_blk = torch.where(torch.isneginf(blk.m), -_INF, blk.m - m)
    s = torch.where(
        newer,
        (run.s + one_run) * torch.exp(gap_run) + blk.s,
        run.s + (blk.s + one_blk) * torch.exp(gap_blk),
    )
    k = torch.where(newer, blk.k, run.k)
    sw = None
    if run.sw is not None:
        new_shift = _finite_shift(m)
        # both moves are <= 0: the sum keeps terms of one sign
        sw = (
            run.sw
            + run.wsum * (run.shift - new_shift)
            + blk.sw
            + blk.wsum * (blk.shift - new_shift)
        )
    zy = torch.where(in_block, blk.zy, run.zy)
    return RowStats(m, k, s, sw, zy, run.wsum + blk.wsum)


@dataclass
class RowResult:
    """Loss and lse of each row, and the row factors that turn ``e^{d}`` into the gradient."""

    loss: torch.Tensor
    lse: torch.Tensor
    factor: torch.Tensor | None  # multiplies e^{d_c}: (a alpha + b) / (1 + s), already / T
    target_grad: torch.Tensor | None  # the gradient at the target entry, / T
    smooth: torch.Tensor | None  # a eps / C / T: the per-row coefficient of -w_c


def finish_rows(st: RowStats, rows: Rows, spec: LossSpec) -> RowResult:
    """Loss and lse from the whole row's statistics, and the gradient's row coefficients."""
    eps = spec.label_smoothing
    n_cls = spec.n_classes
    l1 = torch.log1p(st.s)
    bad = st.bad
    nan = torch.full_like(l1, float("nan"))
    lse = torch.where(bad, nan, st.m + l1)
    shift = st.shift
    d_y = st.zy - shift
    wy = rows.row_weight
    loss = (1.0 - eps) * wy * (l1 - d_y)
    if eps:
        loss = loss + (eps / n_cls) * (spec.weight_sum * l1 - st.sw)
    lse_fin = torch.where(torch.isfinite(lse), lse, torch.zeros_like(lse))
    if spec.z_loss:
        lse_sq = torch.where(torch.isfinite(lse), lse * lse, torch.full_like(lse, _INF))
        loss = loss + spec.z_loss * wy * lse_sq
    loss = torch.where(rows.counted > 0, torch.where(bad, nan, loss), torch.zeros_like(loss))
    if rows.loss_grad is None and rows.lse_grad is None:
        return RowResult(loss, lse, None, None, None)

    inv_t = 1.0 / spec.temperature
    a = (rows.loss_grad * inv_t) if rows.loss_grad is not None else torch.zeros_like(l1)
    b = (rows.lse_grad * inv_t) if rows.lse_grad is not None else None
    inv = 1.0 / (1.0 + st.s)
    hard = (1.0 - eps) * wy
    rest = (eps * spec.weight_sum / n_cls) + 2.0 * spec.z_loss * wy * lse_fin  # alpha - hard
    factor = a * (hard + rest)
    if b is not None:
        factor = factor + b
    factor = factor * inv
    # 1 - p_y without cancellation: s/(1+s) at the argmax, (s - e_y + 1)/(1+s) elsewhere
    e_y = torch.exp(d_y)
    one_minus_py = torch.where(rows.target == st.k, st.s, (st.s - e_y) + 1.0) * inv
    p_y = e_y * inv
    target_grad = a * (rest * p_y - hard * one_minus_py)
    if b is not None:
        target_grad = target_grad + b * p_y
    # a bad (NaN / +inf) counted row gets a NaN gradient everywhere
    poison = bad & (rows.counted > 0)
    factor = torch.where(poison, nan, factor)
    smooth = (a * (eps / n_cls)) if eps else None
    return RowResult(loss, lse, factor, target_grad, smooth)


def block_grad(
    e: torch.Tensor,
    u: torch.Tensor | None,
    res: RowResult,
    rows: Rows,
    col0: int,
    spec: LossSpec,
) -> torch.Tensor:
    """Turn ``e = e^{z - m}`` of a column block into the gradient with respect to the raw logits.

    ``m`` must be the whole row's (finite-shifted) maximum. Works in place and returns ``e``.
    """
    assert res.factor is not None and res.target_grad is not None
    n_cols = e.shape[1]
    e.mul_(res.factor[:, None])
    local = rows.target - col0
    in_block = (local >= 0) & (local < n_cols)
    idx = local.clamp(0, n_cols - 1)[:, None]
    current = e.gather(1, idx)[:, 0]
    value = torch.where(in_block & ~torch.isnan(res.factor), res.target_grad, current)
    e.scatter_(1, idx, value[:, None])
    if res.smooth is not None:
        if spec.weight is None:
            e.sub_(res.smooth[:, None])
        else:
            e.addr_(res.smooth, spec.weight[col0 : col0 + n_cols], alpha=-1.0)
    if spec.masked is not None:
        e.masked_fill_(spec.masked[col0 : col0 + n_cols][None, :], 0.0)
    if u is not None:
        # d softcap / dx = sech^2(x / cap): 1 - tanh^2 would cancel to 0 once |x / cap| > 9
        e.mul_(u.cosh_().square_().reciprocal_())
    return e
