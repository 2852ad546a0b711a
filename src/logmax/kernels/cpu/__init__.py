"""Numba kernels for the CPU: softmax, log_softmax, logsumexp and a fused cross-entropy.

:func:`run` takes the frontend's clean arguments, lays the data out as C-contiguous
``(rows, K)`` with the class axis last, and runs a row kernel over ranges of rows on the thread
pool of :mod:`._threads`; the result comes back in the caller's shape. Importing this module
imports Numba; compiled kernels are cached on disk (``cache=True``), so only the first call on a
machine pays the compile time.

Which inputs take a kernel:

- float32: computed in float64, rounded once into float32.
- float16 and bfloat16: read as their 16-bit patterns (no widening pass over the array),
  computed in float32 with float64 sums (:mod:`._half_rows`), rounded into 16 bits in the kernel;
  the fused cross-entropy computes them in float64.
- float64: computed in double-double (exact ``x - m``, its quotient by the temperature,
  double-double ``exp`` and sums). Cross-entropy: hard labels without options in a fused
  kernel of its own; soft targets, label smoothing, temperature, softcap and z-loss through the
  algebra one row at a time (``cross_entropy_dd_general``), the rare rows it cannot finish
  (non-finite or masked entries, subnormal sums or results) by the reference.
- anything else (integer inputs, an empty class axis for losses): ``NotImplemented``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from logmax._core.dtypes import BFLOAT16, round_to
from logmax._core.options import LossOptions, RowOptions
from logmax.kernels.cpu import _columns, _cross_entropy, _half_rows, _halves, _rows
from logmax.kernels.threads import get_num_threads, over_rows, set_num_threads

F32 = np.dtype(np.float32)
F64 = np.dtype(np.float64)
HALF_KIND = {np.dtype(np.float16): _halves.F16, BFLOAT16: _halves.BF16}

ELEMENTWISE = ("softmax", "log_softmax", "logsumexp")

__all__ = ["get_num_threads", "run", "set_num_threads"]


def _as_rows(x: np.ndarray, axis: int) -> tuple[np.ndarray, tuple[int, ...]]:
    """``x`` as a C-contiguous (rows, K) matrix with ``axis`` last, and the batch shape.

    A view when ``x`` already has that layout (the common case: axis -1 of a C array);
    otherwise one copy. The input itself is never written.
    """
    moved = np.moveaxis(x, axis, -1)
    batch = moved.shape[:-1]
    n_rows = int(np.prod(batch, dtype=np.int64))
    return np.ascontiguousarray(moved).reshape(n_rows, moved.shape[-1]), batch


def _from_rows(y: np.ndarray, batch: tuple[int, ...], axis: int) -> np.ndarray:
    """Inverse of :func:`_as_rows` for a full-shape result (a view)."""
    return np.moveaxis(y.reshape(batch + (y.shape[-1],)), -1, axis)


def _bits(x: np.ndarray) -> np.ndarray:
    """A 16-bit array's patterns as uint16 (a view)."""
    return x.view(np.uint16)


def run(op: str, x: np.ndarray, axis: int, **options: Any) -> Any:
    """Run ``op`` on the CPU kernels, or return ``NotImplemented``."""
    if op in ELEMENTWISE:
        return _elementwise(op, x, axis, options.get("where"), options.get("temperature", 1.0))
    if op == "cross_entropy":
        return _cross_entropy_op(x, axis, **options)
    return NotImplemented


