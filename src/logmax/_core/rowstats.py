r"""The row-statistics algebra: what a block of a row leaves behind, how two blocks merge, and the
finishers that turn the merged statistics into every result logmax returns.

Notation. A row of logits :math:`x` becomes :math:`u = \operatorname{softcap}(x)` (or :math:`x`),
then :math:`z = u / T`. With :math:`m = u_k` the row maximum (first occurrence), the shifted
values :math:`d_i = (u_i - m)/T \le 0` and :math:`s = \sum_{i \ne k} e^{d_i}`,

.. math::
    \operatorname{lse} = m/T + \operatorname{log1p}(s), \quad
    \log p_i = d_i - \operatorname{log1p}(s), \quad p_i = e^{d_i} / (1 + s).

Leaving the maximum's own term (the 1) out of :math:`s` keeps a confident row exact
(Blanchard, Higham and Higham 2021): ``log(1 + s)`` would round a tiny ``s`` away.

Statistics of a block (a contiguous range of a row's columns; one block may be the whole row):

=========  =====================================================================================
``m``      the block's maximum of :math:`u` (a double-double ``m_hi, m_lo``); ``-inf`` when every
           entry is masked
``k``      its column (global index, first occurrence)
``s``      :math:`\sum_{i \ne k} e^{(u_i - m)/T}` (double-double)
``bad``    the block holds NaN or ``+inf``
``uy``     :math:`u_y` at the target column, with ``has_y`` (is the target in this block)
``a``      for dense loss coefficients :math:`a_c \ge 0` (label smoothing
           :math:`\varepsilon w_c / C`, soft targets :math:`w_c t'_c`): ``a_rest``
           :math:`= \sum_{c \ne k} a_c` (double-double ``a_rest, a_rest_lo``: equal
           coefficients on ties then cancel exactly in the gradient), ``a_k`` :math:`= a_k`
           and ``ad``
           :math:`= \sum_c a_c (u_c - m)/T \le 0` (double-double; ``-inf`` when a positive
           coefficient meets a masked entry)
=========  =====================================================================================

:func:`merge` combines the statistics of two adjacent blocks, the left one first: it is
associative, and with the order fixed (left to right over the columns, rank order across
devices) the result is the same however a row is split. Every backend and every splitting -- CPU
rows, linear cross-entropy's vocabulary blocks, GPU program blocks, vocabulary shards on several
ranks -- goes through these functions, written once against the primitives of
:mod:`logmax._core.ddarith` (see :mod:`logmax._core.specialise`).

Edge rules (the contract), applied by the finishers: masked entries (``-inf``) have probability 0,
log-probability ``-inf`` and gradient 0; a fully masked row gives softmax 0, log_softmax
``-inf``, logsumexp ``-inf`` and gradient 0; a row holding NaN or ``+inf`` gives NaN; a zero
coefficient times an infinite :math:`-\log p` counts 0.

References:
    Blanchard, Higham and Higham, "Accurately computing the log-sum-exp and softmax functions",
    IMA J. Numer. Anal. 41 (2021). Milakov and Gimelshein, "Online normalizer calculation for
    softmax" (2018): the merge of running maxima and sums. Wijmans et al., "Cut your losses in
    large-vocabulary language models" (2024): cross-entropy over vocabulary blocks.
"""

from __future__ import annotations

from logmax._core.ddarith import (
    dd_add,
    dd_add_d,
    dd_div,
    dd_div_d,
    dd_mul,
    dd_mul_d,
    exp_dd,
    exp_dd_accurate,
    log1p_dd,
    scale2,
    sech2_dd,
    tanh_dd,
    two_prod,
    two_sum,
    where,
)

INF = float("inf")
NAN = float("nan")


