r"""Cross-entropy in Triton: the fused loss + logsumexp + gradient, and vocabulary-block kernels.

The phases of :mod:`logmax.kernels.array` ("Cross-entropy in phases"), one program per row:

1. :func:`ce_stats` -- :func:`logmax.kernels.array.ce_block`: a row (or a vocabulary block of
   it) read in column blocks, each reduced to the statistics of :mod:`logmax._core.rowstats`
   (maximum, first argmax, :math:`s`, and for dense coefficients ``a_rest``, ``a_k``, ``ad``) and
   merged into the running ones with :func:`rowstats.merge_max`, :func:`rowstats.rescale`,
   :func:`rowstats.merge_sum` and :func:`rowstats.merge_dense` (left block first).
2. the finish -- :func:`logmax.kernels.array.ce_finish`: :func:`rowstats.lse`,
   :func:`rowstats.loss_row`, :func:`rowstats.grad_coefficients`, :func:`rowstats.inverse`.
3. :func:`ce_grad` -- :func:`logmax.kernels.array.ce_block_grad`: :func:`rowstats.grad_entry` on
   every entry, from the row's merged statistics.

:func:`cross_entropy` runs the three in one kernel (the row is read twice, the gradient written
once; no ``(rows, C)`` buffer besides the gradient). :func:`ce_block` and :func:`ce_block_grad`
run phase 1 and phase 3 on a block of logits of a vocabulary split, for linear cross-entropy:
their statistics merge with :func:`logmax._core.blocks.merge` and finish with
:func:`logmax.kernels.array.ce_finish` on the torch backend's ops (see :func:`ce_block`).

Row quantities (which rows count, their class, weights, the mean's divisor, the reduction, the
upstream gradient's scale per row) are the driver's own functions on ``(rows,)`` vectors in
torch (:func:`array.counted_rows`, :func:`array.denominator`, :func:`array.reduce_rows`,
:func:`array.row_scale`): device operations, no host synchronisation.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from logmax._core import blocks
from logmax._core.options import LossOptions
from logmax.kernels import array
from logmax.kernels.torch_backend import ops_for
from logmax.kernels.triton import rows as _rows
from logmax.kernels.triton._algebra import INF, NAN, device, plain, store_rounded
from logmax.kernels.triton.rows import (
    as_work,
    block_terms,
    launch_config,
    lse_accurate,
    merge_block,
    temperature,
)


class LABEL_CHECK:  # noqa: N801 (a namespace)
    """After :func:`cross_entropy`: ``first_wrong_row``, a device tensor ``(1,)`` holding the first
    row whose (counted) label is outside ``[0, C)``, or the row count when there is none -- the
    kernel gives such rows a NaN loss and gradient instead of reading out of bounds. Reading it
    is the caller's (deferred) host synchronisation; the kernel launch has none."""

    first_wrong_row: torch.Tensor | None = None


# Where the dense coefficients a_c come from (the constexpr COEF).
NO_COEF, TABLE, SOFT = 0, 1, 2


# ---------------------------------------------------------------------------------------------
# Device functions.
@device
def logits(row, cols, n, cap, SOFTCAP: tl.constexpr, W: tl.constexpr):
    """A block of ``u`` (the softcapped logits, work dtype, ``-inf`` past the row) with NaN and
    ``+inf`` set to 0, and whether it held any (see :func:`rows.load_block`)."""
    x = tl.load(row + cols, mask=cols < n, other=-INF).to(W)
    if SOFTCAP:
        u, _u_lo = plain.softcap(x, cap)  # the low word is below the work precision's need
    else:
        u = tl.where(x == INF, NAN, x)
    nonfinite = (u != u) | (u == INF)
    return tl.where(nonfinite, 0.0, u), tl.max(nonfinite.to(tl.int32), 0), x