def _elementwise(op: str, x: np.ndarray, axis: int, where, temperature: float) -> Any:
    if x.dtype not in (F32, F64) and x.dtype not in HALF_KIND:
        return NotImplemented
    t = float(temperature)
    if where is not None:
        x = np.where(where, x, x.dtype.type(-np.inf))  # masked entries take no part
    if x.dtype == F32 and axis != x.ndim - 1 and x.shape[axis] > 0:
        return _elementwise_columns(op, x, axis, t)
    rows, batch = _as_rows(x, axis)
    n_rows, n_cls = rows.shape
    reduced = op == "logsumexp"
    if x.dtype in HALF_KIND:
        kernel = getattr(_half_rows, op + "16")
    else:
        kernel = getattr(_rows, op + ("_f32" if x.dtype == F32 else "_dd"))
    if x.dtype in HALF_KIND:
        kind = HALF_KIND[x.dtype]
        out = np.empty((n_rows,)) if reduced else np.empty((n_rows, n_cls), np.uint16)
        over_rows(kernel, n_rows, n_cls, _bits(rows), kind, out, t)
        out = round_to(out, x.dtype) if reduced else out.view(x.dtype)
    else:
        out = np.empty((n_rows,) if reduced else (n_rows, n_cls), dtype=x.dtype)
        if x.dtype == F32:
            over_rows(kernel, n_rows, n_cls, rows, out, t)
        elif reduced:
            over_rows(kernel, n_rows, n_cls, rows, out, t)
            _redo_subnormal_rows(op, rows, out, _subnormal(out), t)
        else:
            sub = np.zeros(n_rows, np.bool_)
            over_rows(kernel, n_rows, n_cls, rows, out, sub, t)
            _redo_subnormal_rows(op, rows, out, sub, t)
    return out.reshape(batch) if reduced else _from_rows(out, batch, axis)


def _subnormal(y: np.ndarray) -> np.ndarray:
    return (y != 0) & (np.abs(y) < np.finfo(np.float64).tiny)


def _redo_subnormal_rows(op: str, rows: np.ndarray, out: np.ndarray, sub: np.ndarray,
                         t: float) -> None:  # fmt: skip
    """float64 rows whose result lands among the subnormals (``sub``: per row, from the
    kernel) go through the reference.

    There the exponentials summed into ``s`` are subnormal themselves and keep only a few bits
    (log_softmax([742.1875, 0, 0, 0, 0, 0])[0] = -log1p(5 e^-742.19) = -2.4e-322); the
    reference rescales them. Such rows are rare.
    """
    redo = np.flatnonzero(sub)
    if redo.size:
        from logmax.kernels.numpy_backend import NumpyBackend

        out[redo] = getattr(NumpyBackend(), op)(rows[redo], 1, RowOptions(temperature=t))


