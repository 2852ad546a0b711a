r"""``logmax.torch``'s functions, drop-in for their ``torch.nn.functional`` namesakes.

Names, argument order and defaults are torch's (``dim``, ``dtype``, ``size_average``/``reduce``
accepted with torch's deprecation warning); our options are keyword-only extras. Losses take
logits of shape ``(C,)``, ``(N, C)`` or ``(N, C, d1, ..., dk)`` with the classes on dim 1.

Each function checks its arguments' types and shapes (traceable: ``torch.compile`` and
``torch.export`` see through it) and calls a ``logmax::`` operator (:mod:`._ops`) through its
autograd Function (:mod:`._functions`): the operator is one node of a compiled graph, runs the
backend the registry picks (Numba on CPU, plain torch elsewhere) and checks the values (labels,
``nan_policy``) at run time. Under ``torch.autocast`` the losses compute in float32 as torch's do
(``softmax``, ``log_softmax`` and ``logsumexp`` too on CUDA).

Differences from torch, on purpose (see the README's "Differences"):

- exact results: a confident row's loss is its true tiny value (``log1p`` form), not 0;
- 16-bit inputs are computed and reduced in float32 or wider;
- a mean over zero counted rows (every label ignored, or zero total weight) is 0 with a zero
  gradient, not NaN;
- a label outside ``[0, C)`` raises ``ValueError`` naming its position, its value and C; any
  integer dtype is taken for class indices;
- ``-inf`` entries get a gradient of exactly 0, fully masked rows give zeros, never NaN.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch

from logmax._core import checks
from logmax._core.options import LossOptions, RowOptions
from logmax.torch import _functions as fn
from logmax.torch import (
    _vmap,  # noqa: F401  (registers the operators' vmap rules)
    distributed,
    guard,
)

__all__ = ["cross_entropy", "log_softmax", "logsumexp", "nll_loss", "softmax"]

# torch's autocast policy for these ops: they run in float32 on these devices
AUTOCAST_FP32 = {
    "softmax": ("cuda",),
    "log_softmax": ("cuda",),
    "logsumexp": ("cuda",),
    "cross_entropy": ("cpu", "cuda"),
    "nll_loss": ("cpu", "cuda"),
}
FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _autocast(op: str, *tensors: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
    """The tensors cast to float32 where torch's autocast runs ``op`` in float32."""
    device = tensors[0].device.type
    if device in AUTOCAST_FP32[op] and torch.is_autocast_enabled(device):
        return tuple(t.float() if t is not None and t.is_floating_point() else t for t in tensors)
    return tensors


def _legacy_softmax_dim(name: str, ndim: int) -> int:
    # torch.nn.functional._get_softmax_dim: the implicit dim of old torch versions.
    warnings.warn(
        f"Implicit dimension choice for {name} has been deprecated. "
        "Change the call to include dim=X as an argument.",
        stacklevel=guard.caller_stacklevel(),
    )
    return 0 if ndim in (0, 1, 3) else 1


def _check_tensor(x: object, name: str) -> None:
    if not isinstance(x, torch.Tensor):
        kind = type(x).__module__.split(".")[0] + "." + type(x).__name__
        hint = (
            " (use logmax.softmax and friends for NumPy arrays)" if kind.startswith("numpy") else ""
        )
        raise TypeError(f"{name} must be a torch.Tensor, got {kind}{hint}")


def _check_float(x: torch.Tensor, name: str) -> None:
    _check_tensor(x, name)
    if x.dtype not in FLOATS:
        raise TypeError(
            f"{name} has dtype {x.dtype}; expected a floating point tensor "
            "(float16, bfloat16, float32 or float64): pass dtype= or call .float()"
        )


def _dim(dim: int, ndim: int) -> int:
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"dim must be an int, got {dim!r}")
    n = max(ndim, 1)
    if not -n <= dim < n:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], "
                         f"but got {dim})")  # fmt: skip
    return dim % n


