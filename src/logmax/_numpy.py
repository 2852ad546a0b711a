r"""The NumPy frontend: ``logmax.softmax``, ``log_softmax``, ``logsumexp``, ``nll_loss``,
``cross_entropy`` and the gradients a training loop needs without autograd.

Each function validates its arguments (:mod:`logmax._core.checks`), then asks
:func:`logmax.kernels.run` for a fast path and falls back to :mod:`logmax._core.reference`.
Conventions follow SciPy (``axis=-1``, ``b``, ``keepdims``, ``return_sign``) and the loss options
follow ``torch.nn.functional``. The edge rules are the contract in the README.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from logmax import kernels
from logmax._core import checks, reference
from logmax._core.dtypes import compute_dtype, result_dtype, round_to

Axis = int | Sequence[int] | None


class LossGrad(NamedTuple):
    """A loss with its gradient with respect to the first argument (and the rows' logsumexp)."""

    loss: np.ndarray
    grad: np.ndarray
    lse: np.ndarray | None = None


def _elementwise(op: str, x: ArrayLike, axis: Axis, where, temperature, nan_policy) -> np.ndarray:
    arr = checks.as_float_array(x, "x")
    axes = checks.normalize_axes(axis, arr.ndim)
    checks.check_nan_policy(nan_policy)
    t = checks.check_temperature(temperature)
    mask = checks.broadcast_mask(where, arr.shape)
    if nan_policy == "raise":
        checks.raise_nonfinite_row(
            reference.nonfinite_rows(arr, axes, mask), _batch(arr, axes), "x"
        )
    if len(axes) == 1:
        out = kernels.run(op, arr, axes[0], where=mask, temperature=t)
        if out is not NotImplemented:
            return out
    return getattr(reference, op)(arr, axes, mask, t)


def _batch(arr: np.ndarray, axes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(n for a, n in enumerate(arr.shape) if a not in axes)


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
    return _elementwise("softmax", x, axis, where, temperature, nan_policy)


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
    return _elementwise("log_softmax", x, axis, where, temperature, nan_policy)


def logsumexp(
    x: ArrayLike,
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
    arr = checks.as_float_array(x, "x")
    axes = checks.normalize_axes(axis, arr.ndim)
    if b is None and not return_sign:
        out = _elementwise("logsumexp", arr, axes, where, temperature, nan_policy)
    else:
        checks.check_nan_policy(nan_policy)
        t = checks.check_temperature(temperature)
        mask = checks.broadcast_mask(where, arr.shape)
        if nan_policy == "raise":
            bad = reference.nonfinite_rows(arr, axes, mask)
            checks.raise_nonfinite_row(bad, _batch(arr, axes), "x")
        bw = np.ones(arr.shape) if b is None else _weights_b(b, arr.shape)
        lse, sign = reference.logsumexp_weighted(arr, axes, mask, t, bw)
        rdt = result_dtype(np.result_type(arr.dtype, bw.dtype) if b is not None else arr.dtype)
        if not return_sign and np.any(sign < 0):
            row = tuple(int(i) for i in np.argwhere(sign < 0)[0])
            raise ValueError(
                f"the weighted sum of row {list(row)} is negative, so its log is not real: "
                "pass return_sign=True to get log|sum| and the sign"
            )
        out = round_to(lse, rdt)
        if return_sign:
            sgn = round_to(sign, rdt)
            if keepdims:
                out, sgn = np.expand_dims(out, axes), np.expand_dims(sgn, axes)
            return out, sgn
    return np.expand_dims(out, axes) if keepdims else out


def _weights_b(b: ArrayLike, shape: tuple[int, ...]) -> np.ndarray:
    bw = checks.as_float_array(b, "b")
    try:
        return np.broadcast_to(bw, shape)
    except ValueError:
        raise ValueError(
            f"b has shape {bw.shape}, which does not broadcast to x's shape {shape}"
        ) from None


# ---------------------------------------------------------------------------------------------
class _LossArgs(NamedTuple):
    arr: np.ndarray
    axis: int
    target: np.ndarray
    soft: bool
    weight: np.ndarray | None
    counted: np.ndarray  # batch shape, bool
    denominator: float  # of the mean


def _loss_args(x, target, weight, ignore_index, reduction, axis, name) -> _LossArgs:
    arr = checks.as_float_array(x, name)
    ax = checks.class_axis(axis, arr.ndim)
    checks.check_reduction(reduction)
    tgt = np.asarray(target)
    soft = checks.target_kind(tgt, arr.shape, ax) == "soft"
    n_cls = arr.shape[ax]
    w = checks.check_weight(weight, n_cls)
    if soft:
        counted = np.ones(tgt.shape[:ax] + tgt.shape[ax + 1 :], dtype=bool)
        denominator = float(counted.size)
    else:
        counted = checks.check_labels(tgt, n_cls, int(ignore_index))
        if w is None:
            denominator = float(np.count_nonzero(counted))
        else:
            denominator = float(w[tgt[counted]].sum(dtype=np.float64))
    return _LossArgs(arr, ax, tgt, soft, w, counted, denominator)


def _reduce(rows: np.ndarray, a: _LossArgs, reduction: str, dtype: np.dtype) -> np.ndarray:
    """torch's reductions; a mean over zero counted rows (or zero total weight) is 0."""
    if reduction == "none":
        return round_to(rows, dtype)
    total = rows.sum(dtype=rows.dtype)
    if reduction == "mean":
        total = total / a.denominator if a.denominator != 0 else rows.dtype.type(0)
    return round_to(np.asarray(total), dtype)[()]


def _grad_scale(a: _LossArgs, reduction: str, grad_output: ArrayLike, cdt) -> Any:
    g = np.asarray(grad_output, dtype=cdt)
    if reduction == "none":
        return np.broadcast_to(g, a.counted.shape)
    if g.ndim:
        raise ValueError(f"grad_output must be a scalar for reduction={reduction!r}")
    if reduction == "mean":
        return g / a.denominator if a.denominator != 0 else np.zeros((), cdt)
    return g


def _cross_entropy(
    logits, target, weight, ignore_index, reduction, label_smoothing, axis, where,
    temperature, softcap, z_loss, nan_policy, grad_output,
):  # fmt: skip
    a = _loss_args(logits, target, weight, ignore_index, reduction, axis, "logits")
    checks.check_nan_policy(nan_policy)
    mask = checks.broadcast_mask(where, a.arr.shape)
    opts = dict(
        target=a.target,
        soft=a.soft,
        weight=a.weight,
        ignore_index=int(ignore_index),
        label_smoothing=checks.check_label_smoothing(label_smoothing),
        temperature=checks.check_temperature(temperature),
        softcap=checks.check_softcap(softcap),
        z_loss=checks.check_z_loss(z_loss),
        where=mask,
    )
    if nan_policy == "raise":
        bad = reference.nonfinite_rows(a.arr, (a.axis,), mask) & a.counted
        checks.raise_nonfinite_row(bad, a.counted.shape, "logits")
    dtype = result_dtype(a.arr.dtype)
    cdt = compute_dtype(dtype)
    scale = None if grad_output is None else _grad_scale(a, reduction, grad_output, cdt)
    out = kernels.run("cross_entropy", a.arr, a.axis, grad_scale=scale, **opts)
    if out is NotImplemented:
        out = reference.cross_entropy_rows(a.arr, a.axis, grad_scale=scale, **opts)
    rows, lse, grad = out
    return _reduce(np.asarray(rows, cdt), a, reduction, dtype), round_to(lse, dtype), grad


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
    loss, lse, _ = _cross_entropy(
        logits, target, weight, ignore_index, reduction, label_smoothing, axis, where,
        temperature, softcap, z_loss, nan_policy, None,
    )  # fmt: skip
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
    loss, lse, grad = _cross_entropy(
        logits, target, weight, ignore_index, reduction, label_smoothing, axis, where,
        temperature, softcap, z_loss, nan_policy, grad_output,
    )  # fmt: skip
    return LossGrad(loss, grad, lse)


def _nll(logp, target, weight, ignore_index, reduction, axis, nan_policy, grad_output):
    a = _loss_args(logp, target, weight, ignore_index, reduction, axis, "logp")
    checks.check_nan_policy(nan_policy)
    dtype = result_dtype(a.arr.dtype)
    cdt = compute_dtype(dtype)
    scale = None if grad_output is None else _grad_scale(a, reduction, grad_output, cdt)
    rows, grad = reference.nll_rows(
        a.arr, a.axis, target=a.target, soft=a.soft, weight=a.weight,
        ignore_index=int(ignore_index), grad_scale=scale,
    )  # fmt: skip
    if nan_policy == "raise":
        checks.raise_nonfinite_row((np.isnan(rows) | np.isneginf(rows)) & a.counted,
                                   a.counted.shape, "logp")  # fmt: skip
    return _reduce(rows, a, reduction, dtype), grad


def nll_loss(
    logp: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    *,
    axis: int = -1,
    nan_policy: str = "propagate",
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
    return _nll(logp, target, weight, ignore_index, reduction, axis, nan_policy, None)[0]


def nll_loss_with_grad(
    logp: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    *,
    axis: int = -1,
    nan_policy: str = "propagate",
    grad_output: ArrayLike = 1.0,
) -> LossGrad:
    """:func:`nll_loss` and its gradient with respect to ``logp``: ``-w_y`` at the label, scaled
    like :func:`cross_entropy_with_grad`. Returns ``LossGrad(loss, grad, None)``."""
    loss, grad = _nll(logp, target, weight, ignore_index, reduction, axis, nan_policy, grad_output)
    return LossGrad(loss, grad, None)


# ---------------------------------------------------------------------------------------------
# Vector-Jacobian products: dL/dx from an upstream gradient, for the element-wise ops.
def _vjp_args(y, grad, axis):
    yy = checks.as_float_array(y, "y")
    gg = checks.as_float_array(grad, "grad")
    if gg.shape != yy.shape:
        raise ValueError(f"grad has shape {gg.shape}; expected the output's shape {yy.shape}")
    axes = checks.normalize_axes(axis, yy.ndim)
    dtype = result_dtype(np.result_type(yy.dtype, gg.dtype))
    cdt = compute_dtype(dtype)
    return yy.astype(cdt), gg.astype(cdt), axes, dtype


def softmax_vjp(
    y: ArrayLike, grad: ArrayLike, axis: Axis = -1, *, temperature: float = 1.0
) -> np.ndarray:
    r"""Gradient through ``y = softmax(x / T)``: :math:`y \odot (g - \sum_j g_j y_j) / T`.

    Masked entries (``y == 0``) get 0. ``y`` is :func:`softmax`'s output, ``grad`` the upstream
    gradient of the same shape.
    """
    yy, gg, axes, dtype = _vjp_args(y, grad, axis)
    t = checks.check_temperature(temperature)
    dot = np.sum(gg * yy, axis=axes, keepdims=True)
    return round_to(yy * (gg - dot) / t, dtype)


def log_softmax_vjp(
    y: ArrayLike, grad: ArrayLike, axis: Axis = -1, *, temperature: float = 1.0
) -> np.ndarray:
    r"""Gradient through ``y = log_softmax(x / T)``: :math:`(g - e^{y} \sum_j g_j) / T`.

    Masked entries (``y == -inf``) get exactly 0, even where ``grad`` is not 0.
    """
    yy, gg, axes, dtype = _vjp_args(y, grad, axis)
    t = checks.check_temperature(temperature)
    total = np.sum(np.where(np.isneginf(yy), 0.0, gg), axis=axes, keepdims=True)
    dx = np.where(np.isneginf(yy), 0.0, gg - np.exp(yy) * total)
    return round_to(dx / t, dtype)


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
    arr = checks.as_float_array(x, "x")
    axes = checks.normalize_axes(axis, arr.ndim)
    t = checks.check_temperature(temperature)
    mask = checks.broadcast_mask(where, arr.shape)
    dtype = result_dtype(arr.dtype)
    cdt = compute_dtype(dtype)
    g = checks.as_float_array(grad, "grad").astype(cdt)
    if not keepdims:
        g = np.expand_dims(g, axes)
    if b is None:
        z, _, _ = reference.prepare(arr, axes, mask, t)
        st = reference.row_stats(z)
        rows = st.e / (1.0 + st.s)[:, None]
        rows[st.bad] = np.nan
        p = reference.from_rows(rows, arr.shape, axes)
    else:
        bw = _weights_b(b, arr.shape)
        lse, _ = reference.logsumexp_weighted(arr, axes, mask, t, bw)
        keep = (bw != 0) if mask is None else (mask & (bw != 0))
        xs = arr.astype(cdt) / t
        with np.errstate(invalid="ignore", over="ignore"):
            p = np.where(keep, bw * np.exp(xs - np.expand_dims(lse, axes)), 0.0)
    return round_to(g * p / t, dtype)