def _elementwise_columns(op: str, x: np.ndarray, axis: int, t: float) -> Any:
    """float32 along a middle axis: (pre, K, post) column kernels, no transpose."""
    pre = int(np.prod(x.shape[:axis], dtype=np.int64))
    post = int(np.prod(x.shape[axis + 1 :], dtype=np.int64))
    cube = np.ascontiguousarray(x).reshape(pre, x.shape[axis], post)
    tasks = pre * ((post + _columns.BLOCK - 1) // _columns.BLOCK)
    if op == "logsumexp":
        out = np.empty((pre, 1, post), dtype=F32)
        over_rows(_columns.columns_f32, tasks, x.shape[axis] * _columns.BLOCK, cube, out, t, 2)
        return out.reshape(x.shape[:axis] + x.shape[axis + 1 :])
    out = np.empty(cube.shape, dtype=F32)
    code = 0 if op == "softmax" else 1
    over_rows(_columns.columns_f32, tasks, x.shape[axis] * _columns.BLOCK, cube, out, t, code)
    return out.reshape(x.shape)


def _cross_entropy_op(
    x: np.ndarray,
    axis: int,
    *,
    target: np.ndarray,
    soft: bool,
    weight: np.ndarray | None,
    ignore_index: int,
    label_smoothing: float,
    temperature: float,
    softcap: float | None,
    z_loss: float,
    where: np.ndarray | None,
    grad_scale: Any,
    grad_scale_lo: Any = None,
) -> Any:
    if x.dtype not in (F32, F64) and x.dtype not in HALF_KIND or x.shape[axis] == 0:
        return NotImplemented
    general = x.dtype == F64 and (
        soft or temperature != 1.0 or softcap is not None or label_smoothing != 0.0 or z_loss != 0.0
    )  # float64 with these terms: the algebra row by row (cross_entropy_dd_general)
    if where is not None:
        x = np.where(where, x, x.dtype.type(-np.inf))
    rows, batch = _as_rows(x, axis)
    n_rows, n_cls = rows.shape
    w = np.ones(n_cls) if weight is None else np.ascontiguousarray(weight, dtype=F64)
    if soft:
        soft_t = _as_rows(np.asarray(target).astype(F64, copy=False), axis)[0]
        labels = np.zeros(1, dtype=np.int64)
    else:
        soft_t = np.zeros((1, n_cls))
        labels = np.ascontiguousarray(target, dtype=np.int64).reshape(n_rows)
    want_grad = grad_scale is not None
    if want_grad:
        scale = np.ascontiguousarray(np.broadcast_to(np.asarray(grad_scale), batch), F64)
        scale = scale.reshape(n_rows)
    else:
        scale = np.zeros(n_rows)
    # float64: the scale's low part (the mean's 1/den is rounded)
    scale_lo = (
        np.zeros(n_rows)
        if grad_scale_lo is None or not want_grad
        else (
            np.ascontiguousarray(np.broadcast_to(np.asarray(grad_scale_lo), batch), F64).reshape(
                n_rows
            )
        )
    )
    loss = np.empty(n_rows)
    lse = np.empty(n_rows)
    common = (labels, not soft, soft_t, w, int(ignore_index), float(label_smoothing),
              float(z_loss))  # fmt: skip
    cap = 0.0 if softcap is None else float(softcap)
    t = float(temperature)
    if x.dtype in HALF_KIND:
        grad = np.empty((n_rows, n_cls if want_grad else 0), dtype=np.uint16)
        over_rows(_cross_entropy.cross_entropy_h, n_rows, n_cls, _bits(rows), HALF_KIND[x.dtype],
                  *common, t, cap, scale, want_grad, loss, lse, grad)  # fmt: skip
        grad = grad.view(x.dtype)
    elif x.dtype == F32:
        grad = np.empty((n_rows, n_cls if want_grad else 0), dtype=F32)
        over_rows(_cross_entropy.cross_entropy_f32, n_rows, n_cls, rows, *common, t, cap, scale,
                  want_grad, loss, lse, grad)  # fmt: skip
    elif general:
        grad = np.empty((n_rows, n_cls if want_grad else 0), dtype=F64)
        redo = np.zeros(n_rows, np.bool_)
        over_rows(_cross_entropy.cross_entropy_dd_general, n_rows, n_cls, rows, *common, t,
                  cap, scale, scale_lo, want_grad, loss, lse, grad, redo)  # fmt: skip
        _redo_loss_rows(
            np.flatnonzero(redo), rows, soft_t if soft else labels, soft, weight, want_grad,
            scale, loss, lse, grad,
            LossOptions(ignore_index=ignore_index, reduction="none",
                        label_smoothing=label_smoothing, temperature=temperature,
                        softcap=softcap, z_loss=z_loss),
        )  # fmt: skip
    else:
        grad = np.empty((n_rows, n_cls if want_grad else 0), dtype=F64)
        over_rows(_cross_entropy.cross_entropy_dd, n_rows, n_cls, rows, *common, scale, scale_lo,
                  want_grad, loss, lse, grad)  # fmt: skip
        _redo_loss_rows(
            np.flatnonzero(_subnormal(loss)), rows, labels, False, weight, want_grad, scale,
            loss, lse, grad, LossOptions(ignore_index=ignore_index, reduction="none"),
        )  # fmt: skip
    g = _from_rows(grad, batch, axis) if want_grad else None
    return loss.reshape(batch), lse.reshape(batch), g


def _redo_loss_rows(redo, rows, target, soft, weight, want_grad, scale, loss, lse, grad,
                    opts: LossOptions) -> None:  # fmt: skip
    """float64 loss rows the kernel left to the reference (see :func:`_redo_subnormal_rows`),
    computed there per row and written into the kernel's outputs."""
    if not redo.size:
        return
    from logmax.kernels.numpy_backend import NumpyBackend

    l_r, lse_r, g_r = NumpyBackend().cross_entropy(
        rows[redo], 1, target[redo], soft, weight, opts, scale[redo] if want_grad else None
    )
    loss[redo], lse[redo] = l_r, lse_r
    if want_grad:
        grad[redo] = g_r
