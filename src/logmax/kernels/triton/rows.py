r"""softmax, log_softmax, logsumexp and their vector-Jacobian products: one program per row.

A program reads its row in column blocks of ``BLOCK``. The statistics pass (:func:`row_stats`)
reduces each block to the statistics of :mod:`logmax._core.rowstats` -- its maximum and first
argmax, :math:`s_b = \sum_{i \ne k_b} e^{(u_i - m_b)/T}` -- and merges it into the running
statistics with :func:`rowstats.merge_max`, :func:`rowstats.rescale` and
:func:`rowstats.merge_sum` (left block first, ties keep the first column; the sum is carried as a
double-word). The output pass finishes each entry with :func:`rowstats.softmax_entry` /
:func:`rowstats.log_softmax_entry` and the row with :func:`rowstats.lse`: the algebra's own
source, through :mod:`logmax.kernels.triton._algebra`.

Precision: 16-bit inputs work in float32, float32 inputs in float64 (the ``plain`` profile),
rounded once into the input dtype. A row whose logsumexp cancels
(:func:`rowstats.lse_cancels`, the logsumexp of log-probabilities) is computed again in the same
program in float64 double-double (:func:`lse_accurate`, the ``accurate`` profile) -- a branch on
the row's own statistics, no host synchronisation.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from logmax.kernels.triton import _algebra
from logmax.kernels.triton._algebra import (
    INF,
    NAN,
    accurate,
    dd_sum,
    device,
    plain,
    store_rounded,
)

# Column blocks: one register tile per program (GPU), small under the interpreter (tests set it
# lower still to exercise the merge of many blocks).
GPU_BLOCK = {torch.float32: 4096, torch.float64: 2048}
INTERPRETER_BLOCK = 32


def work_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 work for 16-bit data, float64 for float32."""
    return torch.float64 if dtype in (torch.float32, torch.float64) else torch.float32


def tl_dtype(dtype: torch.dtype):
    return {torch.float32: tl.float32, torch.float64: tl.float64}[dtype]


def launch_config(n_cols: int, work: torch.dtype, heavy: bool = False) -> tuple[int, int, int]:
    """``(BLOCK, ACC_BLOCK, num_warps)`` for rows of ``n_cols``: one configuration, no
    autotuning (no benchmarking launches, nothing that breaks CUDA-graph capture). ``ACC_BLOCK``
    is the block of the rare double-double pass: one entry per thread keeps its code small.
    ``heavy`` (the softcap's double-word ``tanh`` per entry): half the block, which keeps the
    cross-entropy kernel within the registers on sm_90 (ptxas: no spills; see
    ``tests/triton_backend/compile_check.py``)."""
    if _algebra.interpreting():
        block = max(16, min(triton.next_power_of_2(max(n_cols, 1)), INTERPRETER_BLOCK))
        return block, block, 1
    cap = GPU_BLOCK[work] // (2 if heavy else 1)
    block = max(16, min(triton.next_power_of_2(max(n_cols, 1)), cap))
    warps = 4 if block <= 1024 else (8 if block <= 4096 else 16)
    return block, min(block, 32 * warps), warps


def as_rows(x: torch.Tensor, axis: int) -> tuple[torch.Tensor, tuple[int, ...]]:
    """``x`` as ``(rows, C)`` with unit column stride (a view when it can be; never written)."""
    moved = x.movedim(axis, -1)
    x2 = moved.reshape(-1, moved.shape[-1])
    if x2.shape[1] > 1 and x2.stride(1) != 1:
        x2 = x2.contiguous()
    return x2, tuple(moved.shape)


def from_rows(y2: torch.Tensor, moved_shape: tuple[int, ...], axis: int) -> torch.Tensor:
    return y2.reshape(moved_shape).movedim(-1, axis)


# ---------------------------------------------------------------------------------------------
# Device functions.
@device
def as_work(v, W: tl.constexpr):
    """A float argument of a kernel in the work dtype (the interpreter passes a Python float)."""
    if isinstance(v, float):
        return tl.full([], v, W)
    else:
        return v.to(W)


@device
def temperature(t_arg, T_ONE: tl.constexpr, W: tl.constexpr):
    """The temperature in the work dtype; a constant 1 when it is 1 (the divisions fold)."""
    if T_ONE:
        return tl.full([], 1.0, W)
    else:
        return as_work(t_arg, W)


