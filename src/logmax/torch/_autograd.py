"""``torch.autograd.Function``s: forward and backward from the contract, on any device.

Each Function picks its path from the tensor's device: CPU tensors go through the NumPy API and
its Numba kernels (:mod:`._numpy_bridge`), other devices through plain torch operations
(:mod:`._pure_torch`). Both paths share signatures, so a Function never knows which it runs.

The losses compute their gradient in the forward sweep (for ``grad_output = 1``) whenever the
logits need one, and ``backward`` only scales it: one pass over the logits instead of two.
Ignored rows and masked entries get a gradient of exactly 0, a fully masked row too, never NaN.
Second derivatives are not provided (``once_differentiable``).
"""

from __future__ import annotations

from types import ModuleType

import torch
from torch.autograd.function import once_differentiable

from logmax.torch import _numpy_bridge, _pure_torch

# Tests set this to run the pure-torch path on CPU tensors.
FORCE_PURE_TORCH = False


def path_for(t: torch.Tensor) -> ModuleType:
    """The implementation for ``t``'s device: the NumPy API on CPU, plain torch elsewhere."""
    if t.device.type == "cpu" and not FORCE_PURE_TORCH:
        return _numpy_bridge
    return _pure_torch


def _is_one(g: torch.Tensor) -> bool:
    # Only looked at on the CPU, where reading the value costs no device synchronisation.
    return g.device.type == "cpu" and g.numel() == 1 and bool(g.reshape(()) == 1)


def _scale_saved_grad(grad: torch.Tensor, g: torch.Tensor, reduction: str) -> torch.Tensor:
    """The saved gradient (for grad_output = 1) times the actual grad_output ``g``."""
    if reduction == "none":
        return grad * g.unsqueeze(1).to(grad.dtype)
    if _is_one(g):
        return grad
    return grad * g.to(grad.dtype)


def _normalising_function(op: str, name: str, doc: str) -> type[torch.autograd.Function]:
    """The Function for ``op`` (softmax or log_softmax): forward keeps the output ``y``, backward
    is the op's vector-Jacobian product from ``y``. Named ``name`` (the guard reads
    ``grad_fn`` names)."""

    def forward(ctx, x, dim, temperature, nan_policy):
        y = getattr(path_for(x), op)(x, dim, temperature=temperature, nan_policy=nan_policy)
        ctx.save_for_backward(y)
        ctx.dim, ctx.temperature = dim, temperature
        return y

    @once_differentiable
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        gx = getattr(path_for(y), op + "_vjp")(y, g, ctx.dim, temperature=ctx.temperature)
        return gx, None, None, None

    body = {"__doc__": doc, "forward": staticmethod(forward), "backward": staticmethod(backward)}
    return type(name, (torch.autograd.Function,), body)


SoftmaxFunction = _normalising_function(
    "softmax", "SoftmaxFunction", "y = softmax(x / T) along ``dim``; backward y (g - sum(g y)) / T."
)
LogSoftmaxFunction = _normalising_function(
    "log_softmax",
    "LogSoftmaxFunction",
    "y = log_softmax(x / T) along ``dim``; backward (g - exp(y) sum(g)) / T, 0 where masked.",
)


class LogSumExpFunction(torch.autograd.Function):
    """lse = logsumexp(x / T) over ``dim``; backward g softmax(x / T) / T."""

    @staticmethod
    def forward(ctx, x, dim, keepdim, temperature, nan_policy):
        out = path_for(x).logsumexp(x, dim, keepdim, temperature=temperature, nan_policy=nan_policy)
        ctx.save_for_backward(x)
        ctx.dim, ctx.keepdim, ctx.temperature = dim, keepdim, temperature
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        gx = path_for(x).logsumexp_vjp(x, g, ctx.dim, ctx.keepdim, temperature=ctx.temperature)
        return gx, None, None, None, None


