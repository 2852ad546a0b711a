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

import numpy as np
from numba import njit

from logmax.kernels.cpu import _algebra as alg
from logmax.kernels.cpu._algebra import dd_add_d, dd_div, exp_dd, log1p_dd, scale2, two_sum
from logmax.kernels.cpu._halves import narrow
from logmax.kernels.cpu._rows import (
    BAD,
    CHUNK,
    MASKED,
    _shifted,
    row_max32,
    row_max64,
    row_sum_dd,
    row_sum_keep_accurate_t32,
    row_sum_keep_t32,
    row_sum_t32,
    widen_row,
)
from logmax.kernels.cpu._scalar import FM, fma

# A dense gradient entry is done again in double-double when it is below tol_base + tol_d |d| of
# its two terms, where their errors would reach a quarter of an output ULP. float32 outputs read
# e^d and s to float64's precision (errors about 2^-48 for |d| <= 16, growing with |d| through
# the rounding of d); 16-bit outputs keep the fast exponential (6e-11 < 2^-33.9).
TOL32 = (2.0**-22, 2.0**-26)
TOL16 = (2.0**-20, 0.0)


@njit(fastmath=FM, cache=True, error_model="numpy")
def _row_label(labels, hard, ignore_index, i):
    """``(y, counted)`` of row ``i``: its label (0 for soft targets and ignored rows) and whether
    it counts."""
    y = labels[i] if hard else 0
    counted = (y != ignore_index) if hard else True
    return (y if counted else 0), counted


@njit(fastmath=FM, cache=True, error_model="numpy")
def _fill(g, value):
    for j in range(g.shape[0]):
        g[j] = value


@njit(fastmath=FM, cache=True, error_model="numpy")
def _masked_row_loss(hard, y, trow, w, eps, zl, row_w):
    """The loss of a counted row whose logits are all -inf: every :math:`\\ell_c` is +inf, and
    a term with a zero coefficient counts 0 (so a row of weight 0 has loss 0)."""
    n_cls = w.shape[0]
    coef = 0.0  # the largest coefficient of an infinite term
    if hard:
        coef = (1.0 - eps) * row_w
        if eps != 0.0:
            for c in range(n_cls):
                coef = max(coef, (eps / n_cls) * w[c])
    else:
        for c in range(n_cls):
            tc = (1.0 - eps) * trow[c] + eps / n_cls if eps != 0.0 else trow[c]
            coef = max(coef, tc * w[c])
    if zl != 0.0:
        coef = max(coef, zl * row_w)
    return np.inf if coef > 0.0 else 0.0


@njit(fastmath=FM, cache=True, error_model="numpy")
def _grad_plain(e, inv, a, sc, g):
    """:math:`g_j = a p_j \\cdot sc` with :math:`p_j = e_j / (1 + s)` (hard labels, no
    smoothing or softcap: the vectorised hot loop; masked entries have ``e = 0``)."""
    c = (a * inv) * sc
    for j in range(e.shape[0]):
        g[j] = c * e[j]


@njit(fastmath=FM, cache=True, error_model="numpy")
def _grad_general(z, z_max, t, e, inv, one_s, a_hi, a_lo, hard, trow, eps, b, w, sc, dcap, g,
                  tol_base, tol_d):  # fmt: skip
    """:math:`g_j = (a p_j - c_j)\\,sc\\,\\operatorname{sech}^2_j` with the dense coefficient
    :math:`c_j` (label smoothing :math:`b w_j`, soft targets :math:`w_j t'_j`), as
    :math:`(a e^{d_j} - c_j (1 + s)) / (1 + s)` with :math:`a = a_h + a_l` a double-double and
    both products exact (``fma``): exactly 0 where the two terms are equal (ties with uniform
    targets, whose :math:`a = \\sum_c a_c` is then exactly :math:`(1 + s)\\,c_j`), not a
    rounding of :math:`a` or :math:`p_j`. The maximum's and the label's columns are set after
    (see :func:`_ce_row`). Returns whether an entry cancelled below :math:`2^{-40}` of its two
    terms (``tol_base + tol_d |d_j|``, or to 0): there the rounding of :math:`e^{d_j}` and
    :math:`s` may be all that is left, and the row is done again in double-double
    (:func:`_grad_row_dd`)."""
    has_cap = dcap.shape[0] > 0
    f = inv * sc
    n_risky = 0  # (a count, not a short-circuit: the loop stays vectorised)
    for j in range(z.shape[0]):
        cj = _coef(hard, trow, eps, b, w, j)
        p1 = a_hi * e[j]
        p2 = cj * one_s
        n_lo = (fma(a_hi, e[j], -p1) - fma(cj, one_s, -p2)) + a_lo * e[j]
        n = (p1 - p2) + n_lo
        tol = tol_base + tol_d * abs(_shifted(z[j], z_max, t))
        live = z[j] > -np.inf
        n_risky += 1 if (abs(n) < tol * (abs(p1) + abs(p2))) & live else 0
        gj = n * f
        if has_cap:
            gj = gj * dcap[j]
        g[j] = gj if live else 0.0
    return n_risky > 0