@device
def load_block(row, cols, n, W: tl.constexpr):
    """A block of a row in the work dtype (``-inf`` past the row) with its NaN and ``+inf``
    entries set to 0, and whether it held any (the row is then NaN)."""
    u = tl.load(row + cols, mask=cols < n, other=-INF).to(W)
    nonfinite = (u != u) | (u == INF)
    return tl.where(nonfinite, 0.0, u), tl.max(nonfinite.to(tl.int32), 0)


@device
def merge_block(m, k, s_hi, s_lo, mb, kb, sb, t):
    """The running statistics followed by a block's (:func:`rowstats.merge_max`,
    :func:`rowstats.rescale`, :func:`rowstats.merge_sum`); the maxima are single words."""
    zero = tl.full(m.shape, 0.0, m.dtype)
    m2, _m2_lo, k2, b_wins = plain.merge_max(m, zero, k, mb, zero, kb)
    fa_hi, fa_lo = plain.rescale(m, zero, m2, zero, t)
    fb_hi, fb_lo = plain.rescale(mb, zero, m2, zero, t)
    s_hi, s_lo = plain.merge_sum(s_hi, s_lo, fa_hi, fa_lo, sb, zero, fb_hi, fb_lo, b_wins)
    return m2, k2, s_hi, s_lo, b_wins


@device
def block_terms(u, idx, t):
    """A block's maximum, its first column (local) and :math:`\\sum_{i \\ne k_b} e^{(u_i -
    m_b)/T}` (the sum of ``rowstats.term`` in the working precision)."""
    mb, ib = tl.max(u, 0, return_indices=True, return_indices_tie_break_left=True)
    sh = tl.where(mb == -INF, 0.0, mb)  # rowstats.finite_shift: a masked block stays -inf
    d = (u - sh) / t
    e = tl.where(idx == ib, 0.0, tl.exp(d))
    return mb, ib, d, tl.sum(e, 0)


@device
def row_stats(row, n, t, W: tl.constexpr, BLOCK: tl.constexpr):
    """``(m, k, s_hi, s_lo, bad)`` of a row of ``n`` entries (see the module docstring)."""
    idx = tl.arange(0, BLOCK)
    m = tl.full([], -INF, W)
    k = tl.zeros([], tl.int64)
    s_hi = tl.zeros([], W)
    s_lo = tl.zeros([], W)
    bad = tl.zeros([], tl.int32)
    for col0 in range(0, n, BLOCK):
        u, bad_b = load_block(row, col0 + idx, n, W)
        bad = tl.maximum(bad, bad_b)
        mb, ib, _d, sb = block_terms(u, idx, t)
        m, k, s_hi, s_lo, _w = merge_block(m, k, s_hi, s_lo, mb, ib.to(tl.int64) + col0, sb, t)
    return m, k, s_hi, s_lo, bad != 0


