"""The ``numpy`` backend: the reference. Every op of the contract on NumPy arrays, computed in
double-double float64 (about 106 bits) by :mod:`logmax.kernels.array`, rounded once.

It serves every call on the CPU (the other backends are faster ways to the same results) and is
the oracle the kernels are tested against. Portable: it needs neither Numba nor a ``long double``
wider than float64.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from logmax._core import blocks, ddarith, exact, rowstats
from logmax._core.dtypes import result_dtype, round_to
from logmax._core.options import LossOptions, RowOptions
from logmax._core.specialise import specialise
from logmax.kernels import array

F64 = np.dtype(np.float64)
# bits of result each output format needs (its significand and 3 more)
NEED = {"float16": 14, "bfloat16": 11, "float32": 27, "float64": 56}


class NumpyOps:
    """:class:`logmax._core.blocks.ArrayOps` for NumPy, in double-double float64."""

    profile_dd = True
    term_bits = 56  # exp_dd's terms, to about 2^-57
    grid_exponent_limit = 1000.0  # (blocks.exact_sum)
    accurate_bits = 99

    def __init__(self) -> None:
        self.alg = specialise(
            [ddarith, rowstats],
            where=np.where, exp=np.exp, log1p=np.log1p, rint=np.rint,
            pow2=ddarith.pow2, two_prod=ddarith.two_prod,
        )  # fmt: skip

    # layout --------------------------------------------------------------------------------
    def rows(self, x: np.ndarray, axis: int) -> tuple[np.ndarray, tuple[int, ...]]:
        moved = np.moveaxis(np.asarray(x), axis, -1)
        n = math.prod(moved.shape[:-1])
        return moved.reshape(n, moved.shape[-1]), tuple(np.shape(x))

    def unrows(self, y: np.ndarray, shape: tuple[int, ...], axis: int) -> np.ndarray:
        moved = shape[:axis] + shape[axis + 1 :] + (shape[axis],)
        return np.moveaxis(np.asarray(y).reshape(moved), -1, axis)

    def reshape(self, v: Any, shape: tuple[int, ...]) -> np.ndarray:
        return np.asarray(v).reshape(shape)

    def reduced_shape(self, shape: tuple[int, ...], axis: int) -> tuple[int, ...]:
        return shape[:axis] + shape[axis + 1 :]

    batch_shape = reduced_shape

    def shape2(self, x2: np.ndarray) -> tuple[int, int]:
        return int(x2.shape[0]), int(x2.shape[1])

    def col(self, v: Any) -> Any:
        return v[:, None] if isinstance(v, np.ndarray) and v.ndim == 1 else v

    # dtypes ----------------------------------------------------------------------------------
    def work(self, x: Any) -> np.ndarray:
        return np.asarray(x, dtype=F64)

    def work_rows(self, v: Any, n: int, device: Any = None) -> np.ndarray:
        return np.broadcast_to(np.asarray(v, dtype=F64), (n,)) if np.ndim(v) == 0 else (
            np.asarray(v, dtype=F64).reshape(n)
        )  # fmt: skip

    def to_output(self, y: Any, like: Any, *others: Any) -> np.ndarray:
        dtype = result_dtype(np.result_type(*(np.asarray(a).dtype for a in (like, *others))))
        return round_to(np.asarray(y), dtype)

    def need_bits(self, x: Any) -> int:
        return NEED[result_dtype(np.asarray(x).dtype).name]

    # rows --------------------------------------------------------------------------------------
    def max_rows(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if x.shape[1] == 0:
            return np.full(x.shape[0], -np.inf), np.zeros(x.shape[0], np.int64)
        k = np.argmax(x, axis=1)
        return x[np.arange(x.shape[0]), k], k

    def take_rows(self, x: np.ndarray, idx: np.ndarray) -> np.ndarray:
        if x.shape[1] == 0:
            return np.zeros(x.shape[0], x.dtype)
        return x[np.arange(x.shape[0]), idx]

    def put_rows(self, x: np.ndarray, idx: np.ndarray, value: float) -> np.ndarray:
        out = np.array(x, copy=True)
        if x.shape[1]:
            out[np.arange(x.shape[0]), idx] = value
        return out

    def put_rows_values(self, x: np.ndarray, idx: np.ndarray, values: Any) -> np.ndarray:
        return self.put_rows(x, idx, values)

    def sum_rows(self, x: np.ndarray) -> np.ndarray:
        return x.sum(axis=1)

    def any_rows(self, x: np.ndarray) -> np.ndarray:
        return x.any(axis=1)

    def all_rows(self, x: np.ndarray) -> np.ndarray:
        return x.all(axis=1)

    def any(self, x: Any) -> bool:
        return bool(np.any(x))

    def nonzero(self, mask: np.ndarray) -> np.ndarray:
        return np.flatnonzero(mask)

    def select_rows(self, x: np.ndarray, idx: np.ndarray) -> np.ndarray:
        return x[idx]

    def assign_rows(self, v: np.ndarray, idx: np.ndarray, values: np.ndarray) -> np.ndarray:
        out = np.array(v, copy=True)
        out[idx] = values
        return out

    def exponent(self, x: np.ndarray) -> np.ndarray:
        return np.frexp(x)[1].astype(F64)

    def empty_like_block(self, block: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        return np.empty(shape, dtype=np.asarray(block).dtype)

    def zeros_like(self, x: np.ndarray) -> np.ndarray:
        return np.zeros_like(np.asarray(x, dtype=F64))

    def isnan(self, x: Any) -> Any:
        return np.isnan(x)

    def refined(self) -> NumpyOps:
        return self

    def exact_lse_rows(self, v, v_lo, rows, u_hi, u_lo, t: float) -> tuple[Any, Any]:
        out, out_lo = np.array(v, copy=True), np.array(v_lo, copy=True)
        for r in np.flatnonzero(rows):
            out[r], out_lo[r], _ = exact.logsumexp_row_dd(u_hi[r], None, t, u_lo[r])
        return out, out_lo

    # losses ----------------------------------------------------------------------------------
    def class_weights(self, weight: Any, n: int, like: Any) -> np.ndarray:
        return np.ones(n) if weight is None else np.asarray(weight, dtype=F64)

    def ones_rows(self, x2: np.ndarray, value: Any) -> np.ndarray:
        return np.full(x2.shape[0], value)

    def zeros_rows_int(self, x2: np.ndarray) -> np.ndarray:
        return np.zeros(x2.shape[0], np.int64)

    def flat_labels(self, target: np.ndarray) -> np.ndarray:
        return np.asarray(target).reshape(-1).astype(np.int64)

    def gather(self, w: np.ndarray, y: np.ndarray) -> np.ndarray:
        return w[y] if w.shape[0] else np.zeros(y.shape[0])

    def at_label(self, v: Any, y: np.ndarray, n_cls: int, like: np.ndarray) -> np.ndarray:
        out = np.zeros((y.shape[0], n_cls))
        inside = (y >= 0) & (y < n_cls)  # labels of this block only
        if n_cls and np.any(inside):
            rows = np.arange(y.shape[0])[inside]
            out[rows, y[inside]] = np.broadcast_to(v, y.shape)[inside]
        return out

    def is_col(self, k: np.ndarray, n_cls: int, like: np.ndarray) -> np.ndarray:
        return np.arange(n_cls)[None, :] == np.asarray(k)[:, None]


OPS = NumpyOps()


def _quiet(method):
    """NumPy evaluates both sides of every ``where``: its warnings there mean nothing."""

    def run(*args, **kwargs):
        with np.errstate(all="ignore"):
            return method(*args, **kwargs)

    run.__name__, run.__doc__ = method.__name__, method.__doc__
    return run


class NumpyBackend:
    """The reference backend (see the module docstring)."""

    name = "numpy"
    native = "numpy"
    devices = ("cpu",)

    def available(self) -> str | None:
        return None

    def supports(self, call: Any) -> str | None:
        return None if call.device == "cpu" else f"runs on the CPU only, not on {call.device}"

    @_quiet
    def softmax(self, x: np.ndarray, axis: int, opts: RowOptions) -> np.ndarray:
        return array.rows_in_blocks(OPS, array.softmax, x, axis, opts)

    @_quiet
    def log_softmax(self, x: np.ndarray, axis: int, opts: RowOptions) -> np.ndarray:
        return array.rows_in_blocks(OPS, array.log_softmax, x, axis, opts)

    @_quiet
    def logsumexp(self, x: np.ndarray, axis: int, opts: RowOptions) -> np.ndarray:
        return array.rows_in_blocks(OPS, array.logsumexp, x, axis, opts, reduced=True)

    @_quiet
    def cross_entropy(self, x, axis, target, soft, weight, opts: LossOptions, grad_output,
                      want_lse=True):  # fmt: skip
        return array.loss_in_blocks(OPS, array.cross_entropy, x, axis, target, soft, weight, opts,
                                    grad_output, want_lse)  # fmt: skip

    @_quiet
    def nll_loss(self, logp, axis, target, soft, weight, opts: LossOptions, grad_output):
        return array.loss_in_blocks(OPS, array.nll_loss, logp, axis, target, soft, weight, opts,
                                    grad_output)  # fmt: skip

    @_quiet
    def softmax_vjp(self, y, g, axis: int, temperature: float):
        return array.rows_in_blocks(OPS, array.softmax_vjp, y, axis, temperature, others=(g,))

    @_quiet
    def log_softmax_vjp(self, y, g, axis: int, temperature: float):
        return array.rows_in_blocks(OPS, array.log_softmax_vjp, y, axis, temperature,
                                    others=(g,))  # fmt: skip

    @_quiet
    def logsumexp_vjp(self, x, g, axis: int, opts: RowOptions):
        return array.rows_in_blocks(OPS, array.logsumexp_vjp, x, axis, opts, reduced=True,
                                    others=(g,))  # fmt: skip

    @_quiet
    def logsumexp_weighted(self, x, axis: int, b, opts: RowOptions):
        return logsumexp_weighted(x, axis, b, opts)


# ---------------------------------------------------------------------------------------------
@np.errstate(all="ignore")
def logsumexp_weighted(
    x: np.ndarray, axis: int, b: np.ndarray, opts: RowOptions
) -> tuple[np.ndarray, np.ndarray]:
    r""":math:`\log|\sum_i b_i e^{x_i/T}|` and its sign along ``axis`` (SciPy's ``b`` and
    ``return_sign``), in float64 (double-double inside).

    Entries with ``b == 0`` are masked. With :math:`d_i = (x_i - m)/T \le 0` the sum is
    :math:`e^{m/T} P`, :math:`P = \sum_i b_i e^{d_i}` summed exactly from double-double products,
    and :math:`\log|{\rm sum}| = m/T + \operatorname{log1p}(|P| - 1)`. Rows where the weights
    cancel (``|P|`` far below :math:`\sum |b_i e^{d_i}|`) or where :math:`m/T` and
    :math:`\log|P|` cancel are evaluated exactly (:mod:`logmax._core.exact`). The products
    :math:`b_i (e_h + e_l)` are exact, so weights that cancel on equal entries cancel exactly
    (:math:`|P| = 1` exactly gives 0, not the products' rounding).
    """
    alg = OPS.alg
    t = opts.temperature
    x2, shape = OPS.rows(x, axis)
    b2, _ = OPS.rows(np.broadcast_to(b, x.shape), axis)
    bw = OPS.work(b2)
    xw = np.where(bw != 0, OPS.work(x2), -np.inf)
    # an infinite weight on a live entry makes the sum infinite (NaN if both signs meet)
    live_x = (xw > -np.inf) & ~np.isnan(xw)
    up = np.any(live_x & (bw == np.inf), axis=1)
    down = np.any(live_x & (bw == -np.inf), axis=1)
    bw = np.where(np.isinf(bw), 0.0, bw)
    u_hi, u_lo, _ = array.transform(OPS, xw, None)
    st, d_hi, d_lo = blocks.block_stats(OPS, u_hi, u_lo, t, accurate=True)
    e_hi, e_lo = alg.term_accurate(d_hi, d_lo)
    live = d_hi != -np.inf
    bw = np.where(live, bw, 0.0)
    p_hi, p_lo = alg.two_prod(bw, e_hi)
    r_hi, r_lo = alg.two_prod(bw, e_lo)  # every product exact: equal terms cancel exactly
    ps_hi, ps_lo = blocks.exact_sum(OPS, [p_hi, p_lo, r_hi, r_lo])
    sign = np.sign(ps_hi)
    a_hi, a_lo = np.abs(ps_hi), np.where(ps_hi < 0, -ps_lo, ps_lo)
    l_hi, l_lo = alg.log1p_dd(*alg.dd_add_d(a_hi, a_lo, -1.0))
    # |P| well below 1: log1p started from a rounded |P| - 1 whose low bits are gone; one more
    # Newton step on e^L = |P| restores them
    el_hi, el_lo, k = alg.exp_dd_accurate(l_hi, l_lo)
    el_hi, el_lo = alg.scale2(el_hi, k), alg.scale2(el_lo, k)
    res_hi, res_lo = alg.dd_add(a_hi, a_lo, -el_hi, -el_lo)
    step = (a_hi < 0.5) & (el_hi > 0.0)
    n_hi, n_lo = alg.fast_two_sum(l_hi, l_lo + (res_hi + res_lo) / np.where(step, el_hi, 1.0))
    l_hi, l_lo = np.where(step, n_hi, l_hi), np.where(step, n_lo, l_lo)
    q_hi, q_lo = alg.dd_div_d(*alg.finite_shift(st.m_hi, st.m_lo), t)
    v_hi, v_lo = alg.dd_add(q_hi, q_lo, l_hi, l_lo)
    lse = np.where(sign == 0, -np.inf, v_hi + v_lo)
    size = blocks.exact_sum(OPS, [np.abs(p_hi)])[0]
    cancels = (a_hi < 2.0**-40 * size) | alg.lse_cancels(st.m_hi, t, np.abs(l_hi), v_hi, 43)
    # a result near the subnormals: the products' low parts there lost bits of their own
    cancels |= (np.abs(v_hi) < 2.0**-960) & (v_hi != 0.0)
    # (a sum that cancelled to 0 here may not be 0: the terms that underflowed decide)
    for r in np.flatnonzero(cancels & np.isfinite(st.m_hi) & ~st.bad):
        lse[r], sign[r] = exact.logsumexp_row(x2[r].astype(F64), bw[r], t)
    masked = np.isneginf(st.m_hi)
    lse = np.where(st.bad, np.nan, np.where(masked, -np.inf, lse))
    sign = np.where(st.bad, np.nan, np.where(masked, 0.0, sign))
    infinite = (up | down) & ~st.bad
    lse = np.where(infinite, np.where(up & down, np.nan, np.inf), lse)
    sign = np.where(infinite, np.where(up & down, np.nan, np.where(up, 1.0, -1.0)), sign)
    batch = OPS.batch_shape(shape, axis)
    return lse.reshape(batch), sign.reshape(batch)


@np.errstate(all="ignore")
def logsumexp_complex(
    a: np.ndarray, axis: int, b: np.ndarray, t: float
) -> tuple[np.ndarray, np.ndarray]:
    r"""SciPy's complex logsumexp along ``axis``: :math:`\log \sum_i b_i e^{a_i / T}` with the
    principal logarithm, shifted by the largest real part, and the sign :math:`S/|S|`.

    Computed in complex128 with the shift (as SciPy does): the certified bound covers real
    inputs only.
    """
    z = np.moveaxis(np.asarray(a, dtype=np.complex128), axis, -1) / t
    bw = np.moveaxis(np.asarray(b), axis, -1).astype(np.complex128)
    live = (bw != 0) & ~np.isneginf(z.real)
    m = np.max(np.where(live, z.real, -np.inf), axis=-1, keepdims=True)
    shift = np.where(np.isfinite(m), m, 0.0)
    total = np.sum(np.where(live, bw * np.exp(z - shift), 0), axis=-1)
    out = np.log(total) + shift[..., 0]
    sign = np.where(total == 0, 0, total / np.abs(total))
    dtype = np.result_type(np.asarray(a).dtype, np.asarray(b).dtype, np.complex64)
    return out.astype(dtype), sign.astype(dtype)


__all__ = ["OPS", "NumpyBackend", "NumpyOps", "logsumexp_complex", "logsumexp_weighted"]
