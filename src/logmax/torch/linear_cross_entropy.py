r"""Linear layer + cross-entropy without the ``(N, V)`` logits: for huge vocabularies.

A language model's loss is ``cross_entropy(hidden @ W.T + b, target)`` with ``W`` of shape
``(V, D)`` and ``V`` up to a few hundred thousand: the logits and their gradient, ``N x V``
floats each, dominate the memory of training. :func:`linear_cross_entropy` computes the same loss
and the exact gradients of ``hidden``, ``W`` and ``b`` chunk by chunk over the tokens (and over
the vocabulary when even a chunk's rows are too long), and computes the gradients during the
forward pass: the backward pass only scales them, nothing is recomputed. Ignored tokens are
dropped before the matrix product.

The loss per row is logmax's cross-entropy (see :func:`logmax.cross_entropy`):

.. math::
    z = \operatorname{softcap}(h W^T + b) / T, \qquad
    \ell = (1-\varepsilon)\, w_y (-\log p_y) + \tfrac{\varepsilon}{V} \sum_c w_c (-\log p_c)
           + \zeta\, w_y\, \mathrm{lse}(z)^2,

with :math:`-\log p_c = (m - z_c) + \operatorname{log1p}(s)` computed without cancellation, and
torch's reductions (the weighted mean divides by :math:`\sum w_{y_i}` over counted rows; a mean
over no counted row is 0, not NaN).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from logmax._core import checks
from logmax.torch import _lce_engine as engine
from logmax.torch import _lce_math as lm

__all__ = ["LinearCrossEntropyLoss", "linear_cross_entropy"]

BACKENDS = ("torch", "core")


def linear_cross_entropy(
    input: torch.Tensor,
    linear_weight: torch.Tensor,
    target: torch.Tensor,
    *,
    linear_bias: torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
    reduction: str = "mean",
    ignore_index: int | None = -100,
    label_smoothing: float = 0.0,
    softcap: float | None = None,
    z_loss: float = 0.0,
    temperature: float = 1.0,
    return_lse: bool = False,
    chunk_size: int | None = None,
    vocab_chunk_size: int | None = None,
    memory_budget: int | None = None,
    backend: str = "torch",
    options: Any = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    r"""``cross_entropy(linear(input, linear_weight, linear_bias), target)`` in chunks.

    A drop-in for :func:`torch.nn.functional.linear_cross_entropy` (hard labels) that never holds
    the ``(N, V)`` logits: memory is the gradients of ``W`` and ``input`` plus one chunk's
    workspace (``memory_budget``, default 64 MiB on the CPU, 512 MiB on other devices).

    Args:
        input: hidden states, shape ``(..., D)`` (``(D,)``, ``(N, D)`` or ``(B, T, D)``).
        linear_weight: ``W``, shape ``(V, D)``.
        target: class indices (any integer dtype) of shape ``input.shape[:-1]``.
        linear_bias: ``b``, shape ``(V,)``. A ``-inf`` entry masks its class (probability 0,
            gradient 0).
        weight: per-class weights ``w``, shape ``(V,)``.
        reduction: ``'none'`` (loss of shape ``target.shape``), ``'sum'`` or ``'mean'`` (torch's
            weighted mean :math:`\sum_i w_{y_i}\ell_i / \sum_i w_{y_i}`; 0 over no counted rows).
        ignore_index: label whose rows give loss 0 and gradient 0; ``None`` means -100 as in
            torch.
        label_smoothing: :math:`\varepsilon` in ``[0, 1]``, torch's semantics (with weights).
        softcap: ``cap``: logits become :math:`\mathrm{cap}\tanh(x/\mathrm{cap})` first.
        z_loss: :math:`\zeta`: adds :math:`\zeta w_y \mathrm{lse}^2` per counted row.
        temperature: :math:`T`, divides the logits (after the softcap).
        return_lse: also return each row's logsumexp of :math:`z` (shape ``target.shape``, in
            ``input``'s dtype; differentiable). Ignored rows then take part in the matrix
            product so that their lse exists.
        chunk_size: tokens per chunk; default from ``memory_budget``.
        vocab_chunk_size: classes per block when rows are cut; default: whole rows unless the
            budget cannot hold 32 of them.
        memory_budget: bytes of chunk workspace (logits, their gradient and 16-bit copies).
        backend: how each chunk's cross-entropy is computed: ``'torch'`` (torch operations in
            the work dtype with logmax's log1p forms, on cache-sized row groups on the CPU) or
            ``'core'`` (CPU: logmax's NumPy cross-entropy and its Numba kernel per chunk,
            computed in float64 or double-double; slower, and needs a second chunk-sized
            buffer; other devices use ``'torch'``).
        options: torch's ``LinearCrossEntropyOptions``; only its ``batch_chunk_size`` is read
            (as ``chunk_size``), so torch code runs unchanged.

    Returns:
        The loss in ``input``'s dtype (and the lse with ``return_lse``).

    Raises:
        ValueError: a label outside ``[0, V)`` that is not ``ignore_index`` (naming its position,
            its value and V); mismatched shapes; a bad option.
        TypeError: float targets (class probabilities need the full logits: use
            :func:`torch.nn.functional.cross_entropy`), mixed dtypes or devices.

    16-bit inputs: the matrix products run in the input's dtype, the loss, the gradient of the
    logits, ``dW`` and ``db`` are computed and accumulated in float32. The gradients are
    computed once: calling ``backward`` twice through the same result raises ``RuntimeError``.

    Example:
        >>> import torch
        >>> from logmax.torch import linear_cross_entropy
        >>> g = torch.Generator().manual_seed(0)
        >>> h = torch.randn(6, 4, generator=g, dtype=torch.float64, requires_grad=True)
        >>> W = torch.randn(10, 4, generator=g, dtype=torch.float64, requires_grad=True)
        >>> y = torch.tensor([0, 3, 9, -100, 2, 2])
        >>> loss = linear_cross_entropy(h, W, y, chunk_size=4)
        >>> naive = torch.nn.functional.cross_entropy(h @ W.T, y)
        >>> bool(torch.isclose(loss, naive, rtol=1e-14))
        True
        >>> loss.backward(); W.grad.shape
        torch.Size([10, 4])
    """
    if options is not None and chunk_size is None:
        chunk_size = getattr(options, "batch_chunk_size", None)
    if ignore_index is None:
        ignore_index = -100
    prep = _prepare(
        input, linear_weight, target, linear_bias, weight, reduction, int(ignore_index),
        label_smoothing, softcap, z_loss, temperature, return_lse, chunk_size,
        vocab_chunk_size, memory_budget, backend,
    )  # fmt: skip
    needs = (input.requires_grad, linear_weight.requires_grad, linear_bias is not None and
             linear_bias.requires_grad)  # fmt: skip
    if torch.is_grad_enabled() and any(needs):
        return _LinearCrossEntropy.apply(input, linear_weight, linear_bias, prep)
    bias = None if linear_bias is None else linear_bias.detach()
    out = _forward(prep, input.detach(), linear_weight.detach(), bias, (False, False, False))
    return (out.loss, out.lse) if return_lse else out.loss


class LinearCrossEntropyLoss(nn.Module):
    """Module form of :func:`linear_cross_entropy`, built like :class:`torch.nn.CrossEntropyLoss`.

    ``forward(input, linear_weight, target, linear_bias=None)``; the options are fixed at
    construction. The class weights are a buffer (they follow ``.to(device)``).

    Example:
        >>> import torch
        >>> from logmax.torch import LinearCrossEntropyLoss
        >>> head = torch.nn.Linear(8, 100, bias=False)
        >>> loss_fn = LinearCrossEntropyLoss(label_smoothing=0.1, z_loss=1e-4)
        >>> hidden, target = torch.randn(2, 5, 8), torch.randint(0, 100, (2, 5))
        >>> loss_fn(hidden, head.weight, target).shape
        torch.Size([])
    """

    weight: torch.Tensor | None

    def __init__(
        self,
        weight: torch.Tensor | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
        *,
        softcap: float | None = None,
        z_loss: float = 0.0,
        temperature: float = 1.0,
        return_lse: bool = False,
        chunk_size: int | None = None,
        vocab_chunk_size: int | None = None,
        memory_budget: int | None = None,
        backend: str = "torch",
    ) -> None:
        super().__init__()
        checks.check_reduction(reduction)
        self.register_buffer("weight", weight)
        self.ignore_index = ignore_index
        self.reduction = reduction
        self.label_smoothing = checks.check_label_smoothing(label_smoothing)
        self.softcap = checks.check_softcap(softcap)
        self.z_loss = checks.check_z_loss(z_loss)
        self.temperature = checks.check_temperature(temperature)
        self.return_lse = return_lse
        self.chunk_size = chunk_size
        self.vocab_chunk_size = vocab_chunk_size
        self.memory_budget = memory_budget
        self.backend = backend

    def forward(
        self,
        input: torch.Tensor,
        linear_weight: torch.Tensor,
        target: torch.Tensor,
        linear_bias: torch.Tensor | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        return linear_cross_entropy(
            input, linear_weight, target,
            linear_bias=linear_bias, weight=self.weight, reduction=self.reduction,
            ignore_index=self.ignore_index, label_smoothing=self.label_smoothing,
            softcap=self.softcap, z_loss=self.z_loss, temperature=self.temperature,
            return_lse=self.return_lse, chunk_size=self.chunk_size,
            vocab_chunk_size=self.vocab_chunk_size, memory_budget=self.memory_budget,
            backend=self.backend,
        )  # fmt: skip

    def extra_repr(self) -> str:
        parts = [f"reduction={self.reduction!r}", f"ignore_index={self.ignore_index}"]
        for name, default in (("label_smoothing", 0.0), ("softcap", None), ("z_loss", 0.0),
                              ("temperature", 1.0), ("return_lse", False)):  # fmt: skip
            value = getattr(self, name)
            if value != default:
                parts.append(f"{name}={value!r}")
        return ", ".join(parts)


# ---------------------------------------------------------------------------------------------
class _Prepared:
    """Validated arguments, in the shapes and dtypes the sweep uses."""

    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)


def _prepare(
    input, linear_weight, target, linear_bias, weight, reduction, ignore_index, label_smoothing,
    softcap, z_loss, temperature, return_lse, chunk_size, vocab_chunk_size, memory_budget,
    backend,
) -> _Prepared:  # fmt: skip
    checks.check_reduction(reduction)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    eps = checks.check_label_smoothing(label_smoothing)
    cap = checks.check_softcap(softcap)
    zeta = checks.check_z_loss(z_loss)
    temp = checks.check_temperature(temperature)
    for name, value in (("chunk_size", chunk_size), ("vocab_chunk_size", vocab_chunk_size),
                        ("memory_budget", memory_budget)):  # fmt: skip
        if value is not None and (isinstance(value, bool) or int(value) != value or value < 1):
            raise ValueError(f"{name} must be None or a positive int, got {value!r}")

    for name, t in (("input", input), ("linear_weight", linear_weight), ("target", target)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if not input.is_floating_point():
        raise TypeError(f"input has dtype {input.dtype}; expected a floating point dtype")
    if linear_weight.dtype != input.dtype:
        raise TypeError(
            f"linear_weight has dtype {linear_weight.dtype} but input has {input.dtype}; "
            "they must match (as for torch.nn.functional.linear)"
        )
    if linear_weight.ndim != 2:
        raise ValueError(
            f"linear_weight has shape {tuple(linear_weight.shape)}; expected (V, D) = "
            "(classes, input features)"
        )
    n_cls, dim = linear_weight.shape
    if input.ndim == 0 or input.shape[-1] != dim:
        raise ValueError(
            f"input has shape {tuple(input.shape)}; expected (..., {dim}) to match linear_weight "
            f"of shape {tuple(linear_weight.shape)}"
        )
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise TypeError(
            f"target has dtype {target.dtype}: linear_cross_entropy takes integer class indices; "
            "class probabilities need the full logits (use torch.nn.functional.cross_entropy)"
        )
    batch_shape = tuple(input.shape[:-1])
    if tuple(target.shape) != batch_shape:
        raise ValueError(
            f"target has shape {tuple(target.shape)}; expected input.shape[:-1] = {batch_shape}"
        )
    device = input.device
    for name, t in (("linear_weight", linear_weight), ("target", target),
                    ("linear_bias", linear_bias), ("weight", weight)):  # fmt: skip
        if t is not None and t.device != device:
            raise TypeError(f"{name} is on {t.device} but input is on {device}")
    if linear_bias is not None:
        if linear_bias.shape != (n_cls,):
            raise ValueError(
                f"linear_bias has shape {tuple(linear_bias.shape)}; expected ({n_cls},)"
            )
        if linear_bias.dtype != input.dtype:
            raise TypeError(
                f"linear_bias has dtype {linear_bias.dtype} but input has {input.dtype}"
            )

    wd = engine.work_dtype(input.dtype)
    y = target.reshape(-1).long()
    counted = y != ignore_index
    bad = counted & ((y < 0) | (y >= n_cls))
    if bool(bad.any()):
        flat = int(bad.nonzero()[0, 0])
        pos = _unravel(flat, batch_shape)
        where = f"target[{', '.join(map(str, pos))}]" if pos else "target"
        raise ValueError(
            f"{where} = {int(y[flat])} is not a class index: expected 0 <= label < {n_cls} "
            f"(the number of classes) or ignore_index={ignore_index}"
        )
    y_safe = torch.where(counted, y, torch.zeros_like(y))

    w = None
    if weight is not None:
        if not isinstance(weight, torch.Tensor) or weight.shape != (n_cls,):
            shape = tuple(weight.shape) if isinstance(weight, torch.Tensor) else type(weight)
            raise ValueError(f"weight has shape {shape}; expected one weight per class, ({n_cls},)")
        w = weight.detach().to(wd)
        if not bool(torch.isfinite(w).all()):
            bad_w = int((~torch.isfinite(w)).nonzero()[0, 0])
            raise ValueError(f"weight[{bad_w}] = {float(w[bad_w])} is not finite")
    counted_f = counted.to(wd)
    row_weight = counted_f if w is None else torch.where(counted, w[y_safe], 0.0)
    # torch's weighted mean divides by the summed weights of the counted rows
    denominator = float(row_weight.sum(dtype=torch.float64)) if reduction == "mean" else 1.0
    masked = None
    if linear_bias is not None:
        m = torch.isneginf(linear_bias.detach())
        masked = m if bool(m.any()) else None
    spec = lm.LossSpec(
        n_classes=n_cls,
        weight=w,
        weight_sum=float(n_cls) if w is None else float(w.sum(dtype=torch.float64)),
        label_smoothing=eps,
        softcap=cap,
        temperature=temp,
        z_loss=zeta,
        masked=masked,
    )
    # rows that take part: the counted ones (all of them when their lse is asked for)
    all_rows = return_lse or bool(counted.all())
    rows_index = None if all_rows else counted.nonzero()[:, 0]
    n_proc = y.shape[0] if rows_index is None else rows_index.shape[0]
    plan = engine.make_plan(
        n_proc, n_cls, input.dtype, device, cap is not None, chunk_size, vocab_chunk_size,
        memory_budget, backend,
    )  # fmt: skip

    def select(t: torch.Tensor) -> torch.Tensor:
        return t if rows_index is None else t.index_select(0, rows_index)

    return _Prepared(
        batch_shape=batch_shape,
        reduction=reduction,
        return_lse=return_lse,
        spec=spec,
        plan=plan,
        rows_index=rows_index,
        target=select(y_safe),
        row_weight=select(row_weight),
        counted=select(counted_f),
        counted_all=counted,
        denominator=denominator,
        n_rows=y.shape[0],
        dtype=input.dtype,
        work_dtype=wd,
    )


def _unravel(flat: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    pos = []
    for size in reversed(shape):
        pos.append(flat % size)
        flat //= size
    return tuple(reversed(pos))


class _Output:
    def __init__(self, loss, lse, sweep):
        self.loss, self.lse, self.sweep = loss, lse, sweep


def _rows(p: _Prepared, loss_grad: torch.Tensor | None, lse_grad: torch.Tensor | None) -> lm.Rows:
    return lm.Rows(p.target, p.row_weight, p.counted, loss_grad, lse_grad)


def _unit_loss_grad(p: _Prepared) -> torch.Tensor:
    """d(loss)/d(row loss) for a ``grad_output`` of 1: 1/denominator for the mean, else 1."""
    if p.reduction == "mean":
        scale = 1.0 / p.denominator if p.denominator != 0 else 0.0
        return p.counted * scale
    return p.counted


def _forward(p: _Prepared, h, W, b, need) -> _Output:
    """The sweep with a unit upstream gradient; loss and lse in the shapes the user sees."""
    h2 = h.reshape(-1, h.shape[-1])
    grad_rows = _unit_loss_grad(p) if any(need) else None
    sw = engine.sweep(h2, W, b, p.rows_index, _rows(p, grad_rows, None), p.spec, p.plan, need)
    loss = _assemble_loss(p, sw.loss)
    lse = None
    if p.return_lse:  # every row was processed
        lse = sw.lse.to(p.dtype).reshape(p.batch_shape)
    return _Output(loss, lse, sw)


def _assemble_loss(p: _Prepared, rows_loss: torch.Tensor) -> torch.Tensor:
    if p.reduction == "none":
        if p.rows_index is None:
            full = rows_loss
        else:
            full = rows_loss.new_zeros(p.n_rows).index_copy_(0, p.rows_index, rows_loss)
        return full.to(p.dtype).reshape(p.batch_shape)
    total = rows_loss.sum(dtype=torch.float64)
    if p.reduction == "mean":
        total = total / p.denominator if p.denominator != 0 else total * 0.0
    return total.to(p.dtype)


class _LinearCrossEntropy(torch.autograd.Function):
    """Gradients computed in ``forward`` for a unit upstream gradient, scaled in ``backward``.

    ``backward`` recomputes (one more sweep) only when it cannot scale: ``reduction='none'`` with
    an upstream gradient that differs between counted rows, or a gradient flowing into the lse.
    """

    @staticmethod
    def forward(ctx, h, W, b, p):  # type: ignore[override]
        need = tuple(ctx.needs_input_grad[:3])
        out = _forward(p, h, W, b, need)
        sw = out.sweep
        dh = None if sw.dh is None else sw.dh.reshape(h.shape)
        dW = None if sw.dW is None else sw.dW.to(W.dtype)
        db = None if sw.db is None else sw.db.to(b.dtype)
        del sw
        ctx.grads = (dh, dW, db)
        ctx.prep = p
        ctx.need = need
        ctx.save_for_backward(h, W, b)
        ctx.set_materialize_grads(False)
        if p.return_lse:
            return out.loss, out.lse
        return out.loss

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loss, grad_lse=None):  # type: ignore[override]
        if ctx.grads is None:
            raise RuntimeError(
                "linear_cross_entropy computes its gradients once, in the forward pass, and hands "
                "them over at the first backward; run the forward again for another backward"
            )
        dh, dW, db = ctx.grads
        ctx.grads = None  # hand them over: autograd may keep them without a copy
        p: _Prepared = ctx.prep
        lse_used = grad_lse is not None and bool((grad_lse != 0).any())
        scale = None if lse_used else _uniform_scale(p, grad_loss)
        if scale is None:
            del dh, dW, db  # free them before the second sweep allocates its own
            return _recompute(ctx, p, grad_loss, grad_lse if lse_used else None)
        if scale != 1.0:
            for g in (dh, dW, db):
                if g is not None:
                    g.mul_(scale)
        return dh, dW, db, None


def _uniform_scale(p: _Prepared, grad_loss: torch.Tensor | None) -> float | None:
    """The single factor that scales the precomputed gradients, or None if there is none."""
    if grad_loss is None:
        return 0.0
    if p.reduction != "none":
        return float(grad_loss)
    g = grad_loss.reshape(-1)[p.counted_all]
    if g.numel() == 0:
        return 0.0
    first = g[0]
    return float(first) if bool((g == first).all()) else None


def _recompute(ctx, p: _Prepared, grad_loss, grad_lse):
    """A second sweep with the actual upstream gradients (rare: see the class docstring)."""
    h, W, b = ctx.saved_tensors

    def per_row(g: torch.Tensor | None) -> torch.Tensor | None:
        if g is None:
            return None
        g = g.to(p.work_dtype).reshape(-1) if g.ndim else g.to(p.work_dtype).expand(p.n_rows)
        return g if p.rows_index is None else g.index_select(0, p.rows_index)

    if grad_loss is None:
        loss_grad = torch.zeros_like(p.counted)
    elif p.reduction == "none":
        loss_grad = per_row(grad_loss) * p.counted
    else:
        loss_grad = _unit_loss_grad(p) * float(grad_loss)
    lse_grad = per_row(grad_lse)
    h2 = h.reshape(-1, h.shape[-1])
    sw = engine.sweep(h2, W, b, p.rows_index, _rows(p, loss_grad, lse_grad), p.spec, p.plan,
                      ctx.need)  # fmt: skip
    dh = None if sw.dh is None else sw.dh.reshape(h.shape)
    dW = None if sw.dW is None else sw.dW.to(W.dtype)
    db = None if sw.db is None else sw.db.to(b.dtype)
    return dh, dW, db, None