@device
def lse_accurate(row, n, t_arg, T_ONE: tl.constexpr, SOFTCAP: tl.constexpr, cap,
                 BLOCK: tl.constexpr):  # fmt: skip
    """A row's logsumexp in float64 double-double (the ``accurate`` profile: exact shifts,
    :func:`rowstats.term_accurate`, double-word block sums and merges, ``log1p_dd``): for the
    rows whose plain logsumexp cancels. ``SOFTCAP``: of ``cap tanh(x / cap)``."""
    idx = tl.arange(0, BLOCK)
    t = temperature(t_arg, T_ONE, tl.float64)
    m_hi = tl.full([], -INF, tl.float64)
    m_lo = tl.zeros([], tl.float64)
    k = tl.zeros([], tl.int64)
    s_hi = tl.zeros([], tl.float64)
    s_lo = tl.zeros([], tl.float64)
    bad = tl.zeros([], tl.int32)
    for col0 in range(0, n, BLOCK):
        cols = col0 + idx
        x = tl.load(row + cols, mask=cols < n, other=-INF).to(tl.float64)
        if SOFTCAP:
            u_hi, u_lo = accurate.softcap(x, as_work(cap, tl.float64))
        else:
            u_hi = tl.where(x == INF, NAN, x)
            u_lo = tl.full(x.shape, 0.0, x.dtype)
        nonfinite = (u_hi != u_hi) | (u_hi == INF)
        bad = tl.maximum(bad, tl.max(nonfinite.to(tl.int32), 0))
        u_hi = tl.where(nonfinite, 0.0, u_hi)
        u_lo = tl.where(nonfinite, 0.0, u_lo)
        mb, ib = tl.max(u_hi, 0, return_indices=True, return_indices_tie_break_left=True)
        mb_lo = tl.sum(tl.where(idx == ib, u_lo, 0.0), 0)
        sh, sl = accurate.finite_shift(mb, mb_lo)
        d_hi, d_lo = accurate.shift(u_hi, u_lo, sh, sl, t)
        e_hi, e_lo = accurate.term_accurate(d_hi, d_lo)
        sb_hi, sb_lo = dd_sum(tl.where(idx == ib, 0.0, e_hi), tl.where(idx == ib, 0.0, e_lo))
        kb = ib.to(tl.int64) + col0
        n_hi, n_lo, k, b_wins = accurate.merge_max(m_hi, m_lo, k, mb, mb_lo, kb)
        fa_hi, fa_lo = accurate.rescale(m_hi, m_lo, n_hi, n_lo, t)
        fb_hi, fb_lo = accurate.rescale(mb, mb_lo, n_hi, n_lo, t)
        s_hi, s_lo = accurate.merge_sum(s_hi, s_lo, fa_hi, fa_lo, sb_hi, sb_lo, fb_hi, fb_lo,
                                        b_wins)  # fmt: skip
        m_hi, m_lo = n_hi, n_lo
    l_hi, l_lo = accurate.log1p_s(s_hi, s_lo)
    v_hi, v_lo = accurate.lse(m_hi, m_lo, l_hi, l_lo, bad != 0, t)
    return v_hi + v_lo


# ---------------------------------------------------------------------------------------------
# Kernels.
SOFTMAX, LOG_SOFTMAX, LOGSUMEXP, LOGSUMEXP_VJP = 0, 1, 2, 3


@triton.jit
def _rows_kernel(x_ptr, out_ptr, g_ptr, n, stride_x, stride_out, t_arg: tl.float64,
                 OP: tl.constexpr, T_ONE: tl.constexpr, W: tl.constexpr, BITS: tl.constexpr,
                 BLOCK: tl.constexpr, ACC_BLOCK: tl.constexpr):  # fmt: skip
    r = tl.program_id(0).to(tl.int64)
    row = x_ptr + r * stride_x
    t = temperature(t_arg, T_ONE, W)
    m, k, s_hi, s_lo, bad = row_stats(row, n, t, W, BLOCK)
    zero = tl.full(m.shape, 0.0, m.dtype)
    if OP == 2:
        l_hi, l_lo = plain.log1p_s(s_hi, s_lo)
        v_hi, v_lo = plain.lse(m, zero, l_hi, l_lo, bad, t)
        v = v_hi + v_lo
        if plain.lse_cancels(m, t, l_hi, v_hi, BITS) & ~bad:
            v = lse_accurate(row, n, t_arg, T_ONE, False, t_arg, ACC_BLOCK).to(W)
        store_rounded(out_ptr + r, v, True)
    else:
        idx = tl.arange(0, BLOCK)
        sh, sl = plain.finite_shift(m, zero)
        inv_hi, inv_lo = plain.inverse(s_hi, s_lo)
        l_hi, l_lo = plain.log1p_s(s_hi, s_lo)
        if OP == 3:
            gr = tl.load(g_ptr + r).to(W) / t
        out_row = out_ptr + r * stride_out
        for col0 in range(0, n, BLOCK):
            cols = col0 + idx
            u, _b = load_block(row, cols, n, W)
            d_hi, d_lo = plain.shift(u, zero, sh, sl, t)
            if OP == 1:
                y = plain.log_softmax_entry(d_hi, d_lo, l_hi, l_lo)
            else:
                y = plain.softmax_entry(d_hi, d_lo, inv_hi, inv_lo)
                if OP == 3:
                    y = y * gr
            store_rounded(out_row + cols, tl.where(bad, NAN, y), cols < n)


