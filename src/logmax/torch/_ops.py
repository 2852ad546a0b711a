"""The ``logmax::`` operators: each op of the contract registered with ``torch.library.custom_op``.

A custom op is opaque to ``torch.compile`` and ``torch.export`` (it stays one node of the graph,
with a fake implementation that gives the output shapes on meta and fake tensors) and it is the
seam where the backends plug in: its implementation asks the registry
(:mod:`logmax.kernels.registry`) for the backend that serves the call -- the Numba kernels for
CPU tensors (zero-copy), Triton on CUDA when installed, plain torch anywhere -- and runs it.
Checks that read tensor values (labels in range, ``nan_policy='raise'``, finite weights) run
here, at run time, so that tracing never needs the values.

Autograd is not registered on these ops: :mod:`logmax.torch._functions` wraps them in
``torch.autograd.Function``\\ s (``setup_context``, ``jvp``, vmap), which ``torch.func`` needs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor
from torch.library import custom_op

from logmax._core import checks
from logmax._core.options import LossOptions, RowOptions
from logmax.kernels import registry

DTYPE_NAMES = {
    torch.float16: "float16",
    torch.bfloat16: "bfloat16",
    torch.float32: "float32",
    torch.float64: "float64",
}


def _call(op: str, x: Tensor, options: frozenset[str] = frozenset()) -> registry.Call:
    return registry.Call(op, "torch", x.device.type, DTYPE_NAMES[x.dtype], options, x.numel())


def _row_options(x: Tensor, dim: int, temperature: float) -> frozenset[str]:
    opts = set()
    if temperature != 1.0:
        opts.add("temperature")
    if dim % max(x.ndim, 1) != x.ndim - 1:
        opts.add("middle_axis")
    if x.ndim and x.shape[dim] == 0:
        opts.add("empty")
    return frozenset(opts)


def _raise_nonfinite(x: Tensor, dim: int, counted: Tensor | None, what: str) -> None:
    """``nan_policy='raise'``: the first row holding NaN or +inf, named (a host sync)."""
    bad = (torch.isnan(x) | (x == math.inf)).any(dim=dim)
    if counted is not None:
        bad = bad & counted
    if bool(bad.any()):
        checks.raise_nonfinite_row(bad.cpu().numpy(), tuple(bad.shape), what)


def _fresh(out: Tensor, like: Tensor) -> Tensor:
    """The result as a tensor of ``like``'s dtype that aliases no input (custom ops require it)."""
    return out.to(like.dtype).contiguous()


# ---------------------------------------------------------------------------------------------
# softmax, log_softmax, logsumexp and their vector-Jacobian products.
def _rows(op: str, x: Tensor, dim: int, temperature: float, nan_policy: str) -> Tensor:
    if nan_policy == "raise":
        _raise_nonfinite(x, dim, None, "input")
    call = _call(op, x, _row_options(x, dim, temperature))
    out = registry.run(call, x, dim % x.ndim, RowOptions(temperature, nan_policy))
    return _fresh(out, x)


@custom_op("logmax::softmax", mutates_args=())
def softmax(x: Tensor, dim: int, temperature: float, nan_policy: str) -> Tensor:
    """``softmax(x / temperature)`` along ``dim``."""
    return _rows("softmax", x, dim, temperature, nan_policy)


@custom_op("logmax::log_softmax", mutates_args=())
def log_softmax(x: Tensor, dim: int, temperature: float, nan_policy: str) -> Tensor:
    """``log_softmax(x / temperature)`` along ``dim``."""
    return _rows("log_softmax", x, dim, temperature, nan_policy)


@softmax.register_fake
@log_softmax.register_fake
def _same_shape(x, dim, temperature, nan_policy):
    return torch.empty_like(x)


def _fold(x: Tensor, dims: Sequence[int]) -> tuple[Tensor, int]:
    """``x`` with ``dims`` moved last and flattened into one: ``(folded, batch ndim)``."""
    dims = sorted(d % x.ndim for d in dims)
    rest = [d for d in range(x.ndim) if d not in dims]
    moved = x.permute(rest + dims)
    batch = [x.shape[d] for d in rest]
    return moved.reshape(batch + [math.prod(x.shape[d] for d in dims)]), len(batch)


def _reduced_shape(x: Tensor, dims: Sequence[int], keepdim: bool) -> list[int]:
    dims = {d % x.ndim for d in dims}
    return [1 if d in dims else n for d, n in enumerate(x.shape) if keepdim or d not in dims]