@device
def coefficients(cols, n, coef_row, tgt_row, w_ptr, one_m_eps, eps_c, COEF: tl.constexpr,
                 W: tl.constexpr):  # fmt: skip
    """The dense coefficients :math:`a_c` of a block (0 past the row): read from a table (label
    smoothing :math:`\\varepsilon w_c / C`, or any ``coef`` of :func:`array.loss_rows`), or from
    soft targets as :func:`array.loss_rows` forms them, :math:`((1-\\varepsilon) t_c +
    \\varepsilon/C)\\, w_c`."""
    inside = cols < n
    if COEF == 1:
        a = tl.load(coef_row + cols, mask=inside, other=0.0).to(W)
    else:
        tw = tl.load(tgt_row + cols, mask=inside, other=0.0).to(W)
        tw = one_m_eps * tw + eps_c
        a = tw * tl.load(w_ptr + cols, mask=inside, other=0.0).to(W)
    return tl.where(inside, a, 0.0)


@device
def ce_stats(row, n, col0, t, cap, SOFTCAP: tl.constexpr, coef_row, tgt_row, w_ptr, one_m_eps,
             eps_c, COEF: tl.constexpr, W: tl.constexpr, BLOCK: tl.constexpr):  # fmt: skip
    """Phase 1 on the ``n`` columns at ``row`` (global columns ``col0 ..``): ``(m, k, s_hi, s_lo,
    bad, a_rest, a_rest_lo, a_k, ad_hi, ad_lo)`` (the dense ones 0 without coefficients)."""
    idx = tl.arange(0, BLOCK)
    m = tl.full([], -INF, W)
    zero = tl.full([], 0.0, W)
    k = tl.full([], 0, tl.int64) + col0
    s_hi = zero
    s_lo = zero
    bad = tl.full([], 0, tl.int32)
    a_rest = zero
    a_rest_lo = zero
    a_k = zero
    ad_hi = zero
    ad_lo = zero
    for c0 in range(0, n, BLOCK):
        cols = c0 + idx
        u, bad_b, _x = logits(row, cols, n, cap, SOFTCAP, W)
        bad = tl.maximum(bad, bad_b)
        mb, ib, d, sb = block_terms(u, idx, t)
        m2, k, s_hi, s_lo, b_wins = merge_block(
            m, k, s_hi, s_lo, mb, ib.to(tl.int64) + (col0 + c0), sb, t
        )
        if COEF != 0:
            a = coefficients(cols, n, coef_row, tgt_row, w_ptr, one_m_eps, eps_c, COEF, W)
            at_k = idx == ib
            b_k = tl.sum(tl.where(at_k, a, 0.0), 0)
            b_rest = tl.sum(tl.where(at_k, 0.0, a), 0)
            live = a != 0.0
            masked = d == -INF
            b_ad = tl.sum(tl.where(live & ~masked, a * d, 0.0), 0)
            lost = tl.max((live & masked).to(tl.int32), 0) != 0  # a coefficient on a masked class
            a_rest, a_rest_lo, a_k, ad_hi, ad_lo = plain.merge_dense(
                a_rest, a_rest_lo, a_k, ad_hi, ad_lo, m, zero, b_rest, zero, b_k,
                tl.where(lost, -INF, b_ad), zero, mb, zero, m2, zero, b_wins, t,
            )  # fmt: skip
        m = m2
    return m, k, s_hi, s_lo, bad != 0, a_rest, a_rest_lo, a_k, ad_hi, ad_lo


@device
def target_logit(row, y, cap, SOFTCAP: tl.constexpr, W: tl.constexpr):
    """:math:`u_y`, transformed as its block was (``y`` a valid column)."""
    x = tl.load(row + y).to(W)
    if SOFTCAP:
        u, _u_lo = plain.softcap(x, cap)
    else:
        u = tl.where(x == INF, NAN, x)
    return tl.where((u != u) | (u == INF), 0.0, u)