# ---------------------------------------------------------------------------------------------
# The input transform: the softcap.
def softcap(x, cap):
    r"""``(u_hi, u_lo)``: :math:`c \tanh(x / c)` as a double-double. NaN stays NaN, ``+inf``
    becomes ``c`` (the limit), ``-inf`` stays ``-inf`` (masked: ``c tanh(-inf)`` would unmask it
    as ``-c``)."""
    bad = x != x
    q_hi, q_lo = dd_div_d(x, 0.0 * x, cap)
    q_lo = where(bad | (abs(x) == INF), 0.0, q_lo)
    t_hi, t_lo = tanh_dd(q_hi, q_lo)
    u_hi, u_lo = dd_mul_d(t_hi, t_lo, cap)
    masked = x == -INF
    u_hi = where(bad, NAN, where(masked, -INF, u_hi))
    u_lo = where(bad | masked, 0.0, u_lo)
    return u_hi, u_lo


def softcap_slope(x, cap):
    r""":math:`\operatorname{sech}^2(x / c)`, the softcap's derivative, without the cancellation of
    :math:`1 - \tanh^2` near :math:`|\tanh| = 1` (0 where ``x / c`` overflows or ``x`` is
    masked), as a double-double ``(hi, lo)``."""
    bad = x != x
    q_hi, q_lo = dd_div_d(x, 0.0 * x, cap)
    q_lo = where(bad | (abs(x) == INF), 0.0, q_lo)
    masked = x == -INF
    big = abs(q_hi) == INF
    c_hi, c_lo = sech2_dd(where(bad | masked | big, 0.0, q_hi), q_lo)
    return where(big, 0.0, c_hi), where(big | bad, 0.0, c_lo)


# ---------------------------------------------------------------------------------------------
# Entries.
def shift(u_hi, u_lo, m_hi, m_lo, t):
    r""":math:`d = (u - m)/T` as a double-double, exact before the division; ``-inf`` where
    :math:`u` is masked. ``m`` must be finite (use :func:`finite_shift`)."""
    d_hi, d_lo = two_sum(u_hi, -m_hi)
    masked = (u_hi == -INF) | (d_hi == -INF)  # masked, or so far below m that it overflows
    # renormalised: where u_hi = m_hi the difference is all in the low parts (a softcap's
    # 20 (1 - 2e^-250) against 20), and a high part 0 would drop it in the division
    d_hi, d_lo = two_sum(where(masked, 0.0, d_hi), where(masked, 0.0, d_lo + (u_lo - m_lo)))
    q_hi, q_lo = dd_div_d(d_hi, d_lo, t)
    masked = masked | (q_hi == -INF)
    return where(masked, -INF, q_hi), where(masked, 0.0, q_lo)


def finite_shift(m_hi, m_lo):
    """The shift used for a row: its maximum, or 0 when the row is fully masked (so that its
    entries stay ``-inf`` and do not become NaN)."""
    masked = m_hi == -INF
    return where(masked, 0.0, m_hi), where(masked, 0.0, m_lo)


def term(d_hi, d_lo):
    r""":math:`e^{d}` as a double-double value (0 for :math:`d = -\infty`)."""
    e_hi, e_lo, k = exp_dd(d_hi, d_lo)
    return scale2(e_hi, k), scale2(e_lo, k)


def term_accurate(d_hi, d_lo):
    r""":func:`term` to about :math:`2^{-100}` relative (:func:`ddarith.exp_dd_accurate`)."""
    e_hi, e_lo, k = exp_dd_accurate(d_hi, d_lo)
    return scale2(e_hi, k), scale2(e_lo, k)


# ---------------------------------------------------------------------------------------------
# Merging two blocks (left block A, right block B).
def merge_max(a_m_hi, a_m_lo, a_k, b_m_hi, b_m_lo, b_k):
    """The merged maximum and its column; ties keep the left block's (first occurrence).
    Returns ``(m_hi, m_lo, k, b_wins)``."""
    b_wins = (b_m_hi > a_m_hi) | ((b_m_hi == a_m_hi) & (b_m_lo > a_m_lo))
    return (
        where(b_wins, b_m_hi, a_m_hi),
        where(b_wins, b_m_lo, a_m_lo),
        where(b_wins, b_k, a_k),
        b_wins,
    )


