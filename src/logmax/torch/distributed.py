r"""Vocab-parallel softmax and cross-entropy over ``torch.distributed``: exact, one gather.

When the LM head is sharded over the vocabulary (tensor parallelism), each rank holds the logits
of its slice ``[start, stop)`` of the classes, for the same rows (tokens); the class dim is the
last. Each rank reduces its slice of every row to the row statistics of
:mod:`logmax._core.rowstats` (maximum and where it is, :math:`s = \sum_{i \ne k} e^{d_i}` in
double-double, the target logit, the dense coefficients' sums of label smoothing and soft targets),
packs them into one float64 tensor and does **one** ``all_gather``; every rank merges the slices'
statistics in rank order (:func:`logmax._core.blocks.merge`) and finishes the loss as one process
would on the whole row (:func:`logmax.kernels.array.ce_finish`). The backward pass needs no
communication: each rank's gradient is its slice's, from the merged statistics kept by the forward
pass (:func:`logmax.kernels.array.ce_block_grad`).

Collectives per call (forward / backward):

- :func:`vocab_parallel_cross_entropy`: 2 all_gathers (1 with ``vocab_range`` and ``weight``,
  which tell the vocabulary size) / none;
- :func:`vocab_parallel_linear_cross_entropy`: the same / 1 all_reduce (the input's gradient);
- :func:`vocab_parallel_logsumexp`: 2 all_gathers (1 with ``vocab_range``) / none;
- :func:`vocab_parallel_log_softmax`: 2 all_gathers (1 with ``vocab_range``) / 1 all_gather
  (each row's sum of the upstream gradient).

The first gather (four integers per rank) finds the slices when ``vocab_range`` is not given
(uneven splits need no argument) and the vocabulary size when nothing else tells it; the second
carries the statistics (about 6 to 15 float64 per row). A returned logsumexp whose value cancels
beyond what its statistics carry (a row of log-probabilities: lse near 0) costs one more gather
of those rows only, and beyond double-double one of the rows themselves; every rank decides that
on the same merged statistics.

Guarantees: the loss, logsumexp and log-probabilities are those of one process on the whole rows,
within 1 ULP of the exact value in float16, bfloat16 and float32 and 2 ULP in float64, and so are
the gradients (to the precision one process has);
**bit-identical on every rank** and deterministic (the merge order is fixed); every option exact
across slices: label smoothing with the *global* vocabulary size :math:`\varepsilon / V`, z-loss,
class weights, soft targets (each rank passes its slice of the probabilities), ``ignore_index``,
softcap, temperature, every reduction and ``normalizer``. Collectives are in int64 and float64
only (gloo has no bfloat16 all-reduce).

References:
    Shoeybi et al., "Megatron-LM" (2019): vocab-parallel cross-entropy with three all-reduces.
    Milakov and Gimelshein, "Online normalizer calculation for softmax" (2018): merging running
    maxima and sums. Blanchard, Higham and Higham (2021): the log1p forms.

See also:
    :func:`logmax.torch.cross_entropy` (one process), :mod:`logmax._core.rowstats` (the algebra).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.distributed as dist
from torch._compile import _disable_dynamo
from torch.autograd.function import once_differentiable

from logmax._core import blocks, checks
from logmax._core.options import LossOptions
from logmax.kernels import array
from logmax.kernels.torch_backend import ops_for
from logmax.torch import _distributed_stats as ds

__all__ = [
    "vocab_parallel_cross_entropy",
    "vocab_parallel_linear_cross_entropy",
    "vocab_parallel_log_softmax",
    "vocab_parallel_logsumexp",
]

INF = float("inf")
NAN = float("nan")
MIB = 1 << 20
# The linear variant's workspace per chunk of tokens (logits and their statistics' temporaries).
CHUNK_BUDGET = {"cpu": 64 * MIB}
OTHER_BUDGET = 512 * MIB
BYTES_PER_LOGIT = 160  # double-double temporaries of one logit, with some margin

# torch.compile runs these eagerly, as one call between two graphs: they read values on the host
# (label checks, the slices' layout) and talk to the other ranks.
_eager = _disable_dynamo  # as torch.compiler.disable, without importing dynamo at import time


# ---------------------------------------------------------------------------------------------
# Arguments.
def _check_float(x: Any, name: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"{name} has dtype {x.dtype}; expected a floating point tensor "
            "(float16, bfloat16, float32 or float64)"
        )
    if x.ndim == 0:
        raise ValueError(f"{name} must have the classes (this rank's slice) on its last dim")


def _loss_options(ignore_index, reduction, label_smoothing, temperature, softcap, z_loss,
                  normalizer) -> LossOptions:  # fmt: skip
    opts = LossOptions.make(
        ignore_index, reduction, label_smoothing, temperature, softcap, z_loss, "propagate",
        normalizer,
    )  # fmt: skip
    return opts


def _target(target: Any, batch: tuple[int, ...], n_local: int, device: torch.device,
            soft_ok: bool = True) -> tuple[torch.Tensor, bool]:  # fmt: skip
    """``(target2, soft)``: global class ids ``(rows,)`` or this rank's slice of the class
    probabilities ``(rows, n_local)``."""
    shape = (*batch, n_local)
    expected = f"global class indices of shape {batch} (any integer dtype)"
    if soft_ok:
        expected += f" or this rank's slice of the class probabilities, shape {shape} (floating)"
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"target must be a torch.Tensor, got {type(target).__name__}")
    if target.device != device:
        raise ValueError(f"target is on {target.device} but the logits are on {device}")
    if target.is_floating_point():
        if not soft_ok or tuple(target.shape) != shape:
            hint = ": class indices must be integers, call .long()" if target.shape == batch else ""
            raise ValueError(f"target has shape {tuple(target.shape)} and dtype {target.dtype}"
                             f"{hint}; expected {expected}")  # fmt: skip
        return target.reshape(math.prod(batch), n_local), True
    if target.dtype == torch.bool or target.is_complex():
        raise TypeError(f"target has dtype {target.dtype}; expected {expected}")
    if tuple(target.shape) != batch:
        raise ValueError(f"target has shape {tuple(target.shape)}; expected {expected}")
    return target.reshape(-1), False


def _check_weight(weight: Any, device: torch.device) -> int | None:
    """The vocabulary size the full class weight tells (None without one)."""
    if weight is None:
        return None
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"weight must be a torch.Tensor or None, got {type(weight).__name__}")
    if weight.ndim != 1:
        raise ValueError(
            f"weight has shape {tuple(weight.shape)}; expected the full class weight, shape (V,), "
            "the same on every rank"
        )
    if weight.device != device:
        raise ValueError(f"weight is on {weight.device} but the logits are on {device}")
    return int(weight.shape[0])


def _check_labels(target: torch.Tensor, flat: torch.Tensor, total: int, ignore: int) -> None:
    """The core's ValueError (position, value, V) for a label outside ``[0, V)``."""
    counted = flat != ignore
    if bool((counted & ((flat < 0) | (flat >= total))).any()):
        checks.check_labels(target.detach().cpu().numpy(), total, ignore)