@njit(fastmath=FM, cache=True, error_model="numpy")
def _grad_row_dd(z, mx, t, hard, y, trow, w, eps, b, zl, row_w, hard_c, k, a_hi, a_lo, r_hi,
                 r_lo, sc, g):  # fmt: skip
    """The gradient row again with every quantity a double-double, through the algebra's
    :func:`~logmax._core.rowstats.grad_coefficients` and
    :func:`~logmax._core.rowstats.grad_entry` as the reference backend runs them (:math:`d` exact,
    :math:`e^d` and :math:`s` double-doubles): for the rare rows whose fast gradient cancels.
    ``a`` is :math:`\\sum_c a_c`, ``r`` :math:`\\sum_{c \\ne k} a_c` (double-doubles)."""
    n = z.shape[0]
    m = np.float64(mx)
    s_hi = 0.0
    s_lo = 0.0
    for j in range(n):
        if j != k:
            d_hi, d_lo = alg.shift(np.float64(z[j]), 0.0, m, 0.0, t)
            e_hi, e_lo = alg.term(d_hi, d_lo)
            s_hi, s_lo = alg.dd_add(s_hi, s_lo, e_hi, e_lo)
    l_hi, l_lo = alg.log1p_s(s_hi, s_lo)
    lse_hi, lse_lo = alg.lse(m, 0.0, l_hi, l_lo, False, t)
    a_k = _coef(hard, trow, eps, b, w, k)
    alpha_hi, alpha_lo, top_hi, top_lo, c_k = alg.grad_coefficients(
        hard_c, hard and y == k, a_hi, a_lo, r_hi, r_lo, a_k, zl, row_w, lse_hi, lse_lo
    )
    inv_hi, inv_lo = alg.inverse(s_hi, s_lo)
    for j in range(n):
        d_hi, d_lo = alg.shift(np.float64(z[j]), 0.0, m, 0.0, t)
        c = _coef(hard, trow, eps, b, w, j) + (hard_c if hard and j == y else 0.0)
        g[j] = alg.grad_entry(
            d_hi, d_lo, c, j == k, alpha_hi, alpha_lo, top_hi, top_lo, c_k, s_hi, s_lo, inv_hi,
            inv_lo, sc, 0.0, z[j] == -np.inf,
        )  # fmt: skip


@njit(fastmath=FM, cache=True, error_model="numpy")
def _coef(hard, trow, eps, b, w, c):
    """The dense coefficient :math:`a_c` of column ``c`` (0 for hard labels without smoothing)."""
    if hard:
        return b * w[c]
    return ((1.0 - eps) * trow[c] + b if eps != 0.0 else trow[c]) * w[c]