def rescale(m_hi, m_lo, new_hi, new_lo, t):
    r""":math:`e^{(m - m')/T}`: the factor that moves a block's sum from its own maximum ``m`` to
    the merged maximum ``m'`` (0 when the block is fully masked)."""
    nh, nl = finite_shift(new_hi, new_lo)
    d_hi, d_lo = shift(m_hi, m_lo, nh, nl, t)
    return term(d_hi, d_lo)


def merge_sum(a_s_hi, a_s_lo, fa_hi, fa_lo, b_s_hi, b_s_lo, fb_hi, fb_lo, b_wins):
    r""":math:`s` of two blocks: the winner's sum, plus the loser's sum and its own maximum's
    term (the 1) rescaled. ``fa``, ``fb`` are the blocks' :func:`rescale` factors (1 for the
    winner, 0 for a fully masked block)."""
    # loser: (s + 1) * f ; winner: s (its f is 1 and its 1 is the merged row's 1)
    la_hi, la_lo = dd_mul(*dd_add_d(a_s_hi, a_s_lo, 1.0), fa_hi, fa_lo)
    lb_hi, lb_lo = dd_mul(*dd_add_d(b_s_hi, b_s_lo, 1.0), fb_hi, fb_lo)
    x_hi = where(b_wins, la_hi, a_s_hi)
    x_lo = where(b_wins, la_lo, a_s_lo)
    y_hi = where(b_wins, b_s_hi, lb_hi)
    y_lo = where(b_wins, b_s_lo, lb_lo)
    return dd_add(x_hi, x_lo, y_hi, y_lo)


def merge_dense(a_rest, a_rest_lo, a_k, a_ad_hi, a_ad_lo, a_m_hi, a_m_lo, b_rest, b_rest_lo, b_k,
                b_ad_hi, b_ad_lo, b_m_hi, b_m_lo, m_hi, m_lo, b_wins, t):  # fmt: skip
    r"""The dense-coefficient statistics of two blocks: ``a_rest`` (a double-double: the rests
    and the losing block's own :math:`a_k`), ``a_k`` and
    :math:`\sum_c a_c (u_c - m')/T = \sum_{\text{blocks}} [ad + A\,(m - m')/T]` (every move
    :math:`\le 0`: the sum keeps one sign). Returns ``(rest, rest_lo, top, ad_hi, ad_lo)``."""
    r_hi, r_lo = dd_add(a_rest, a_rest_lo, b_rest, b_rest_lo)
    r_hi, r_lo = dd_add_d(r_hi, r_lo, where(b_wins, a_k, b_k))
    top = where(b_wins, b_k, a_k)
    lost = (a_ad_hi == -INF) | (b_ad_hi == -INF)
    ad_hi, ad_lo = dd_add(
        *_moved(a_ad_hi, a_ad_lo, a_rest + a_k, a_m_hi, a_m_lo, m_hi, m_lo, t),
        *_moved(b_ad_hi, b_ad_lo, b_rest + b_k, b_m_hi, b_m_lo, m_hi, m_lo, t),
    )
    return r_hi, r_lo, top, where(lost, -INF, ad_hi), where(lost, 0.0, ad_lo)


def _moved(ad_hi, ad_lo, total, m_hi, m_lo, new_hi, new_lo, t):
    nh, nl = finite_shift(new_hi, new_lo)
    mh, ml = finite_shift(m_hi, m_lo)
    g_hi, g_lo = shift(mh, ml, nh, nl, t)  # (m - m')/T <= 0
    p_hi, p_lo = dd_mul_d(g_hi, g_lo, total)
    keep = (total != 0.0) & (g_hi != -INF)
    p_hi = where(keep, p_hi, 0.0)
    p_lo = where(keep, p_lo, 0.0)
    safe_hi = where(ad_hi == -INF, 0.0, ad_hi)
    return dd_add(safe_hi, where(ad_hi == -INF, 0.0, ad_lo), p_hi, p_lo)


