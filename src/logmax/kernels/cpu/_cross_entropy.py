r"""Fused cross-entropy: each row's loss, logsumexp and gradient in one sweep over the logits.

Same formulas as :func:`logmax._core.reference.cross_entropy_rows`. With
:math:`z = \operatorname{softcap}(x)/T`, :math:`m = \max z`, :math:`s` the log1p sum and
:math:`\ell_c = \operatorname{log1p}(s) - (z_c - m) = -\log p_c \ge 0` (a sum of two non-negative
terms, no cancellation):

- hard label :math:`y` with weight :math:`w_y`: :math:`(1-\varepsilon) w_y \ell_y
  + \tfrac{\varepsilon}{C} \sum_c w_c \ell_c + \zeta w_y \mathrm{lse}^2`;
- soft target :math:`t' = (1-\varepsilon) t + \varepsilon / C`: :math:`\sum_c w_c t'_c \ell_c
  + \zeta \mathrm{lse}^2` (a zero weight times an infinite :math:`\ell` counts 0).

Gradient of a row, :math:`p = e^{z - m} / (1 + s)`, before the per-row scale, :math:`1/T` and the
softcap's :math:`1 - \tanh^2`:

- hard: :math:`a p_j - \tfrac{\varepsilon}{C} w_j` with
  :math:`a = (1-\varepsilon) w_y + \tfrac{\varepsilon}{C} W + 2 \zeta w_y \mathrm{lse}`, and at
  :math:`j = y` the :math:`-(1-\varepsilon) w_y` is folded in as :math:`1 - p_y = s / (1+s)`
  when :math:`y` is the maximum (no cancellation in a confident row);
- soft: :math:`(\sum_c w_c t'_c + 2\zeta\,\mathrm{lse})\, p_j - w_j t'_j`.

Masked entries (``-inf``) get gradient exactly 0; ignored rows get loss 0 and gradient 0; a
counted row holding NaN or ``+inf`` gets NaN loss and gradient.

``cross_entropy_f32`` computes in float64 (float32 and widened 16-bit logits); ``cross_entropy_dd``
takes float64 logits with the double-double pieces of :mod:`logmax.kernels.cpu._rows`.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit, prange

from logmax.kernels.cpu._rows import (
    BAD,
    CHUNK,
    MASKED,
    inverse_dd,
    row_max32,
    row_max64,
    row_sum_dd,
    row_sum_f32,
    row_sum_keep_f32,
)
from logmax.kernels.cpu._scalar import FM, exp_dd, exp_f64, fma, log1p_dd, two_sum


@njit(fastmath=FM, cache=True)
def _fill(g, value):
    for j in range(g.shape[0]):
        g[j] = value


@njit(fastmath=FM, cache=True)
def _masked_row_loss(hard, y, trow, w, eps, zl, row_w):
    """The loss of a counted row whose logits are all -inf: every :math:`\\ell_c` is +inf."""
    inf = np.inf
    n_cls = w.shape[0]
    if hard:
        loss = (1.0 - eps) * row_w * inf
        if eps != 0.0:
            acc = 0.0
            for c in range(n_cls):
                acc += w[c] * inf
            loss = loss + (eps / n_cls) * acc
    else:
        loss = 0.0
        for c in range(n_cls):
            tc = (1.0 - eps) * trow[c] + eps / n_cls if eps != 0.0 else trow[c]
            tw = tc * w[c]
            loss += 0.0 if tw == 0.0 else tw * inf
    if zl != 0.0:
        loss = loss + zl * row_w * inf
    return loss


@njit(fastmath=FM, cache=True)
def _grad_hard(z, e, inv, a, b, w, sc, g):
    """:math:`g_j = (a p_j - b w_j) \\cdot sc` with :math:`p_j = e_j / (1 + s)`, 0 where
    ``z`` is -inf (the vectorised hot loop)."""
    if b == 0.0:
        # no smoothing: masked entries have e = 0, so g = 0 there without looking at z
        c = a * inv
        for j in range(z.shape[0]):
            g[j] = (c * e[j]) * sc
    else:
        for j in range(z.shape[0]):
            gj = (a * (e[j] * inv) - b * w[j]) * sc
            g[j] = gj if z[j] > -np.inf else 0.0


@njit(fastmath=FM, cache=True)
def _grad_general(z, e, inv, a, hard, trow, eps, b, w, sc, dcap, g):
    """The gradient row for soft targets and/or a softcap (see the module docstring)."""
    has_cap = dcap.shape[0] > 0
    for j in range(z.shape[0]):
        p = e[j] * inv
        if hard:
            gj = a * p - b * w[j]
        else:
            tc = (1.0 - eps) * trow[j] + b if eps != 0.0 else trow[j]
            gj = a * p - tc * w[j]
        gj = gj * sc
        if has_cap:
            gj = gj * dcap[j]
        g[j] = gj if z[j] > -np.inf else 0.0


@njit(fastmath=FM, cache=True)
def _ce_row_f64(z, tdiv, status, m, hard, y, trow, w, w_sum, eps, zl, sc, want_grad, g, dcap, keep):
    """Loss and lse of one row computed in float64; writes the gradient row ``g`` if asked.

    ``keep`` is a float64 row of scratch for :math:`e^{z - m}` (filled when the gradient is
    wanted). ``z`` holds the logits before the division by ``tdiv`` (1.0: none); ``m`` is the
    maximum after it. ``dcap`` is the softcap's derivative row, :math:`1 - \\tanh^2` (empty: no
    softcap). ``sc`` is the row's gradient scale divided by the temperature (0: ignored row).
    """
    n_cls = z.shape[0]
    row_w = w[y] if hard else 1.0
    if status == BAD:
        if want_grad:
            _fill(g, np.nan)
        return np.nan, np.nan
    if status == MASKED:
        if want_grad:
            _fill(g, 0.0)
        return _masked_row_loss(hard, y, trow, w, eps, zl, row_w), -np.inf
    grad_now = want_grad and sc != 0.0
    s = row_sum_keep_f32(z, m, tdiv, keep) if grad_now else row_sum_f32(z, m, tdiv)
    lg = np.log1p(s)
    lse = m + lg
    # the loss
    tw_sum = 0.0
    if hard:
        d_y = (np.float64(z[y]) / tdiv if tdiv != 1.0 else np.float64(z[y])) - m
        loss = (1.0 - eps) * row_w * (lg - d_y)
        if eps != 0.0:
            acc = 0.0
            for c in range(n_cls):
                d = (np.float64(z[c]) / tdiv if tdiv != 1.0 else np.float64(z[c])) - m
                acc += w[c] * (lg - d)
            loss = loss + (eps / n_cls) * acc
    else:
        loss = 0.0
        for c in range(n_cls):
            tc = (1.0 - eps) * trow[c] + eps / n_cls if eps != 0.0 else trow[c]
            tw = tc * w[c]
            d = (np.float64(z[c]) / tdiv if tdiv != 1.0 else np.float64(z[c])) - m
            loss += 0.0 if tw == 0.0 else tw * (lg - d)
            tw_sum += tw
    if zl != 0.0:
        loss = loss + zl * row_w * (lse * lse)
    if not want_grad:
        return loss, lse
    if sc == 0.0:
        _fill(g, 0.0)
        return loss, lse
    # the gradient
    inv = 1.0 / (1.0 + s)
    b = eps / n_cls
    if hard:
        a = (1.0 - eps) * row_w + b * w_sum + 2.0 * zl * row_w * lse
    else:
        a = tw_sum + 2.0 * zl * lse
    if hard and dcap.shape[0] == 0:
        _grad_hard(z, keep, inv, a, b, w, sc, g)
    else:
        _grad_general(z, keep, inv, a, hard, trow, eps, b, w, sc, dcap, g)
    if hard and d_y > -np.inf:
        # 1 - p_y without cancellation: s / (1 + s) when y is the maximum
        one_minus_py = s * inv if d_y == 0.0 else ((s - exp_f64(d_y)) + 1.0) * inv
        p_y = exp_f64(d_y) * inv if d_y != 0.0 else inv
        gy = -(1.0 - eps) * row_w * one_minus_py + (b * w_sum + 2.0 * zl * row_w * lse) * p_y
        gy = (gy - b * w[y]) * sc
        if dcap.shape[0] > 0:
            gy = gy * dcap[y]
        g[y] = gy
    return loss, lse


@njit(parallel=True, fastmath=FM, cache=True)
def cross_entropy_f32(
    x, labels, hard, soft_t, w, w_sum, ignore_index, eps, zl, temperature, cap, scale,
    want_grad, loss_out, lse_out, grad, scratch,
):  # fmt: skip
    """Rows of float32 logits ``x`` (C-contiguous); see the module docstring.

    ``labels`` (int64, one per row) for hard targets or ``soft_t`` (float64, x's shape) for soft
    ones; ``w`` the class weights (ones when none), ``w_sum`` their sum; ``cap`` 0 for no
    softcap; ``scale`` the per-row gradient scale; ``grad`` written when ``want_grad``;
    ``scratch`` float64 (threads, C), one row per Numba thread.
    """
    n_rows, n_cls = x.shape
    for i in prange(n_rows):
        xr = x[i]
        y = labels[i] if hard else 0
        counted = (y != ignore_index) if hard else True
        if hard and not counted:
            y = 0
        sc = scale[i] / temperature if (want_grad and counted) else 0.0
        trow = soft_t[i] if not hard else soft_t[0]
        g = grad[i]
        keep = scratch[numba.get_thread_id()]
        if cap > 0.0:
            zr = np.empty(n_cls)
            dcap = np.empty(n_cls)
            for j in range(n_cls):
                u = np.float64(xr[j]) / cap
                sech = 1.0 / math.cosh(u)
                dcap[j] = sech * sech  # = 1 - tanh^2, without its cancellation near |tanh| = 1
                zr[j] = cap * math.tanh(u) if u != -np.inf else -np.inf  # masked stays masked
                if temperature != 1.0:
                    zr[j] = zr[j] / temperature
            status, m = row_max64(zr)
            loss, lse = _ce_row_f64(
                zr, 1.0, status, m, hard, y, trow, w, w_sum, eps, zl, sc, want_grad, g, dcap, keep
            )
        else:
            status, mx = row_max32(xr)
            m = np.float64(mx) / temperature if temperature != 1.0 else np.float64(mx)
            loss, lse = _ce_row_f64(
                xr, temperature, status, m, hard, y, trow, w, w_sum, eps, zl, sc, want_grad, g,
                np.empty(0), keep,
            )  # fmt: skip
        loss_out[i] = loss if counted else 0.0
        lse_out[i] = lse
        if want_grad and not counted:
            _fill(g, 0.0)


# ---------------------------------------------------------------------------------------------
@njit(fastmath=FM, cache=True)
def _ell_dd(l_hi, l_lo, x, m):
    """:math:`\\operatorname{log1p}(s) - (x - m)` with ``x - m`` exact: one final rounding."""
    d_hi, d_lo = two_sum(x, -m)
    v, err = two_sum(l_hi, -d_hi)
    return v + (err + (l_lo - d_lo)) if d_hi > -np.inf else np.inf  # a masked class: -log 0


@njit(parallel=True, fastmath=FM, cache=True)
def cross_entropy_dd(
    x, labels, hard, soft_t, w, w_sum, ignore_index, eps, zl, scale, scale_lo, want_grad,
    loss_out, lse_out, grad,
):  # fmt: skip
    """Rows of float64 logits (no softcap, temperature 1); arguments as
    :func:`cross_entropy_f32`, with ``scale_lo`` the low part of a wider per-row scale. The
    gradient is written for hard labels without label smoothing or z-loss (the dispatch sends
    nothing else)."""
    n_rows, n_cls = x.shape
    for i in prange(n_rows):
        z = x[i]
        g = grad[i]
        y = labels[i] if hard else 0
        counted = (y != ignore_index) if hard else True
        if hard and not counted:
            y = 0
        sc = scale[i] if (want_grad and counted) else 0.0
        sc_lo = scale_lo[i] if (want_grad and counted) else 0.0
        trow = soft_t[i] if not hard else soft_t[0]
        row_w = w[y] if hard else 1.0
        status, m = row_max64(z)
        if status == BAD:
            loss_out[i] = np.nan if counted else 0.0
            lse_out[i] = np.nan
            if want_grad:
                _fill(g, np.nan if counted else 0.0)
            continue
        if status == MASKED:
            loss_out[i] = _masked_row_loss(hard, y, trow, w, eps, zl, row_w) if counted else 0.0
            lse_out[i] = -np.inf
            if want_grad:
                _fill(g, 0.0)
            continue
        s_hi, s_lo = row_sum_dd(z, m, np.empty(CHUNK), np.empty(CHUNK), -1)
        l_hi, l_lo = log1p_dd(s_hi, s_lo)
        v, err = two_sum(m, l_hi)
        lse = v + (err + l_lo)
        lse_out[i] = lse
        if not counted:
            loss_out[i] = 0.0
            if want_grad:
                _fill(g, 0.0)
            continue
        if hard:
            loss = (1.0 - eps) * row_w * _ell_dd(l_hi, l_lo, z[y], m)
            if eps != 0.0:
                acc = 0.0
                for c in range(n_cls):
                    acc += w[c] * _ell_dd(l_hi, l_lo, z[c], m)
                loss = loss + (eps / n_cls) * acc
        else:
            loss = 0.0
            for c in range(n_cls):
                tc = (1.0 - eps) * trow[c] + eps / n_cls if eps != 0.0 else trow[c]
                tw = tc * w[c]
                loss += 0.0 if tw == 0.0 else tw * _ell_dd(l_hi, l_lo, z[c], m)
        if zl != 0.0:
            loss = loss + zl * row_w * (lse * lse)
        loss_out[i] = loss
        if not want_grad:
            continue
        if sc == 0.0:
            _fill(g, 0.0)
            continue
        den_hi, den_lo = two_sum(1.0, s_hi)
        inv_hi, inv_lo = inverse_dd(den_hi, den_lo + s_lo)
        # g_j = c p_j with c = w_y * scale and p_j = e_j / (1 + s), both double-doubles: one
        # rounding at the end (hard labels, no smoothing or z-loss: the only case sent here)
        c_hi = row_w * sc
        c_lo = fma(row_w, sc, -c_hi) + row_w * sc_lo
        for j in range(n_cls):
            d_hi, d_lo = two_sum(z[j], -m)
            e_hi, e_lo, s1, s2 = exp_dd(d_hi, d_lo)
            p_hi = e_hi * inv_hi
            p_lo = fma(e_hi, inv_hi, -p_hi) + (e_lo * inv_hi + e_hi * inv_lo)
            gj = c_hi * p_hi + (c_hi * p_lo + c_lo * p_hi)
            g[j] = (gj * s1) * s2 if d_hi > -np.inf else 0.0
        if z[y] > -np.inf:
            # 1 - p_y = (s + 1 - e_y) / (1 + s) without cancellation; s / (1 + s) at the max
            if z[y] == m:
                n_hi = s_hi
                n_lo = s_lo
            else:
                d_hi, d_lo = two_sum(z[y], -m)
                e_hi, e_lo, s1, s2 = exp_dd(d_hi, d_lo)
                n_hi, err = two_sum(s_hi, -((e_hi * s1) * s2))
                n_lo = err + (s_lo - (e_lo * s1) * s2)
                n_hi, err = two_sum(n_hi, 1.0)
                n_lo = n_lo + err
            q_hi = n_hi * inv_hi
            q_lo = fma(n_hi, inv_hi, -q_hi) + (n_lo * inv_hi + n_hi * inv_lo)
            g[y] = -(c_hi * q_hi + (c_hi * q_lo + c_lo * q_hi))