@njit(fastmath=FM, cache=True, error_model="numpy")
def _ce_row(z, mx, t, status, hard, y, trow, w, eps, zl, sc, want_grad, g, dcap, keep, out32):
    """Loss and lse of one row, computed in float64; writes the gradient row ``g`` if asked.

    ``z`` is the row after the softcap (float32 or float64), ``mx`` its maximum, ``t`` the
    temperature: :math:`d_c = (z_c - m)/T` (see :func:`logmax.kernels.cpu._rows._shifted`).
    ``keep`` is a float64 row of scratch for :math:`e^{d}` (filled when the gradient is wanted),
    ``dcap`` the softcap's derivative row (empty: no softcap), ``sc`` the row's gradient scale
    divided by the temperature (0: ignored row). The maximum's column ``k`` gets
    :math:`((\\alpha - c_k) - c_k s)/(1+s)` (:func:`logmax._core.rowstats.grad_coefficients`),
    so a confident row keeps its tiny gradient; the label's column uses :math:`1 - p_y`.
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
    b = eps / n_cls
    dense = eps != 0.0 or not hard
    tol_base, tol_d = TOL32 if out32 else TOL16
    if grad_now and dense and out32:  # entries may cancel: e^d and s to float64's precision
        s = row_sum_keep_accurate_t32(z, mx, t, keep)
    elif grad_now:
        s = row_sum_keep_t32(z, mx, t, keep)
    else:
        s = row_sum_t32(z, mx, t)
    lg = np.log1p(s)
    lse = (np.float64(mx) if t == 1.0 else np.float64(mx) / t) + lg
    # the loss: c_y (L - d_y) + sum_c a_c (L - d_c) + zeta w lse^2, terms >= 0
    loss = 0.0
    d_y = 0.0
    if hard:
        d_y = _shifted(z[y], mx, t)
        hard_c = (1.0 - eps) * row_w
        loss = 0.0 if hard_c == 0.0 else hard_c * (lg - d_y)  # 0 * (-log 0) counts 0
    k = 0
    a_hi = 0.0  # A = sum_c a_c and sum_{c != k} a_c, as double-doubles (compensated sums)
    a_lo = 0.0
    r_hi = 0.0
    r_lo = 0.0
    if dense:
        while z[k] != mx:  # the maximum's first column
            k += 1
        acc = 0.0
        for c in range(n_cls):
            ac = _coef(hard, trow, eps, b, w, c)
            d = _shifted(z[c], mx, t)
            acc += 0.0 if ac == 0.0 else ac * (lg - d)
            a_hi, err = two_sum(a_hi, ac)
            a_lo += err
            if c != k:
                r_hi, err = two_sum(r_hi, ac)
                r_lo += err
        loss = loss + acc
    if zl != 0.0:
        loss = loss + zl * row_w * (lse * lse)
    if not want_grad:
        return loss, lse
    if sc == 0.0:
        _fill(g, 0.0)
        return loss, lse
    # the gradient: alpha p_j - c_j, alpha = c_y + A + 2 zeta w lse
    inv = 1.0 / (1.0 + s)
    hard_c = (1.0 - eps) * row_w if hard else 0.0
    zt = 2.0 * zl * row_w * lse
    al_hi, al_lo = dd_add_d(a_hi, a_lo, hard_c)
    al_hi, al_lo = dd_add_d(al_hi, al_lo, zt)
    a = al_hi + al_lo
    risky = False
    if not dense and dcap.shape[0] == 0:
        _grad_plain(keep, inv, a, sc, g)
    else:
        risky = _grad_general(
            z,
            mx,
            t,
            keep,
            inv,
            1.0 + s,
            al_hi,
            al_lo,
            hard,
            trow,
            eps,
            b,
            w,
            sc,
            dcap,
            g,
            tol_base,
            tol_d,
        )
    if dense:
        # the maximum's column: ((alpha - c_k) - c_k s) / (1 + s), the product exact
        y_is_k = hard and y == k
        c_k = _coef(hard, trow, eps, b, w, k) + (hard_c if y_is_k else 0.0)
        t_hi, t_lo = dd_add_d(r_hi, r_lo, 0.0 if y_is_k else hard_c)
        t_hi, t_lo = dd_add_d(t_hi, t_lo, zt)
        p = c_k * s
        nk = (t_hi - p) + (t_lo - fma(c_k, s, -p))
        risky = risky or abs(nk) < tol_base * (abs(t_hi) + abs(p))
        gk = nk * inv * sc
        if dcap.shape[0] > 0:
            gk = gk * dcap[k]
        g[k] = gk
    if hard and z[y] > -np.inf and not (dense and y == k):
        # the label's column: 1 - p_y without cancellation, s / (1 + s) at the maximum
        e_y = keep[y] if d_y != 0.0 else 1.0
        one_minus_py = s * inv if d_y == 0.0 else ((s - e_y) + 1.0) * inv
        t1 = hard_c * one_minus_py
        # alpha - c_y from its parts (A + 2 zeta w lse): a - hard_c loses a z-loss term below
        # the ULP of hard_c (a single live class: exactly that term is the gradient)
        q_hi, q_lo = dd_add_d(a_hi, a_lo, zt)
        t2 = (q_hi + q_lo) * (e_y * inv)
        t3 = b * w[y] if hard else 0.0
        gy = (t2 - t1) - t3
        tol = tol_base + tol_d * abs(d_y)
        risky = risky or (dense and abs(gy) < tol * (abs(t1) + abs(t2) + abs(t3)))
        gy = gy * sc
        if dcap.shape[0] > 0:
            gy = gy * dcap[y]
        g[y] = gy
    if dense and risky and dcap.shape[0] == 0:
        _grad_row_dd(z, mx, t, hard, y, trow, w, eps, b, zl, row_w, hard_c, k, a_hi, a_lo, r_hi,
                     r_lo, sc, g)  # fmt: skip
    return loss, lse


@njit(fastmath=FM, cache=True, error_model="numpy")
def _softcapped(xr, cap, zr, dcap):
    """``zr = cap tanh(x / cap)`` (float64; -inf stays masked, +inf becomes ``cap``) and its
    derivative ``sech^2(x / cap)``."""
    for j in range(xr.shape[0]):
        u = np.float64(xr[j]) / cap
        sech = 1.0 / math.cosh(u)
        dcap[j] = sech * sech  # = 1 - tanh^2, without its cancellation near |tanh| = 1
        zr[j] = cap * math.tanh(u) if u != -np.inf else -np.inf


@njit(fastmath=FM, cache=True, error_model="numpy")
def _ce_one(xr, i, labels, hard, soft_t, w, ignore_index, eps, zl, t, cap, scale, want_grad,
            loss_out, lse_out, g, keep, zr, dcap, out32):  # fmt: skip
    """Row ``i`` (``xr``, float32) of :func:`cross_entropy_f32` / :func:`cross_entropy_h`
    (``out32``: the gradient is rounded into float32, not 16 bits)."""
    y, counted = _row_label(labels, hard, ignore_index, i)
    sc = scale[i] / t if (want_grad and counted) else 0.0
    trow = soft_t[i] if not hard else soft_t[0]
    if cap > 0.0:
        _softcapped(xr, cap, zr, dcap)
        status, mx = row_max64(zr)
        loss, lse = _ce_row(zr, mx, t, status, hard, y, trow, w, eps, zl, sc, want_grad, g, dcap,
                            keep, out32)  # fmt: skip
    else:
        status, mx = row_max32(xr)
        loss, lse = _ce_row(xr, mx, t, status, hard, y, trow, w, eps, zl, sc, want_grad, g,
                            dcap[:0], keep, out32)  # fmt: skip
    loss_out[i] = loss if counted else 0.0
    lse_out[i] = lse
    if want_grad and not counted:
        _fill(g, 0.0)


@njit(nogil=True, fastmath=FM, cache=True, error_model="numpy")
def cross_entropy_f32(
    x, labels, hard, soft_t, w, ignore_index, eps, zl, t, cap, scale, want_grad, loss_out,
    lse_out, grad, r0, r1,
):  # fmt: skip
    """Rows ``r0 .. r1`` of float32 logits ``x`` (C-contiguous); see the module docstring.

    ``labels`` (int64, one per row) for hard targets or ``soft_t`` (float64, x's shape) for soft
    ones; ``w`` the class weights (ones when none); ``cap`` 0 for no softcap; ``scale`` the
    per-row gradient scale; ``grad`` (float32) written when ``want_grad``.
    """
    n_cls = x.shape[1]
    keep = np.empty(n_cls)
    zr = np.empty(n_cls if cap > 0.0 else 0)
    dcap = np.empty(n_cls if cap > 0.0 else 0)
    g64 = np.empty(n_cls if want_grad else 0)
    for i in range(r0, r1):
        _ce_one(x[i], i, labels, hard, soft_t, w, ignore_index, eps, zl, t, cap, scale,
                want_grad, loss_out, lse_out, g64, keep, zr, dcap, True)  # fmt: skip
        if want_grad:
            gi = grad[i]
            for j in range(n_cls):
                gi[j] = g64[j]


@njit(nogil=True, fastmath=FM, cache=True, error_model="numpy")
def cross_entropy_h(
    x, kind, labels, hard, soft_t, w, ignore_index, eps, zl, t, cap, scale, want_grad, loss_out,
    lse_out, grad, r0, r1,
):  # fmt: skip
    """:func:`cross_entropy_f32` for 16-bit logits (uint16 patterns of ``kind``); the gradient
    is rounded once into 16 bits (``grad`` uint16)."""
    n_cls = x.shape[1]
    wide = np.empty(n_cls, dtype=np.float32)
    keep = np.empty(n_cls)
    zr = np.empty(n_cls if cap > 0.0 else 0)
    dcap = np.empty(n_cls if cap > 0.0 else 0)
    g64 = np.empty(n_cls if want_grad else 0)
    for i in range(r0, r1):
        widen_row(x[i], kind, wide)
        _ce_one(wide, i, labels, hard, soft_t, w, ignore_index, eps, zl, t, cap, scale,
                want_grad, loss_out, lse_out, g64, keep, zr, dcap, False)  # fmt: skip
        if want_grad:
            gi = grad[i]
            for j in range(n_cls):
                gi[j] = narrow(g64[j], kind)


# ---------------------------------------------------------------------------------------------
@njit(fastmath=FM, cache=True, error_model="numpy")
def _ell_dd(l_hi, l_lo, x, m):
    """:math:`\\operatorname{log1p}(s) - (x - m)` with ``x - m`` exact: one final rounding."""
    d_hi, d_lo = two_sum(x, -m)
    v, err = two_sum(l_hi, -d_hi)
    return v + (err + (l_lo - d_lo)) if d_hi > -np.inf else np.inf  # a masked class: -log 0


@njit(nogil=True, fastmath=FM, cache=True, error_model="numpy")
def cross_entropy_dd(
    x, labels, hard, soft_t, w, ignore_index, eps, zl, scale, scale_lo, want_grad,
    loss_out, lse_out, grad, r0, r1,
):  # fmt: skip
    """Rows of float64 logits (no softcap, temperature 1); arguments as
    :func:`cross_entropy_f32`, with ``scale_lo`` the low part of a wider per-row scale. The
    gradient is written for hard labels without label smoothing or z-loss (the dispatch sends
    nothing else)."""
    n_cls = x.shape[1]
    hi = np.empty(CHUNK)
    lo = np.empty(CHUNK)
    for i in range(r0, r1):
        z = x[i]
        g = grad[i]
        y, counted = _row_label(labels, hard, ignore_index, i)
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
        s_hi, s_lo = row_sum_dd(z, m, hi, lo, -1)
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
            hard_c = (1.0 - eps) * row_w  # a zero coefficient times -log 0 counts 0
            loss = 0.0 if hard_c == 0.0 else hard_c * _ell_dd(l_hi, l_lo, z[y], m)
            if eps != 0.0:
                acc = 0.0
                for c in range(n_cls):
                    acc += 0.0 if w[c] == 0.0 else w[c] * _ell_dd(l_hi, l_lo, z[c], m)
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
        inv_hi, inv_lo = dd_div(1.0, 0.0, den_hi, den_lo + s_lo)
        # g_j = c p_j with c = w_y * scale and p_j = e_j / (1 + s), both double-doubles: one
        # rounding at the end (hard labels, no smoothing or z-loss: the only case sent here)
        c_hi = row_w * sc
        c_lo = fma(row_w, sc, -c_hi) + row_w * sc_lo
        for j in range(n_cls):
            d_hi, d_lo = two_sum(z[j], -m)
            e_hi, e_lo, k = exp_dd(d_hi, d_lo)
            p_hi = e_hi * inv_hi
            p_lo = fma(e_hi, inv_hi, -p_hi) + (e_lo * inv_hi + e_hi * inv_lo)
            gj = c_hi * p_hi + (c_hi * p_lo + c_lo * p_hi)
            g[j] = scale2(gj, k) if d_hi > -np.inf else 0.0
        if z[y] > -np.inf:
            # 1 - p_y = (s + 1 - e_y) / (1 + s) without cancellation; s / (1 + s) at the max
            if z[y] == m:
                n_hi = s_hi
                n_lo = s_lo
            else:
                d_hi, d_lo = two_sum(z[y], -m)
                e_hi, e_lo, k = exp_dd(d_hi, d_lo)
                n_hi, err = two_sum(s_hi, -scale2(e_hi, k))
                n_lo = err + (s_lo - scale2(e_lo, k))
                n_hi, err = two_sum(n_hi, 1.0)
                n_lo = n_lo + err
            q_hi = n_hi * inv_hi
            q_lo = fma(n_hi, inv_hi, -q_hi) + (n_lo * inv_hi + n_hi * inv_lo)
            g[y] = -(c_hi * q_hi + (c_hi * q_lo + c_lo * q_hi))


# ---------------------------------------------------------------------------------------------
# float64 with every option: the contract's algebra (logmax._core.rowstats), one row at a time.
@njit(fastmath=FM, cache=True, error_model="numpy")
def _dd_acc(s_hi, s_lo, v_hi, v_lo):
    """``s + v`` accumulated error-free in the high part (the low parts add with rounding)."""
    h, e = two_sum(s_hi, v_hi)
    return h, s_lo + (e + v_lo)


@njit(fastmath=FM, cache=True, error_model="numpy")
def _row_terms(d_hi, d_lo, k, accurate):
    r""":math:`s = \sum_{j \ne k} e^{d_j}` of the shifts ``d`` as a double-double (``accurate``:
    the algebra's :func:`~logmax._core.rowstats.term_accurate`, to :math:`2^{-100}`)."""
    s_hi = 0.0
    s_lo = 0.0
    for j in range(d_hi.shape[0]):
        if j == k:
            continue
        if accurate:
            e_hi, e_lo = alg.term_accurate(d_hi[j], d_lo[j])
        else:
            e_hi, e_lo = alg.term(d_hi[j], d_lo[j])
        s_hi, s_lo = _dd_acc(s_hi, s_lo, e_hi, e_lo)
    return two_sum(s_hi, s_lo)


@njit(nogil=True, fastmath=FM, cache=True, error_model="numpy")
def cross_entropy_dd_general(x, labels, hard, soft_t, w, ignore_index, eps, zl, t, cap, scale,
                             scale_lo, want_grad, loss_out, lse_out, grad, redo, r0,
                             r1):  # fmt: skip
    """Rows of float64 logits with any of soft targets, label smoothing, temperature, softcap and
    z-loss: :func:`logmax.kernels.array.cross_entropy` for one row at a time, on the algebra's
    scalar functions (:mod:`logmax.kernels.cpu._algebra`) -- the softcap and shifts as
    double-doubles, :func:`~logmax._core.rowstats.loss_row`,
    :func:`~logmax._core.rowstats.grad_coefficients` and
    :func:`~logmax._core.rowstats.grad_entry` -- so the results keep that path's bound.

    Rows the array path finishes with more than the algebra -- holding NaN, ``+inf`` or a masked
    (``-inf``) entry, a sum :math:`s` of subnormal terms, a z-loss whose logsumexp cancels beyond
    double-double, a subnormal loss -- are marked in ``redo`` for the caller to compute there.
    """
    n = x.shape[1]
    u_hi = np.empty(n)
    u_lo = np.empty(n)
    slope = np.empty(n)
    slope_lo = np.empty(n)
    d_hi = np.empty(n)  # the shifts (u - m)/T, once per row for every sweep
    d_lo = np.empty(n)
    coef = np.zeros(n)
    dense = (not hard) or eps != 0.0
    for i in range(r0, r1):
        z = x[i]
        g = grad[i]
        y, counted = _row_label(labels, hard, ignore_index, i)
        row_w = w[y] if hard else 1.0
        special = False
        for j in range(n):
            if cap > 0.0:
                u_hi[j], u_lo[j] = alg.softcap(z[j], cap)
                slope[j], slope_lo[j] = alg.softcap_slope(z[j], cap)
            else:
                u_hi[j] = z[j]
                u_lo[j] = 0.0
            special |= (u_hi[j] != u_hi[j]) | (abs(u_hi[j]) == np.inf)
        if special:
            redo[i] = True
            continue
        k = 0
        for j in range(1, n):
            k = j if u_hi[j] > u_hi[k] else k
        m_hi = u_hi[k]
        m_lo = u_lo[k]
        for j in range(n):
            d_hi[j], d_lo[j] = alg.shift(u_hi[j], u_lo[j], m_hi, m_lo, t)
        s_hi, s_lo = _row_terms(d_hi, d_lo, k, False)
        if s_hi > 0.0 and s_hi < 2.0**-900:  # subnormal terms (array._tiny_log1p)
            redo[i] = True
            continue
        l_hi, l_lo = alg.log1p_s(s_hi, s_lo)
        lse_hi, lse_lo = alg.lse(m_hi, m_lo, l_hi, l_lo, False, t)
        if zl != 0.0:  # the z-loss squares lse: its terms to 2^-100 (array.z_loss_lse)
            s2_hi, s2_lo = _row_terms(d_hi, d_lo, k, True)
            l2_hi, l2_lo = alg.log1p_s(s2_hi, s2_lo)
            lse_hi, lse_lo = alg.lse(m_hi, m_lo, l2_hi, l2_lo, False, t)
            if alg.lse_cancels(m_hi, t, l2_hi, lse_hi, 39):  # 99 bits carried, 60 needed
                redo[i] = True
                continue
        lse_out[i] = lse_hi + lse_lo
        # the dense coefficients a_c: their sums (error-free), and sum a_c d_c
        a_rest = 0.0
        a_rest_lo = 0.0
        a_k = 0.0
        ad_hi = 0.0
        ad_lo = 0.0
        if dense:
            for j in range(n):
                if hard:
                    coef[j] = (eps / n) * w[j]
                else:
                    tw = (1.0 - eps) * soft_t[i, j] + eps / n if eps != 0.0 else soft_t[i, j]
                    coef[j] = tw * w[j]
                a = coef[j]
                if j == k:
                    a_k = a
                elif a != 0.0:
                    a_rest, a_rest_lo = _dd_acc(a_rest, a_rest_lo, a, 0.0)
                if a != 0.0:
                    p_hi, p_lo = alg.two_prod(a, d_hi[j])
                    ad_hi, ad_lo = _dd_acc(ad_hi, ad_lo, p_hi, p_lo + a * d_lo[j])
            a_rest, a_rest_lo = two_sum(a_rest, a_rest_lo)
            ad_hi, ad_lo = two_sum(ad_hi, ad_lo)
            if abs(ad_hi) == np.inf or ad_hi != ad_hi:  # beyond the range: the array path
                redo[i] = True
                continue
        hard_c = (1.0 - eps) * row_w if hard else 0.0
        a_tot, a_tot_lo = alg.dd_add_d(a_rest, a_rest_lo, a_k)
        loss_hi, loss_lo = alg.loss_row(
            hard_c,
            d_hi[y],
            d_lo[y],
            True,
            a_tot,
            ad_hi,
            ad_lo,
            l_hi,
            l_lo,
            zl,
            row_w,
            lse_hi,
            lse_lo,
        )
        loss = loss_hi + loss_lo if counted else 0.0
        if loss != 0.0 and abs(loss) < 2.2250738585072014e-308:
            redo[i] = True
            continue
        loss_out[i] = loss
        if not want_grad:
            continue
        sc = scale[i] if counted else 0.0
        sc_lo = scale_lo[i] if counted else 0.0
        if sc == 0.0:
            _fill(g, 0.0)
            continue
        alpha_hi, alpha_lo, top_hi, top_lo, c_k = alg.grad_coefficients(
            hard_c, y == k, a_tot, a_tot_lo, a_rest, a_rest_lo, a_k, zl, row_w, lse_hi, lse_lo
        )
        inv_hi, inv_lo = alg.inverse(s_hi, s_lo)
        for j in range(n):
            c = (coef[j] if dense else 0.0) + (hard_c if j == y else 0.0)
            sl_hi, sl_lo = (slope[j], slope_lo[j]) if cap > 0.0 else (1.0, 0.0)
            sg_hi, sg_lo = alg.grad_sigma(sc, sc_lo, t, sl_hi, sl_lo)
            g[j] = alg.grad_entry(d_hi[j], d_lo[j], c, j == k, alpha_hi, alpha_lo, top_hi, top_lo,
                                  c_k, s_hi, s_lo, inv_hi, inv_lo, sg_hi, sg_lo,
                                  False)  # fmt: skip