# ---------------------------------------------------------------------------------------------
# Finishers.
def log1p_s(s_hi, s_lo):
    r""":math:`L = \operatorname{log1p}(s)` as a double-double."""
    return log1p_dd(s_hi, s_lo)


def lse(m_hi, m_lo, l_hi, l_lo, bad, t):
    r""":math:`m/T + L` as a double-double; ``-inf`` for a fully masked row, NaN for a bad one."""
    q_hi, q_lo = dd_div_d(m_hi, m_lo, t)
    v_hi, v_lo = dd_add(q_hi, q_lo, l_hi, l_lo)
    over = abs(q_hi) == INF  # m/T beyond the range (a tiny T): the lse is +-inf, not NaN
    v_hi = where(over, q_hi, v_hi)
    v_lo = where(over, 0.0, v_lo)
    masked = m_hi == -INF
    v_hi = where(masked, -INF, v_hi)
    v_lo = where(masked, 0.0, v_lo)
    return where(bad, NAN, v_hi), where(bad, 0.0, v_lo)


def lse_cancels(m_hi, t, l_hi, v_hi, bits):
    r"""The row's :math:`m/T + L` cancels by more than ``2**bits`` (:math:`|lse|` below
    :math:`2^{-\text{bits}} \max(|m/T|, L)`): the precision it was computed in may not hold."""
    big = where(abs(m_hi) > l_hi * abs(t), abs(m_hi) / abs(t), l_hi)
    return (abs(v_hi) < big * 2.0**-bits) & (l_hi > 0.0)


def inverse(s_hi, s_lo):
    r""":math:`1/(1 + s)` as a double-double."""
    d_hi, d_lo = dd_add_d(s_hi, s_lo, 1.0)
    return dd_div(1.0, 0.0, d_hi, d_lo)


def softmax_entry(d_hi, d_lo, inv_hi, inv_lo):
    r""":math:`p = e^{d}/(1 + s)`, rounded once (also where it is subnormal); 0 where masked.
    The leading product is exact (``two_prod``): rounded, then added to the low terms, it was
    rounded twice (0.9 ULP seen)."""
    e_hi, e_lo, k = exp_dd(d_hi, d_lo)
    p, err = two_prod(e_hi, inv_hi)
    v = p + (err + (e_hi * inv_lo + e_lo * inv_hi))
    return scale2(v, k)


def log_softmax_entry(d_hi, d_lo, l_hi, l_lo):
    r""":math:`\log p = d - L` (both terms :math:`\le 0`: no cancellation); ``-inf`` where
    masked."""
    v_hi, v_lo = dd_add(d_hi, d_lo, -l_hi, -l_lo)
    return where(d_hi == -INF, -INF, v_hi + v_lo)


def neg_log_p(d_hi, d_lo, l_hi, l_lo):
    r""":math:`-\log p = L - d \ge 0` as a double-double (``+inf`` where masked)."""
    v_hi, v_lo = dd_add(l_hi, l_lo, -d_hi, -d_lo)
    masked = d_hi == -INF
    return where(masked, INF, v_hi), where(masked, 0.0, v_lo)