class CrossEntropyFunction(torch.autograd.Function):
    """Cross-entropy of logits (N, C, d1, ..., dk) with class dim 1; returns (loss, lse).

    ``lse`` (each row's logsumexp) carries no gradient. Soft targets that require grad get
    :math:`-(1-\\varepsilon)\\, w_c \\log p_c` times the row's scale.
    """

    @staticmethod
    def forward(
        ctx, x, target, weight, ignore_index, reduction, label_smoothing,
        temperature, softcap, z_loss, nan_policy,
    ):  # fmt: skip
        path = path_for(x)
        loss, grad, lse = path.cross_entropy_with_grad(
            x, target, weight, ignore_index, reduction, label_smoothing,
            dim=1, temperature=temperature, softcap=softcap, z_loss=z_loss,
            nan_policy=nan_policy, want_grad=ctx.needs_input_grad[0],
        )  # fmt: skip
        ctx.mark_non_differentiable(lse)
        ctx.reduction = reduction
        ctx.options = (label_smoothing, temperature, softcap)
        if ctx.needs_input_grad[1]:
            ctx.save_for_backward(grad, x, weight)
        else:
            ctx.save_for_backward(grad)
        return loss, lse

    @staticmethod
    @once_differentiable
    def backward(ctx, g_loss, g_lse):
        saved = ctx.saved_tensors
        gx = gt = None
        if ctx.needs_input_grad[0]:
            gx = _scale_saved_grad(saved[0], g_loss, ctx.reduction)
        if ctx.needs_input_grad[1]:
            eps, temperature, softcap = ctx.options
            logp = _log_probabilities(saved[1], temperature, softcap)
            gt = _target_grad(logp, saved[2], g_loss, ctx.reduction, 1.0 - eps)
        return gx, gt, None, None, None, None, None, None, None, None


def _log_probabilities(x, temperature, softcap):
    """log_softmax(softcap(x) / T) along dim 1, for the soft targets' gradient."""
    z = x
    if softcap is not None:
        z = _pure_torch.apply_softcap(x.to(_pure_torch.compute_dtype(x)), softcap)
    logp = path_for(z).log_softmax(z, 1, temperature=temperature, nan_policy="propagate")
    return logp.to(x.dtype)


def _target_grad(logp, weight, g, reduction, factor=1.0):
    r""":math:`\partial \ell / \partial t_c = -\text{factor}\, w_c \log p_c`, times the mean's
    1/rows and grad_output (soft targets: the mean divides by the row count)."""
    gt = -factor * logp
    if weight is not None:
        gt = gt * weight.to(gt.dtype).reshape((-1,) + (1,) * (logp.ndim - 2))
    if reduction == "none":
        return gt * g.unsqueeze(1).to(gt.dtype)
    if reduction == "mean":
        rows = logp.numel() // max(logp.shape[1], 1)
        gt = gt / rows if rows else gt
    return gt * g.to(gt.dtype)


class NLLLossFunction(torch.autograd.Function):
    """Negative log-likelihood of log-probabilities (N, C, d1, ..., dk), class dim 1."""

    @staticmethod
    def forward(ctx, logp, target, weight, ignore_index, reduction, nan_policy):
        loss, grad = path_for(logp).nll_loss_with_grad(
            logp, target, weight, ignore_index, reduction,
            dim=1, nan_policy=nan_policy, want_grad=ctx.needs_input_grad[0],
        )  # fmt: skip
        ctx.reduction = reduction
        if ctx.needs_input_grad[1]:
            ctx.save_for_backward(grad, logp, weight)
        else:
            ctx.save_for_backward(grad)
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        saved = ctx.saved_tensors
        gx = gt = None
        if ctx.needs_input_grad[0]:
            gx = _scale_saved_grad(saved[0], g, ctx.reduction)
        if ctx.needs_input_grad[1]:
            gt = _target_grad(saved[1], saved[2], g, ctx.reduction)
        return gx, gt, None, None, None, None
