r"""The NumPy frontend: ``logmax.softmax``, ``log_softmax``, ``logsumexp``, ``nll_loss``,
``cross_entropy`` and the gradients a training loop needs without autograd.

Each function validates its arguments once (:mod:`logmax._core.checks`,
:mod:`logmax._core.options`), lays the classes out on one axis, and runs the op on the backend the
registry picks (:mod:`logmax.kernels.registry`: the Numba kernels when they serve the call, the
NumPy reference otherwise). Conventions follow SciPy (``axis=-1``, ``b``, ``keepdims``,
``return_sign``) and the loss options follow ``torch.nn.functional``. The edge rules are the
contract in the README.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from logmax._core import checks
from logmax._core.dtypes import result_dtype, round_to
from logmax._core.options import LossOptions, RowOptions
from logmax.kernels import registry

Axis = int | Sequence[int] | None


class LossGrad(NamedTuple):
    """A loss with its gradient with respect to the first argument (and the rows' logsumexp)."""

    loss: np.ndarray
    grad: np.ndarray
    lse: np.ndarray | None = None


# ---------------------------------------------------------------------------------------------
# Layout: the classes on one axis.
def _fold(arr: np.ndarray, axes: tuple[int, ...]) -> tuple[np.ndarray, int, Any]:
    """``arr`` with ``axes`` folded into one, that axis, and the function undoing it."""
    if len(axes) == 1:
        return arr, axes[0], lambda y, reduced=False: y
    last = tuple(range(arr.ndim - len(axes), arr.ndim))
    moved = np.moveaxis(arr, axes, last)
    batch = moved.shape[: arr.ndim - len(axes)]
    k = math.prod(arr.shape[a] for a in axes)
    folded = moved.reshape(batch + (k,))

    def unfold(y: np.ndarray, reduced: bool = False) -> np.ndarray:
        if reduced:
            return y
        return np.moveaxis(y.reshape(moved.shape), last, axes)

    return folded, len(batch), unfold


def _options_in_use(**flags: bool) -> frozenset[str]:
    return frozenset(name for name, on in flags.items() if on)


def _float_input(x: ArrayLike, name: str) -> np.ndarray:
    """``x`` as an array of its result dtype (integers and bools become float64, as SciPy)."""
    arr = checks.as_float_array(x, name)
    dtype = result_dtype(arr.dtype, name)
    if arr.dtype != dtype or arr.dtype.byteorder == ">":
        arr = arr.astype(dtype.newbyteorder("="))  # big-endian data is read, not refused
    return arr


def _masked(arr: np.ndarray, where: ArrayLike | None) -> np.ndarray:
    mask = checks.broadcast_mask(where, arr.shape)
    return arr if mask is None else np.where(mask, arr, arr.dtype.type(-np.inf))


def _raise_nonfinite(arr: np.ndarray, axis: int, rows_counted: np.ndarray | None, what: str):
    bad = np.any(np.isnan(arr) | (arr == np.inf), axis=axis)
    if rows_counted is not None:
        bad &= rows_counted
    checks.raise_nonfinite_row(bad, bad.shape, what)


def _rows_op(op: str, x: ArrayLike, axis: Axis, where, temperature, nan_policy) -> np.ndarray:
    arr = _masked(_float_input(x, "x"), where)
    axes = checks.normalize_axes(axis, arr.ndim)
    opts = RowOptions.make(temperature, nan_policy)
    folded, ax, unfold = _fold(arr, axes)
    if opts.nan_policy == "raise":
        _raise_nonfinite(folded, ax, None, "x")
    call = registry.Call(
        op, "numpy", "cpu", folded.dtype.name,
        _options_in_use(
            temperature=opts.temperature != 1.0,
            middle_axis=ax != folded.ndim - 1,
            empty=folded.shape[ax] == 0,
        ),
        folded.size,
    )  # fmt: skip
    out = registry.run(call, folded, ax, opts)
    return unfold(out, reduced=op == "logsumexp")


def softmax(
    x: ArrayLike,
    axis: Axis = -1,
    *,
    where: ArrayLike | None = None,
    temperature: float = 1.0,
    nan_policy: str = "propagate",
) -> np.ndarray:
    r"""Softmax along ``axis``: :math:`e^{x_i/T} / \sum_j e^{x_j/T}`.

    Computed as :math:`e^{x_i - m} / (1 + s)` with :math:`m` the row maximum and
    :math:`s = \sum_{i \ne \arg\max} e^{x_i - m}`, in float64 (long double for float64 inputs).

    Args:
        x: array of float16, bfloat16, float32 or float64 (integers become float64).
        axis: axis or tuple of axes to normalise over (``None``: all).
        where: boolean mask broadcastable to ``x``; ``False`` entries are left out (probability 0).
        temperature: divides ``x`` first.
        nan_policy: ``'propagate'`` turns a row holding NaN or ``+inf`` into NaN;
            ``'raise'`` raises ``ValueError`` naming that row.

    Returns:
        Array of ``x``'s shape and dtype. ``-inf`` entries give 0; a row of ``-inf`` gives zeros.

    Example:
        >>> import logmax
        >>> logmax.softmax([1000.0, 1000.0, -1000.0])
        array([0.5, 0.5, 0. ])
    """
    return _rows_op("softmax", x, axis, where, temperature, nan_policy)


def log_softmax(
    x: ArrayLike,
    axis: Axis = -1,
    *,
    where: ArrayLike | None = None,
    temperature: float = 1.0,
    nan_policy: str = "propagate",
) -> np.ndarray:
    r"""Log-softmax along ``axis``: :math:`(x_i - m) - \operatorname{log1p}(s)`.

    Never ``log(softmax(x))``: that rounds small probabilities to 0 and returns ``-inf``
    (seed 002's ``alpha = 1000``), while this returns ``[-2000, -1000, 0]``.

    Args and edge rules as :func:`softmax`; ``-inf`` entries give ``-inf``.

    Example:
        >>> import numpy as np, logmax
        >>> logmax.log_softmax(1000 * np.array([-1.0, 0.0, 1.0], dtype=np.float32))
        array([-2000., -1000.,     0.], dtype=float32)
    """
    return _rows_op("log_softmax", x, axis, where, temperature, nan_policy)


def logsumexp(
    a: ArrayLike,
    axis: Axis = -1,
    b: ArrayLike | None = None,
    keepdims: bool = False,
    return_sign: bool = False,
    *,
    where: ArrayLike | None = None,
    temperature: float = 1.0,
    nan_policy: str = "propagate",
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    r""":math:`\log \sum_i b_i e^{x_i / T}` along ``axis``, as :math:`m + \operatorname{log1p}(s)`.

    Follows ``scipy.special.logsumexp`` (``b``, ``keepdims``, ``return_sign``), with
    ``axis=-1`` by default. A row of ``-inf`` (or an empty axis) gives ``-inf``.

    Args:
        b: weights broadcastable to ``x``; entries with ``b == 0`` are left out. When the weighted
            sum is negative, ``return_sign=True`` is required (SciPy would return NaN).
        keepdims: keep the reduced axes with length 1.
        return_sign: also return the sign of the sum (1, -1, or 0 for an empty sum).
        where, temperature, nan_policy: as :func:`softmax`.

    Example:
        >>> import logmax
        >>> float(logmax.logsumexp([0.0, -800.0]))
        0.0
        >>> float(logmax.logsumexp([-1e4, -1e4]) + 1e4)  # log 2
        0.693147...
    """
    keepdims = checks.check_flag(keepdims, "keepdims")
    return_sign = checks.check_flag(return_sign, "return_sign")
    if np.iscomplexobj(a) or (b is not None and np.iscomplexobj(b)):
        return _logsumexp_complex(a, axis, b, keepdims, return_sign, where, temperature)
    arr = _float_input(a, "a")
    if b is not None:  # a and b broadcast together, as in SciPy
        bw = _float_input(b, "b")
        shape = _broadcast_shape(arr.shape, bw.shape)
        arr, bw = np.broadcast_to(arr, shape), np.broadcast_to(bw, shape)
    axes = checks.normalize_axes(axis, arr.ndim)
    if b is None and not return_sign:
        out = _rows_op("logsumexp", arr, axes, where, temperature, nan_policy)
        return _scalar(np.expand_dims(out, axes) if keepdims else out)
    opts = RowOptions.make(temperature, nan_policy)
    if b is None:
        bw = np.ones(arr.shape)
    masked = _masked(arr, where)
    folded, ax, _ = _fold(masked, axes)
    bf, _, _ = _fold(bw, axes)
    if opts.nan_policy == "raise":
        _raise_nonfinite(folded, ax, None, "a")
    call = registry.Call("logsumexp_weighted", "numpy", "cpu", folded.dtype.name)
    lse, sign = registry.run(call, folded, ax, bf, opts)
    rdt = result_dtype(np.result_type(arr.dtype, bw.dtype) if b is not None else arr.dtype)
    if not return_sign and np.any(sign < 0):
        row = tuple(int(i) for i in np.argwhere(sign < 0)[0])
        raise ValueError(
            f"the weighted sum of row {list(row)} is negative, so its log is not real: "
            "pass return_sign=True to get log|sum| and the sign"
        )
    out = round_to(lse, rdt)
    if not return_sign:
        return _scalar(np.expand_dims(out, axes) if keepdims else out)
    sgn = round_to(sign, rdt)
    if keepdims:
        out, sgn = np.expand_dims(out, axes), np.expand_dims(sgn, axes)
    return _scalar(out), _scalar(sgn)


def _scalar(v: np.ndarray) -> Any:
    """A 0-d result as a NumPy scalar, as SciPy returns it."""
    return v[()] if np.ndim(v) == 0 else v


def _broadcast_shape(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    try:
        return np.broadcast_shapes(a, b)
    except ValueError:
        raise ValueError(f"b has shape {b}, which does not broadcast with a's shape {a}") from None


def _logsumexp_complex(a, axis, b, keepdims, return_sign, where, temperature):
    """Complex ``a`` (or ``b``): SciPy's complex logsumexp, :math:`\\log \\sum_i b_i e^{a_i}`
    with the principal logarithm; the sign is :math:`S / |S|` (see
    :func:`logmax.kernels.numpy_backend.logsumexp_complex`)."""
    from logmax.kernels.numpy_backend import logsumexp_complex

    arr = np.asarray(a)
    bw = np.ones(arr.shape) if b is None else np.asarray(b)
    shape = _broadcast_shape(arr.shape, bw.shape)
    arr, bw = np.broadcast_to(arr, shape), np.broadcast_to(bw, shape)
    axes = checks.normalize_axes(axis, arr.ndim)
    t = checks.check_temperature(temperature)
    mask = checks.broadcast_mask(where, arr.shape)
    if mask is not None:
        bw = np.where(mask, bw, 0)
    folded, ax, _ = _fold(arr, axes)
    bf, _, _ = _fold(bw, axes)
    lse, sign = logsumexp_complex(folded, ax, bf, t)
    if not return_sign:
        out = lse
    else:
        out = np.real(lse).astype(np.result_type(lse.real.dtype, np.float32))
    if keepdims:
        out, sign = np.expand_dims(out, axes), np.expand_dims(sign, axes)
    return (_scalar(out), _scalar(sign)) if return_sign else _scalar(out)


def _weights_b(b: ArrayLike, shape: tuple[int, ...]) -> np.ndarray:
    bw = _float_input(b, "b")
    try:
        return np.broadcast_to(bw, shape)
    except ValueError:
        raise ValueError(
            f"b has shape {bw.shape}, which does not broadcast to x's shape {shape}"
        ) from None


# ---------------------------------------------------------------------------------------------
# Losses.
class _LossArgs(NamedTuple):
    arr: np.ndarray
    axis: int
    target: np.ndarray
    soft: bool
    weight: np.ndarray | None
    batch_shape: tuple[int, ...]
    opts: LossOptions


def _loss_args(x, target, weight, axis, name, opts: LossOptions) -> _LossArgs:
    arr = _float_input(x, name)
    if axis is None:
        raise TypeError("a loss has one class axis: pass an int axis, not None")
    ax = checks.class_axis(axis, arr.ndim)
    tgt = np.asarray(target)
    soft = checks.target_kind(tgt, arr.shape, ax) == "soft"
    n_cls = arr.shape[ax]
    w = checks.check_weight(weight, n_cls)
    if not soft:
        checks.check_labels(tgt, n_cls, opts.ignore_index)
    batch = arr.shape[:ax] + arr.shape[ax + 1 :]
    return _LossArgs(arr, ax, tgt, soft, w, batch, opts)


def _grad_output(a: _LossArgs, grad_output: ArrayLike) -> np.ndarray:
    g = np.asarray(grad_output, dtype=np.float64)
    if a.opts.reduction == "none":
        try:
            return np.broadcast_to(g, a.batch_shape)
        except ValueError:
            raise ValueError(
                f"grad_output has shape {g.shape}; expected the loss's shape {a.batch_shape} "
                "(reduction='none')"
            ) from None
    if g.ndim:
        raise ValueError(
            f"grad_output must be a scalar for reduction={a.opts.reduction!r}, got shape {g.shape}"
        )
    return g


def _loss_call(op: str, a: _LossArgs, grad: bool) -> registry.Call:
    o = a.opts
    return registry.Call(
        op, "numpy", "cpu", a.arr.dtype.name,
        _options_in_use(
            temperature=o.temperature != 1.0, softcap=o.softcap is not None,
            label_smoothing=o.label_smoothing != 0.0, z_loss=o.z_loss != 0.0,
            weight=a.weight is not None, soft=a.soft, grad=grad,
            middle_axis=a.axis != a.arr.ndim - 1, empty=a.arr.shape[a.axis] == 0,
        ),
        a.arr.size,
    )  # fmt: skip


def _cross_entropy(logits, target, weight, axis, where, opts: LossOptions, grad_output):
    a = _loss_args(_masked(_float_input(logits, "logits"), where), target, weight, axis,
                   "logits", opts)  # fmt: skip
    if opts.nan_policy == "raise":
        counted = np.ones(a.batch_shape, bool) if a.soft else a.target != opts.ignore_index
        _raise_nonfinite(a.arr, a.axis, counted, "logits")
    g = None if grad_output is None else _grad_output(a, grad_output)
    call = _loss_call("cross_entropy", a, g is not None)
    loss, lse, grad = registry.run(call, a.arr, a.axis, a.target, a.soft, a.weight, opts, g)
    dtype = a.arr.dtype
    return _round(loss, dtype), round_to(np.asarray(lse), dtype), grad


def _round(loss, dtype) -> np.ndarray:
    out = round_to(np.asarray(loss), dtype)
    return out if out.ndim else out[()]


def _loss_options(ignore_index, reduction, label_smoothing=0.0, temperature=1.0, softcap=None,
                  z_loss=0.0, nan_policy="propagate", normalizer=None) -> LossOptions:  # fmt: skip
    return LossOptions.make(
        ignore_index, reduction, label_smoothing, temperature, softcap, z_loss, nan_policy,
        normalizer,
    )  # fmt: skip


def cross_entropy(
    logits: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    *,
    axis: int = -1,
    where: ArrayLike | None = None,
    temperature: float = 1.0,
    softcap: float | None = None,
    z_loss: float = 0.0,
    return_lse: bool = False,
    nan_policy: str = "propagate",
    normalizer: float | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    r"""Cross-entropy between ``softmax(logits)`` and the targets, from the logits.

    With :math:`z = \operatorname{softcap}(x)/T` and :math:`-\log p_c = (m - z_c) +
    \operatorname{log1p}(s)` (never :math:`\log` of a rounded probability), the loss of a row is

    .. math::
        (1-\varepsilon)\, w_y (-\log p_y) + \tfrac{\varepsilon}{C} \sum_c w_c (-\log p_c)
        + \zeta\, w_y\, \mathrm{lse}(z)^2

    for a hard label :math:`y`, and :math:`\sum_c w_c t'_c (-\log p_c) + \zeta\,\mathrm{lse}^2`
    with :math:`t' = (1-\varepsilon) t + \varepsilon/C` for soft targets :math:`t`.
    A confident correct row (margin 20 in float32) gives its true loss, about 2e-9, not 0.

    Args:
        logits: scores, classes along ``axis`` (default last).
        target: integer class indices of the logits' shape without the class axis (hard), or
            class probabilities of the logits' shape (soft; ``0 * log 0 = 0``).
        weight: per-class weights, shape ``(C,)``.
        ignore_index: hard label whose rows are skipped (loss 0, gradient 0).
        reduction: ``'none'``, ``'sum'`` or ``'mean'``: torch's weighted mean
            :math:`\sum_i w_{y_i} \ell_i / \sum_i w_{y_i}` (soft targets: divided by the row count).
            A mean over no counted rows is 0 (torch gives NaN).
        label_smoothing: :math:`\varepsilon` in ``[0, 1]``, torch's semantics.
        axis: the class axis.
        where: boolean mask broadcastable to ``logits``; ``False`` classes are left out.
        temperature: :math:`T`, divides the logits (after the softcap).
        softcap: ``c``: logits become :math:`c \tanh(x / c)` first (``-inf`` stays masked).
        z_loss: :math:`\zeta`, adds :math:`\zeta\,\mathrm{lse}^2` per counted row (weighted by
            :math:`w_y` like the rest of the row's loss).
        return_lse: also return each row's logsumexp of :math:`z`.
        nan_policy: ``'propagate'`` (a row with NaN or ``+inf`` gives NaN) or ``'raise'``.

    Raises:
        ValueError: a label outside ``[0, C)`` that is not ``ignore_index`` (naming the first
            bad position, its value and C); a target of the wrong shape.
        TypeError: float class indices, or a dtype logmax does not take.

    Example:
        >>> import numpy as np, logmax
        >>> output = np.array([[3.2, 1.3, 0.2, 0.8], [1.2, 4.1, 3.8, 0.1], [3.3, 2.5, 1.9, 5.9]])
        >>> float(logmax.cross_entropy(output, np.array([0, 2, 3])))  # seed 001
        0.4229861...
    """
    return_lse = checks.check_flag(return_lse, "return_lse")
    opts = _loss_options(ignore_index, reduction, label_smoothing, temperature, softcap, z_loss,
                         nan_policy, normalizer)  # fmt: skip
    loss, lse, _ = _cross_entropy(logits, target, weight, axis, where, opts, None)
    return (loss, lse) if return_lse else loss


def cross_entropy_with_grad(
    logits: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    *,
    axis: int = -1,
    where: ArrayLike | None = None,
    temperature: float = 1.0,
    softcap: float | None = None,
    z_loss: float = 0.0,
    nan_policy: str = "propagate",
    normalizer: float | None = None,
    grad_output: ArrayLike = 1.0,
) -> LossGrad:
    r""":func:`cross_entropy` and its gradient with respect to ``logits``, in one sweep.

    For a hard label the gradient of a row is
    :math:`g_j = (1-\varepsilon) w_y (p_j - [j = y]) + \tfrac{\varepsilon}{C}(W p_j - w_j)
    + 2\zeta w_y\,\mathrm{lse}\, p_j` with :math:`W = \sum_c w_c`, then the softcap and
    temperature chain rule, times ``grad_output`` (divided by the mean's denominator for
    ``'mean'``). Ignored rows and masked entries get exactly 0.

    Args:
        grad_output: upstream gradient of the loss: a scalar for ``'mean'``/``'sum'``, or an array
            of the loss's shape for ``'none'``.
        the rest: as :func:`cross_entropy`.

    Returns:
        ``LossGrad(loss, grad, lse)``; ``grad`` has the logits' shape and dtype.

    Example:
        >>> import numpy as np, logmax
        >>> loss, grad, lse = logmax.cross_entropy_with_grad(np.array([[0.0, 0.0]]), np.array([1]))
        >>> grad
        array([[ 0.5, -0.5]])
    """
    opts = _loss_options(ignore_index, reduction, label_smoothing, temperature, softcap, z_loss,
                         nan_policy, normalizer)  # fmt: skip
    loss, lse, grad = _cross_entropy(logits, target, weight, axis, where, opts, grad_output)
    return LossGrad(loss, grad, lse)


def _nll(logp, target, weight, axis, opts: LossOptions, grad_output):
    a = _loss_args(logp, target, weight, axis, "logp", opts)
    g = None if grad_output is None else _grad_output(a, grad_output)
    if opts.nan_policy == "raise":
        per_row = LossOptions(a.opts.ignore_index, "none")
        rows, _ = registry.run(_loss_call("nll_loss", a, False), a.arr, a.axis, a.target, a.soft,
                               a.weight, per_row, None)  # fmt: skip
        counted = np.ones(a.batch_shape, bool) if a.soft else a.target != opts.ignore_index
        rows = np.asarray(rows)
        checks.raise_nonfinite_row((np.isnan(rows) | np.isinf(rows)) & counted,
                                   a.batch_shape, "logp")  # fmt: skip
    call = _loss_call("nll_loss", a, g is not None)
    loss, grad = registry.run(call, a.arr, a.axis, a.target, a.soft, a.weight, opts, g)
    return _round(loss, a.arr.dtype), grad


def nll_loss(
    logp: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    *,
    axis: int = -1,
    nan_policy: str = "propagate",
    normalizer: float | None = None,
) -> np.ndarray:
    r"""Negative log-likelihood of log-probabilities: :math:`-w_y \log p_y` per row.

    ``logp`` must already be log-probabilities (from :func:`log_softmax`); for logits use
    :func:`cross_entropy`. Soft targets give :math:`-\sum_c w_c t_c \log p_c` with
    :math:`0 \cdot (-\infty) = 0`. Labels, ``weight``, ``ignore_index`` and ``reduction`` as
    :func:`cross_entropy`; ``nan_policy='raise'`` raises on a counted row whose picked
    log-probability is NaN or ``+inf``.

    Example:
        >>> import numpy as np, logmax
        >>> logp = logmax.log_softmax(np.array([[3.2, 1.3, 0.2, 0.8], [1.2, 4.1, 3.8, 0.1]]))
        >>> float(logmax.nll_loss(logp, np.array([0, 2])))
        0.5751...
    """
    opts = _loss_options(ignore_index, reduction, nan_policy=nan_policy, normalizer=normalizer)
    return _nll(logp, target, weight, axis, opts, None)[0]


def nll_loss_with_grad(
    logp: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    *,
    axis: int = -1,
    nan_policy: str = "propagate",
    normalizer: float | None = None,
    grad_output: ArrayLike = 1.0,
) -> LossGrad:
    """:func:`nll_loss` and its gradient with respect to ``logp``: ``-w_y`` at the label, scaled
    like :func:`cross_entropy_with_grad`. Returns ``LossGrad(loss, grad, None)``."""
    opts = _loss_options(ignore_index, reduction, nan_policy=nan_policy, normalizer=normalizer)
    loss, grad = _nll(logp, target, weight, axis, opts, grad_output)
    return LossGrad(loss, grad, None)


# ---------------------------------------------------------------------------------------------
# Vector-Jacobian products: dL/dx from an upstream gradient, for the element-wise ops.
def _vjp(op: str, y: ArrayLike, grad: ArrayLike, axis: Axis, temperature: float) -> np.ndarray:
    yy = _float_input(y, "y")
    gg = _float_input(grad, "grad")
    if gg.shape != yy.shape:
        raise ValueError(f"grad has shape {gg.shape}; expected the output's shape {yy.shape}")
    axes = checks.normalize_axes(axis, yy.ndim)
    t = checks.check_temperature(temperature)
    fy, ax, unfold = _fold(yy, axes)
    fg, _, _ = _fold(gg, axes)
    call = registry.Call(op, "numpy", "cpu", np.result_type(yy.dtype, gg.dtype).name)
    return unfold(registry.run(call, fy, fg, ax, t))


def softmax_vjp(
    y: ArrayLike, grad: ArrayLike, axis: Axis = -1, *, temperature: float = 1.0
) -> np.ndarray:
    r"""Gradient through ``y = softmax(x / T)``: :math:`y \odot (g - \sum_j g_j y_j) / T`.

    Masked entries (``y == 0``) get 0. ``y`` is :func:`softmax`'s output, ``grad`` the upstream
    gradient of the same shape.
    """
    return _vjp("softmax_vjp", y, grad, axis, temperature)


def log_softmax_vjp(
    y: ArrayLike, grad: ArrayLike, axis: Axis = -1, *, temperature: float = 1.0
) -> np.ndarray:
    r"""Gradient through ``y = log_softmax(x / T)``: :math:`(g - e^{y} \sum_j g_j) / T`.

    Masked entries (``y == -inf``) get exactly 0, even where ``grad`` is not 0.
    """
    return _vjp("log_softmax_vjp", y, grad, axis, temperature)


def logsumexp_vjp(
    x: ArrayLike,
    grad: ArrayLike,
    axis: Axis = -1,
    b: ArrayLike | None = None,
    keepdims: bool = False,
    *,
    where: ArrayLike | None = None,
    temperature: float = 1.0,
) -> np.ndarray:
    r"""Gradient through ``logsumexp(x, axis, b, keepdims, where=..., temperature=T)``:
    :math:`g \cdot b_i e^{x_i/T} / \sum_j b_j e^{x_j/T} / T` (``softmax`` when ``b`` is None).

    ``grad`` has the logsumexp's shape. Masked entries and fully masked rows get 0.
    """
    keepdims = checks.check_flag(keepdims, "keepdims")
    arr = _masked(_float_input(x, "x"), where)
    axes = checks.normalize_axes(axis, arr.ndim)
    opts = RowOptions.make(temperature)
    g = _float_input(grad, "grad")
    reduced = tuple(n for i, n in enumerate(arr.shape) if i not in axes)
    expected = (
        tuple(1 if i in axes else n for i, n in enumerate(arr.shape)) if keepdims else reduced
    )
    if g.shape != expected:
        raise ValueError(
            f"grad has shape {g.shape}; expected the logsumexp's shape {expected} "
            f"(keepdims={keepdims})"
        )
    if b is not None:
        return _logsumexp_vjp_weighted(arr, g.reshape(reduced), axes, b, opts)
    folded, ax, unfold = _fold(arr, axes)
    call = registry.Call("logsumexp_vjp", "numpy", "cpu", arr.dtype.name)
    return unfold(registry.run(call, folded, g.reshape(reduced), ax, opts))


def _logsumexp_vjp_weighted(arr, g, axes, b, opts: RowOptions) -> np.ndarray:
    r""":math:`g\, b_i e^{x_i/T - \mathrm{lse}} / T` (0 where ``b == 0``, masked, or the row is)."""
    from logmax.kernels.numpy_backend import logsumexp_weighted

    bw = _weights_b(b, arr.shape)
    folded, ax, unfold = _fold(arr, axes)
    bf, _, _ = _fold(np.broadcast_to(bw, arr.shape), axes)
    lse, _ = logsumexp_weighted(folded, ax, bf, opts)
    dtype = result_dtype(np.result_type(arr.dtype, bw.dtype))
    xs = folded.astype(np.float64) / opts.temperature
    with np.errstate(invalid="ignore", over="ignore"):
        keep = (bf != 0) & np.isfinite(np.expand_dims(lse, ax))
        p = np.where(keep, bf * np.exp(xs - np.expand_dims(lse, ax)), 0.0)
    return round_to(unfold(np.expand_dims(g, ax) * p / opts.temperature), dtype)