@custom_op("logmax::logsumexp", mutates_args=())
def logsumexp(x: Tensor, dim: Sequence[int], keepdim: bool, temperature: float,
              nan_policy: str) -> Tensor:  # fmt: skip
    """``log sum exp(x / temperature)`` over ``dim`` (a list of dims)."""
    folded, axis = _fold(x, dim)
    if nan_policy == "raise":
        _raise_nonfinite(folded, axis, None, "input")
    call = _call("logsumexp", folded, _row_options(folded, axis, temperature))
    out = registry.run(call, folded, axis, RowOptions(temperature, nan_policy))
    return _fresh(out, x).reshape(_reduced_shape(x, dim, keepdim))


@logsumexp.register_fake
def _(x, dim, keepdim, temperature, nan_policy):
    return x.new_empty(_reduced_shape(x, dim, keepdim))


@custom_op("logmax::softmax_backward", mutates_args=())
def softmax_backward(y: Tensor, grad: Tensor, dim: int, temperature: float) -> Tensor:
    """``y (g - sum(g y)) / T`` along ``dim``: the gradient through ``y = softmax(x / T)``."""
    out = registry.run(_call("softmax_vjp", y), y, grad, dim % y.ndim, temperature)
    return _fresh(out, y)


@custom_op("logmax::log_softmax_backward", mutates_args=())
def log_softmax_backward(y: Tensor, grad: Tensor, dim: int, temperature: float) -> Tensor:
    """``(g - exp(y) sum(g)) / T`` along ``dim`` (0 where ``y = -inf``)."""
    out = registry.run(_call("log_softmax_vjp", y), y, grad, dim % y.ndim, temperature)
    return _fresh(out, y)


@softmax_backward.register_fake
@log_softmax_backward.register_fake
def _vjp_shape(y, grad, dim, temperature):
    return torch.empty_like(y)


@custom_op("logmax::logsumexp_backward", mutates_args=())
def logsumexp_backward(x: Tensor, grad: Tensor, dim: Sequence[int], keepdim: bool,
                       temperature: float) -> Tensor:  # fmt: skip
    """``g softmax(x / T) / T`` over ``dim``; ``grad`` has the logsumexp's shape."""
    folded, axis = _fold(x, dim)
    g = grad.reshape(folded.shape[:axis])
    out = registry.run(_call("logsumexp_vjp", folded), folded, g, axis, RowOptions(temperature))
    dims = sorted(d % x.ndim for d in dim)
    rest = [d for d in range(x.ndim) if d not in dims]
    moved = _fresh(out, x).reshape([x.shape[d] for d in rest + dims])
    order = rest + dims
    return moved.permute(sorted(range(x.ndim), key=order.__getitem__)).contiguous()


@logsumexp_backward.register_fake
def _(x, grad, dim, keepdim, temperature):
    return torch.empty_like(x)


# ---------------------------------------------------------------------------------------------
# Losses (class dim 1).
def check_labels(target: Tensor, n_classes: int, ignore_index: int) -> Tensor:
    """The counted positions (bool, ``target``'s shape); a label outside ``[0, C)`` that is not
    ``ignore_index`` raises the core's ``ValueError`` naming its position, its value and ``C``.

    Checked in ``target``'s own dtype, before any cast: an unsigned 64-bit label such as
    :math:`2^{64} - 100` is not -100 (torch's comparisons do not take ``uint64``: NumPy does).
    """
    if target.dtype == torch.uint64:
        return torch.from_numpy(checks.check_labels(target.cpu().numpy(), n_classes,
                                                    ignore_index)).to(target.device)  # fmt: skip
    t = target.long()
    fits = -(2**63) <= ignore_index < 2**63
    counted = t != ignore_index if fits else torch.ones_like(t, dtype=torch.bool)
    bad = counted & ((t < 0) | (t >= n_classes))
    if bool(bad.any()):
        checks.check_labels(target.cpu().numpy(), n_classes, ignore_index)
    return counted


def check_weight_values(weight: Tensor | None) -> None:
    if weight is not None:
        finite = torch.isfinite(weight)
        if not bool(finite.all()):
            bad = int((~finite).nonzero()[0, 0])
            raise ValueError(f"weight[{bad}] = {float(weight[bad])} is not finite")