@device
def ce_grad(row, g_row, n, col0, t, cap, SOFTCAP: tl.constexpr, coef_row, tgt_row, w_ptr,
            one_m_eps, eps_c, COEF: tl.constexpr, y, hard, counted, bad, sh, sl, k, alpha_hi,
            alpha_lo, top_hi, top_lo, c_k, s_hi, s_lo, inv_hi, inv_lo, sc, W: tl.constexpr,
            BLOCK: tl.constexpr):  # fmt: skip
    """Phase 3: :func:`rowstats.grad_entry` on the ``n`` columns at ``row`` into ``g_row``;
    ``sc`` is the row's scale over :math:`T` (0 where the row does not count)."""
    idx = tl.arange(0, BLOCK)
    zero = tl.full([], 0.0, W)
    for c0 in range(0, n, BLOCK):
        cols = c0 + idx
        u, _b, x = logits(row, cols, n, cap, SOFTCAP, W)
        d_hi, d_lo = plain.shift(u, zero, sh, sl, t)
        gcol = cols.to(tl.int64) + col0
        c = tl.where(gcol == y, hard, 0.0)
        if COEF != 0:
            c = c + coefficients(cols, n, coef_row, tgt_row, w_ptr, one_m_eps, eps_c, COEF, W)
        if SOFTCAP:  # noqa: SIM108 (a static branch of the kernel)
            sl_hi, sl_lo = plain.softcap_slope(x, cap)
            sigma = sc * (sl_hi + sl_lo)
        else:
            sigma = sc
        g = plain.grad_entry(
            d_hi, d_lo, c, gcol == k, alpha_hi, alpha_lo, top_hi, top_lo, c_k, s_hi, s_lo,
            inv_hi, inv_lo, sigma, zero, u == -INF,
        )  # fmt: skip
        g = tl.where(counted, g, 0.0)  # exactly 0, even where the softcap's slope is NaN
        store_rounded(g_row + cols, tl.where(counted & bad, NAN, g), cols < n)