def _normalise(eager, traced, name, input, dim, dtype, temperature, nan_policy) -> torch.Tensor:
    """softmax / log_softmax after torch's argument handling (legacy ``dim=None``, ``dtype``)."""
    _check_tensor(input, "input")
    if dim is None:
        dim = _legacy_softmax_dim(name, input.dim())
    if dtype is not None:
        input = input.to(dtype)
    (input,) = _autocast(name, input)
    _check_float(input, "input")
    opts = RowOptions.make(temperature, nan_policy)
    if input.ndim == 0:
        _dim(dim, 0)
        out = fn.apply(eager, traced, input.reshape(1), 0, opts.temperature, opts.nan_policy)
        return out.reshape(())
    return fn.apply(eager, traced, input, _dim(dim, input.ndim), opts.temperature, opts.nan_policy)


def softmax(
    input: torch.Tensor,
    dim: int | None = None,
    _stacklevel: int = 3,
    dtype: torch.dtype | None = None,
    *,
    temperature: float = 1.0,
    nan_policy: str = "propagate",
) -> torch.Tensor:
    r"""Softmax along ``dim``: :math:`e^{x_i/T} / \sum_j e^{x_j/T}`, exact to 1 ULP.

    Computed as :math:`e^{x_i - m} / (1 + s)` with :math:`s = \sum_{i \ne \arg\max} e^{x_i - m}`
    in double-double float64 (float32 for 16-bit inputs off the CPU).

    Args:
        input: floating tensor.
        dim: the dim to normalise; ``None`` picks torch's deprecated implicit dim (with its
            warning).
        _stacklevel: accepted for torch's signature; the warning names the caller's line.
        dtype: cast ``input`` to this dtype first (as torch).
        temperature: divides the input first.
        nan_policy: ``'propagate'`` (a row with NaN or ``+inf`` gives NaN) or ``'raise'``
            (``ValueError`` naming the row).

    Returns:
        Tensor of ``input``'s shape and dtype: ``-inf`` entries give 0, a row of ``-inf`` zeros
        (torch: NaN).

    Example:
        >>> import torch, logmax.torch as lt
        >>> lt.softmax(torch.tensor([[1000.0, 1000.0, -float("inf")]]), dim=1)
        tensor([[0.5000, 0.5000, 0.0000]])
    """
    return _normalise(fn.SoftmaxEager, fn.Softmax, "softmax", input, dim, dtype, temperature,
                      nan_policy)  # fmt: skip


def log_softmax(
    input: torch.Tensor,
    dim: int | None = None,
    _stacklevel: int = 3,
    dtype: torch.dtype | None = None,
    *,
    temperature: float = 1.0,
    nan_policy: str = "propagate",
) -> torch.Tensor:
    r"""Log-softmax along ``dim``: :math:`(x_i - m) - \operatorname{log1p}(s)`, exact to 1 ULP.

    Arguments as :func:`softmax`. ``-inf`` entries give ``-inf`` and a gradient of 0.

    Example:
        >>> import torch, logmax.torch as lt
        >>> lt.log_softmax(1000 * torch.tensor([-1.0, 0.0, 1.0]), dim=0)
        tensor([-2000., -1000.,     0.])
    """
    return _normalise(fn.LogSoftmaxEager, fn.LogSoftmax, "log_softmax", input, dim, dtype,
                      temperature, nan_policy)  # fmt: skip