def loss_row(hard, dy_hi, dy_lo, has_y, a_tot, ad_hi, ad_lo, l_hi, l_lo, zeta, w_row,
             lse_hi, lse_lo):  # fmt: skip
    r"""A row's cross-entropy, as a double-double:

    .. math::
        c_y (L - d_y) + (A L - \textstyle\sum_c a_c d_c) + \zeta w\, \mathrm{lse}^2

    with ``hard`` :math:`= c_y` (:math:`(1-\varepsilon) w_y` for a hard label, 0 for soft
    targets), :math:`A = \sum_c a_c` (``a_tot``) and ``w_row`` the row's weight for the z-loss.
    Each bracket is a sum of non-negative terms. A zero coefficient times an infinite
    :math:`-\log p` counts 0; a masked target (or a masked entry with a positive coefficient)
    gives ``+inf``.
    """
    ly_hi, ly_lo = neg_log_p(dy_hi, dy_lo, l_hi, l_lo)
    h_hi, h_lo = dd_mul_d(ly_hi, ly_lo, hard)
    keep_h = (hard != 0.0) & has_y
    h_hi = where(keep_h, where(ly_hi == INF, INF, h_hi), 0.0)
    h_lo = where(keep_h & (ly_hi != INF), h_lo, 0.0)
    al_hi, al_lo = dd_mul_d(l_hi, l_lo, a_tot)
    dn_hi, dn_lo = dd_add(al_hi, al_lo, -ad_hi, -ad_lo)
    dense = a_tot != 0.0
    dn_hi = where(dense, where(ad_hi == -INF, INF, dn_hi), 0.0)
    dn_lo = where(dense & (ad_hi != -INF), dn_lo, 0.0)
    tot_hi, tot_lo = dd_add(h_hi, h_lo, dn_hi, dn_lo)
    c_hi, c_lo = two_prod(zeta, w_row)  # zeta w exactly (a rounded product: 1/2 ULP of the term)
    zw_hi, zw_lo = dd_mul(lse_hi, lse_lo, c_hi, c_lo)  # (zeta w lse) lse: no early overflow
    z_hi, z_lo = dd_mul(zw_hi, zw_lo, lse_hi, lse_lo)
    use_z = (zeta * w_row) != 0.0
    big = abs((zeta * w_row * lse_hi) * lse_hi) == INF  # beyond the range: +inf
    z_hi = where(use_z, where((lse_hi == -INF) | big, INF, z_hi), 0.0)
    z_lo = where(use_z & (lse_hi != -INF) & ~big, z_lo, 0.0)
    r_hi, r_lo = dd_add(tot_hi, tot_lo, z_hi, z_lo)
    inf = (h_hi == INF) | (dn_hi == INF) | (z_hi == INF)  # (a sum with inf is NaN in dd_add)
    return where(inf, INF, r_hi), where(inf, 0.0, r_lo)


def grad_coefficients(hard, y_is_k, a_tot, a_tot_lo, a_rest, a_rest_lo, a_k, zeta, w_row, lse_hi,
                      lse_lo):  # fmt: skip
    r"""The row factors of the gradient :math:`g_j = (\alpha p_j - c_j)\,\sigma_j`, with
    :math:`c_j = c_y [j = y] + a_j` and :math:`\alpha = c_y + A + 2\zeta w\,\mathrm{lse}`:

    returns ``(alpha_hi, alpha_lo, top_hi, top_lo, c_k)`` where ``top`` is
    :math:`\alpha - c_k` at the maximum's column :math:`k` assembled from its parts
    (:math:`c_y [y \ne k] + \sum_{c \ne k} a_c + 2\zeta w\,\mathrm{lse}`): at :math:`k`,
    :math:`g_k = ((\alpha - c_k) - c_k s)/(1+s)`, which keeps the tiny gradient of a confident
    row (:math:`1 - p_k = s/(1+s)`) instead of cancelling :math:`\alpha p_k - c_k`. :math:`A`
    (``a_tot``) and the rest are double-doubles, so that ties with equal coefficients give
    exactly 0.
    """
    # no z-loss gradient on a fully masked row, nor without a z-loss (an lse beyond the range,
    # m/T for a tiny T, would make 0 * inf)
    use = (lse_hi != -INF) & ((zeta * w_row) != 0.0)
    lse_hi = where(use, lse_hi, 0.0)
    lse_lo = where(use, lse_lo, 0.0)
    c_hi, c_lo = two_prod(zeta, w_row)  # zeta w exactly: alpha p_j - c_j may cancel
    zt_hi, zt_lo = dd_mul(lse_hi, lse_lo, 2.0 * c_hi, 2.0 * c_lo)
    a_hi, a_lo = dd_add(zt_hi, zt_lo, a_tot, a_tot_lo)
    alpha_hi, alpha_lo = dd_add_d(a_hi, a_lo, hard)
    t_hi, t_lo = dd_add(zt_hi, zt_lo, a_rest, a_rest_lo)
    top_hi, top_lo = dd_add_d(t_hi, t_lo, where(y_is_k, 0.0, hard))
    c_k = a_k + where(y_is_k, hard, 0.0)
    # a z-loss term beyond the range (lse ~ m/T for a tiny T): plain floats, +-inf, no low part
    zt = lse_hi * (2.0 * zeta * w_row)
    over = abs(zt) == INF
    alpha_hi = where(over, zt, alpha_hi)
    top_hi = where(over, zt, top_hi)
    alpha_lo = where(over, 0.0, alpha_lo)
    top_lo = where(over, 0.0, top_lo)
    return alpha_hi, alpha_lo, top_hi, top_lo, c_k