@triton.jit
def _vjp_kernel(y_ptr, g_ptr, out_ptr, n, stride_y, stride_g, stride_out, t_arg: tl.float64,
                LOG: tl.constexpr, T_ONE: tl.constexpr, W: tl.constexpr,
                BLOCK: tl.constexpr):  # fmt: skip
    """softmax: :math:`y (g - \\sum_j g_j y_j) / T`; log_softmax: :math:`(g - e^{y} \\sum_j
    g_j)/T`, 0 where :math:`y = -\\infty` (as :func:`logmax.kernels.array.softmax_vjp`)."""
    r = tl.program_id(0).to(tl.int64)
    y_row = y_ptr + r * stride_y
    g_row = g_ptr + r * stride_g
    out_row = out_ptr + r * stride_out
    t = temperature(t_arg, T_ONE, W)
    idx = tl.arange(0, BLOCK)
    acc = tl.zeros([BLOCK], W)
    for col0 in range(0, n, BLOCK):
        cols = col0 + idx
        y = tl.load(y_row + cols, mask=cols < n, other=0.0).to(W)
        g = tl.load(g_row + cols, mask=cols < n, other=0.0).to(W)
        if LOG:
            acc += tl.where(y == -INF, 0.0, g)
        else:
            acc += g * y
    total = tl.sum(acc, 0)
    for col0 in range(0, n, BLOCK):
        cols = col0 + idx
        y = tl.load(y_row + cols, mask=cols < n, other=0.0).to(W)
        g = tl.load(g_row + cols, mask=cols < n, other=0.0).to(W)
        if LOG:  # noqa: SIM108 (a static branch of the kernel)
            dx = tl.where(y == -INF, 0.0, g - tl.exp(y) * total) / t
        else:
            dx = y * (g - total) / t
        store_rounded(out_row + cols, dx, cols < n)


# ---------------------------------------------------------------------------------------------
# Host side: shapes, dtypes and launches (no value is read on the host).
def _bits(dtype: torch.dtype, work: torch.dtype) -> int:
    name = str(dtype).removeprefix("torch.")
    return _algebra.TERM_BITS[str(work).removeprefix("torch.")] - _algebra.NEED_BITS[name]


def rows_op(op: int, x: torch.Tensor, axis: int, temperature: float,
            g: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """Run :data:`SOFTMAX`, :data:`LOG_SOFTMAX`, :data:`LOGSUMEXP` (reduced away) or
    :data:`LOGSUMEXP_VJP` (``g`` of the reduced shape) over ``axis`` of ``x``."""
    x2, moved = as_rows(x, axis)
    n_rows, n = x2.shape
    work = work_dtype(x.dtype)
    reduced = op == LOGSUMEXP
    out_dtype = x.dtype if g is None else torch.promote_types(x.dtype, g.dtype)
    out = torch.empty((n_rows,) if reduced else (n_rows, n), dtype=out_dtype, device=x.device)
    g2 = out if g is None else g.reshape(n_rows).contiguous()
    if n_rows:
        block, acc_block, warps = launch_config(n, work)
        _rows_kernel[(n_rows,)](
            x2, out, g2, n, x2.stride(0), 1 if reduced else out.stride(0), float(temperature),
            OP=op, T_ONE=temperature == 1.0, W=tl_dtype(work), BITS=_bits(x.dtype, work),
            BLOCK=block, ACC_BLOCK=acc_block, num_warps=warps, enable_fp_fusion=True,
        )  # fmt: skip
    if reduced:
        return out.reshape(moved[:-1])
    return from_rows(out, moved, axis)


def vjp(log: bool, y: torch.Tensor, g: torch.Tensor, axis: int, temperature: float):
    """The vector-Jacobian product of softmax (``log=False``) or log_softmax along ``axis``."""
    y2, moved = as_rows(y, axis)
    g2, _ = as_rows(g, axis)
    n_rows, n = y2.shape
    work = work_dtype(y.dtype)
    out = torch.empty((n_rows, n), dtype=torch.promote_types(y.dtype, g.dtype), device=y.device)
    if n_rows:
        block, _acc, warps = launch_config(n, work)
        _vjp_kernel[(n_rows,)](
            y2, g2, out, n, y2.stride(0), g2.stride(0), out.stride(0), float(temperature),
            LOG=log, T_ONE=temperature == 1.0, W=tl_dtype(work), BLOCK=block,
            num_warps=warps, enable_fp_fusion=True,
        )  # fmt: skip
    return from_rows(out, moved, axis)