def logsumexp(
    input: torch.Tensor,
    dim: int | Sequence[int],
    keepdim: bool = False,
    *,
    out: torch.Tensor | None = None,
    temperature: float = 1.0,
    nan_policy: str = "propagate",
) -> torch.Tensor:
    r""":math:`\log \sum_i e^{x_i / T}` over ``dim`` (an int or a tuple), as ``torch.logsumexp``.

    Computed as :math:`m + \operatorname{log1p}(s)`, with the sum carried exactly enough that a
    result near 0 (the logsumexp of log-probabilities) keeps its digits. A row of ``-inf`` gives
    ``-inf`` and a zero gradient (torch: NaN gradient); an empty ``dim`` gives ``-inf``.
    Integer and bool inputs are computed in the default floating dtype, as torch does; ``out``
    receives the result.

    Example:
        >>> import torch, logmax.torch as lt
        >>> lt.logsumexp(torch.tensor([0.0, -30.0], dtype=torch.float64), dim=0)
        tensor(9.3576e-14, dtype=torch.float64)
    """
    _check_tensor(input, "input")
    if not input.is_floating_point() and not input.is_complex():
        input = input.to(torch.get_default_dtype())  # torch's promotion of integers and bools
    (input,) = _autocast("logsumexp", input)
    _check_float(input, "input")
    keepdim = checks.check_flag(keepdim, "keepdim")
    opts = RowOptions.make(temperature, nan_policy)
    x = input.reshape(1) if input.ndim == 0 else input
    dims = list(dim) if isinstance(dim, (tuple, list)) else [dim]
    dims = sorted({_dim(d, input.ndim) for d in dims}) if dims else list(range(x.ndim))
    result = fn.apply(fn.LogSumExpEager, fn.LogSumExp, x, fn.Dims(tuple(dims)), keepdim,
                      opts.temperature, opts.nan_policy)  # fmt: skip
    if input.ndim == 0:
        result = result.reshape(())
    if out is not None:
        if out.dtype != result.dtype:
            raise RuntimeError(
                f"Expected out tensor to have dtype {result.dtype}, but got {out.dtype} instead"
            )
        out.resize_(result.shape).copy_(result)
        return out
    return result


def _reduction(size_average, reduce, reduction: str) -> str:
    if size_average is not None or reduce is not None:
        reduction = torch.nn._reduction.legacy_get_string(size_average, reduce)
    checks.check_reduction(reduction)
    return reduction


def _batched(input: torch.Tensor, target: torch.Tensor, name: str):
    """(input, target, unbatched) with the classes on dim 1 and the target checked."""
    _check_float(input, name)
    _check_tensor(target, "target")
    if input.ndim == 0:
        raise ValueError(f"{name} must have the classes on dim 0 (C,) or dim 1 (N, C, ...)")
    if target.device != input.device:
        raise ValueError(f"target is on {target.device} but {name} is on {input.device}")
    unbatched = input.ndim == 1
    if unbatched:
        input, target = input.unsqueeze(0), target.unsqueeze(0)
    batch_shape = (input.shape[0], *input.shape[2:])
    expected = (
        f"class indices of shape {tuple(batch_shape[unbatched:])} (any integer dtype) or class "
        f"probabilities of {name}'s shape {tuple(input.shape[unbatched:])} (floating)"
    )
    shape = tuple(target.shape[unbatched:])
    if target.is_floating_point():
        if target.shape != input.shape:
            hint = ": class indices must be integers, call .long()"
            hint = hint if target.shape == batch_shape else ""
            raise ValueError(f"target has shape {shape} and dtype {target.dtype}{hint}; "
                             f"expected {expected}")  # fmt: skip
    elif target.dtype == torch.bool or target.is_complex():
        raise TypeError(f"target has dtype {target.dtype}; expected {expected}")
    elif target.shape != batch_shape:
        raise ValueError(f"target has shape {shape}; expected {expected}")
    return input, target, unbatched


def _weight(weight: object, input: torch.Tensor) -> torch.Tensor | None:
    if weight is None:
        return None
    if not isinstance(weight, torch.Tensor):
        raise TypeError(
            f"weight must be a torch.Tensor of shape ({input.shape[1]},), got "
            f"{type(weight).__name__} (as torch: wrap it with torch.tensor)"
        )
    if weight.shape != (input.shape[1],):
        raise ValueError(
            f"weight has shape {tuple(weight.shape)}; expected one weight per class, "
            f"shape ({input.shape[1]},)"
        )
    if weight.dtype != input.dtype:
        raise TypeError(
            f"weight has dtype {weight.dtype} but input has {input.dtype}; they must match "
            "(as in torch)"
        )
    if weight.device != input.device:
        raise ValueError(f"weight is on {weight.device} but input is on {input.device}")
    return weight


