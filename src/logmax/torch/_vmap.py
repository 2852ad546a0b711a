"""vmap rules of the ``logmax::`` operators (``torch.func.vmap`` and the transforms built on it).

The row ops work on any leading dims, so a batched input is handled by moving the vmapped dim to
the front and shifting ``dim``. The losses reduce over the batch, so a vmapped loss is computed
once per slice (each slice has its own mean, as a per-sample loss should).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from logmax.torch import _ops


def _front(x: torch.Tensor | None, bdim: int | None, size: int) -> torch.Tensor | None:
    """``x`` with the vmapped dim first (broadcast when ``x`` is not batched)."""
    if x is None:
        return None
    if bdim is None:
        return x.unsqueeze(0).expand(size, *x.shape)
    return x.movedim(bdim, 0)


def _shift(dim: int) -> int:
    return dim + 1 if dim >= 0 else dim


def _rows_rule(op: Callable) -> Callable:
    def rule(info, in_dims, x, dim, temperature, nan_policy):
        return op(_front(x, in_dims[0], info.batch_size), _shift(dim), temperature, nan_policy), 0

    return rule


def _vjp_rule(op: Callable) -> Callable:
    def rule(info, in_dims, y, grad, dim, temperature):
        y, grad = _front(y, in_dims[0], info.batch_size), _front(grad, in_dims[1], info.batch_size)
        return op(y, grad, _shift(dim), temperature), 0

    return rule


def _logsumexp_rule(info, in_dims, x, dim, keepdim, temperature, nan_policy):
    x = _front(x, in_dims[0], info.batch_size)
    return _ops.logsumexp(x, [_shift(d) for d in dim], keepdim, temperature, nan_policy), 0


def _logsumexp_backward_rule(info, in_dims, x, grad, dim, keepdim, temperature):
    x, grad = _front(x, in_dims[0], info.batch_size), _front(grad, in_dims[1], info.batch_size)
    return _ops.logsumexp_backward(x, grad, [_shift(d) for d in dim], keepdim, temperature), 0


def _per_slice(op: Callable, n_tensors: int) -> Callable:
    """A rule that runs ``op`` on each slice of the vmapped dim and stacks the results."""

    def rule(info, in_dims, *args):
        tensors = [
            _front(a, d, info.batch_size) if isinstance(a, torch.Tensor) else a
            for a, d in zip(args[:n_tensors], in_dims[:n_tensors], strict=True)
        ]
        outs = [
            op(*(t[i] if isinstance(t, torch.Tensor) else t for t in tensors), *args[n_tensors:])
            for i in range(info.batch_size)
        ]
        stacked = tuple(torch.stack(parts) for parts in zip(*outs, strict=True))
        return stacked, tuple(0 for _ in stacked)

    return rule


_ops.softmax.register_vmap(_rows_rule(_ops.softmax))
_ops.log_softmax.register_vmap(_rows_rule(_ops.log_softmax))
_ops.softmax_backward.register_vmap(_vjp_rule(_ops.softmax_backward))
_ops.log_softmax_backward.register_vmap(_vjp_rule(_ops.log_softmax_backward))
_ops.logsumexp.register_vmap(_logsumexp_rule)
_ops.logsumexp_backward.register_vmap(_logsumexp_backward_rule)
_ops.cross_entropy.register_vmap(_per_slice(_ops.cross_entropy, 3))
_ops.nll_loss.register_vmap(_per_slice(_ops.nll_loss, 3))
