r"""Autograd for the ``logmax::`` operators: ``torch.autograd.Function``\ s with ``setup_context``
(so that ``torch.func.grad``, ``vmap``, ``jacrev``, ``hessian`` compose), ``jvp`` (forward mode)
and ``generate_vmap_rule`` (the operators have vmap rules of their own, :mod:`._vmap`).

Each Function comes in two classes, built by :func:`_function`: one with ``jvp`` for eager code,
and one without it for ``torch.compile`` (dynamo does not trace a custom ``jvp``); :func:`apply`
picks one.

First derivatives are the exact ones of the contract (the operators' own backward ops, computed
in float64 or double-double). Second derivatives are correct for every op: the backward ops are
Functions themselves with their own derivative formulas; the losses' fused gradient (computed in
the forward pass) is differentiated through :func:`_gradient_graph`, whose value is replaced by
the exact one and which only supplies the derivative's structure.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from logmax._core import checks
from logmax._core.options import LossOptions
from logmax.torch import _ops

INF = math.inf
Function = type[torch.autograd.Function]


@dataclass(frozen=True)
class Dims:
    """The reduced dims of a logsumexp, as one value (a list would be unpacked by torch.func's
    pytrees, and its tangents would not line up with it)."""

    values: tuple[int, ...]


def apply(eager: Function, traced: Function, *args):
    """``eager.apply`` (with ``jvp``), or ``traced.apply`` under ``torch.compile``."""
    fn = traced if torch.compiler.is_compiling() else eager
    return fn.apply(*args)


def _setup(context, forward_mode: bool = False):
    """A ``setup_context`` from ``context(ctx, inputs, output) -> tensors to save`` (which also
    sets the attributes backward needs); in forward mode the tensors are saved for ``jvp``
    too."""

    def setup_context(ctx, inputs, output):
        tensors = context(ctx, inputs, output)
        ctx.save_for_backward(*tensors)
        if forward_mode:
            ctx.save_for_forward(*tensors)

    return staticmethod(setup_context)


def _function(
    name: str, forward: Callable, context: Callable, backward: Callable, jvp: Callable
) -> tuple[Function, Function]:
    """``(traced, eager)``: the Function ``name`` from its parts (``forward``'s docstring is the
    class's), and the same with ``jvp`` and a ``setup_context`` that also saves for forward
    mode."""
    traced = type(name, (torch.autograd.Function,), {
        "__doc__": forward.__doc__, "__module__": __name__, "generate_vmap_rule": True,
        "forward": staticmethod(forward), "setup_context": _setup(context),
        "backward": staticmethod(backward),
    })  # fmt: skip
    eager = type(name + "Eager", (traced,), {
        "__module__": __name__, "setup_context": _setup(context, forward_mode=True),
        "jvp": staticmethod(jvp),
    })  # fmt: skip
    return traced, eager


def _vjp_context(ctx, inputs, output) -> tuple[Tensor, ...]:
    y, g, dim, temperature = inputs
    ctx.dim, ctx.temperature = dim, temperature
    return y, g


def _rows_context(ctx, inputs, output) -> tuple[Tensor, ...]:
    ctx.dim, ctx.temperature = inputs[1], inputs[2]
    return (output,)


def _rows_backward(vjp: Callable[[], tuple[Function, Function]]) -> Callable:
    """The backward of a row transform: its vector-Jacobian product ``vjp()`` (a Function
    pair, looked up when called) applied to the saved output and the upstream gradient."""

    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        traced, eager = vjp()
        return apply(eager, traced, y, g, ctx.dim, ctx.temperature), None, None, None

    return backward


# ---------------------------------------------------------------------------------------------
# softmax
def _softmax_backward(y, g, dim, temperature):
    r""":math:`f = y \odot (g - \sum g y) / T`, differentiable in ``y`` and ``g``."""
    return _ops.softmax_backward(y, g, dim, temperature)


def _softmax_backward_backward(ctx, w):
    y, g = ctx.saved_tensors
    d, t = ctx.dim, ctx.temperature
    gy = (w * (g - (g * y).sum(d, keepdim=True)) - g * (w * y).sum(d, keepdim=True)) / t
    gg = apply(SoftmaxBackwardEager, SoftmaxBackward, y, w, d, t)
    return gy, gg, None, None


def _softmax_backward_jvp(ctx, ty, tg, _dim, _t):
    y, g = ctx.saved_tensors
    d, t = ctx.dim, ctx.temperature
    out = torch.zeros_like(y)
    if ty is not None:
        out = (
            out + (ty * (g - (g * y).sum(d, keepdim=True)) - y * (g * ty).sum(d, keepdim=True)) / t
        )
    if tg is not None:
        out = out + _ops.softmax_backward(y, tg, d, t)
    return out


SoftmaxBackward, SoftmaxBackwardEager = _function(
    "SoftmaxBackward", _softmax_backward, _vjp_context, _softmax_backward_backward,
    _softmax_backward_jvp,
)  # fmt: skip


def _softmax(x, dim, temperature, nan_policy):
    r""":math:`y = \operatorname{softmax}(x / T)`; its Jacobian is symmetric, so the vector
    product in either direction is ``softmax_backward``."""
    return _ops.softmax(x, dim, temperature, nan_policy)


def _softmax_jvp(ctx, tx, *_):
    (y,) = ctx.saved_tensors
    return _ops.softmax_backward(y, tx, ctx.dim, ctx.temperature)


Softmax, SoftmaxEager = _function(
    "Softmax", _softmax, _rows_context,
    _rows_backward(lambda: (SoftmaxBackward, SoftmaxBackwardEager)), _softmax_jvp,
)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# log_softmax
def _log_softmax_backward(y, g, dim, temperature):
    r""":math:`f = (g - e^{y} \sum g) / T` (0 where :math:`y = -\infty`), differentiable in
    ``y`` and ``g``."""
    return _ops.log_softmax_backward(y, g, dim, temperature)


def _log_softmax_backward_backward(ctx, w):
    y, g = ctx.saved_tensors
    d, t = ctx.dim, ctx.temperature
    live = y != -INF
    p = torch.exp(y)
    wl = torch.where(live, w, 0.0)
    total_g = torch.where(live, g, 0.0).sum(d, keepdim=True)
    gg = torch.where(live, wl - (wl * p).sum(d, keepdim=True), 0.0) / t
    gy = -wl * p * total_g / t
    return gy, gg, None, None


def _log_softmax_backward_jvp(ctx, ty, tg, _dim, _t):
    y, g = ctx.saved_tensors
    d, t = ctx.dim, ctx.temperature
    live = y != -INF
    out = torch.zeros_like(y)
    if ty is not None:
        total_g = torch.where(live, g, 0.0).sum(d, keepdim=True)
        out = out - torch.where(live, ty, 0.0) * torch.exp(y) * total_g / t
    if tg is not None:
        out = out + _ops.log_softmax_backward(y, tg, d, t)
    return out


LogSoftmaxBackward, LogSoftmaxBackwardEager = _function(
    "LogSoftmaxBackward", _log_softmax_backward, _vjp_context, _log_softmax_backward_backward,
    _log_softmax_backward_jvp,
)  # fmt: skip


def _log_softmax(x, dim, temperature, nan_policy):
    r""":math:`y = \log\operatorname{softmax}(x / T)`."""
    return _ops.log_softmax(x, dim, temperature, nan_policy)


def _log_softmax_jvp(ctx, tx, *_):
    (y,) = ctx.saved_tensors
    d, t = ctx.dim, ctx.temperature
    live = y != -INF
    tl = torch.where(live, tx, 0.0)
    return torch.where(live, tl - (torch.exp(y) * tl).sum(d, keepdim=True), 0.0) / t


LogSoftmax, LogSoftmaxEager = _function(
    "LogSoftmax", _log_softmax, _rows_context,
    _rows_backward(lambda: (LogSoftmaxBackward, LogSoftmaxBackwardEager)), _log_softmax_jvp,
)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# logsumexp
def _probabilities(x: Tensor, lse: Tensor, dims: list[int], keepdim: bool, t: float) -> Tensor:
    r""":math:`e^{x/T - \mathrm{lse}}` (0 on masked entries and fully masked rows)."""
    full = lse if keepdim else _unsqueeze(lse, dims, x.ndim)
    finite = full != -INF
    return torch.where(finite, torch.exp(x / t - torch.where(finite, full, 0.0)), 0.0)


def _unsqueeze(v: Tensor, dims: list[int], ndim: int) -> Tensor:
    for d in sorted(d % ndim for d in dims):
        v = v.unsqueeze(d)
    return v


def _squeeze(v: Tensor, dims: list[int]) -> Tensor:
    for d in sorted((d % v.ndim for d in dims), reverse=True):
        v = v.squeeze(d)
    return v


def _dims_context(ctx, x: Tensor, second: Tensor, dims: Dims, keepdim, temperature):
    # the saved (x, second) and the reduction's attributes
    ctx.dims_arg, ctx.dims, ctx.keepdim, ctx.temperature = (
        dims, list(dims.values), keepdim, temperature,
    )  # fmt: skip
    return x, second


def _logsumexp_backward(x, g, dims, keepdim, temperature):
    r""":math:`f = g\, p / T` with :math:`p = \operatorname{softmax}(x/T)` over ``dims``."""
    return _ops.logsumexp_backward(x, g, list(dims.values), keepdim, temperature)


def _logsumexp_backward_backward(ctx, w):
    x, g = ctx.saved_tensors
    dims, keep, t = ctx.dims, ctx.keepdim, ctx.temperature
    lse = apply(LogSumExpEager, LogSumExp, x, ctx.dims_arg, True, t, "propagate")
    p = _probabilities(x, lse, dims, True, t)
    wp = (w * p).sum(dims, keepdim=True)
    gg = wp / t if keep else _squeeze(wp, dims) / t
    gfull = g if keep else _unsqueeze(g, dims, x.ndim)
    gx = gfull * (w * p - p * wp) / (t * t)
    return gx, gg, None, None, None


def _logsumexp_backward_jvp(ctx, tx, tg, *_):
    x, g = ctx.saved_tensors
    dims, keep, t = ctx.dims, ctx.keepdim, ctx.temperature
    lse = _ops.logsumexp(x, dims, True, t, "propagate")
    p = _probabilities(x, lse, dims, True, t)
    out = torch.zeros_like(x)
    if tx is not None:
        gfull = g if keep else _unsqueeze(g, dims, x.ndim)
        out = out + gfull * p * (tx - (p * tx).sum(dims, keepdim=True)) / (t * t)
    if tg is not None:
        out = out + _ops.logsumexp_backward(x, tg, dims, keep, t)
    return out


LogSumExpBackward, LogSumExpBackwardEager = _function(
    "LogSumExpBackward", _logsumexp_backward, lambda ctx, i, o: _dims_context(ctx, *i),
    _logsumexp_backward_backward, _logsumexp_backward_jvp,
)  # fmt: skip


def _logsumexp(x, dims, keepdim, temperature, nan_policy):
    r""":math:`\log\sum_i e^{x_i/T}` over ``dims``."""
    return _ops.logsumexp(x, list(dims.values), keepdim, temperature, nan_policy)


def _logsumexp_backward_of(ctx, g):
    x, _ = ctx.saved_tensors
    gx = apply(LogSumExpBackwardEager, LogSumExpBackward, x, g, ctx.dims_arg, ctx.keepdim,
               ctx.temperature)  # fmt: skip
    return gx, None, None, None, None


def _logsumexp_jvp(ctx, tx, *_):
    x, lse = ctx.saved_tensors
    p = _probabilities(x, lse, ctx.dims, ctx.keepdim, ctx.temperature)
    out = (p * tx).sum(ctx.dims, keepdim=True) / ctx.temperature
    return out if ctx.keepdim else _squeeze(out, ctx.dims)


LogSumExp, LogSumExpEager = _function(
    "LogSumExp", _logsumexp, lambda ctx, i, o: _dims_context(ctx, i[0], o, *i[1:4]),
    _logsumexp_backward_of, _logsumexp_jvp,
)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Losses: the gradient is computed in the forward pass (for a unit upstream gradient).
def _per_row(g: Tensor, like: Tensor, reduction: str) -> Tensor:
    """The upstream gradient broadcast over the class dim (dim 1)."""
    if reduction == "none":
        return g.unsqueeze(1).to(like.dtype)
    return g.to(like.dtype)


def _class_weights(weight: Tensor | None, like: Tensor) -> Tensor:
    """The class weights (ones without), shaped to broadcast over ``like``'s class dim 1."""
    n_cls = like.shape[1]
    w = torch.ones(n_cls, dtype=like.dtype, device=like.device) if weight is None else weight
    return w.to(like.dtype).reshape([1, n_cls] + [1] * (like.ndim - 2))


def _softcapped(x: Tensor, softcap: float | None) -> Tensor:
    # the logits the softmax sees before the temperature; -inf stays masked
    if softcap is None:
        return x
    return torch.where(x == -INF, x, softcap * torch.tanh(x / softcap))


def _row_factors(x, target, weight, opts) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(coef, hard, row_w, scale)``: the dense coefficients :math:`c_j`, :math:`c_y` per row,
    the z-loss weight per row and d(loss)/d(row loss) for a unit upstream gradient (class dim 1
    kept)."""
    ignore_index, reduction, eps = opts.ignore_index, opts.reduction, opts.label_smoothing
    n_cls = x.shape[1]
    w = _class_weights(weight, x)
    if target.is_floating_point():
        coef = ((1.0 - eps) * target.to(x.dtype) + eps / n_cls) * w
        row_w = torch.ones_like(x[:, :1])
        hard = torch.zeros_like(row_w)
        counted = torch.ones_like(row_w, dtype=torch.bool)
        onehot = torch.zeros_like(x)
        den = float(x.numel() // max(n_cls, 1))
    else:
        counted = (target != ignore_index).unsqueeze(1)
        y = torch.where(counted[:, 0], target, 0).long()
        onehot = torch.zeros_like(x).scatter(1, y.unsqueeze(1), 1.0)  # (one_hot reads values)
        row_w = (onehot * w).sum(1, keepdim=True) * counted
        hard = (1.0 - eps) * row_w
        coef = (eps / n_cls) * w * counted if eps else torch.zeros_like(x)
        den = row_w.sum()
    if opts.normalizer is not None:
        den = opts.normalizer
    scale = counted.to(x.dtype)
    if reduction == "mean":
        scale = torch.where(torch.as_tensor(den) != 0, scale / den, 0.0)
    return hard * onehot + coef, hard, row_w, scale


def _loss_context(ctx, inputs, output) -> tuple[Tensor, ...]:
    # a loss's outputs after the first (lse, grad) carry no derivative; the gradient is saved
    # or, in plain eager code, owned (see _loss_backward)
    x, target, weight, opts, _ = inputs
    ctx.mark_non_differentiable(*output[1:])
    ctx.set_materialize_grads(False)  # not zeros of the logits' size for the gradient output
    ctx.opts = opts
    grad = output[-1]
    ctx.owned = grad if _plain(grad) and grad.numel() == x.numel() else None
    return x, target, weight, grad if ctx.owned is None else grad.new_empty(0)


def _plain(t: Tensor) -> bool:
    """A tensor of eager code: not traced (``torch.compile``, fake tensors), not wrapped by
    torch.func's transforms."""
    if torch.compiler.is_compiling() or type(t) is not torch.Tensor:
        return False
    return not torch._C._functorch.is_functorch_wrapped_tensor(t)


def _loss_backward(graph: Callable, full_grad: Callable, target_grad: Callable) -> Callable:
    """The backward of a loss: the exact gradient of the forward pass times the upstream one,
    plus ``graph(...) - graph(...).detach()`` (``graph`` may return None) so that a second
    derivative sees the gradient's dependence on the input; and, for soft targets,
    ``target_grad(...)`` times the upstream gradient.

    In eager code the forward pass's gradient is owned by the Function (``ctx.owned``, not
    saved) and handed to autograd by the first backward: scaled in place (no fresh tensor of the
    logits' size: a pass over memory that the fused kernel exists to save), or as it is for
    ``loss.backward()``. Nothing else holds it, so no result aliases another; a second backward
    of a retained graph computes the gradient again (``full_grad(...)``)."""

    def backward(ctx, g_loss, *_):
        if g_loss is None:  # only the outputs that carry no derivative were used
            return None, None, None, None, None
        x, target, weight, grad = ctx.saved_tensors
        owned, ctx.owned = ctx.owned, None
        opts = ctx.opts
        gx = gt = None
        if ctx.needs_input_grad[0]:
            if owned is not None:
                grad = owned
            elif grad.numel() != x.numel():  # handed out by an earlier backward
                grad = full_grad(x, target, weight, opts)
            scale = _per_row(g_loss, grad, opts.reduction)
            if owned is not None and not torch.is_grad_enabled() and _plain(g_loss):
                gx = grad if _is_one(scale) else grad.mul_(scale)
            else:
                gx = grad * scale
            structure = graph(x, target, weight, opts) if torch.is_grad_enabled() else None
            if structure is not None:  # a graph of the gradient (double backward, torch.func)
                structure = structure.to(gx.dtype)
                gx = gx + (structure - structure.detach()) * _per_row(g_loss, gx, opts.reduction)
        if ctx.needs_input_grad[1]:
            gt = target_grad(x, target, weight, opts) * _per_row(g_loss, x, opts.reduction)
        return gx, gt, None, None, None

    return backward


def _is_one(g: Tensor) -> bool:
    """``g`` is the scalar 1 (``loss.backward()``), checked where that costs no device sync."""
    return g.numel() == 1 and g.device.type == "cpu" and bool(g == 1.0)


def _loss_jvp(n_outputs: int, full_grad: Callable, target_grad: Callable) -> Callable:
    """The forward-mode derivative of a loss: the gradient (``full_grad(...)`` when the forward
    pass did not compute it) against the input's tangent, plus ``target_grad(...)`` against the
    target's."""

    def jvp(ctx, tx, tt, *_):
        x, target, weight, grad = ctx.saved_tensors
        if grad.numel() != x.numel():  # forward mode alone: the gradient was not asked for
            grad = full_grad(x, target, weight, ctx.opts)
        total = torch.zeros_like(x)
        if tx is not None:
            total = total + grad * tx
        if tt is not None:
            total = total + target_grad(x, target, weight, ctx.opts) * tt
        loss_t = total.sum(1) if ctx.opts.reduction == "none" else total.sum()
        return (loss_t,) + (None,) * (n_outputs - 1)

    return jvp


# cross_entropy
def _gradient_graph(x, target, weight, opts) -> Tensor:
    r"""The cross-entropy gradient as differentiable operations:
    :math:`(\alpha p - c)\,\operatorname{sech}^2(x/\mathrm{cap}) / T` per row, with
    :math:`\alpha = \sum_j c_j + 2\zeta w\,\mathrm{lse}` and :math:`c_j = c_y [j = y] + a_j`
    (see :func:`logmax._core.rowstats.grad_coefficients`), times the row's scale. Only its
    derivatives are used: the value is replaced by the exact fused gradient."""
    t, cap, zeta = opts.temperature, opts.softcap, opts.z_loss
    c, _, row_w, scale = _row_factors(x, target, weight, opts)
    u = _softcapped(x, cap)
    p = apply(SoftmaxEager, Softmax, u, 1, t, "propagate")
    lse = apply(LogSumExpEager, LogSumExp, u, Dims((1,)), True, t, "propagate")
    lse = torch.where(lse == -INF, 0.0, lse)
    alpha = c.sum(1, keepdim=True) + 2.0 * zeta * row_w * lse
    g = (alpha * p - c) * scale / t
    if cap is not None:
        g = g * torch.cosh(torch.where(x == -INF, 0.0, x) / cap).pow(-2)
    return torch.where(x == -INF, 0.0, g)


def _target_grad(x, target, weight, opts) -> Tensor:
    r""":math:`\partial \ell / \partial t_c = (1-\varepsilon)\, w_c\,(-\log p_c)` times the
    row's scale (the z-loss does not depend on the targets)."""
    eps, t, cap = opts.label_smoothing, opts.temperature, opts.softcap
    logp = apply(LogSoftmaxEager, LogSoftmax, _softcapped(x, cap), 1, t, "propagate")
    _, _, _, scale = _row_factors(x, target.detach(), weight, opts)
    return ((1.0 - eps) * _class_weights(weight, x) * -logp * scale).to(target.dtype)


def _ce_args(o: LossOptions) -> tuple[Any, ...]:
    return (checks.int64_ignore_index(o.ignore_index), o.reduction, o.label_smoothing,
            o.temperature, o.softcap, o.z_loss, o.nan_policy, o.normalizer)  # fmt: skip


def _cross_entropy(x, target, weight, opts, want_grad):
    """``(loss, lse, grad)`` of :func:`logmax.torch._ops.cross_entropy`; ``lse`` and ``grad`` carry
    no gradient. Soft targets that require grad get :math:`(1-\\varepsilon) w_c (-\\log p_c)`
    times the row's scale."""
    return _ops.cross_entropy(x, target, weight, *_ce_args(opts), want_grad)


def _cross_entropy_grad(x, target, weight, opts) -> Tensor:
    return _ops.cross_entropy(x, target, weight, *_ce_args(opts), True)[2]


CrossEntropy, CrossEntropyEager = _function(
    "CrossEntropy", _cross_entropy, _loss_context,
    _loss_backward(_gradient_graph, _cross_entropy_grad, _target_grad),
    _loss_jvp(3, _cross_entropy_grad, _target_grad),
)  # fmt: skip


# nll_loss
def _nll_args(o: LossOptions) -> tuple[Any, ...]:
    return (checks.int64_ignore_index(o.ignore_index), o.reduction, o.nan_policy, o.normalizer)


def _nll_loss(logp, target, weight, opts, want_grad):
    """``(loss, grad)`` of :func:`logmax.torch._ops.nll_loss`; the loss is linear in the
    log-probabilities, so its gradient depends on the target and weight only."""
    return _ops.nll_loss(logp, target, weight, *_nll_args(opts), want_grad)


def _nll_grad(logp, target, weight, opts) -> Tensor:
    return _ops.nll_loss(logp, target, weight, *_nll_args(opts), True)[1]


def _nll_grad_graph(logp, target, weight, opts) -> Tensor | None:
    # -w_c t_c times the row's scale: differentiable in a soft target that requires grad
    if not (target.is_floating_point() and target.requires_grad):
        return None
    c, _, _, scale = _row_factors(logp, target, weight, opts)
    return -c * scale


def _nll_target_grad(logp, target, weight, opts) -> Tensor:
    _, _, _, scale = _row_factors(logp, target.detach(), weight, opts)
    lp = torch.where(logp == -INF, 0.0, logp)  # 0 * log 0 = 0: no pull on a zero target
    w = _class_weights(weight, logp)
    return (-w * torch.where(target == 0, lp, logp) * scale).to(target.dtype)


NLLLoss, NLLLossEager = _function(
    "NLLLoss", _nll_loss, _loss_context,
    _loss_backward(_nll_grad_graph, _nll_grad, _nll_target_grad),
    _loss_jvp(2, _nll_grad, _nll_target_grad),
)  # fmt: skip