def cross_entropy(
    input: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    size_average: bool | None = None,
    ignore_index: int = -100,
    reduce: bool | None = None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    *,
    temperature: float = 1.0,
    softcap: float | None = None,
    z_loss: float = 0.0,
    return_lse: bool = False,
    nan_policy: str = "propagate",
    normalizer: float | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    r"""Cross-entropy from logits, drop-in for ``torch.nn.functional.cross_entropy``.

    With :math:`z = \operatorname{softcap}(x)/T` and
    :math:`-\log p_c = (m - z_c) + \operatorname{log1p}(s)`, a row's loss is

    .. math::
        (1-\varepsilon)\, w_y (-\log p_y) + \tfrac{\varepsilon}{C} \sum_c w_c (-\log p_c)
        + \zeta\, w_y\, \mathrm{lse}(z)^2

    for a class index :math:`y`, and :math:`\sum_c w_c t'_c (-\log p_c) + \zeta\,\mathrm{lse}^2`
    with :math:`t' = (1-\varepsilon) t + \varepsilon/C` for class probabilities :math:`t`
    (``0 * log 0 = 0``).

    Args:
        input: logits ``(C,)``, ``(N, C)`` or ``(N, C, d1, ..., dk)``; float16, bfloat16, float32
            or float64, computed in float32 or wider and returned in this dtype.
        target: class indices of shape ``()``, ``(N,)`` or ``(N, d1, ..., dk)`` (any integer
            dtype), or class probabilities of ``input``'s shape (may require grad).
        weight: per-class weights ``(C,)``, of ``input``'s dtype (as torch).
        size_average, reduce: deprecated, as torch (mapped to ``reduction`` with its warning).
        ignore_index: class index whose rows are skipped: loss 0, gradient exactly 0.
        reduction: ``'none'``, ``'sum'`` or ``'mean'`` (torch's weighted mean
            :math:`\sum w_{y_i}\ell_i / \sum w_{y_i}`; probabilities: divided by the row count).
            A mean over zero counted rows is 0 (torch: NaN).
        label_smoothing: :math:`\varepsilon` in ``[0, 1]``, torch's semantics (with weights too).
        temperature: :math:`T`, divides the logits (after the softcap).
        softcap: ``c``: the logits become :math:`c \tanh(x/c)` first.
        z_loss: :math:`\zeta`, adds :math:`\zeta\,\mathrm{lse}^2` per counted row.
        return_lse: also return each row's logsumexp of :math:`z` (shape of the class indices,
            no gradient).
        nan_policy: ``'propagate'`` (a row with NaN or ``+inf`` gives NaN) or ``'raise'``.
        normalizer: with ``reduction='mean'``, divide the summed loss by this count instead
            (the global number of tokens when gradients accumulate over micro-batches or ranks).

    Returns:
        The loss (``reduction='none'``: one per row), or ``(loss, lse)`` with ``return_lse``.

    Raises:
        ValueError: a class index outside ``[0, C)`` that is not ``ignore_index`` (naming its
            position, its value and C); a target or weight of the wrong shape.
        RuntimeError: ``ignore_index`` other than -100 with class probabilities (as torch).

    Warns:
        InputGuardWarning: once, when ``input`` looks like probabilities or log-probabilities
            (see :mod:`logmax.torch.guard`; ``set_input_guard(False)`` switches it off).

    Example:
        >>> import torch, logmax.torch as lt
        >>> output = torch.tensor([[3.2, 1.3, 0.2, 0.8], [1.2, 4.1, 3.8, 0.1],
        ...                        [3.3, 2.5, 1.9, 5.9]])
        >>> lt.cross_entropy(output, torch.tensor([0, 2, 3]))
        tensor(0.4230)
        >>> lt.cross_entropy(torch.tensor([[0.0, -30.0]]), torch.tensor([0]))  # torch: 0
        tensor(9.3576e-14)
    """
    reduction = _reduction(size_average, reduce, reduction)
    return_lse = checks.check_flag(return_lse, "return_lse")
    if distributed.is_dtensor(input):  # logits sharded on the class dim: vocab-parallel
        if nan_policy != "propagate":
            raise ValueError("nan_policy='raise' is not offered for DTensor logits")
        return distributed.cross_entropy_dtensor(
            input, target, weight, ignore_index, reduction, label_smoothing,
            temperature=temperature, softcap=softcap, z_loss=z_loss, return_lse=return_lse,
            normalizer=normalizer,
        )  # fmt: skip
    _check_tensor(input, "input")
    input, weight = _autocast("cross_entropy", input, weight)
    guard.check_before(input)
    x, t, unbatched = _batched(input, target, "input")
    opts = LossOptions.make(ignore_index, reduction, label_smoothing, temperature, softcap,
                            z_loss, nan_policy, normalizer)  # fmt: skip
    if t.is_floating_point() and opts.ignore_index != -100:
        raise RuntimeError("ignore_index is not supported for floating point target")
    w = _weight(weight, x)
    want_grad = x.requires_grad and torch.is_grad_enabled()
    loss, lse, _ = fn.apply(fn.CrossEntropyEager, fn.CrossEntropy, x, t, w, opts, want_grad)
    guard.check_after(x, lse, transformed=opts.transformed)
    if unbatched:
        lse = lse.squeeze(0)
        if reduction == "none":
            loss = loss.squeeze(0)
    return (loss, lse) if return_lse else loss


def nll_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    size_average: bool | None = None,
    ignore_index: int = -100,
    reduce: bool | None = None,
    reduction: str = "mean",
    *,
    nan_policy: str = "propagate",
    normalizer: float | None = None,
) -> torch.Tensor:
    r"""Negative log-likelihood of log-probabilities, drop-in for ``F.nll_loss``.

    A row's loss is :math:`-w_y \log p_y` (class probabilities :math:`t` as target:
    :math:`-\sum_c w_c t_c \log p_c`, ``0 * log 0 = 0``; torch takes only indices). ``input`` must
    already be log-probabilities (from :func:`log_softmax`); for logits use
    :func:`cross_entropy`. Shapes, ``weight``, ``ignore_index``, ``reduction``, ``normalizer``
    and the deprecated ``size_average``/``reduce`` as :func:`cross_entropy`; a mean over zero
    counted rows is 0. ``nan_policy='raise'`` raises on a counted row whose loss is NaN or
    ``+inf``.

    Example:
        >>> import torch, logmax.torch as lt
        >>> logp = lt.log_softmax(torch.tensor([[3.2, 1.3, 0.2, 0.8], [1.2, 4.1, 3.8, 0.1]]), 1)
        >>> lt.nll_loss(logp, torch.tensor([0, 2]))
        tensor(0.5752)
    """
    reduction = _reduction(size_average, reduce, reduction)
    _check_tensor(input, "input")
    input, weight = _autocast("nll_loss", input, weight)
    x, t, unbatched = _batched(input, target, "input")
    opts = LossOptions.make(ignore_index, reduction, nan_policy=nan_policy, normalizer=normalizer)
    w = _weight(weight, x)
    want_grad = x.requires_grad and torch.is_grad_enabled()
    loss, _ = fn.apply(fn.NLLLossEager, fn.NLLLoss, x, t, w, opts, want_grad)
    return loss.squeeze(0) if unbatched and reduction == "none" else loss