# ---------------------------------------------------------------------------------------------
# Kernels.
@triton.jit
def _ce_kernel(x_ptr, stride_x, n, y_ptr, counted_ptr, row_w_ptr, hard_ptr, coef_ptr,
               stride_coef, tgt_ptr, stride_tgt, w_ptr, scale_ptr, loss_ptr, lse_ptr, g_ptr,
               stride_g, label_ptr, t_arg: tl.float64, cap_arg: tl.float64,
               one_m_eps_arg: tl.float64, eps_c_arg: tl.float64, zeta_arg: tl.float64,
               T_ONE: tl.constexpr,
               SOFTCAP: tl.constexpr, COEF: tl.constexpr, GRAD: tl.constexpr,
               WANT_LSE: tl.constexpr, W: tl.constexpr, BITS: tl.constexpr, BLOCK: tl.constexpr,
               ACC_BLOCK: tl.constexpr):  # fmt: skip
    r = tl.program_id(0).to(tl.int64)
    row = x_ptr + r * stride_x
    t = temperature(t_arg, T_ONE, W)
    cap = as_work(cap_arg, W)
    one_m_eps = as_work(one_m_eps_arg, W)
    eps_c = as_work(eps_c_arg, W)
    zeta = as_work(zeta_arg, W)
    coef_row = coef_ptr + r * stride_coef
    tgt_row = tgt_ptr + r * stride_tgt
    y = tl.load(y_ptr + r)
    counted = tl.load(counted_ptr + r) != 0
    row_w = tl.load(row_w_ptr + r).to(W)
    hard = tl.load(hard_ptr + r).to(W)
    # a label outside [0, C) (the frontend checks them first; this guards the memory and the
    # loss where that check was skipped): NaN row, first such row recorded in label_ptr
    wrong = counted & ((y < 0) | (y >= n))
    tl.atomic_min(label_ptr, r, mask=wrong)
    y = tl.where(wrong, 0, y)
    zero = tl.full([], 0.0, W)
    # phase 1
    m, k, s_hi, s_lo, bad, a_rest, a_rest_lo, a_k, ad_hi, ad_lo = ce_stats(
        row, n, 0, t, cap, SOFTCAP, coef_row, tgt_row, w_ptr, one_m_eps, eps_c, COEF, W, BLOCK
    )
    # phase 2 (array.ce_finish)
    a_tot, a_tot_lo = plain.dd_add_d(a_rest, a_rest_lo, a_k)
    l_hi, l_lo = plain.log1p_s(s_hi, s_lo)
    lse_hi, lse_lo = plain.lse(m, zero, l_hi, l_lo, bad, t)
    sh, sl = plain.finite_shift(m, zero)
    dy_hi, dy_lo = plain.shift(target_logit(row, y, cap, SOFTCAP, W), zero, sh, sl, t)
    loss_hi, loss_lo = plain.loss_row(
        hard, dy_hi, dy_lo, y >= 0, a_tot, ad_hi, ad_lo, l_hi, l_lo, zeta, row_w, lse_hi, lse_lo
    )
    loss = tl.where(counted, tl.where(bad | wrong, NAN, loss_hi + loss_lo), 0.0)
    tl.store(loss_ptr + r, loss)
    lse_v = lse_hi + lse_lo
    if WANT_LSE:  # noqa: SIM102 (a static branch around a dynamic one)
        if plain.lse_cancels(m, t, l_hi, lse_hi, BITS) & ~bad:
            lse_v = lse_accurate(row, n, t_arg, T_ONE, SOFTCAP, cap_arg, ACC_BLOCK).to(W)
    tl.store(lse_ptr + r, lse_v)
    # phase 3
    if GRAD:
        alpha_hi, alpha_lo, top_hi, top_lo, c_k = plain.grad_coefficients(
            hard, y == k, a_tot, a_tot_lo, a_rest, a_rest_lo, a_k, zeta, row_w, lse_hi, lse_lo
        )
        inv_hi, inv_lo = plain.inverse(s_hi, s_lo)
        sc = tl.load(scale_ptr + r).to(W) / t
        ce_grad(
            row, g_ptr + r * stride_g, n, 0, t, cap, SOFTCAP, coef_row, tgt_row, w_ptr,
            one_m_eps, eps_c, COEF, y, hard, counted, bad | wrong, sh, sl, k, alpha_hi, alpha_lo,
            top_hi, top_lo, c_k, s_hi, s_lo, inv_hi, inv_lo, sc, W, BLOCK,
        )  # fmt: skip


@triton.jit
def _block_stats_kernel(x_ptr, stride_x, n, col0, y_ptr, coef_ptr, stride_coef, out_ptr,
                        k_ptr, t_arg: tl.float64, cap_arg: tl.float64, T_ONE: tl.constexpr,
                        SOFTCAP: tl.constexpr, COEF: tl.constexpr, W: tl.constexpr,
                        BLOCK: tl.constexpr):  # fmt: skip
    """Phase 1 on a vocabulary block; ``out`` rows: ``m, s_hi, s_lo, bad, uy, has_y, a_rest,
    a_k, ad_hi, ad_lo, a_rest_lo`` (work dtype, ``(11, rows)``), ``k`` the global argmax."""
    r = tl.program_id(0).to(tl.int64)
    rows = tl.num_programs(0)
    row = x_ptr + r * stride_x
    t = temperature(t_arg, T_ONE, W)
    cap = as_work(cap_arg, W)
    one = tl.full([], 1.0, W)
    m, k, s_hi, s_lo, bad, a_rest, a_rest_lo, a_k, ad_hi, ad_lo = ce_stats(
        row, n, col0, t, cap, SOFTCAP, coef_ptr + r * stride_coef, coef_ptr, coef_ptr, one, one,
        COEF, W, BLOCK,
    )  # fmt: skip
    y = tl.load(y_ptr + r) - col0
    has_y = (y >= 0) & (y < n)
    uy = target_logit(row, tl.where(has_y, y, 0), cap, SOFTCAP, W)
    tl.store(k_ptr + r, k)
    out = out_ptr + r
    tl.store(out, m)
    tl.store(out + rows, s_hi)
    tl.store(out + 2 * rows, s_lo)
    tl.store(out + 3 * rows, bad.to(W))
    tl.store(out + 4 * rows, tl.where(has_y, uy, 0.0))
    tl.store(out + 5 * rows, has_y.to(W))
    tl.store(out + 6 * rows, a_rest)
    tl.store(out + 7 * rows, a_k)
    tl.store(out + 8 * rows, ad_hi)
    tl.store(out + 9 * rows, ad_lo)
    tl.store(out + 10 * rows, a_rest_lo)


