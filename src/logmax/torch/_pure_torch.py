r"""The contract in plain torch operations: the path for tensors that are not on the CPU.

CPU tensors go through the NumPy API (:mod:`logmax.torch._numpy_bridge`) and its Numba kernels.
Every other device (CUDA, MPS, XPU, ...) lands here until GPU kernels exist, so that its users get
the same answers today. The functions have the same signatures as the bridge's and follow
:mod:`logmax._core.reference` step by step:

.. math::
    z = \operatorname{softcap}(x) / T, \quad m = \max_i z_i \text{ (at index } k),\quad
    s = \sum_{i \ne k} e^{z_i - m}

    \operatorname{logsumexp}(z) = m + \operatorname{log1p}(s), \quad
    \log\operatorname{softmax}(z)_i = (z_i - m) - \operatorname{log1p}(s), \quad
    \operatorname{softmax}(z)_i = e^{z_i - m} / (1 + s).

Precision: 16-bit inputs are computed in float32, float32 inputs in float64, float64 in float64
(MPS has no float64: float32 there). Results are rounded once into the input's dtype.
Edge rules: -inf entries are masked (probability 0, gradient 0), a fully masked row gives zeros,
-inf and zero gradient (never NaN), a row holding NaN or +inf is a NaN row (``nan_policy='raise'``
names it), ignored rows give loss 0 and gradient 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from logmax._core import checks

_INF = math.inf


def compute_dtype(t: torch.Tensor) -> torch.dtype:
    """The dtype this path computes in for a tensor ``t``."""
    if t.dtype in (torch.float16, torch.bfloat16):
        return torch.float32
    if t.device.type == "mps":
        return torch.float32
    return torch.float64


# ---------------------------------------------------------------------------------------------
# Layout: reductions run on a (rows, K) matrix with the reduced dims last, as in the reference.
def _to_rows(x: torch.Tensor, dims: tuple[int, ...]) -> tuple[torch.Tensor, tuple[int, ...]]:
    rest = [a for a in range(x.ndim) if a not in dims]
    batch_shape = tuple(x.shape[a] for a in rest)
    k = math.prod(x.shape[a] for a in dims)
    return x.permute(rest + list(dims)).reshape(math.prod(batch_shape), k), batch_shape


def _from_rows(y: torch.Tensor, shape: Sequence[int], dims: tuple[int, ...]) -> torch.Tensor:
    order = [a for a in range(len(shape)) if a not in dims] + list(dims)
    inverse = sorted(range(len(order)), key=order.__getitem__)
    return y.reshape([shape[a] for a in order]).permute(inverse)


def apply_softcap(z: torch.Tensor, softcap: float) -> torch.Tensor:
    """``cap * tanh(z / cap)``; a ``-inf`` (masked) entry stays ``-inf`` rather than ``-cap``."""
    return torch.where(z == -_INF, z, softcap * torch.tanh(z / softcap))


def _prepare(
    x: torch.Tensor, dims: tuple[int, ...], temperature: float, softcap: float | None = None
) -> tuple[torch.Tensor, tuple[int, ...], torch.Tensor | None]:
    """Rows in compute precision with softcap and temperature applied; also x / cap."""
    rows, batch_shape = _to_rows(x, dims)
    z = rows.to(compute_dtype(x))  # out-of-place from here on: the input is never touched
    u = None
    if softcap is not None:
        u = z / softcap
        z = apply_softcap(z, softcap)
    if temperature != 1.0:
        z = z / temperature
    return z, batch_shape, u


@dataclass
class _RowStats:
    d: torch.Tensor  # z - m, -inf where masked
    e: torch.Tensor  # exp(d)
    s: torch.Tensor  # sum of e without the argmax's own term
    m: torch.Tensor  # row maximum, -inf on fully masked rows
    k: torch.Tensor  # argmax index
    bad: torch.Tensor  # row holds NaN or +inf

    @property
    def log1p_s(self) -> torch.Tensor:
        return torch.log1p(self.s)

    @property
    def lse(self) -> torch.Tensor:
        return torch.where(self.bad, math.nan, self.m + torch.log1p(self.s))

    @property
    def p(self) -> torch.Tensor:
        return self.e / (1.0 + self.s)[:, None]


def _row_stats(z: torch.Tensor) -> _RowStats:
    n_rows, n_cols = z.shape
    bad = (torch.isnan(z) | (z == _INF)).any(dim=1)
    clean = torch.where(bad[:, None], 0.0, z)
    if n_cols == 0:
        m = torch.full((n_rows,), -_INF, dtype=z.dtype, device=z.device)
        k = torch.zeros(n_rows, dtype=torch.long, device=z.device)
        d = clean
        return _RowStats(d, clean, torch.zeros_like(m), m, k, bad)
    k = clean.argmax(dim=1)
    m = clean.gather(1, k[:, None]).squeeze(1)
    shift = torch.where(torch.isfinite(m), m, 0.0)  # a fully masked row stays -inf, not NaN
    d = clean - shift[:, None]
    e = torch.exp(d)
    s = e.scatter(1, k[:, None], 0.0).sum(dim=1)  # the max's own term is the 1 in log1p(s)
    return _RowStats(d, e, s, m, k, bad)


def _check_rows(
    z: torch.Tensor, batch_shape: tuple[int, ...], nan_policy: str, what: str, rows=None
) -> None:
    if nan_policy != "raise":
        return
    bad = (torch.isnan(z) | (z == _INF)).any(dim=1)
    if rows is not None:
        bad &= rows
    if bool(bad.any()):
        checks.raise_nonfinite_row(bad.cpu().numpy(), batch_shape, what)


def _dims(dim: int | Sequence[int], ndim: int) -> tuple[int, ...]:
    return checks.normalize_axes(dim, ndim)


# ---------------------------------------------------------------------------------------------
def softmax(
    x: torch.Tensor, dim: int | Sequence[int], *, temperature: float = 1.0, nan_policy: str
) -> torch.Tensor:
    dims = _dims(dim, x.ndim)
    z, batch_shape, _ = _prepare(x, dims, temperature)
    _check_rows(z, batch_shape, nan_policy, "input")
    st = _row_stats(z)
    y = torch.where(st.bad[:, None], math.nan, st.p)
    return _from_rows(y, x.shape, dims).to(x.dtype)


def log_softmax(
    x: torch.Tensor, dim: int | Sequence[int], *, temperature: float = 1.0, nan_policy: str
) -> torch.Tensor:
    dims = _dims(dim, x.ndim)
    z, batch_shape, _ = _prepare(x, dims, temperature)
    _check_rows(z, batch_shape, nan_policy, "input")
    st = _row_stats(z)
    y = torch.where(st.bad[:, None], math.nan, st.d - st.log1p_s[:, None])
    return _from_rows(y, x.shape, dims).to(x.dtype)


def logsumexp(
    x: torch.Tensor,
    dim: int | Sequence[int],
    keepdim: bool = False,
    *,
    temperature: float = 1.0,
    nan_policy: str,
) -> torch.Tensor:
    dims = _dims(dim, x.ndim)
    z, batch_shape, _ = _prepare(x, dims, temperature)
    _check_rows(z, batch_shape, nan_policy, "input")
    out = _row_stats(z).lse.reshape(batch_shape)
    if keepdim:
        out = out.reshape([1 if a in dims else n for a, n in enumerate(x.shape)])
    return out.to(x.dtype)


def softmax_vjp(
    y: torch.Tensor, grad: torch.Tensor, dim: int | Sequence[int], *, temperature: float = 1.0
) -> torch.Tensor:
    """y = softmax(x / T): dL/dx = y (g - sum(g y)) / T; masked entries (y = 0) get 0."""
    dims = _dims(dim, y.ndim)
    yr, _ = _to_rows(y, dims)
    gr, _ = _to_rows(grad, dims)
    yr, gr = yr.to(compute_dtype(y)), gr.to(compute_dtype(y))
    gx = yr * (gr - (gr * yr).sum(dim=1, keepdim=True))
    if temperature != 1.0:
        gx = gx / temperature
    return _from_rows(gx, y.shape, dims).to(y.dtype)


def log_softmax_vjp(
    y: torch.Tensor, grad: torch.Tensor, dim: int | Sequence[int], *, temperature: float = 1.0
) -> torch.Tensor:
    """y = log_softmax(x / T): dL/dx = (g - exp(y) sum(g)) / T; 0 where y = -inf (masked)."""
    dims = _dims(dim, y.ndim)
    yr, _ = _to_rows(y, dims)
    gr, _ = _to_rows(grad, dims)
    yr, gr = yr.to(compute_dtype(y)), gr.to(compute_dtype(y))
    masked = yr == -_INF
    total = torch.where(masked, 0.0, gr).sum(dim=1, keepdim=True)
    gx = torch.where(masked, 0.0, gr - torch.exp(yr) * total)
    if temperature != 1.0:
        gx = gx / temperature
    return _from_rows(gx, y.shape, dims).to(y.dtype)


def logsumexp_vjp(
    x: torch.Tensor,
    grad: torch.Tensor,
    dim: int | Sequence[int],
    keepdim: bool = False,
    *,
    temperature: float = 1.0,
) -> torch.Tensor:
    """dL/dx = g softmax(x / T) / T; a fully masked row gets 0."""
    dims = _dims(dim, x.ndim)
    z, batch_shape, _ = _prepare(x, dims, temperature)
    st = _row_stats(z)
    g = grad.reshape(-1).to(z.dtype)
    gx = torch.where(st.bad[:, None], math.nan, st.p * g[:, None])
    if temperature != 1.0:
        gx = gx / temperature
    return _from_rows(gx, x.shape, dims).to(x.dtype)


# ---------------------------------------------------------------------------------------------
def _reduce(
    loss: torch.Tensor, denominator: torch.Tensor, reduction: str, batch_shape: tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor | float]:
    """The reduced loss and the gradient's row scale (mean over zero counted rows gives 0)."""
    if reduction == "none":
        return loss.reshape(batch_shape), 1.0
    total = loss.sum()
    if reduction == "sum":
        return total, 1.0
    scale = torch.where(denominator != 0, 1.0 / denominator, 0.0)
    return total * scale, scale