def _loss_options(x: Tensor, soft: bool, weight: Tensor | None, opts: LossOptions,
                  grad: bool) -> frozenset[str]:  # fmt: skip
    flags = {
        "temperature": opts.temperature != 1.0,
        "softcap": opts.softcap is not None,
        "label_smoothing": opts.label_smoothing != 0.0,
        "z_loss": opts.z_loss != 0.0,
        "weight": weight is not None,
        "soft": soft,
        "grad": grad,
        "middle_axis": x.ndim > 2,
        "empty": x.shape[1] == 0,
    }
    return frozenset(k for k, v in flags.items() if v)


def _loss_batch_shape(x: Tensor) -> list[int]:
    return [x.shape[0], *x.shape[2:]]


def _empty_grad(x: Tensor) -> Tensor:
    return x.new_empty((0,))


@custom_op("logmax::cross_entropy", mutates_args=())
def cross_entropy(
    x: Tensor,
    target: Tensor,
    weight: Tensor | None,
    ignore_index: int,
    reduction: str,
    label_smoothing: float,
    temperature: float,
    softcap: float | None,
    z_loss: float,
    nan_policy: str,
    normalizer: float | None,
    want_grad: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    """Cross-entropy of logits ``x`` ``(N, C, d1, ...)`` with class dim 1: ``(loss, lse,
    grad)``; ``grad`` is the gradient for a unit upstream gradient (empty unless
    ``want_grad``)."""
    opts = LossOptions(ignore_index, reduction, label_smoothing, temperature, softcap, z_loss,
                       nan_policy, normalizer)  # fmt: skip
    soft = target.is_floating_point()
    counted = None if soft else check_labels(target, x.shape[1], ignore_index)
    check_weight_values(weight)
    if nan_policy == "raise":
        _raise_nonfinite(x, 1, counted, "logits")
    call = _call("cross_entropy", x, _loss_options(x, soft, weight, opts, want_grad))
    weight64 = None if weight is None else weight.detach().to(torch.float64)
    loss, lse, grad = registry.run(call, x, 1, target, soft, weight64, opts,
                                   1.0 if want_grad else None)  # fmt: skip
    g = _fresh(grad, x) if grad is not None else _empty_grad(x)
    return _fresh(torch.as_tensor(loss), x), _fresh(torch.as_tensor(lse), x), g


@cross_entropy.register_fake
def _(x, target, weight, ignore_index, reduction, label_smoothing, temperature, softcap, z_loss,
      nan_policy, normalizer, want_grad):  # fmt: skip
    batch = _loss_batch_shape(x)
    loss = x.new_empty(batch if reduction == "none" else [])
    return loss, x.new_empty(batch), torch.empty_like(x) if want_grad else _empty_grad(x)


@custom_op("logmax::nll_loss", mutates_args=())
def nll_loss(
    logp: Tensor,
    target: Tensor,
    weight: Tensor | None,
    ignore_index: int,
    reduction: str,
    nan_policy: str,
    normalizer: float | None,
    want_grad: bool,
) -> tuple[Tensor, Tensor]:
    """Negative log-likelihood of log-probabilities ``(N, C, d1, ...)``: ``(loss, grad)``."""
    opts = LossOptions(ignore_index, reduction, nan_policy=nan_policy, normalizer=normalizer)
    soft = target.is_floating_point()
    counted = None if soft else check_labels(target, logp.shape[1], ignore_index)
    check_weight_values(weight)
    call = _call("nll_loss", logp, _loss_options(logp, soft, weight, opts, want_grad))
    weight64 = None if weight is None else weight.detach().to(torch.float64)
    if nan_policy == "raise":
        per_row = LossOptions(ignore_index, "none")
        rows, _ = registry.run(call, logp, 1, target, soft, weight64, per_row, None)
        rows = torch.as_tensor(rows)
        bad = torch.isnan(rows) | torch.isinf(rows)
        if counted is not None:
            bad = bad & counted
        if bool(bad.any()):
            checks.raise_nonfinite_row(bad.cpu().numpy(), tuple(bad.shape), "logp")
    loss, grad = registry.run(call, logp, 1, target, soft, weight64, opts,
                              1.0 if want_grad else None)  # fmt: skip
    g = _fresh(grad, logp) if grad is not None else _empty_grad(logp)
    return _fresh(torch.as_tensor(loss), logp), g


@nll_loss.register_fake
def _(logp, target, weight, ignore_index, reduction, nan_policy, normalizer, want_grad):
    loss = logp.new_empty(_loss_batch_shape(logp) if reduction == "none" else [])
    return loss, torch.empty_like(logp) if want_grad else _empty_grad(logp)