@triton.jit
def _block_grad_kernel(x_ptr, stride_x, n, col0, g_ptr, stride_g, y_ptr, counted_ptr, hard_ptr,
                       coef_ptr, stride_coef, st_ptr, k_ptr, scale_ptr, t_arg: tl.float64,
                       cap_arg: tl.float64, T_ONE: tl.constexpr, SOFTCAP: tl.constexpr,
                       COEF: tl.constexpr, W: tl.constexpr, BLOCK: tl.constexpr):  # fmt: skip
    """Phase 3 on a vocabulary block; ``st`` rows: ``m_hi, m_lo, bad, alpha_hi, alpha_lo,
    top_hi, top_lo, c_k, s_hi, s_lo, inv_hi, inv_lo`` of the merged row (``(12, rows)``)."""
    r = tl.program_id(0).to(tl.int64)
    rows = tl.num_programs(0)
    t = temperature(t_arg, T_ONE, W)
    cap = as_work(cap_arg, W)
    one = tl.full([], 1.0, W)
    st = st_ptr + r
    m_hi = tl.load(st).to(W)
    m_lo = tl.load(st + rows).to(W)
    bad = tl.load(st + 2 * rows) != 0
    sh, sl = plain.finite_shift(m_hi, m_lo)
    sc = tl.load(scale_ptr + r).to(W) / t
    ce_grad(
        x_ptr + r * stride_x, g_ptr + r * stride_g, n, col0, t, cap, SOFTCAP,
        coef_ptr + r * stride_coef, coef_ptr, coef_ptr, one, one, COEF, tl.load(y_ptr + r),
        tl.load(hard_ptr + r).to(W), tl.load(counted_ptr + r) != 0, bad, sh, sl,
        tl.load(k_ptr + r), tl.load(st + 3 * rows).to(W), tl.load(st + 4 * rows).to(W),
        tl.load(st + 5 * rows).to(W), tl.load(st + 6 * rows).to(W), tl.load(st + 7 * rows).to(W),
        tl.load(st + 8 * rows).to(W), tl.load(st + 9 * rows).to(W),
        tl.load(st + 10 * rows).to(W), tl.load(st + 11 * rows).to(W), sc, W, BLOCK,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Host side.
def _options(opts: LossOptions) -> dict:
    return dict(T_ONE=opts.temperature == 1.0, SOFTCAP=opts.softcap is not None)


def _float_args(opts: LossOptions) -> tuple[float, float]:
    return float(opts.temperature), float(opts.softcap or 1.0)


def cross_entropy(x, axis, target, soft, weight, opts: LossOptions, grad_output, want_lse=True,
                  inplace_backward=False):  # fmt: skip
    """The backend's cross-entropy: ``(loss, lse, grad)`` as
    :func:`logmax.kernels.array.cross_entropy` returns them (loss reduced, work dtype; lse per
    row, work dtype, batch shape; gradient in ``x``'s dtype or None).

    ``inplace_backward``: the gradient is written over ``x`` when ``x`` holds its rows with the
    class axis last and contiguous (``x`` is returned as the gradient); otherwise into a new
    tensor. The caller must not need ``x`` afterwards.
    """
    ops = ops_for(x)
    work = ops.work_dtype
    x2, moved = _rows.as_rows(x, axis)
    n_rows, n = x2.shape
    batch = moved[:-1]
    eps = opts.label_smoothing
    w_cls = array.mean_weights(ops, ops.class_weights(weight, n, x2), soft, opts)
    tgt2 = _rows.as_rows(target, axis)[0] if soft else target.reshape(-1).long()
    if soft:
        counted, y, row_w = array.counted_rows(ops, tgt2, soft, w_cls, opts, x2)
    else:  # a wrong label reaches the kernel (which flags it) but not the gather of its weight
        wrong = (tgt2 != opts.ignore_index) & ((tgt2 < 0) | (tgt2 >= n))
        counted, y, row_w = array.counted_rows(
            ops, torch.where(wrong, 0, tgt2), soft, w_cls, opts, x2
        )
        y = torch.where(wrong, tgt2, y)
    hard = 0.0 * row_w if soft else (1.0 - eps) * row_w  # as array.loss_rows
    den = array.denominator(ops, row_w, soft, opts)
    if soft:
        coef, stride_coef, mode = x2, 0, SOFT
    elif eps:
        coef, stride_coef, mode = ((eps / n) * w_cls).contiguous(), 0, TABLE
    else:
        coef, stride_coef, mode = x2, 0, NO_COEF
    grad = None
    scale = row_w
    if grad_output is not None:
        # on the device: TorchOps.work_rows would make a CPU tensor of a Python float
        go = torch.as_tensor(grad_output, dtype=work, device=x.device)
        scale = array.row_scale(ops, go, den, counted, opts, n_rows).contiguous()
        in_place = inplace_backward and x2.data_ptr() == x.data_ptr() and x.is_contiguous()
        in_place = in_place and axis == x.ndim - 1
        grad = x2 if in_place else torch.empty_like(x2)
    loss_rows = torch.empty(n_rows, dtype=work, device=x.device)
    LABEL_CHECK.first_wrong_row = torch.full((1,), n_rows, dtype=torch.int64, device=x.device)
    lse = torch.empty(n_rows, dtype=work, device=x.device)
    if n_rows:
        block, acc_block, warps = launch_config(n, work, opts.softcap is not None)
        t, cap = _float_args(opts)
        g = grad if grad is not None else x2
        _ce_kernel[(n_rows,)](
            x2, x2.stride(0), n, y.contiguous(), counted.to(torch.int8), row_w.contiguous(),
            hard.contiguous(), coef, stride_coef, tgt2 if soft else x2,
            tgt2.stride(0) if soft else 0, w_cls.contiguous(), scale, loss_rows, lse, g,
            g.stride(0), LABEL_CHECK.first_wrong_row, t, cap, 1.0 - eps, eps / n,
            float(opts.z_loss), **_options(opts),
            COEF=mode, GRAD=grad is not None, WANT_LSE=bool(want_lse),
            W=_rows.tl_dtype(work), BITS=_rows._bits(x.dtype, work), BLOCK=block,
            ACC_BLOCK=acc_block, num_warps=warps, enable_fp_fusion=True,
        )  # fmt: skip
    loss = array.reduce_rows(ops, loss_rows, den, opts)
    if opts.reduction == "none":
        loss = loss.reshape(batch)
    if grad is not None:
        grad = x if grad is x2 and inplace_backward else _rows.from_rows(grad, moved, axis)
    return loss, lse.reshape(batch), grad


def _coef_block(lr: array.LossRows, col0: int, n: int, like: torch.Tensor):
    if lr.coef is None:
        return like, 0, NO_COEF
    c = array.coef_block(lr, col0, col0 + n)
    if c.ndim == 1:
        return c.contiguous(), 0, TABLE
    c = c if c.stride(-1) == 1 else c.contiguous()
    return c, c.stride(0), TABLE


def ce_block(x2: torch.Tensor, lr: array.LossRows, opts: LossOptions, col0: int = 0):
    """Phase 1 on a block of logits ``x2`` ``(rows, n)`` (columns ``col0 .. col0 + n`` of the
    vocabulary): its :class:`logmax._core.blocks.Stats`, with the meaning of
    :func:`logmax.kernels.array.ce_block`'s (``lr`` from :func:`array.loss_rows` on the ops of
    :func:`logmax.kernels.torch_backend.ops_for` ``(x2)``; the softcap is applied here).

    Linear cross-entropy over vocabulary blocks calls, for logits ``h @ W_b.T`` of each block
    ``b`` in order: ``st = ce_block(...)`` then ``blocks.merge(ops, st_so_far, st, T)``; then
    ``array.ce_finish(ops, st, lr, opts)`` once; then, per block again, :func:`ce_block_grad`.
    """
    ops = ops_for(x2)
    work = ops.work_dtype
    if x2.stride(-1) != 1:
        x2 = x2.contiguous()
    n_rows, n = x2.shape
    coef, stride_coef, mode = _coef_block(lr, col0, n, x2)
    out = torch.zeros((11, n_rows), dtype=work, device=x2.device)
    k = torch.zeros(n_rows, dtype=torch.int64, device=x2.device)
    if n_rows and n:
        block, _acc, warps = launch_config(n, work, opts.softcap is not None)
        t, cap = _float_args(opts)
        _block_stats_kernel[(n_rows,)](
            x2, x2.stride(0), n, col0, lr.y.contiguous(), coef, stride_coef, out, k, t, cap,
            **_options(opts), COEF=mode, W=_rows.tl_dtype(work), BLOCK=block,
            num_warps=warps, enable_fp_fusion=True,
        )  # fmt: skip
    m, s_hi, s_lo, bad, uy, has_y, a_rest, a_k, ad_hi, ad_lo, a_rest_lo = out.unbind(0)
    zero = torch.zeros_like(m)
    if not n:
        m = torch.full_like(m, -float("inf"))
    st = blocks.Stats(m, zero, k, s_hi, s_lo, bad != 0, uy, zero, has_y != 0)
    if lr.coef is not None:
        st.a_rest, st.a_rest_lo, st.a_k = a_rest, a_rest_lo, a_k
        st.ad_hi, st.ad_lo = ad_hi, ad_lo
    return st


def ce_block_grad(x2: torch.Tensor, st: blocks.Stats, fin: array.Finished, lr: array.LossRows,
                  scale: torch.Tensor, opts: LossOptions, col0: int = 0,
                  out: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """Phase 3 on a block of logits ``x2`` ``(rows, n)`` (columns ``col0 ..``): the gradient of
    the loss with respect to these logits, in ``x2``'s dtype (into ``out`` when given, which may
    be ``x2`` itself), from the row's merged statistics ``st`` and factors ``fin``
    (:func:`array.ce_finish`) and each row's scale (:func:`array.row_scale`) -- the meaning of
    :func:`logmax.kernels.array.ce_block_grad`."""
    ops = ops_for(x2)
    work = ops.work_dtype
    if x2.stride(-1) != 1:
        x2 = x2.contiguous()
    n_rows, n = x2.shape
    g = torch.empty_like(x2) if out is None else out
    coef, stride_coef, mode = _coef_block(lr, col0, n, x2)
    parts = [st.m_hi, st.m_lo, st.bad, *fin.grad]
    table = torch.stack([torch.as_tensor(p).to(device=x2.device, dtype=work).expand(n_rows)
                         for p in parts])  # fmt: skip
    if n_rows and n:
        block, _acc, warps = launch_config(n, work, opts.softcap is not None)
        t, cap = _float_args(opts)
        hard = torch.as_tensor(lr.hard, dtype=work, device=x2.device).expand(n_rows)
        _block_grad_kernel[(n_rows,)](
            x2, x2.stride(0), n, col0, g, g.stride(0), lr.y.contiguous(),
            lr.counted.to(torch.int8), hard.contiguous(), coef, stride_coef, table.contiguous(),
            st.k.contiguous(), scale.to(work).contiguous(), t, cap, **_options(opts), COEF=mode,
            W=_rows.tl_dtype(work), BLOCK=block,
            num_warps=warps, enable_fp_fusion=True,
        )  # fmt: skip
    return g
