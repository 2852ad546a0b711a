"""Numba kernels for the CPU: softmax, log_softmax, logsumexp and a fused cross-entropy.

:func:`run` takes the frontend's clean arguments, lays the data out as C-contiguous
``(rows, K)`` with the class axis last, calls a row kernel (parallel over rows) and puts the
result back in the caller's shape. Importing this module imports Numba; compiled kernels are
cached on disk (``cache=True``), so only the first call on a machine pays the compile time.

Which inputs take a kernel:

- float32: computed in float64, rounded once into float32.
- float16 and bfloat16: widened to float32 exactly, computed in float64, rounded once into the
  input dtype with :func:`logmax._core.dtypes.round_to`.
- float64: computed in double-double (exact ``x - m``, double-double ``exp`` and sums), for
  ``temperature == 1`` (and, for cross-entropy, hard labels without softcap, label smoothing or
  z-loss); otherwise the reference (long double) keeps the promise.
- anything else (integer inputs, an empty class axis for losses): ``NotImplemented``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from logmax._core.dtypes import BFLOAT16, round_to
from logmax._core.options import LossOptions, RowOptions
from logmax.kernels.cpu import _columns, _cross_entropy, _rows

F32 = np.dtype(np.float32)
F64 = np.dtype(np.float64)
WIDENED = (np.dtype(np.float16), BFLOAT16)  # computed through float32, exactly widened

ELEMENTWISE = ("softmax", "log_softmax", "logsumexp")


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


def _compute_input(x: np.ndarray) -> np.ndarray | None:
    """The array the kernels read: float32 or float64; None when no kernel takes ``x``."""
    if x.dtype == F32 or x.dtype == F64:
        return x
    if x.dtype in WIDENED:
        return x.astype(F32)  # exact
    return None


def _scratch(n_cls: int) -> np.ndarray:
    """A float64 row per Numba thread (indexed by ``numba.get_thread_id()`` in a kernel)."""
    import numba

    return np.empty((numba.get_num_threads(), n_cls))


def run(op: str, x: np.ndarray, axis: int, **options: Any) -> Any:
    """Run ``op`` on the CPU kernels, or return ``NotImplemented``."""
    if op in ELEMENTWISE:
        return _elementwise(op, x, axis, options.get("where"), options.get("temperature", 1.0))
    if op == "cross_entropy":
        return _cross_entropy_op(x, axis, **options)
    return NotImplemented


def _elementwise(op: str, x: np.ndarray, axis: int, where, temperature: float) -> Any:
    xc = _compute_input(x)
    if xc is None or (xc.dtype == F64 and temperature != 1.0):
        return NotImplemented
    if where is not None:
        xc = np.where(where, xc, xc.dtype.type(-np.inf))  # masked entries take no part
    if xc.dtype == F32 and axis != x.ndim - 1 and x.shape[axis] > 0:
        return _elementwise_columns(op, x, xc, axis, float(temperature))
    rows, batch = _as_rows(xc, axis)
    out_dtype = x.dtype if x.dtype in (F32, F64) else F64  # 16-bit: round once at the end
    n_rows, n_cls = rows.shape
    out = np.empty((n_rows,) if op == "logsumexp" else (n_rows, n_cls), dtype=out_dtype)
    if xc.dtype == F32 and op == "softmax":
        _rows.softmax_f32(rows, out, float(temperature), _scratch(n_cls))
    elif xc.dtype == F32:
        getattr(_rows, op + "_f32")(rows, out, float(temperature))
    else:
        getattr(_rows, op + "_dd")(rows, out)
        _redo_subnormal_rows(op, rows, out)
    result = out.reshape(batch) if op == "logsumexp" else _from_rows(out, batch, axis)
    return result if out_dtype == x.dtype else round_to(result, x.dtype)


def _subnormal(y: np.ndarray) -> np.ndarray:
    return (y != 0) & (np.abs(y) < np.finfo(np.float64).tiny)


def _redo_subnormal_rows(op: str, rows: np.ndarray, out: np.ndarray) -> None:
    """float64 rows whose result lands among the subnormals go through the reference.

    There the exponentials summed into ``s`` are subnormal themselves and keep only a few bits
    (log_softmax([742.1875, 0, 0, 0, 0, 0])[0] = -log1p(5 e^-742.19) = -2.4e-322); the
    reference's long double has the exponent range to carry them. Such rows are rare.
    """
    redo = np.flatnonzero(_subnormal(out) if out.ndim == 1 else _subnormal(out).any(axis=1))
    if redo.size:
        from logmax.kernels.numpy_backend import NumpyBackend

        out[redo] = getattr(NumpyBackend(), op)(rows[redo], 1, RowOptions())


def _elementwise_columns(op: str, x: np.ndarray, xc: np.ndarray, axis: int, t: float) -> Any:
    """float32 along a middle axis: (pre, K, post) column kernels, no transpose."""
    pre = int(np.prod(xc.shape[:axis], dtype=np.int64))
    post = int(np.prod(xc.shape[axis + 1 :], dtype=np.int64))
    cube = np.ascontiguousarray(xc).reshape(pre, xc.shape[axis], post)
    out_dtype = x.dtype if x.dtype == F32 else F64
    if op == "logsumexp":
        out = np.empty((pre, 1, post), dtype=out_dtype)
        _columns.columns_f32(cube, out, t, 2)
        result = out.reshape(xc.shape[:axis] + xc.shape[axis + 1 :])
    else:
        out = np.empty(cube.shape, dtype=out_dtype)
        _columns.columns_f32(cube, out, t, 0 if op == "softmax" else 1)
        result = out.reshape(xc.shape)
    return result if out_dtype == x.dtype else round_to(result, x.dtype)


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
) -> Any:
    xc = _compute_input(x)
    if xc is None or x.shape[axis] == 0:
        return NotImplemented
    if xc.dtype == F64 and (
        soft or temperature != 1.0 or softcap is not None or label_smoothing != 0.0 or z_loss != 0.0
    ):
        # float64 gradients with these terms cancel (a p_j - t_j w_j); the reference's long
        # double keeps them within 2 ULP, float64 arithmetic here would not.
        return NotImplemented
    if where is not None:
        xc = np.where(where, xc, xc.dtype.type(-np.inf))
    rows, batch = _as_rows(xc, axis)
    n_rows, n_cls = rows.shape
    w = np.ones(n_cls) if weight is None else np.ascontiguousarray(weight, dtype=F64)
    w_sum = float(w.sum())
    if soft:
        tgt = target if target.dtype in (F32, F64) else target.astype(F64)
        soft_t = _as_rows(tgt.astype(F64, copy=False), axis)[0]
        labels = np.zeros(1, dtype=np.int64)
    else:
        soft_t = np.zeros((1, n_cls))
        labels = np.ascontiguousarray(target, dtype=np.int64).reshape(n_rows)
    want_grad = grad_scale is not None
    if want_grad:
        # the scale may be long double (float64 inputs): keep its low part for the float64 path
        wide = np.broadcast_to(np.asarray(grad_scale), batch).reshape(n_rows)
        scale = np.ascontiguousarray(wide, dtype=F64)
        scale_lo = np.ascontiguousarray(wide - scale, dtype=F64)
        grad_dtype = x.dtype if x.dtype in (F32, F64) else F64
        grad = np.empty((n_rows, n_cls), dtype=grad_dtype)
    else:
        scale = scale_lo = np.zeros(n_rows)
        grad = np.empty((n_rows, 0), dtype=F64 if xc.dtype == F64 else F32)
    loss = np.empty(n_rows)
    lse = np.empty(n_rows)
    common = (labels, not soft, soft_t, w, w_sum, int(ignore_index), float(label_smoothing),
              float(z_loss))  # fmt: skip
    if xc.dtype == F32:
        cap = 0.0 if softcap is None else float(softcap)
        scratch = _scratch(n_cls if want_grad else 0)
        _cross_entropy.cross_entropy_f32(
            rows, *common, float(temperature), cap, scale, want_grad, loss, lse, grad, scratch
        )
    else:
        _cross_entropy.cross_entropy_dd(rows, *common, scale, scale_lo, want_grad, loss, lse, grad)
        redo = np.flatnonzero(_subnormal(loss))
        if redo.size:  # see _redo_subnormal_rows
            from logmax.kernels.numpy_backend import NumpyBackend

            sub_scale = None if not want_grad else wide[redo]
            l_r, lse_r, g_r = NumpyBackend().cross_entropy(
                rows[redo], 1, labels[redo], False, weight,
                LossOptions(ignore_index=ignore_index, reduction="none"), sub_scale,
            )  # fmt: skip
            loss[redo], lse[redo] = l_r, lse_r
            if want_grad:
                grad[redo] = g_r
    g = None
    if want_grad:
        g = _from_rows(grad, batch, axis)
        if g.dtype != x.dtype:
            g = round_to(g, x.dtype)
    return loss.reshape(batch), lse.reshape(batch), g
