"""The ``numba`` backend: fused CPU kernels (:mod:`logmax.kernels.cpu`) for NumPy arrays and CPU
tensors. Compiled on first use and cached on disk by Numba.

It serves softmax, log_softmax, logsumexp and the fused cross-entropy forward and backward, in
every dtype, with the options its kernels compute within the promise; ``supports`` names what it
leaves to the reference.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from typing import Any

import numpy as np

from logmax._core import checks
from logmax._core.dtypes import numpy_dtype
from logmax._core.options import LossOptions, RowOptions

ROW_OPS = ("softmax", "log_softmax", "logsumexp")
FLOATS = ("float16", "bfloat16", "float32", "float64")


_ready: set[tuple[str, str, bool]] = set()  # kernels compiled or loaded in this process
_started: set[tuple[str, str, bool]] = set()
_lock = threading.Lock()


def _forget_started_in_child() -> None:
    _started.clear()  # a warm-up thread of the parent does not exist in the child


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_started_in_child)


def _key(call: Any) -> tuple[str, str, bool]:
    op = "cross_entropy" if call.op == "cross_entropy" else call.op
    return op, call.dtype, "middle_axis" in call.options and call.dtype == "float32"


class NumbaBackend:
    name = "numba"
    native = "numpy"
    devices = ("cpu",)

    def ready(self, call: Any) -> bool:
        """The kernels for ``call`` are compiled (or loaded from Numba's cache) already."""
        return _key(call) in _ready

    def warm_up(self, call: Any) -> None:
        """Compile (or load) the kernels for ``call`` in a background thread, once."""
        key = _key(call)
        with _lock:
            if key in _started:
                return
            _started.add(key)
        threading.Thread(target=_warm, args=(self, key), daemon=True, name="logmax-warm").start()

    def available(self) -> str | None:
        if importlib.util.find_spec("numba") is None:
            return "Numba is not installed (pip install numba)"
        return None

    def supports(self, call: Any) -> str | None:
        if call.device != "cpu":
            return f"runs on the CPU only, not on {call.device}"
        if call.dtype not in FLOATS:
            return f"no kernel for {call.dtype}"
        if call.op in ROW_OPS:
            return None
        if call.op == "cross_entropy":
            if "empty" in call.options:
                return "no classes"
            return None
        return f"no kernel for {call.op}"

    def _rows(self, op: str, x: np.ndarray, axis: int, opts: RowOptions) -> np.ndarray:
        from logmax.kernels import cpu

        out = cpu.run(op, x, axis, where=None, temperature=opts.temperature)
        _ready.add((op, x.dtype.name, axis != x.ndim - 1 and x.dtype == np.float32))
        return out

    def softmax(self, x: np.ndarray, axis: int, opts: RowOptions) -> np.ndarray:
        return self._rows("softmax", x, axis, opts)

    def log_softmax(self, x: np.ndarray, axis: int, opts: RowOptions) -> np.ndarray:
        return self._rows("log_softmax", x, axis, opts)

    def logsumexp(self, x: np.ndarray, axis: int, opts: RowOptions) -> np.ndarray:
        from logmax.kernels import array
        from logmax.kernels.numpy_backend import OPS

        out = _refine_near_zero(self._rows("logsumexp", x, axis, opts), x, axis, opts)
        x2, _ = OPS.rows(x, axis)
        return array.posinf_rows(OPS, out.reshape(-1), x2).reshape(out.shape).astype(out.dtype)

    def cross_entropy(self, x, axis, target, soft, weight, opts: LossOptions, grad_output,
                      want_lse=True):  # fmt: skip
        from logmax.kernels import array, cpu
        from logmax.kernels.numpy_backend import OPS

        n_cls = x.shape[axis]
        batch = x.shape[:axis] + x.shape[axis + 1 :]
        w_cls = array.mean_weights(OPS, OPS.class_weights(weight, n_cls, x), soft, opts)
        counted, _, row_w = array.counted_rows(OPS, target, soft, w_cls, opts, np.empty((
            int(np.prod(batch, dtype=np.int64)), 0)))  # fmt: skip
        den = array.denominator(OPS, row_w, soft, opts)
        scale = scale_lo = None
        if grad_output is not None:
            scale = array.row_scale(OPS, grad_output, den, counted, opts, row_w.shape[0])
            scale_lo = array.row_scale_lo(
                OPS, grad_output, row_w, soft, scale, opts, row_w.shape[0]
            )
            scale, scale_lo = scale.reshape(batch), scale_lo.reshape(batch)
        rows, lse, grad = cpu.run(
            "cross_entropy", x, axis, target=target, soft=soft,
            weight=None if weight is None else w_cls,
            ignore_index=checks.int64_ignore_index(opts.ignore_index),
            label_smoothing=opts.label_smoothing,
            temperature=opts.temperature, softcap=opts.softcap, z_loss=opts.z_loss,
            where=None, grad_scale=scale, grad_scale_lo=scale_lo,
        )  # fmt: skip
        _ready.add(("cross_entropy", x.dtype.name, False))
        with np.errstate(all="ignore"):  # (rows beyond the range: see array.reduce_losses)
            loss = array.reduce_losses(
                OPS, np.asarray(rows, dtype=np.float64).reshape(-1), den, opts,
                lambda over: array.quarter_ce_rows(
                    OPS, OPS.rows(x, axis)[0][over],
                    OPS.rows(target, axis)[0][over] if soft else OPS.flat_labels(target)[over],
                    soft, w_cls, opts,
                ),
            )  # fmt: skip
        if opts.reduction == "none":
            loss = loss.reshape(batch)
        if want_lse:
            lse = _refine_near_zero(np.asarray(lse), x, axis, opts) if not opts.transformed else lse
        return loss, lse, grad


def _warm(backend: NumbaBackend, key: tuple[str, str, bool]) -> None:
    """Run the op once on a tiny input of the key's dtype and layout: Numba compiles (or loads)
    the kernel it uses, and later calls find it ready."""
    op, dtype, middle = key
    x = (
        np.linspace(-3.0, 3.0, 24)
        .reshape((2, 3, 4) if middle else (3, 8))
        .astype(numpy_dtype(dtype))
    )
    axis = 1 if middle else x.ndim - 1
    try:
        if op == "cross_entropy":
            backend.cross_entropy(x, axis, np.array([0, 1, 2]), False, None, LossOptions(), 1.0)
        else:
            getattr(backend, op)(x, axis, RowOptions())
    finally:
        _ready.add(key)


def _refine_near_zero(out: np.ndarray, x: np.ndarray, axis: int, opts: RowOptions) -> np.ndarray:
    """Rows whose logsumexp is near 0 may cancel (``m + log1p(s)``): the reference recomputes
    them, carrying the sum exactly enough."""
    near = np.abs(np.asarray(out, dtype=np.float64)) < 4.0
    if not np.any(near):
        return out
    from logmax.kernels.numpy_backend import NumpyBackend

    moved = np.moveaxis(x, axis, -1)
    fixed = NumpyBackend().logsumexp(moved[near], 1, opts)
    out = np.array(out, copy=True)
    out[near] = fixed
    return out