@dataclass(frozen=True)
class _Plan:
    """What the forward and backward passes of one call share besides tensors."""

    lay: ds.Layout
    opts: LossOptions
    soft: bool
    want_lse: bool
    accurate: bool  # statistics with accurate terms (a float64 logsumexp is returned)
    saved: tuple[str, ...]  # the merged statistics' fields kept for the backward pass
    need: int  # bits the returned logsumexp needs (the input's format)


def _plan(ops, x: torch.Tensor, lay: ds.Layout, opts: LossOptions, soft: bool, want_lse: bool):
    need = ops.need_bits(x)
    dense = soft or opts.label_smoothing > 0.0
    saved = ds.BASE + (() if soft else ds.TARGET) + (ds.DENSE if dense else ())
    # a float64 logsumexp needs every bit of the first pass's terms: make them accurate at once
    accurate = want_lse and ops.profile_dd and need == ops.term_bits
    return _Plan(lay, opts, soft, want_lse, accurate, saved, need)


def _stats_tensors(st: blocks.Stats, names: tuple[str, ...]) -> tuple[torch.Tensor, ...]:
    return tuple(getattr(st, n) for n in names)


def _stats_of(names: tuple[str, ...], values: Any) -> blocks.Stats:
    return blocks.Stats(**dict(zip(names, values, strict=True)))


# ---------------------------------------------------------------------------------------------
# Cross-entropy in phases over the slices.
def _loss_rows(ops, t2, soft: bool, w_cls, opts: LossOptions, like, lay: ds.Layout):
    """:func:`array.loss_rows` for this rank. Hard labels: global ids and the full class weight,
    so the label-smoothing coefficients are a ``(V,)`` vector that the block functions slice at
    ``start``. Soft targets: the coefficients are this rank's ``(rows, V_local)`` slice (the
    target slice times the weight's slice), with the *global* V in :math:`\\varepsilon / V`."""
    if soft:
        return array.loss_rows(ops, t2, True, w_cls[lay.start : lay.stop], opts, like, lay.total)
    return array.loss_rows(ops, t2, False, w_cls, opts, like, lay.total)


def _weights(ops, weight, lay: ds.Layout, soft: bool, opts: LossOptions, like):
    return array.mean_weights(ops, ops.class_weights(weight, lay.total, like), soft, opts)


def _slice_stats(ops, u_hi, u_lo, lr, plan: _Plan, rows: slice | None = None):
    """Statistics of this rank's slice of the rows ``rows`` (all by default)."""
    lay, opts = plan.lay, plan.opts
    if plan.soft:  # the coefficients are this slice's own: no slicing at ``start``
        coef = lr.coef if rows is None else lr.coef[rows]
        target = None
    else:
        coef = array.coef_block(lr, lay.start, lay.stop)
        target = lr.y if rows is None else lr.y[rows]
    return ds.local_stats(ops, u_hi, u_lo, opts.temperature, lay.start, target=target,
                          coef=coef, accurate=plan.accurate)  # fmt: skip