def grad_sigma(scale, scale_lo, t, slope_hi, slope_lo):
    r""":math:`\sigma = \lambda\,\operatorname{sech}^2(x/c)/T` as a double-double, for the row's
    scale :math:`\lambda` and the softcap's slope (1 without one), both double-doubles."""
    q_hi, q_lo = dd_div_d(scale, scale_lo, t)
    return dd_mul(q_hi, q_lo, slope_hi, slope_lo)


def grad_entry(d_hi, d_lo, c, is_k, alpha_hi, alpha_lo, top_hi, top_lo, c_k, s_hi, s_lo,
               inv_hi, inv_lo, sigma, sigma_lo, masked):  # fmt: skip
    r"""One gradient entry :math:`(\alpha p_j - c_j)\,\sigma_j` (see :func:`grad_coefficients`),
    as :math:`(\alpha e^{d_j} - c_j (1 + s)) / (1 + s)`: the products are double-doubles, so the
    difference of two nearly equal terms keeps its digits. At the maximum's column ``is_k`` it is
    :math:`((\alpha - c_k) - c_k s)/(1 + s)`. 0 where ``masked`` (a ``-inf`` logit); a shift
    ``d = -inf`` of a finite logit (beyond the range: a tiny temperature) is :math:`p_j = 0`.
    ``sigma + sigma_lo``: :math:`\sigma_j` as a double-double (see :func:`grad_sigma`)."""
    e_hi, e_lo = term(d_hi, d_lo)
    ae_hi, ae_lo = dd_mul(alpha_hi, alpha_lo, e_hi, e_lo)
    one_s_hi, one_s_lo = dd_add_d(s_hi, s_lo, 1.0)
    cs_hi, cs_lo = dd_mul_d(one_s_hi, one_s_lo, c)
    n_hi, n_lo = dd_add(ae_hi, ae_lo, -cs_hi, -cs_lo)
    ks_hi, ks_lo = dd_mul_d(s_hi, s_lo, c_k)
    nk_hi, nk_lo = dd_add(top_hi, top_lo, -ks_hi, -ks_lo)
    n_hi = where(is_k, nk_hi, n_hi)
    n_lo = where(is_k, nk_lo, n_lo)
    g_hi, g_lo = dd_mul(n_hi, n_lo, inv_hi, inv_lo)
    # times sigma = scale sech^2 / T as a double-double (sigma_lo: its low part): one rounding
    # at the end, where rounding the entry, then scale / T, then the product was 2.9 ULP
    p_hi, p_lo = dd_mul(g_hi, g_lo, sigma, sigma_lo)
    g = where(abs(p_hi) < INF, p_hi + p_lo, (g_hi + g_lo) * sigma)
    over = abs(alpha_hi) == INF  # an infinite z-loss term: the entry is that infinity
    g = where(over, where(is_k, top_hi, alpha_hi * e_hi) * inv_hi * sigma, g)
    return where(masked, 0.0, g)