def _class_weights(weight: torch.Tensor | None, n_cls: int, like: torch.Tensor) -> torch.Tensor:
    if weight is None:
        return torch.ones(n_cls, dtype=like.dtype, device=like.device)
    finite = torch.isfinite(weight)
    if not bool(finite.all()):
        bad = int((~finite).nonzero()[0, 0])
        raise ValueError(f"weight[{bad}] = {float(weight[bad])} is not finite")
    return weight.to(device=like.device, dtype=like.dtype)


def cross_entropy_with_grad(
    x: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None,
    ignore_index: int,
    reduction: str,
    label_smoothing: float,
    *,
    dim: int,
    temperature: float,
    softcap: float | None,
    z_loss: float,
    nan_policy: str,
    want_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    r"""Loss (reduced), its gradient for ``grad_output = 1`` (or None) and the per-row lse.

    hard label :math:`y`: :math:`(1-\varepsilon) w_y \ell_y + \frac{\varepsilon}{C}\sum_c w_c
    \ell_c + \zeta w_y \mathrm{lse}^2`; soft target :math:`t' = (1-\varepsilon)t + \varepsilon/C`:
    :math:`\sum_c w_c t'_c \ell_c + \zeta\,\mathrm{lse}^2`, with :math:`\ell_c = -\log p_c`
    computed as :math:`\operatorname{log1p}(s) - (z_c - m)` (a sum of non-negative terms).
    """
    dims = (dim,)
    soft = target.is_floating_point()
    z, batch_shape, u = _prepare(x, dims, temperature, softcap)
    n_rows, n_cls = z.shape
    eps = label_smoothing
    w_cls = _class_weights(weight, n_cls, z)
    if soft:
        counted = torch.ones(n_rows, dtype=torch.bool, device=z.device)
    else:
        y_all = target.reshape(n_rows).to(torch.long)
        counted = y_all != ignore_index
        _check_labels(target, y_all, counted, n_cls, ignore_index)
    _check_rows(z, batch_shape, nan_policy, "logits", counted)
    st = _row_stats(z)
    lse = st.lse
    ell = st.log1p_s[:, None] - st.d  # -log p, +inf on masked entries
    if soft:
        t = _to_rows(target, dims)[0].to(z.dtype)
        if eps:
            t = (1.0 - eps) * t + eps / n_cls
        tw = t * w_cls
        row_w = torch.ones(n_rows, dtype=z.dtype, device=z.device)
        loss = torch.where(tw == 0, 0.0, tw * ell).sum(dim=1)  # 0 * log 0 = 0
        denominator = torch.tensor(float(n_rows), dtype=z.dtype, device=z.device)
    else:
        y = torch.where(counted, y_all, 0)
        row_w = torch.where(counted, w_cls[y], 0.0) if n_cls else torch.zeros_like(st.s)
        if n_cls:
            loss = (1.0 - eps) * row_w * ell.gather(1, y[:, None]).squeeze(1)
        else:
            loss = torch.zeros_like(st.s)
        if eps:
            loss = loss + (eps / n_cls) * (w_cls * ell).sum(dim=1)
        denominator = row_w.sum()
    finite_lse = torch.isfinite(lse)
    if z_loss:
        loss = loss + z_loss * row_w * torch.where(finite_lse, lse * lse, _INF)
    loss = torch.where(counted, torch.where(st.bad, math.nan, loss), 0.0)
    reduced, scale = _reduce(loss, denominator, reduction, batch_shape)

    grad = None
    if want_grad:
        p = st.p
        if soft:
            g = tw.sum(dim=1, keepdim=True) * p - tw
        else:
            g = ((1.0 - eps) * row_w)[:, None] * p
            if n_cls:
                # p_y - 1 without cancellation: 1 - p_y = (s + 1 - e_y) / (1 + s), = s / (1 + s)
                # when y is the argmax (the confident case, where 1 - p_y may be 1e-30).
                e_y = st.e.gather(1, y[:, None]).squeeze(1)
                one_minus_py = torch.where(y == st.k, st.s, (st.s - e_y) + 1.0) / (1.0 + st.s)
                g = g.scatter(1, y[:, None], (-(1.0 - eps) * row_w * one_minus_py)[:, None])
            if eps:
                g = g + (eps / n_cls) * (w_cls.sum() * p - w_cls)
        if z_loss:
            g = g + (2.0 * z_loss * row_w * torch.where(finite_lse, lse, 0.0))[:, None] * p
        g = g * (counted.to(g.dtype) * scale)[:, None]
        g = torch.where(st.d == -_INF, 0.0, g)  # masked entries: gradient exactly 0
        if temperature != 1.0:
            g = g / temperature
        if u is not None:
            # d(cap tanh(x/cap))/dx = sech^2(x/cap): 1 - tanh^2 would cancel to noise for |x/cap|>10
            g = g * torch.cosh(u).pow(-2)
        g = torch.where(counted[:, None], g, 0.0)  # ignored rows: exactly 0, even of NaN logits
        g = torch.where((counted & st.bad)[:, None], math.nan, g)
        grad = _from_rows(g, x.shape, dims).to(x.dtype)
    return reduced.to(x.dtype), grad, lse.reshape(batch_shape).to(x.dtype)


def nll_loss_with_grad(
    logp: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None,
    ignore_index: int,
    reduction: str,
    *,
    dim: int,
    nan_policy: str,
    want_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    r"""Loss :math:`-w_y \log p_y` (soft: :math:`-\sum_c w_c t_c \log p_c`, ``0 log 0 = 0``),
    reduced, and its gradient for ``grad_output = 1`` (or None)."""
    dims = (dim,)
    lp, batch_shape, _ = _prepare(logp, dims, 1.0)
    n_rows, n_cls = lp.shape
    w_cls = _class_weights(weight, n_cls, lp)
    if target.is_floating_point():
        tw = _to_rows(target, dims)[0].to(lp.dtype) * w_cls
        counted = torch.ones(n_rows, dtype=torch.bool, device=lp.device)
        loss = -torch.where(tw == 0, 0.0, tw * lp).sum(dim=1)
        denominator = torch.tensor(float(n_rows), dtype=lp.dtype, device=lp.device)
    else:
        y_all = target.reshape(n_rows).to(torch.long)
        counted = y_all != ignore_index
        _check_labels(target, y_all, counted, n_cls, ignore_index)
        y = torch.where(counted, y_all, 0)
        if n_cls:
            row_w = torch.where(counted, w_cls[y], 0.0)
            picked = lp.gather(1, y[:, None]).squeeze(1)
        else:
            row_w = picked = torch.zeros(n_rows, dtype=lp.dtype, device=lp.device)
        loss = torch.where(counted, -row_w * picked, 0.0)
        denominator = row_w.sum()
    if nan_policy == "raise":
        bad = (torch.isnan(loss) | (loss == _INF)) & counted
        if bool(bad.any()):
            checks.raise_nonfinite_row(bad.cpu().numpy(), batch_shape, "logp")
    reduced, scale = _reduce(loss, denominator, reduction, batch_shape)
    grad = None
    if want_grad:
        row_scale = counted.to(lp.dtype) * scale
        if target.is_floating_point():
            g = -tw * row_scale[:, None]
        else:
            g = torch.zeros_like(lp)
            if n_cls:
                g = g.scatter(1, y[:, None], (-row_w * row_scale)[:, None])
        grad = _from_rows(g, logp.shape, dims).to(logp.dtype)
    return reduced.to(logp.dtype), grad


def _check_labels(
    target: torch.Tensor, flat: torch.Tensor, counted: torch.Tensor, n_cls: int, ignore_index: int
) -> None:
    """Raise the core's ValueError (position, value, C) for a label outside [0, C)."""
    if bool((counted & ((flat < 0) | (flat >= n_cls))).any()):
        checks.check_labels(target.cpu().numpy(), n_cls, ignore_index)