def _finish(ops, plan: _Plan, st, tiny, lr, u_of):
    """Gather, merge and finish: ``(loss, lse, merged stats)``, all in the work dtype.

    ``st``/``tiny``: this rank's statistics of every row; ``u_of(idx)``: this rank's softcapped
    slice of the rows ``idx`` (for the logsumexp rows that cancel)."""
    opts, t = plan.opts, plan.opts.temperature
    alg = ops.alg
    names = ds.field_names(not plan.soft, lr.coef is not None, tiny is not None)
    lay, parts = ds.gather(ops, plan.lay, st, tiny, names)
    merged = ds.merge_all(ops, parts, t)
    if plan.soft:  # no hard label: its coefficient is 0 and these are never read
        zero = 0.0 * merged.s_hi
        merged = replace(merged, uy_hi=zero, uy_lo=zero, has_y=merged.bad & False)
    fin = array.ce_finish(ops, merged, lr, opts)
    rows = fin.loss
    tm = ds.merged_tiny(ops, parts, merged, t)
    if tm is not None and lr.coef is None and opts.z_loss == 0.0:
        # a confident row's loss c_y L below the normal range (as array.cross_entropy)
        small = lr.hard * ds.descale(ops, *tm)
        use = (small == small) & (lr.y == merged.k) & lr.counted & ~merged.bad
        rows = alg.where(use, small, rows)
    loss = array.reduce_rows(ops, rows, lr.den, opts)
    if plan.want_lse:
        lse = ds.lse_rows(ops, lay, merged, tm, u_of, t, plan.need, plan.accurate)
    else:
        lse = fin.lse_hi + fin.lse_lo
    return loss, lse, merged


def _block_grad(ops, u_hi, u_lo, dcap, merged, lr, scale, plan: _Plan):
    """This slice's gradient from the merged statistics (no communication)."""
    fin = array.ce_finish(ops, merged, lr, plan.opts)
    if plan.soft:  # local coefficients: local columns, the maximum's column made local too
        local = replace(merged, k=merged.k - plan.lay.start)
        return array.ce_block_grad(ops, u_hi, u_lo, dcap, local, fin, lr, scale, plan.opts, 0)
    return array.ce_block_grad(ops, u_hi, u_lo, dcap, merged, fin, lr, scale, plan.opts,
                               plan.lay.start)  # fmt: skip


def _target_grad(ops, u_hi, u_lo, merged, w_local, scale, plan: _Plan):
    r"""Soft targets' gradient :math:`-(1-\varepsilon) w_c \log p_c` times the row's scale."""
    alg, col, t = ops.alg, ops.col, plan.opts.temperature
    sh, sl = alg.finite_shift(merged.m_hi, merged.m_lo)
    d_hi, d_lo = alg.shift(u_hi, u_lo, col(sh), col(sl), t)
    l_hi, l_lo = alg.log1p_s(merged.s_hi, merged.s_lo)
    logp = alg.log_softmax_entry(d_hi, d_lo, col(l_hi), col(l_lo))
    return -(1.0 - plan.opts.label_smoothing) * w_local * logp * col(scale)


class _CrossEntropy(torch.autograd.Function):
    """Vocab-parallel cross-entropy of ``x2`` (rows, V_local); outputs ``(loss, lse, *merged
    statistics)``, the statistics for the backward pass only."""

    @staticmethod
    def forward(x2, t2, weight, plan: _Plan):
        ops = ops_for(x2)
        w_cls = _weights(ops, weight, plan.lay, plan.soft, plan.opts, x2)
        lr = _loss_rows(ops, t2, plan.soft, w_cls, plan.opts, x2, plan.lay)
        u_hi, u_lo, _ = array.transform(ops, x2, plan.opts.softcap)
        st, tiny = _slice_stats(ops, u_hi, u_lo, lr, plan)

        def u_of(idx):
            return ops.select_rows(u_hi, idx), ops.select_rows(u_lo, idx)

        loss, lse, merged = _finish(ops, plan, st, tiny, lr, u_of)
        out = (ops.to_output(loss, x2), ops.to_output(lse, x2))
        return out + _stats_tensors(merged, plan.saved)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x2, t2, weight, plan = inputs
        ctx.plan = plan
        ctx.mark_non_differentiable(*output[1:])
        ctx.save_for_backward(x2, t2, weight, *output[2:])

    @staticmethod
    @once_differentiable
    def backward(ctx, g_loss, *_):
        x2, t2, weight, *vals = ctx.saved_tensors
        plan = ctx.plan
        ops = ops_for(x2)
        merged = _stats_of(plan.saved, vals)
        if plan.soft:
            zero = 0.0 * merged.s_hi
            merged = replace(merged, uy_hi=zero, uy_lo=zero, has_y=merged.bad & False)
        w_cls = _weights(ops, weight, plan.lay, plan.soft, plan.opts, x2)
        lr = _loss_rows(ops, t2, plan.soft, w_cls, plan.opts, x2, plan.lay)
        scale = array.row_scale(ops, g_loss, lr.den, lr.counted, plan.opts, x2.shape[0])
        u_hi, u_lo, dcap = array.transform(ops, x2, plan.opts.softcap)
        gx = gt = None
        if ctx.needs_input_grad[0]:
            gx = ops.to_output(_block_grad(ops, u_hi, u_lo, dcap, merged, lr, scale, plan), x2)
        if ctx.needs_input_grad[1]:
            w_local = w_cls[plan.lay.start : plan.lay.stop]
            gt = _target_grad(ops, u_hi, u_lo, merged, w_local, scale, plan).to(t2.dtype)
        return gx, gt, None, None


