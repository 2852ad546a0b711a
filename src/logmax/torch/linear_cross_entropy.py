r"""Linear layer + cross-entropy without the ``(N, V)`` logits: for huge vocabularies.

A language model's loss is ``cross_entropy(hidden @ W.T + b, target)`` with ``W`` of shape
``(V, D)`` and ``V`` up to a few hundred thousand: the logits and their gradient, ``N x V``
floats each, dominate the memory of training. :func:`linear_cross_entropy` computes the same loss
and the exact gradients of ``hidden``, ``W`` and ``b`` chunk by chunk over the tokens (and over
the vocabulary when even a chunk's rows are too long), and computes the gradients during the
forward pass: the backward pass only scales them. Ignored tokens are dropped before the matrix
product.

The loss per row is logmax's cross-entropy (:func:`logmax.torch.cross_entropy`), computed by
the same row statistics, merge and finishers (:mod:`logmax._core.rowstats`):

.. math::
    z = \operatorname{softcap}(h W^T + b) / T, \qquad
    \ell = (1-\varepsilon)\, w_y (-\log p_y) + \tfrac{\varepsilon}{V} \sum_c w_c (-\log p_c)
           + \zeta\, w_y\, \mathrm{lse}(z)^2,

with :math:`-\log p_c = (m - z_c) + \operatorname{log1p}(s)` computed without cancellation, and
torch's reductions (the weighted mean divides by :math:`\sum w_{y_i}` over counted rows; a mean
over no counted row is 0, not NaN).

References:
    Wijmans et al., "Cut your losses in large-vocabulary language models" (2024): the loss over
    vocabulary blocks. Hsu et al., "Liger Kernel" (2024): the gradients in the forward pass.

See also:
    :func:`torch.nn.functional.linear_cross_entropy` (same signature),
    :func:`logmax.torch.cross_entropy` (the full logits).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from logmax._core import checks
from logmax._core.options import LossOptions
from logmax.torch import _lce_checks as lc
from logmax.torch import _lce_op  # noqa: F401  (registers the logmax:: operators)

__all__ = ["LinearCrossEntropyLoss", "linear_cross_entropy"]


@dataclass(frozen=True)
class _Config:
    """The options of one call, as the operators take them (a constant for ``torch.compile``)."""

    reduction: str
    ignore_index: int
    label_smoothing: float
    softcap: float | None
    z_loss: float
    temperature: float
    return_lse: bool
    chunk_size: int | None
    vocab_chunk_size: int | None
    memory_budget: int | None
    grads: tuple[bool, bool, bool]  # input, linear_weight, linear_bias need a gradient

    @property
    def precompute(self) -> bool:
        """The gradients come with the forward sweep (a scalar loss: backward only scales)."""
        return self.reduction != "none" and any(self.grads)

    def loss_args(self) -> tuple:
        return (self.reduction, self.ignore_index, self.label_smoothing, self.softcap,
                self.z_loss, self.temperature)  # fmt: skip

    def chunk_args(self) -> tuple:
        return (self.chunk_size, self.vocab_chunk_size, self.memory_budget)


def _no_second_derivative(*grads: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
    """The gradients, marked so that differentiating them again raises (``create_graph=True``
    with a gradient penalty): a clear error, not a silently missing Hessian term."""
    if not torch.is_grad_enabled():
        return grads
    live = [g for g in grads if g is not None]
    if not live:
        return grads
    err = torch._C._functions.DelayedError(
        b"linear_cross_entropy has no second derivative (its backward is not differentiable): "
        b"for a gradient penalty use cross_entropy on the materialised logits",
        len(live),
    )
    fakes = []
    for g in live:
        g = g.detach()
        g.requires_grad = True
        fakes.append(g)
    marked = err(*fakes)
    marked = list(marked) if isinstance(marked, tuple) else [marked]
    return tuple(None if g is None else marked.pop(0) for g in grads)


def _asked(grads, flags) -> list[torch.Tensor | None]:
    return [g if need else None for g, need in zip(grads, flags, strict=True)]


class _LinearCrossEntropy(torch.autograd.Function):
    """The ``logmax::linear_cross_entropy`` operator with its gradients.

    A scalar loss gets its gradients from the forward sweep (for a unit upstream gradient) and
    backward scales them in place; ``reduction='none'`` or a gradient flowing into the returned
    logsumexp recompute them (``logmax::linear_cross_entropy_backward``).
    """

    @staticmethod
    def forward(input, linear_weight, target, linear_bias, weight, cfg: _Config):  # type: ignore[override]
        grads = cfg.grads if cfg.precompute else (False, False, False)
        return torch.ops.logmax.linear_cross_entropy(
            input, linear_weight, target, linear_bias, weight, *cfg.loss_args(), cfg.return_lse,
            *cfg.chunk_args(), list(grads),
        )  # fmt: skip

    @staticmethod
    def setup_context(ctx, inputs, output):
        input, linear_weight, target, linear_bias, weight, cfg = inputs
        _, _, dh, dW, db = output
        ctx.cfg = cfg
        ctx.consumed = False
        ctx.save_for_backward(input, linear_weight, target, linear_bias, weight, dh, dW, db)
        ctx.mark_non_differentiable(dh, dW, db)
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx, grad_loss, grad_lse, *_):  # type: ignore[override]
        cfg: _Config = ctx.cfg
        if not cfg.return_lse:  # a placeholder (compiled graphs hand it a gradient anyway)
            grad_lse = None
        scaled = cfg.precompute and grad_lse is None
        if scaled and ctx.consumed:  # (before unpacking: their version has changed)
            raise RuntimeError(
                "linear_cross_entropy computes its gradients once, in the forward pass, and "
                "hands them over at the first backward; run the forward again for another "
                "backward"
            )
        input, linear_weight, target, linear_bias, weight, dh, dW, db = ctx.saved_tensors
        with torch.no_grad():
            if scaled:
                ctx.consumed = True
                grads = _asked((dh, dW, db), cfg.grads)
                if grad_loss is None:
                    grads = [None, None, None]
                for g in grads:
                    if g is not None:
                        g.mul_(grad_loss)
                dh, dW, db = grads
            else:
                if grad_loss is None:
                    grad_loss = torch.zeros((), dtype=input.dtype, device=input.device)
                dh, dW, db = torch.ops.logmax.linear_cross_entropy_backward(
                    input, linear_weight, target, linear_bias, weight, grad_loss, grad_lse,
                    *cfg.loss_args(), *cfg.chunk_args(), list(cfg.grads),
                )  # fmt: skip
                dh, dW, db = _asked((dh, dW, db), cfg.grads)
        dh, dW, db = _no_second_derivative(dh, dW, db)
        return dh, dW, None, db, None, None


def linear_cross_entropy(
    input: torch.Tensor,
    linear_weight: torch.Tensor,
    target: torch.Tensor,
    *,
    linear_bias: torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
    reduction: str = "mean",
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    options: Any = None,
    softcap: float | None = None,
    z_loss: float = 0.0,
    temperature: float = 1.0,
    return_lse: bool = False,
    chunk_size: int | None = None,
    vocab_chunk_size: int | None = None,
    memory_budget: int | None = None,
    backend: str | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    r"""``cross_entropy(linear(input, linear_weight, linear_bias), target)`` in chunks.

    :func:`torch.nn.functional.linear_cross_entropy`'s parameters, in its order and with its
    defaults (class indices), then logmax's extras; it never holds the ``(N, V)`` logits: memory
    is the gradients of ``W`` and ``input`` plus one chunk's workspace (``memory_budget``,
    default 64 MiB on the CPU, 512 MiB on other devices). The loss is within 1 ULP of the exact
    loss of ``input @ linear_weight.T + linear_bias`` in float32, bfloat16 and float16 (2 in
    float64).

    Args:
        input: hidden states ``(D,)``, ``(N, D)`` or, beyond torch, ``(B, T, ..., D)``.
        linear_weight: ``W``, shape ``(C, D)``, or ``(C, d1, ..., dK, D)`` for torch's
            K-dimensional loss (``input`` then ``(N, D)``, ``target`` ``(N, d1, ..., dK)``).
        target: class indices (any integer dtype) of shape ``input.shape[:-1]`` (plus the K
            dimensions).
        linear_bias: ``b``, shape ``linear_weight.shape[:-1]``. A ``-inf`` entry masks its
            class (probability 0, gradient 0).
        weight: per-class weights ``w``, shape ``(C,)``, of ``input``'s dtype (as torch).
        reduction: ``'none'`` (loss of ``target``'s shape), ``'sum'`` or ``'mean'`` (torch's
            weighted mean :math:`\sum_i w_{y_i}\ell_i / \sum_i w_{y_i}`; 0 over no counted rows).
        ignore_index: label whose rows give loss 0 and gradient 0; None (torch's default) means
            -100.
        label_smoothing: :math:`\varepsilon` in ``[0, 1]``, torch's semantics (with weights).
        options: torch's ``LinearCrossEntropyOptions``; its ``batch_chunk_size`` is read as
            ``chunk_size`` (so torch code runs unchanged), the rest is torch's own business.
        softcap: ``cap``: logits become :math:`\mathrm{cap}\tanh(x/\mathrm{cap})` first.
        z_loss: :math:`\zeta`: adds :math:`\zeta w_y \mathrm{lse}^2` per counted row.
        temperature: :math:`T`, divides the logits (after the softcap).
        return_lse: also return each row's logsumexp of :math:`z` (``target``'s shape, in
            ``input``'s dtype; differentiable). Ignored rows then take part in the matrix
            product so that their lse exists.
        chunk_size: tokens per chunk; default from ``memory_budget``.
        vocab_chunk_size: classes per block when rows are cut; default: whole rows unless the
            budget cannot hold 32 of them.
        memory_budget: bytes of chunk workspace.
        backend: kept for old code (``'torch'`` and ``'core'`` both run the one implementation,
            ``'core'`` with a ``DeprecationWarning``).

    Returns:
        The loss in ``input``'s dtype (and the lse with ``return_lse``).

    Raises:
        ValueError: a label outside ``[0, C)`` that is not ``ignore_index`` (naming its position,
            its value and C), whatever the target's integer dtype; mismatched shapes; a bad
            option.
        TypeError: float targets (class probabilities need the full logits: use
            :func:`torch.nn.functional.cross_entropy`), mixed dtypes (as torch) or devices.

    16-bit inputs: the logits are computed in float32 from the inputs' exact values, the loss,
    ``dW`` and ``db`` in float32 or wider. ``backward`` runs once per forward for a scalar loss
    (the gradients were computed in the forward pass); there is no second derivative
    (``create_graph=True`` then differentiating the gradients raises).

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
    ignore_index = -100 if ignore_index is None else ignore_index
    lc.check_backend(backend)
    if backend == "core":
        warnings.warn(
            "linear_cross_entropy(backend='core') is gone: every chunk runs the one "
            "implementation (logmax's row statistics); drop the argument",
            DeprecationWarning,
            stacklevel=2,
        )
    if not torch.compiler.is_compiling():  # run again, at run time, inside the operator
        LossOptions.make(ignore_index, reduction, label_smoothing, temperature, softcap, z_loss)
        return_lse = checks.check_flag(return_lse, "return_lse")
    lc.check_positive_ints(chunk_size=chunk_size, vocab_chunk_size=vocab_chunk_size,
                           memory_budget=memory_budget)  # fmt: skip
    h = _prepare(input, linear_weight, target, linear_bias, weight)
    grad_on = torch.is_grad_enabled()
    grads = (
        grad_on and input.requires_grad,
        grad_on and linear_weight.requires_grad,
        grad_on and linear_bias is not None and linear_bias.requires_grad,
    )
    cfg = _Config(reduction, int(ignore_index), float(label_smoothing),
                  None if softcap is None else float(softcap), float(z_loss), float(temperature),
                  bool(return_lse), chunk_size, vocab_chunk_size, memory_budget, grads)  # fmt: skip
    loss, lse, _, _, _ = _LinearCrossEntropy.apply(h, linear_weight, target, linear_bias, weight,
                                                   cfg)  # fmt: skip
    return (loss, lse) if return_lse else loss


def _prepare(input, linear_weight, target, linear_bias, weight):
    """Checks of types, dtypes, devices and shapes (no values: traceable); ``input`` as
    ``(N, D)``."""
    for name, t in (("input", input), ("linear_weight", linear_weight), ("target", target)):
        lc.check_tensor(t, name)
    for name, t in (("linear_bias", linear_bias), ("weight", weight)):
        if t is not None:
            lc.check_tensor(t, name)
    lc.check_float_input(input)
    lc.check_weight_shape(linear_weight)
    for name, t in (("linear_weight", linear_weight), ("linear_bias", linear_bias),
                    ("weight", weight)):  # fmt: skip
        lc.check_same_dtype(t, name, input)
    lc.check_same_device([("linear_weight", linear_weight), ("target", target),
                          ("linear_bias", linear_bias), ("weight", weight)], input)  # fmt: skip
    lc.check_input_shape(input, linear_weight)
    k_dims = tuple(linear_weight.shape[1:-1])
    shape = (*input.shape[:-1], *k_dims)
    lc.check_target(target, shape, (*input.shape[:-1], linear_weight.shape[0], *k_dims))
    lc.check_bias_shape(linear_bias, tuple(linear_weight.shape[:-1]))
    lc.check_class_weight_shape(weight, linear_weight.shape[0])
    return input.reshape(math.prod(input.shape[:-1]), input.shape[-1])


class LinearCrossEntropyLoss(nn.LinearCrossEntropyLoss):
    """:class:`torch.nn.LinearCrossEntropyLoss` computed by :func:`linear_cross_entropy`.

    torch's constructor and ``forward(input, target)`` (the module owns the linear layer,
    ``self.linear``; its state dict and checkpoints load into torch's module and back), then
    logmax's extras, keyword-only. Options are validated at construction.

    Example:
        >>> import torch
        >>> from logmax.torch import LinearCrossEntropyLoss
        >>> loss_fn = LinearCrossEntropyLoss(8, 100, label_smoothing=0.1, z_loss=1e-4)
        >>> hidden, target = torch.randn(5, 8), torch.randint(0, 100, (5,))
        >>> loss_fn(hidden, target).shape
        torch.Size([])
        >>> loss_fn
        LinearCrossEntropyLoss(
          in_features=8, num_classes=100, ..., label_smoothing=0.1, options=None, z_loss=0.0001
          (linear): Linear(in_features=8, out_features=100, bias=False)
        )
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        out_features: tuple[int, ...] = (),
        bias: bool = False,
        device: Any = None,
        dtype: torch.dtype | None = None,
        reduction: str = "mean",
        weight: torch.Tensor | None = None,
        ignore_index: int | None = None,
        label_smoothing: float = 0.0,
        options: Any = None,
        softcap: float | None = None,
        z_loss: float = 0.0,
        temperature: float = 1.0,
        return_lse: bool = False,
        chunk_size: int | None = None,
        vocab_chunk_size: int | None = None,
        memory_budget: int | None = None,
    ) -> None:
        LossOptions.make(-100 if ignore_index is None else ignore_index, reduction,
                         label_smoothing, temperature, softcap, z_loss)  # fmt: skip
        lc.check_positive_ints(chunk_size=chunk_size, vocab_chunk_size=vocab_chunk_size,
                               memory_budget=memory_budget)  # fmt: skip
        super().__init__(
            in_features, num_classes, out_features=tuple(out_features), bias=bias,
            device=device, dtype=dtype, reduction=reduction, weight=weight,
            ignore_index=ignore_index, label_smoothing=label_smoothing, options=options,
        )  # fmt: skip
        self.softcap = softcap
        self.z_loss = float(z_loss)
        self.temperature = float(temperature)
        self.return_lse = checks.check_flag(return_lse, "return_lse")
        self.chunk_size = chunk_size
        self.vocab_chunk_size = vocab_chunk_size
        self.memory_budget = memory_budget

    def forward(self, input: torch.Tensor, target: torch.Tensor):  # type: ignore[override]
        linear_weight = self.linear.weight.reshape(
            (self.num_classes, *self.out_features, self.linear.in_features)
        )
        bias = self.linear.bias
        linear_bias = None if bias is None else bias.reshape((self.num_classes, *self.out_features))
        return linear_cross_entropy(
            input, linear_weight, target, linear_bias=linear_bias, weight=self.weight,
            reduction=self.reduction, ignore_index=self.ignore_index,
            label_smoothing=self.label_smoothing, options=self.options, softcap=self.softcap,
            z_loss=self.z_loss, temperature=self.temperature, return_lse=self.return_lse,
            chunk_size=self.chunk_size, vocab_chunk_size=self.vocab_chunk_size,
            memory_budget=self.memory_budget,
        )  # fmt: skip

    def extra_repr(self) -> str:
        parts = [super().extra_repr()]
        for name, default in (("softcap", None), ("z_loss", 0.0), ("temperature", 1.0),
                              ("return_lse", False), ("chunk_size", None),
                              ("vocab_chunk_size", None), ("memory_budget", None)):  # fmt: skip
            value = getattr(self, name)
            if value != default:
                parts.append(f"{name}={value!r}")
        return ", ".join(parts)
