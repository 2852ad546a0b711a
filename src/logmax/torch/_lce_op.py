r"""The ``logmax::linear_cross_entropy`` operators (``torch.library.custom_op``).

``logmax::linear_cross_entropy`` computes the loss (reduced), each row's logsumexp and -- when
asked -- the gradients of ``input``, ``linear_weight`` and ``linear_bias`` for a unit upstream
gradient, in one sweep (:mod:`logmax.torch._lce_engine`). ``logmax::linear_cross_entropy_backward``
computes the gradients for any upstream gradients of the loss and of the logsumexp (a second
sweep). Both are opaque to ``torch.compile`` and ``torch.export`` (one node each, with fake
implementations for meta and fake tensors); the checks that read values (labels in range, finite
class weights) and the options' validation run here, at run time.

Shapes: ``input (N, D)``, ``linear_weight (C, d1, ..., dK, D)``, ``target (B..., d1, ..., dK)``
with ``prod(B) = N`` (the user's batch shape, so that a bad label is named where it is),
``linear_bias (C, d1, ..., dK)``; each of the ``N P`` positions (``P = d1 ... dK``) is a row whose
logits are ``input[n] . linear_weight[:, d]``. Loss ``()`` or ``target``'s shape, logsumexp
``target``'s shape (empty unless asked), gradients of their inputs' shapes (empty when not
asked).

Autograd is not registered on them: :class:`logmax.torch.linear_cross_entropy` wraps them in an
``autograd.Function``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.library import custom_op

from logmax._core import checks
from logmax._core.options import LossOptions
from logmax.kernels import array
from logmax.kernels import torch_backend as tb
from logmax.torch import _lce_engine as engine
from logmax.torch import _lce_kernels as kern
from logmax.torch._ops import check_labels


def check_class_weight(weight: Tensor | None, n_classes: int) -> None:
    """One finite weight per class (the core's messages)."""
    if weight is not None:
        checks.check_weight(weight.detach().to(torch.float64).cpu().numpy(), n_classes)


@dataclass(frozen=True)
class Problem:
    """The op's arguments, validated, in the layout of the sweep (positions ``p`` major)."""

    h: Tensor  # (N, D)
    W: Tensor  # (C, P, D)
    b: Tensor | None  # (C, P)
    opts: LossOptions
    lr: array.LossRows  # the N P rows, position-major (row p N + n)
    n: int
    positions: int
    out_shape: tuple[int, ...]  # target's shape: (..., d1, ..., dK), N = the batch's size
    chunking: tuple[int | None, int | None, int | None]
    return_lse: bool


def _problem(input, linear_weight, target, linear_bias, weight, reduction, ignore_index,
             label_smoothing, softcap, z_loss, temperature, return_lse, chunk_size,
             vocab_chunk_size, memory_budget) -> Problem:  # fmt: skip
    opts = LossOptions.make(ignore_index, reduction, label_smoothing, temperature, softcap, z_loss)
    n_cls, dim = linear_weight.shape[0], linear_weight.shape[-1]
    n = input.shape[0]
    positions = math.prod(linear_weight.shape[1:-1])
    counted = check_labels(target, n_cls, opts.ignore_index)
    check_class_weight(weight, n_cls)
    ops = tb.ops_for(input)
    labels = torch.where(counted, target.to(torch.int64), -1)  # only now: every label is known
    labels = labels.reshape(n, positions).t().reshape(-1)
    like = torch.empty(n * positions, 0, dtype=ops.work_dtype, device=input.device)
    w_cls = array.mean_weights(ops, ops.class_weights(weight, n_cls, like), False, opts)
    lr = array.loss_rows(ops, labels, False, w_cls, opts.with_(ignore_index=-1), like, n_cls)
    W = linear_weight.reshape(n_cls, positions, dim)
    b = None if linear_bias is None else linear_bias.reshape(n_cls, positions)
    return Problem(input, W, b, opts, lr, n, positions, tuple(target.shape),
                   (chunk_size, vocab_chunk_size, memory_budget), return_lse)  # fmt: skip


def _per_row(p: Problem, g: Tensor | None, ops) -> Tensor | None:
    """A gradient of the batch shape, position-major, in the work dtype."""
    if g is None:
        return None
    return g.to(ops.work_dtype).reshape(p.n, p.positions).t().reshape(-1)


def _solve(p: Problem, grad_loss: Tensor | float | None, grad_lse: Tensor | None,
           grads: Sequence[bool]):  # fmt: skip
    """Loss rows and logsumexp (position-major, work dtype) and the gradients ``grads`` asks for
    (logits dtype; None for the others) for the upstream gradients (None: none)."""
    ops = tb.ops_for(p.h)
    lr, opts, n, device = p.lr, p.opts, p.n, p.h.device
    total = n * p.positions
    want = any(grads) and (grad_loss is not None or grad_lse is not None)
    scale = None
    if want and grad_loss is not None:
        per_row = isinstance(grad_loss, Tensor) and grad_loss.ndim > 0
        g = _per_row(p, grad_loss, ops) if per_row else grad_loss
        scale = array.row_scale(ops, g, lr.den, lr.counted, opts, total)
    lse_grad = _per_row(p, grad_lse, ops) if want else None
    need = tuple(bool(want and g) for g in grads)
    rows = torch.zeros(total, dtype=ops.work_dtype, device=device)
    lse = torch.full((total,), math.nan, dtype=ops.work_dtype, device=device)
    dh = None
    dWs, dbs = [], []
    for pos in range(p.positions):
        sl = slice(pos * n, (pos + 1) * n)
        lr_p = kern.loss_rows_slice(lr, sl.start, sl.stop)
        keep = None  # rows that take part: the counted ones (all of them for their lse)
        if not p.return_lse:
            keep = lr_p.counted.nonzero()[:, 0]
            keep = None if keep.shape[0] == n else keep
        take = functools.partial(_take, keep=keep)
        idx = torch.arange(n, device=device) if keep is None else keep
        h_k = take(p.h)
        W_p = p.W[:, pos, :]
        b_p = None if p.b is None else p.b[:, pos]
        sw = engine.sweep(
            h_k, W_p, b_p, lr_p if keep is None else kern.loss_rows_take(lr_p, keep),
            None if scale is None else take(scale[sl]),
            None if lse_grad is None else take(lse_grad[sl]), opts, p.chunking, need,
        )  # fmt: skip
        rows[sl.start + idx] = sw.loss
        lse_p = sw.lse
        if p.return_lse and bool(sw.cancels.any()):
            lse_p = engine.refine_lse(h_k, W_p, b_p, sw.cancels.nonzero()[:, 0], lse_p, opts,
                                      tb.NEED[p.h.dtype])  # fmt: skip
        lse[sl.start + idx] = lse_p
        if sw.dh is not None:
            if dh is None and keep is None:
                dh = sw.dh  # (no second buffer of h's size)
            else:
                if dh is None:
                    dh = torch.zeros(p.h.shape, dtype=sw.dh.dtype, device=device)
                dh.index_add_(0, idx, sw.dh)
        dWs.append(sw.dW)
        dbs.append(sw.db)
    dW = None if dWs[0] is None else dWs[0] if p.positions == 1 else torch.stack(dWs, 1)
    db = None if dbs[0] is None else dbs[0] if p.positions == 1 else torch.stack(dbs, 1)
    return rows, lse, dh, dW, db


def _take(v: Tensor, keep: Tensor | None) -> Tensor:
    return v if keep is None else v.index_select(0, keep)


def _batch(p: Problem, v: Tensor) -> Tensor:
    """Position-major rows back to the batch shape ``(N, d1, ..., dK)``."""
    return v.reshape(p.positions, p.n).t().reshape(p.out_shape)


def _out(v: Tensor | None, like: Tensor | None, fallback: Tensor) -> Tensor:
    """An output in ``like``'s dtype and shape (empty when there is none)."""
    if v is None or like is None:
        return fallback.new_empty(0)
    return v.to(like.dtype).reshape(like.shape).contiguous()


def _fake_grads(input, linear_weight, linear_bias, grads):
    dh = torch.empty_like(input) if grads[0] else input.new_empty(0)
    dW = torch.empty_like(linear_weight) if grads[1] else input.new_empty(0)
    with_b = grads[2] and linear_bias is not None
    db = torch.empty_like(linear_bias) if with_b else input.new_empty(0)
    return dh, dW, db


@custom_op("logmax::linear_cross_entropy", mutates_args=())
def linear_cross_entropy(
    input: Tensor,
    linear_weight: Tensor,
    target: Tensor,
    linear_bias: Tensor | None,
    weight: Tensor | None,
    reduction: str,
    ignore_index: int,
    label_smoothing: float,
    softcap: float | None,
    z_loss: float,
    temperature: float,
    return_lse: bool,
    chunk_size: int | None,
    vocab_chunk_size: int | None,
    memory_budget: int | None,
    grads: Sequence[bool],
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """``(loss, lse, d input, d linear_weight, d linear_bias)``; the gradients are those of the
    loss for a unit upstream gradient, for the inputs ``grads`` names (empty for the others)."""
    p = _problem(input, linear_weight, target, linear_bias, weight, reduction, ignore_index,
                 label_smoothing, softcap, z_loss, temperature, return_lse, chunk_size,
                 vocab_chunk_size, memory_budget)  # fmt: skip
    rows, lse, dh, dW, db = _solve(p, 1.0, None, grads)
    loss = array.reduce_rows(tb.ops_for(input), rows, p.lr.den, p.opts)
    loss = _batch(p, loss) if reduction == "none" else loss
    lse = _batch(p, lse).to(input.dtype) if return_lse else input.new_empty(0)
    return (loss.to(input.dtype).contiguous(), lse, _out(dh, input, input),
            _out(dW, linear_weight, input), _out(db, linear_bias, input))  # fmt: skip


@linear_cross_entropy.register_fake
def _(input, linear_weight, target, linear_bias, weight, reduction, ignore_index, label_smoothing,
      softcap, z_loss, temperature, return_lse, chunk_size, vocab_chunk_size, memory_budget,
      grads):  # fmt: skip
    loss = input.new_empty(target.shape if reduction == "none" else ())
    lse = input.new_empty(target.shape if return_lse else (0,))
    return (loss, lse, *_fake_grads(input, linear_weight, linear_bias, grads))


@custom_op("logmax::linear_cross_entropy_backward", mutates_args=())
def linear_cross_entropy_backward(
    input: Tensor,
    linear_weight: Tensor,
    target: Tensor,
    linear_bias: Tensor | None,
    weight: Tensor | None,
    grad_loss: Tensor | None,
    grad_lse: Tensor | None,
    reduction: str,
    ignore_index: int,
    label_smoothing: float,
    softcap: float | None,
    z_loss: float,
    temperature: float,
    chunk_size: int | None,
    vocab_chunk_size: int | None,
    memory_budget: int | None,
    grads: Sequence[bool],
) -> tuple[Tensor, Tensor, Tensor]:
    """The gradients of ``input``, ``linear_weight`` and ``linear_bias`` (those ``grads`` names)
    for the upstream gradients of the loss (its shape) and of the logsumexp (the batch shape)."""
    p = _problem(input, linear_weight, target, linear_bias, weight, reduction, ignore_index,
                 label_smoothing, softcap, z_loss, temperature, grad_lse is not None, chunk_size,
                 vocab_chunk_size, memory_budget)  # fmt: skip
    _, _, dh, dW, db = _solve(p, grad_loss, grad_lse, grads)
    return _out(dh, input, input), _out(dW, linear_weight, input), _out(db, linear_bias, input)


@linear_cross_entropy_backward.register_fake
def _(input, linear_weight, target, linear_bias, weight, grad_loss, grad_lse, reduction,
      ignore_index, label_smoothing, softcap, z_loss, temperature, chunk_size, vocab_chunk_size,
      memory_budget, grads):  # fmt: skip
    return _fake_grads(input, linear_weight, linear_bias, grads)


__all__ = ["check_labels", "linear_cross_entropy", "linear_cross_entropy_backward"]