def _cross_entropy(input, target, group, vocab_range, weight, opts: LossOptions, return_lse,
                   total_hint=None):  # fmt: skip
    return_lse = checks.check_flag(return_lse, "return_lse")
    _check_float(input, "input")
    batch, n_local = tuple(input.shape[:-1]), int(input.shape[-1])
    t2, soft = _target(target, batch, n_local, input.device)
    w_total = _check_weight(weight, input.device)
    hint = w_total if w_total is not None else total_hint
    x2 = input.reshape(math.prod(batch), n_local)
    lay = ds.layout(group, n_local, vocab_range, int(x2.shape[0]), input.device, hint, True)
    if w_total is not None and lay.total != w_total:
        raise ValueError(f"weight has {w_total} classes; the slices cover {lay.total}")
    if not soft:
        _check_labels(target, t2, lay.total, opts.ignore_index)
    ops = ops_for(input)
    plan = _plan(ops, input, lay, opts, soft, return_lse)
    loss, lse, *_ = _CrossEntropy.apply(x2, t2, weight, plan)
    lse = lse.reshape(batch)
    if opts.reduction == "none":
        loss = loss.reshape(batch)
    return (loss, lse) if return_lse else loss


@_eager
def vocab_parallel_cross_entropy(
    input: torch.Tensor,
    target: torch.Tensor,
    *,
    group: Any = None,
    vocab_range: tuple[int, int] | None = None,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    temperature: float = 1.0,
    softcap: float | None = None,
    z_loss: float = 0.0,
    return_lse: bool = False,
    normalizer: float | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    r"""Cross-entropy of logits sharded over the vocabulary; the loss is replicated on every rank.

    With :math:`z = \operatorname{softcap}(x)/T` over the whole vocabulary of :math:`V` classes and
    :math:`-\log p_c = (m - z_c) + \operatorname{log1p}(s)`, a row's loss is

    .. math::
        (1-\varepsilon)\, w_y (-\log p_y) + \tfrac{\varepsilon}{V} \sum_c w_c (-\log p_c)
        + \zeta\, w_y\, \mathrm{lse}(z)^2

    for a class index :math:`y`, and :math:`\sum_c w_c t'_c (-\log p_c) + \zeta\,\mathrm{lse}^2`
    with :math:`t' = (1-\varepsilon) t + \varepsilon/V` for class probabilities :math:`t` -- the
    same as :func:`logmax.torch.cross_entropy` on the gathered logits, to the bit on every rank.

    Args:
        input: this rank's slice of the logits, shape ``(..., V_local)`` (class dim last, the LM
            head's layout); float16, bfloat16, float32 or float64. Every rank holds the same rows.
        target: global class indices of shape ``input.shape[:-1]`` (any integer dtype; the same on
            every rank), or this rank's slice of the class probabilities, ``input``'s shape.
        group: the process group over which the vocabulary is sharded (None: the default group).
        vocab_range: ``(start, stop)``, this rank's slice of the classes. By default the slices
            are contiguous in rank order, each as long as that rank's class dim (uneven splits
            need no argument).
        weight: the full class weight, shape ``(V,)``, the same on every rank.
        ignore_index: class index whose rows are skipped: loss 0, gradient exactly 0.
        reduction: ``'none'``, ``'sum'`` or ``'mean'`` (torch's weighted mean
            :math:`\sum w_{y_i}\ell_i / \sum w_{y_i}`; probabilities: divided by the row count).
            A mean over zero counted rows is 0.
        label_smoothing: :math:`\varepsilon` in ``[0, 1]``, spread over the *global* vocabulary.
        temperature: :math:`T`, divides the logits (after the softcap).
        softcap: ``c``: the logits become :math:`c \tanh(x/c)` first.
        z_loss: :math:`\zeta`, adds :math:`\zeta\, w_y\,\mathrm{lse}^2` per counted row.
        return_lse: also return each row's logsumexp of :math:`z` over the whole vocabulary
            (replicated, shape ``input.shape[:-1]``, no gradient).
        normalizer: ``reduction='mean'`` divides the summed loss by this count instead of the
            counted rows' weight: the global token count of gradient accumulation (every
            micro-batch and data-parallel rank), so that the summed gradients are those of the
            whole batch.

    Returns:
        The loss (replicated; ``reduction='none'``: one per row), or ``(loss, lse)``. Its
        gradient is this rank's slice of the logits' gradient; the backward pass communicates
        nothing.

    Raises:
        ValueError: a class index outside ``[0, V)`` that is not ``ignore_index`` (naming its
            position, its value and V); slices that do not tile the vocabulary (on every rank).

    Example (two ranks, under ``torchrun --nproc-per-node 2``)::

        import torch, torch.distributed as dist
        from logmax.torch.distributed import vocab_parallel_cross_entropy

        dist.init_process_group("gloo")
        full = torch.tensor([[3.2, 1.3, 0.2, 0.8, 2.0], [1.2, 4.1, 3.8, 0.1, 0.0]])
        local = full[:, :3] if dist.get_rank() == 0 else full[:, 3:]  # uneven: 3 + 2
        vocab_parallel_cross_entropy(local, torch.tensor([0, 4]))  # tensor(2.5846), every rank
    """
    opts = _loss_options(ignore_index, reduction, label_smoothing, temperature, softcap, z_loss,
                         normalizer)  # fmt: skip
    return _cross_entropy(input, target, group, vocab_range, weight, opts, return_lse)


# ---------------------------------------------------------------------------------------------
# logsumexp and log_softmax over the slices.
def _row_stats(ops, x2, lay: ds.Layout, t: float, accurate: bool):
    u_hi, u_lo, _ = array.transform(ops, x2, None)
    st, tiny = ds.local_stats(ops, u_hi, u_lo, t, lay.start, accurate=accurate)
    lay, parts = ds.gather(ops, lay, st, tiny, ds.field_names(False, False, tiny is not None))
    merged = ds.merge_all(ops, parts, t)
    return lay, merged, ds.merged_tiny(ops, parts, merged, t), u_hi, u_lo


_ROW_SAVED = ("m_hi", "m_lo", "s_hi", "s_lo", "bad")


class _LogSumExp(torch.autograd.Function):
    """Replicated logsumexp of the rows of ``x2`` (rows, V_local); backward
    :math:`g\\,p/T` on this slice from the merged statistics (no communication)."""

    @staticmethod
    def forward(x2, lay: ds.Layout, t: float):
        ops = ops_for(x2)
        need = ops.need_bits(x2)
        accurate = ops.profile_dd and need == ops.term_bits  # as _plan
        lay, st, tiny, u_hi, u_lo = _row_stats(ops, x2, lay, t, accurate)

        def u_of(idx):
            return ops.select_rows(u_hi, idx), ops.select_rows(u_lo, idx)

        v = ds.lse_rows(ops, lay, st, tiny, u_of, t, need, accurate)
        return (ops.to_output(v, x2), *(getattr(st, n) for n in _ROW_SAVED))

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.t = inputs[2]
        ctx.mark_non_differentiable(*output[1:])
        ctx.save_for_backward(inputs[0], *output[1:])

    @staticmethod
    @once_differentiable
    def backward(ctx, g, *_):
        x2, m_hi, m_lo, s_hi, s_lo, bad = ctx.saved_tensors
        ops = ops_for(x2)
        alg, col, t = ops.alg, ops.col, ctx.t
        u_hi, u_lo, _ = array.transform(ops, x2, None)
        sh, sl = alg.finite_shift(m_hi, m_lo)
        d_hi, d_lo = alg.shift(u_hi, u_lo, col(sh), col(sl), t)
        inv_hi, inv_lo = alg.inverse(s_hi, s_lo)
        p = alg.softmax_entry(d_hi, d_lo, col(inv_hi), col(inv_lo))
        gg = col(ops.work_rows(g, x2.shape[0]))
        gx = alg.where(col(bad), NAN, p * gg / t)
        return ops.to_output(gx, x2, g), None, None


class _LogSoftmax(torch.autograd.Function):
    """This slice of the rows' log-probabilities; backward :math:`(g - e^{y} \\sum_j g_j)/T`
    with the rows' sums of ``g`` gathered (one all_gather, summed in rank order)."""

    @staticmethod
    def forward(x2, lay: ds.Layout, t: float):
        ops = ops_for(x2)
        alg, col = ops.alg, ops.col
        lay, st, tiny, u_hi, u_lo = _row_stats(ops, x2, lay, t, False)
        l_hi, l_lo = alg.log1p_s(st.s_hi, st.s_lo)
        sh, sl = alg.finite_shift(st.m_hi, st.m_lo)
        d_hi, d_lo = alg.shift(u_hi, u_lo, col(sh), col(sl), t)
        y = alg.log_softmax_entry(d_hi, d_lo, col(l_hi), col(l_lo))
        n = lay.n_local
        if tiny is not None and n:  # the maximum's entry is -L, L tiny (as array.log_softmax)
            small = -ds.descale(ops, *tiny)
            kl = st.k - lay.start
            here = (kl >= 0) & (kl < n) & (small == small)
            kc = kl.clamp(0, n - 1)
            y = ops.put_rows_values(y, kc, alg.where(here, small, ops.take_rows(y, kc)))
        y = alg.where(col(st.bad), NAN, y)
        return ops.to_output(y, x2)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.lay, ctx.t = inputs[1], inputs[2]
        ctx.save_for_backward(output)

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        lay = ctx.lay
        ops = ops_for(y)
        alg = ops.alg
        yy, gg = ops.work(y), ops.work(g)
        masked = yy == -INF
        part_hi, part_lo = blocks.exact_sum(ops, [alg.where(masked, 0.0, gg)])
        got = ds.all_gather(torch.stack([part_hi, part_lo]).double(), lay.group, lay.world)
        tot_hi, tot_lo = got[0, 0].to(ops.work_dtype), got[0, 1].to(ops.work_dtype)
        for r in range(1, lay.world):
            tot_hi, tot_lo = alg.dd_add(tot_hi, tot_lo, got[r, 0].to(ops.work_dtype),
                                        got[r, 1].to(ops.work_dtype))  # fmt: skip
        total = ops.col(tot_hi + tot_lo)
        dx = alg.where(masked, 0.0, gg - alg.exp(yy) * total)
        return ops.to_output(dx / ctx.t, y, g), None, None


def _rows_call(fn, input, group, vocab_range, temperature):
    _check_float(input, "input")
    t = checks.check_temperature(temperature)
    batch, n_local = tuple(input.shape[:-1]), int(input.shape[-1])
    x2 = input.reshape(math.prod(batch), n_local)
    lay = ds.layout(group, n_local, vocab_range, int(x2.shape[0]), input.device, None, False)
    out = fn.apply(x2, lay, t)
    return out, batch


@_eager
def vocab_parallel_logsumexp(
    input: torch.Tensor,
    *,
    group: Any = None,
    vocab_range: tuple[int, int] | None = None,
    temperature: float = 1.0,
) -> torch.Tensor:
    r""":math:`\log \sum_c e^{x_c / T}` over the whole vocabulary, replicated on every rank.

    ``input`` is this rank's slice ``(..., V_local)`` (class dim last); ``group`` and
    ``vocab_range`` as :func:`vocab_parallel_cross_entropy`. Returns shape
    ``input.shape[:-1]``, within 1 ULP of the exact value (2 in float64), bit-identical on
    every rank. A row of ``-inf`` gives ``-inf`` (and a zero gradient); the gradient is this
    slice's :math:`\mathrm{softmax}(x/T)/T` times the upstream gradient, with no communication.

    Example (each rank passes its slice ``local``, as in :func:`vocab_parallel_cross_entropy`)::

        lse = vocab_parallel_logsumexp(local)  # (rows,), the same on every rank
    """
    (out, *_), batch = _rows_call(_LogSumExp, input, group, vocab_range, temperature)
    return out.reshape(batch)


@_eager
def vocab_parallel_log_softmax(
    input: torch.Tensor,
    *,
    group: Any = None,
    vocab_range: tuple[int, int] | None = None,
    temperature: float = 1.0,
) -> torch.Tensor:
    r"""This rank's slice of :math:`\log \mathrm{softmax}(x/T)` over the whole vocabulary.

    :math:`(x_c - m)/T - \operatorname{log1p}(s)` with the maximum :math:`m` and the sum
    :math:`s` merged from every slice; ``input`` is this rank's slice ``(..., V_local)``, the
    result has its shape and dtype. ``-inf`` entries give ``-inf`` and a gradient of 0. The
    backward pass gathers each row's sum of the upstream gradient (one all_gather).

    Example (each rank passes its slice ``local``)::

        logp_local = vocab_parallel_log_softmax(local)  # local's shape: this slice's log p
    """
    out, batch = _rows_call(_LogSoftmax, input, group, vocab_range, temperature)
    return out.reshape(input.shape)


# ---------------------------------------------------------------------------------------------
# Linear + cross-entropy over the slices, chunk by chunk over the tokens.
def _chunks(n_rows: int, n_local: int, device: torch.device) -> list[slice]:
    budget = CHUNK_BUDGET.get(device.type, OTHER_BUDGET)
    step = max(1, budget // max(1, n_local * BYTES_PER_LOGIT))
    return [slice(a, min(a + step, n_rows)) for a in range(0, n_rows, step)] or [slice(0, 0)]


def _rows_of_lr(lr, sl: slice):
    return replace(lr, counted=lr.counted[sl], y=lr.y[sl], row_w=lr.row_w[sl], hard=lr.hard[sl])


def _rows_of_stats(st: blocks.Stats, sl: slice) -> blocks.Stats:
    return blocks.Stats(**{k: (None if v is None else v[sl]) for k, v in st.__dict__.items()})


def _cat_stats(parts: list[blocks.Stats]) -> blocks.Stats:
    keys = parts[0].__dict__
    return blocks.Stats(**{
        k: None if keys[k] is None else torch.cat([getattr(p, k) for p in parts]) for k in keys
    })  # fmt: skip


class _LinearCrossEntropy(torch.autograd.Function):
    """Cross-entropy of ``h2 @ w.T + b`` (``w`` this rank's ``(V_local, D)`` rows of the LM
    head), chunk by chunk over the tokens; backward recomputes each chunk's logits, all-reduces
    the input's gradient over the group."""

    @staticmethod
    def forward(h2, w, b, t2, weight, plan: _Plan):
        ops = ops_for(h2)
        opts = plan.opts
        w_cls = _weights(ops, weight, plan.lay, False, opts, h2)
        lr = _loss_rows(ops, t2, False, w_cls, opts, h2, plan.lay)
        sts, tinies = [], []
        for sl in _chunks(h2.shape[0], plan.lay.n_local, h2.device):
            x = torch.nn.functional.linear(h2[sl], w, b)
            u_hi, u_lo, _ = array.transform(ops, x, opts.softcap)
            st, tiny = _slice_stats(ops, u_hi, u_lo, lr, plan, sl)
            sts.append(st)
            tinies.append(tiny)
        st = _cat_stats(sts)
        tiny = None if tinies[0] is None else tuple(torch.cat(p) for p in zip(*tinies, strict=True))

        def u_of(idx):
            x = torch.nn.functional.linear(h2.index_select(0, idx), w, b)
            u_hi, u_lo, _ = array.transform(ops, x, opts.softcap)
            return u_hi, u_lo

        loss, lse, merged = _finish(ops, plan, st, tiny, lr, u_of)
        out = (ops.to_output(loss, h2), ops.to_output(lse, h2))
        return out + _stats_tensors(merged, plan.saved)

    @staticmethod
    def setup_context(ctx, inputs, output):
        h2, w, b, t2, weight, plan = inputs
        ctx.plan = plan
        ctx.mark_non_differentiable(*output[1:])
        ctx.save_for_backward(h2, w, b, t2, weight, *output[2:])

    @staticmethod
    @once_differentiable
    def backward(ctx, g_loss, *_):
        h2, w, b, t2, weight, *vals = ctx.saved_tensors
        plan = ctx.plan
        opts = plan.opts
        ops = ops_for(h2)
        merged = _stats_of(plan.saved, vals)
        w_cls = _weights(ops, weight, plan.lay, False, opts, h2)
        lr = _loss_rows(ops, t2, False, w_cls, opts, h2, plan.lay)
        scale = array.row_scale(ops, g_loss, lr.den, lr.counted, opts, h2.shape[0])
        acc = torch.float64 if h2.dtype == torch.float64 else torch.float32
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        gh = torch.zeros(h2.shape, dtype=acc, device=h2.device) if need_h else None
        gw = torch.zeros(w.shape, dtype=acc, device=w.device) if need_w else None
        gb = torch.zeros(w.shape[0], dtype=acc, device=w.device) if need_b else None
        for sl in _chunks(h2.shape[0], plan.lay.n_local, h2.device):
            x = torch.nn.functional.linear(h2[sl], w, b)
            u_hi, u_lo, dcap = array.transform(ops, x, opts.softcap)
            g = _block_grad(ops, u_hi, u_lo, dcap, _rows_of_stats(merged, sl), _rows_of_lr(lr, sl),
                            scale[sl], plan)  # fmt: skip
            gm = g.to(h2.dtype)  # the matrix products in the input's dtype, as F.linear's
            if need_h:
                gh[sl] = (gm @ w).to(acc)
            if need_w:
                gw += (gm.T @ h2[sl]).to(acc)
            if need_b:
                gb += g.sum(0).to(acc)
        if need_h:
            dist.all_reduce(gh, group=plan.lay.group)  # the input is replicated: sum the slices'
            gh = gh.to(h2.dtype)
        return (gh, None if gw is None else gw.to(w.dtype), None if gb is None else gb.to(b.dtype),
                None, None, None)  # fmt: skip


@_eager
def vocab_parallel_linear_cross_entropy(
    input: torch.Tensor,
    linear_weight: torch.Tensor,
    target: torch.Tensor,
    *,
    group: Any = None,
    vocab_range: tuple[int, int] | None = None,
    linear_bias: torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    temperature: float = 1.0,
    softcap: float | None = None,
    z_loss: float = 0.0,
    return_lse: bool = False,
    normalizer: float | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    r"""``vocab_parallel_cross_entropy(linear(input, linear_weight, linear_bias), target)``
    without the ``(N, V_local)`` logits in memory: chunk by chunk over the tokens.

    Args:
        input: the hidden states ``(..., D)``, the same on every rank (replicated).
        linear_weight: this rank's rows of the LM head, ``(V_local, D)``.
        target: global class indices of shape ``input.shape[:-1]``.
        linear_bias: this rank's slice of the bias, ``(V_local,)``; ``-inf`` masks a class.
        the rest: as :func:`vocab_parallel_cross_entropy` (``weight`` the full ``(V,)``).

    Returns:
        The replicated loss, or ``(loss, lse)``. The gradient of ``input`` is the full gradient
        (the slices' contributions all-reduced over the group in the backward pass: one
        collective); ``linear_weight``'s and ``linear_bias``'s are this rank's slice's. The
        matrix products run in the input's dtype, as ``torch.nn.functional.linear``'s.
    """
    opts = _loss_options(ignore_index, reduction, label_smoothing, temperature, softcap, z_loss,
                         normalizer)  # fmt: skip
    return_lse = checks.check_flag(return_lse, "return_lse")
    _check_float(input, "input")
    _check_float(linear_weight, "linear_weight")
    if linear_weight.ndim != 2 or linear_weight.shape[1] != input.shape[-1]:
        raise ValueError(
            f"linear_weight has shape {tuple(linear_weight.shape)}; expected this rank's rows of "
            f"the LM head, (V_local, {input.shape[-1]})"
        )
    n_local = int(linear_weight.shape[0])
    if linear_bias is not None and tuple(linear_bias.shape) != (n_local,):
        raise ValueError(
            f"linear_bias has shape {tuple(linear_bias.shape)}; expected ({n_local},), this "
            "rank's slice"
        )
    batch = tuple(input.shape[:-1])
    t2, _ = _target(target, batch, n_local, input.device, soft_ok=False)
    w_total = _check_weight(weight, input.device)
    h2 = input.reshape(math.prod(batch), input.shape[-1])
    lay = ds.layout(group, n_local, vocab_range, int(h2.shape[0]), input.device, w_total, True)
    _check_labels(target, t2, lay.total, opts.ignore_index)
    ops = ops_for(input)
    plan = _plan(ops, input, lay, opts, False, return_lse)
    loss, lse, *_ = _LinearCrossEntropy.apply(h2, linear_weight, linear_bias, t2, weight, plan)
    lse = lse.reshape(batch)
    if opts.reduction == "none":
        loss = loss.reshape(batch)
    return (loss, lse) if return_lse else loss


# ---------------------------------------------------------------------------------------------
# DTensor: logits sharded on the class dim (a prototype of logmax.torch.cross_entropy's path).
def is_dtensor(x: Any) -> bool:
    """``x`` is a DTensor (without importing ``torch.distributed.tensor`` when nothing has)."""
    mod = sys.modules.get("torch.distributed.tensor")
    return mod is not None and isinstance(x, mod.DTensor)


def _local(t: Any, name: str, shard_dim: int | None = None) -> Any:
    from torch.distributed.tensor import Replicate, Shard

    if not is_dtensor(t):
        return t
    pl = t.placements
    if len(pl) == 1 and isinstance(pl[0], Replicate):
        return t.to_local()
    sharded = len(pl) == 1 and type(pl[0]) is Shard and shard_dim is not None
    if sharded and pl[0].dim % t.ndim == shard_dim:
        return t.to_local()
    also = " or sharded like the logits" if shard_dim is not None else ""
    raise ValueError(f"{name} is a DTensor placed {pl}; expected Replicate() over a 1-D mesh{also}")


def cross_entropy_dtensor(
    input: Any,
    target: Any,
    weight: Any = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    *,
    temperature: float = 1.0,
    softcap: float | None = None,
    z_loss: float = 0.0,
    return_lse: bool = False,
    normalizer: float | None = None,
) -> Any:
    """:func:`logmax.torch.cross_entropy`'s arguments for a DTensor of logits ``(N, C, ...)``
    sharded on the class dim (``Shard(1)``, ``Shard(0)`` for ``(C,)``) over a 1-D mesh (the
    TorchTitan layout): the vocab-parallel path, returning a replicated DTensor. The slices are
    torch.chunk's (DTensor's ``Shard``), in mesh order; the target (class indices) and
    ``weight`` are replicated DTensors or plain tensors, class probabilities sharded like the
    logits. Gradients flow back to the DTensor with its placement."""
    from torch.distributed.tensor import DTensor, Replicate, Shard

    mesh = input.device_mesh
    pl = input.placements
    cdim = 1 if input.ndim > 1 else 0
    if mesh.ndim != 1 or len(pl) != 1 or type(pl[0]) is not Shard or pl[0].dim % input.ndim != cdim:
        raise ValueError(
            f"logits as a DTensor must be sharded on the class dim {cdim} over a 1-D mesh "
            f"(placements (Shard({cdim}),)); got {pl} on a {mesh.ndim}-D mesh"
        )
    total = int(input.shape[cdim])
    world, coord = mesh.size(0), mesh.get_local_rank(0)
    step = -(-total // world)  # torch.chunk's slices
    start = min(coord * step, total)
    stop = min(start + step, total)
    x = input.to_local().movedim(cdim, -1)
    t = _local(target, "target", cdim)
    if t.is_floating_point():
        t = t.movedim(cdim, -1)
    w = _local(weight, "weight")
    opts = _loss_options(ignore_index, reduction, label_smoothing, temperature, softcap, z_loss,
                         normalizer)  # fmt: skip
    out = _cross_entropy(x, t, mesh.get_group(0), (start, stop), w, opts, return_lse, total)

    def wrap(v):
        return DTensor.from_local(v, mesh, [Replicate()], run_check=False)

    return (wrap(out[0]), wrap(out[1])) if return_lse else wrap(out)
