r"""Row kernels for softmax, log_softmax and logsumexp over the last axis of a C-contiguous
(rows, K) matrix, over a range of rows (one range per thread), vectorised along each row.

Every row goes through the log1p forms of :mod:`logmax._core.reference`: with :math:`m` the row
maximum and :math:`s = \sum_{i \ne \arg\max} e^{x_i - m}` (ties beyond the first count 1 each),

.. math::
    \operatorname{softmax}_i = e^{x_i - m} / (1 + s), \quad
    \log\operatorname{softmax}_i = (x_i - m) - \operatorname{log1p}(s), \quad
    \operatorname{lse} = m + \operatorname{log1p}(s).

Three sweeps per row: (1) the maximum, found on integer ordering keys (they vectorise where float
max reductions do not, and reveal NaN and +inf in the same sweep); (2) :math:`s`; (3) the output.
A row of 32000 float32 (128 KiB) stays in the core's L2 cache between sweeps, so memory sees
about one read and one write.

Two precisions:

- ``*_f32``: float32 input (16-bit inputs arrive widened to float32, exactly), computed in
  float64 with :func:`~logmax.kernels.cpu._scalar.exp_f64`; one rounding into the output dtype.
- ``*_dd``: float64 input. :math:`x - m` is kept exactly as a double-double, :math:`e^{x-m}` is
  a double-double, :math:`s` is summed in double-double on 8 lanes, and the outputs combine the
  pieces with error-free sums, so only the final rounding and libm's ``log1p`` remain.

Edge rules (the contract): a row holding NaN or +inf gives NaN; ``-inf`` entries give 0 / -inf;
a row of ``-inf`` (or an empty row) gives zeros, -inf, and logsumexp -inf.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from logmax.kernels.cpu._algebra import (
    dd_div,
    dd_div_d,
    exp_dd,
    exp_f64_accurate,
    log1p_dd,
    scale2,
    two_prod,
    two_sum,
)
from logmax.kernels.cpu._halves import BF16, bf16_to_f32, f16_to_f32, narrow
from logmax.kernels.cpu._scalar import (
    FM,
    KEY32_NEG_INF,
    KEY32_POS_INF,
    KEY64_NEG_INF,
    KEY64_POS_INF,
    exp_f64,
    f64_as_i64,
    float_key32,
    float_key64,
    i32_as_f32,
    i64_as_f64,
)

OK = 0
BAD = 1  # NaN or +inf in the row
MASKED = 2  # every entry -inf, or no entries

FM_SUM = {"contract", "reassoc"}  # lets LLVM split a float64 sum over vector lanes


# ---------------------------------------------------------------------------------------------
# Sweep 1: the maximum and the row's status.
@njit(fastmath=FM, cache=True, error_model="numpy")
def row_max32(row):
    """``(status, m)`` for a contiguous float32 row; ``m`` is the maximum as float32."""
    bits = row.view(np.int32)
    kmax = np.int32(-2147483648)
    kmin = np.int32(2147483647)
    for j in range(bits.shape[0]):
        k = float_key32(bits[j])
        kmax = k if k > kmax else kmax
        kmin = k if k < kmin else kmin
    if bits.shape[0] == 0:
        return MASKED, np.float32(-np.inf)
    if kmax >= KEY32_POS_INF or kmin < KEY32_NEG_INF:
        return BAD, np.float32(np.nan)
    m = i32_as_f32(float_key32(kmax))  # the key map is its own inverse
    if m == -np.inf:
        return MASKED, m
    return OK, m


@njit(fastmath=FM, cache=True, error_model="numpy")
def row_max64(row):
    """``(status, m)`` for a contiguous float64 row."""
    n = row.shape[0]
    kmax = np.int64(-9223372036854775807 - 1)
    kmin = np.int64(9223372036854775807)
    for j in range(n):
        k = float_key64(f64_as_i64(row[j]))
        kmax = k if k > kmax else kmax
        kmin = k if k < kmin else kmin
    if n == 0:
        return MASKED, -np.inf
    if kmax >= KEY64_POS_INF or kmin < KEY64_NEG_INF:
        return BAD, np.nan
    m = i64_as_f64(float_key64(kmax))
    if m == -np.inf:
        return MASKED, m
    return OK, m


# ---------------------------------------------------------------------------------------------
# Sweep 2: s = sum of e^(x_i - m) without the maximum's own term.
CHUNK = 1024  # float64 terms per exact partial sum (16 KiB of scratch: stays in L1)


@njit(fastmath=FM, cache=True, error_model="numpy")
def _shift_dd(x, m, t):
    """:math:`(x - m)/T` as a double-double: the difference exact, the quotient to about
    :math:`2^{-104}` (``t == 1``: no division)."""
    d_hi, d_lo = two_sum(x, -m)
    if t == 1.0:
        return d_hi, d_lo
    # x - m beyond the range where (x - m)/T may not be: halve both (exact for such values)
    h_hi, h_lo = two_sum(0.5 * x, -0.5 * m)
    over = (d_hi == -np.inf) & (x > -np.inf)
    return dd_div_d(h_hi if over else d_hi, h_lo if over else d_lo, 0.5 * t if over else t)


@njit(fastmath=FM, cache=True, error_model="numpy")
def _terms_dd(seg, m, t, hi, lo):
    """Store :math:`e^{(x_j - m)/T}` for the entries ``x_j`` of ``seg`` as ``hi[j] + lo[j]``.

    The maximum's ties (:math:`x_j = m`) are stored as 0 and counted. Returns ``(bits, ties)``
    with ``bits`` the largest stored ``hi`` as int64 bits (non-negative floats order like their
    bits, and an integer max vectorises). The arrays are indexed from 0 by the loop's own
    counter: an offset index (``j - base``) could be negative for Numba, whose wraparound
    check then kept LLVM from vectorising the loop (15 times slower).
    """
    top = np.int64(0)
    ties = 0
    for j in range(seg.shape[0]):
        d_hi, d_lo = _shift_dd(seg[j], m, t)
        e_hi, e_lo, k = exp_dd(d_hi, d_lo)
        keep = d_hi < 0.0
        h = scale2(e_hi, k) if keep else 0.0
        hi[j] = h
        lo[j] = scale2(e_lo, k) if keep else 0.0
        b = f64_as_i64(h)
        top = b if b > top else top
        ties += 1 if d_hi == 0.0 else 0
    return top, ties


@njit(fastmath=FM, cache=True, error_model="numpy")
def _split(sigma, h):
    """``(q, h - q)`` with ``q`` = ``h`` rounded to the grid of ``ulp(sigma)``, both exact."""
    q = (sigma + h) - sigma
    return q, h - q


@njit(fastmath=FM_SUM, cache=True, error_model="numpy")
def _exact_sum(hi, lo, sigma1, sigma2):
    """Sum ``hi + lo`` by error-free extraction (Rump, Ogita and Oishi, 2008).

    Each ``hi`` is split on two grids, ``ulp(sigma1)`` and ``ulp(sigma2)``; the parts on a grid
    add up exactly in any order (so the loop may be vectorised), and only the remainders, below
    ``2^-82`` of the largest term, are summed with rounding.
    """
    q1s = 0.0
    q2s = 0.0
    rest = 0.0
    for k in range(hi.shape[0]):
        q1, r1 = _split(sigma1, hi[k])
        q2, r2 = _split(sigma2, r1)
        q1s += q1
        q2s += q2
        rest += r2 + lo[k]
    return q1s, q2s, rest


@njit(fastmath=FM, cache=True, error_model="numpy")
def row_sum_dd(row, m, hi, lo, base, t=1.0):
    """:math:`s` as a double-double ``(s_hi, s_lo)`` for a float64 row with maximum ``m`` at
    temperature ``t`` (the terms :math:`e^{(x_i - m)/T}`).

    Works in chunks of :data:`CHUNK`: the exact :math:`x - m` goes through :func:`exp_dd`, each
    chunk is summed exactly (:func:`_exact_sum`) and the chunks are added with error-free sums.
    With ``base == 0`` the terms stay in ``hi``/``lo`` (full row length) for the caller to reuse;
    with ``base == -1`` ``hi``/``lo`` are chunk-sized scratch.
    """
    n = row.shape[0]
    s_hi = 0.0
    s_lo = 0.0
    ties = 0
    for j0 in range(0, n, CHUNK):
        j1 = min(j0 + CHUNK, n)
        b = j0 if base < 0 else base
        h, lw = hi[j0 - b : j1 - b], lo[j0 - b : j1 - b]
        top, n_ties = _terms_dd(row[j0:j1], m, t, h, lw)
        ties += n_ties
        if top == 0:
            continue
        # sigma1 = 2^(e + 12) for a largest term in [2^e, 2^(e+1)): 1024 terms on its grid
        # add exactly; sigma2 takes the next 41 bits.
        e = max((top >> np.int64(52)) - np.int64(1023), np.int64(-990))
        sigma1 = i64_as_f64((e + np.int64(12 + 1023)) << np.int64(52))
        sigma2 = sigma1 * 4.547473508864641e-13  # 2^-41
        q1, q2, rest = _exact_sum(h, lw, sigma1, sigma2)
        s_hi, err = two_sum(s_hi, q1)
        s_lo += err
        s_hi, err = two_sum(s_hi, q2)
        s_lo += err + rest
    s_hi, err = two_sum(s_hi, np.float64(ties - 1))  # ties beyond the first count 1 each
    s_lo += err
    return two_sum(s_hi, s_lo)


# ---------------------------------------------------------------------------------------------
# float32 and 16-bit inputs, float64 compute. Each kernel takes rows r0 .. r1 (the thread pool
# of logmax.kernels.cpu._threads cuts them); 16-bit rows arrive as their uint16 patterns, are
# widened into a float32 row of scratch (exact, and the row stays in the cache), and the results
# are rounded once into 16 bits.
@njit(fastmath=FM, cache=True, error_model="numpy")
def _shifted(v, mx, t):
    """:math:`(x - m)/T` in float64 (the difference exact; ``t == 1``: no division)."""
    d = np.float64(v) - np.float64(mx)
    return d if t == 1.0 else d / t


@njit(fastmath=FM_SUM, cache=True, error_model="numpy")
def row_sum_t32(row, mx, t):
    """:math:`s = \\sum_{i \ne k} e^{(x_i - m)/T}` in float64 for a float32 row with maximum
    ``mx``; ties beyond the first count 1 each. Dividing :math:`x - m` (exact) rather than
    :math:`x/T - m/T` keeps a tiny ``t`` from overflowing (the row becomes one-hot)."""
    s = 0.0
    ties = 0
    for j in range(row.shape[0]):
        d = _shifted(row[j], mx, t)
        s += exp_f64(d) if d < 0.0 else 0.0
        ties += 1 if d == 0.0 else 0
    return s + np.float64(ties - 1)


@njit(fastmath=FM_SUM, cache=True, error_model="numpy")
def row_sum_keep_t32(row, mx, t, keep):
    """:func:`row_sum_t32` that also leaves :math:`e^{(x_j - m)/T}` in ``keep[j]``."""
    s = 0.0
    ties = 0
    for j in range(row.shape[0]):
        d = _shifted(row[j], mx, t)
        e = exp_f64(d)
        keep[j] = e if d < 0.0 else 1.0
        s += e if d < 0.0 else 0.0
        ties += 1 if d == 0.0 else 0
    return s + np.float64(ties - 1)


@njit(fastmath=FM_SUM, cache=True, error_model="numpy")
def _grid_sum(e, sigma):
    """``(q, r)`` with :math:`\\sum_j e_j = q + r` for :math:`0 \\le e_j \\le 1` and
    :math:`\\sum_j e_j \\le \\sigma/2`: the parts on the grid of ``ulp(sigma)``
    (:func:`_split`) add up exactly in any order, so both sums vectorise; only ``r``, the sum of
    remainders below ``ulp(sigma)/2`` each, is rounded."""
    q = 0.0
    r = 0.0
    for j in range(e.shape[0]):
        h, rest = _split(sigma, e[j])
        q += h
        r += rest
    return q, r


@njit(fastmath=FM, cache=True, error_model="numpy")
def row_sum_keep_accurate_t32(row, mx, t, keep):
    """:func:`row_sum_keep_t32` to about an ULP of float64 (absolute, on :math:`1 + s`): ``keep[j]``
    from :func:`~logmax.kernels.cpu._algebra.exp_f64_accurate` and :math:`s` from
    :func:`_grid_sum` (the ties, the maximum's included, are 1 in ``keep``), for gradients whose
    entries may cancel."""
    n = row.shape[0]
    for j in range(n):
        d = _shifted(row[j], mx, t)
        keep[j] = exp_f64_accurate(d) if d < 0.0 else 1.0
    sigma = 4.0
    while sigma < 2.0 * n:
        sigma *= 2.0
    q, r = _grid_sum(keep[:n], sigma)
    return (q - 1.0) + r  # q - 1 is exact (both on the grid)


@njit(fastmath=FM, cache=True, error_model="numpy")
def widen_row(bits, kind, out):
    """16-bit patterns of ``kind`` into the float32 row ``out`` (exact)."""
    if kind == BF16:
        for j in range(bits.shape[0]):
            out[j] = bf16_to_f32(bits[j])
    else:
        for j in range(bits.shape[0]):
            out[j] = f16_to_f32(bits[j])


@njit(fastmath=FM, cache=True, error_model="numpy")
def _fill_row(o16, o32, kind, value):
    if kind == 0:
        for j in range(o32.shape[0]):
            o32[j] = value
    else:
        b = narrow(value, kind)
        for j in range(o16.shape[0]):
            o16[j] = b


@njit(fastmath=FM, cache=True, error_model="numpy")
def _softmax_row(row, o16, o32, kind, t, e):
    status, mx = row_max32(row)
    if status != OK:
        _fill_row(o16, o32, kind, np.nan if status == BAD else 0.0)
        return
    inv = 1.0 / (1.0 + row_sum_keep_t32(row, mx, t, e))
    if kind == 0:
        for j in range(row.shape[0]):
            o32[j] = e[j] * inv
    else:
        for j in range(row.shape[0]):
            o16[j] = narrow(e[j] * inv, kind)


@njit(fastmath=FM, cache=True, error_model="numpy")
def _log_softmax_row(row, o16, o32, kind, t):
    status, mx = row_max32(row)
    if status != OK:
        _fill_row(o16, o32, kind, np.nan if status == BAD else -np.inf)
        return
    lg = np.log1p(row_sum_t32(row, mx, t))
    if kind == 0:
        for j in range(row.shape[0]):
            o32[j] = _shifted(row[j], mx, t) - lg
    else:
        for j in range(row.shape[0]):
            o16[j] = narrow(_shifted(row[j], mx, t) - lg, kind)


LSE_BLOCK = 2048  # float32 entries per block of the one-sweep logsumexp (8 KiB: stays in L1)


@njit(fastmath=FM, cache=True, error_model="numpy")
def _logsumexp_row(row, t):
    r""":math:`m/T + \operatorname{log1p}(s)` of a float32 row in one sweep over memory: per
    block of :data:`LSE_BLOCK` entries (in L1) the maximum, then the block's terms against the
    running maximum; a larger block maximum rescales the running :math:`s` (and the old
    maximum's own term) by :math:`e^{(m_{old} - m)/T}` -- the merge of
    :func:`logmax._core.rowstats.merge_sum`. The row is read from memory once, while the next
    block streams in. Each rescaling adds a relative error below :math:`6 \cdot 10^{-11}`
    (:func:`exp_f64`), at most one per block: far below half a float32 ULP."""
    n = row.shape[0]
    mx = np.float32(-np.inf)
    s = 0.0
    seen = False
    for j0 in range(0, n, LSE_BLOCK):
        seg = row[j0 : min(j0 + LSE_BLOCK, n)]
        status, mb = row_max32(seg)
        if status == BAD:
            return np.nan
        if status == MASKED:
            continue
        if not seen:
            mx, s, seen = mb, row_sum_t32(seg, mb, t), True
        elif mb > mx:
            f = exp_f64(_shifted(mx, mb, t))  # the old terms and the old maximum's own 1
            s = (s + 1.0) * f + row_sum_t32(seg, mb, t)
            mx = mb
        else:  # terms below (or tied with) the running maximum, whose own term is left out
            s += row_sum_t32(seg, mx, t) + 1.0
    if not seen:
        return -np.inf
    m = np.float64(mx) if t == 1.0 else np.float64(mx) / t
    return m + np.log1p(s)


@njit(nogil=True, fastmath=FM, cache=True, error_model="numpy")
def softmax_f32(x, out, t, r0, r1):
    e = np.empty(x.shape[1])
    none = np.empty(0, dtype=np.uint16)
    for i in range(r0, r1):
        _softmax_row(x[i], none, out[i], 0, t, e)


@njit(nogil=True, fastmath=FM, cache=True, error_model="numpy")
def log_softmax_f32(x, out, t, r0, r1):
    none = np.empty(0, dtype=np.uint16)
    for i in range(r0, r1):
        _log_softmax_row(x[i], none, out[i], 0, t)


@njit(nogil=True, fastmath=FM, cache=True, error_model="numpy")
def logsumexp_f32(x, out, t, r0, r1):
    for i in range(r0, r1):
        out[i] = _logsumexp_row(x[i], t)


@njit(nogil=True, fastmath=FM, cache=True, error_model="numpy")
def softmax_h(x, kind, out, t, r0, r1):
    """16-bit rows ``x`` (uint16 patterns of ``kind``) into 16-bit ``out``."""
    w = np.empty(x.shape[1], dtype=np.float32)
    e = np.empty(x.shape[1])
    none = np.empty(0, dtype=np.float32)
    for i in range(r0, r1):
        widen_row(x[i], kind, w)
        _softmax_row(w, out[i], none, kind, t, e)


@njit(nogil=True, fastmath=FM, cache=True, error_model="numpy")
def log_softmax_h(x, kind, out, t, r0, r1):
    w = np.empty(x.shape[1], dtype=np.float32)
    none = np.empty(0, dtype=np.float32)
    for i in range(r0, r1):
        widen_row(x[i], kind, w)
        _log_softmax_row(w, out[i], none, kind, t)


@njit(nogil=True, fastmath=FM, cache=True, error_model="numpy")
def logsumexp_h(x, kind, out, t, r0, r1):
    """``out``: float64 per row (the caller rounds the few values)."""
    w = np.empty(x.shape[1], dtype=np.float32)
    for i in range(r0, r1):
        widen_row(x[i], kind, w)
        out[i] = _logsumexp_row(w, t)


# ---------------------------------------------------------------------------------------------
# float64 inputs, double-double compute.
TINY64 = 2.2250738585072014e-308  # the smallest normal float64


@njit(fastmath=FM, cache=True, error_model="numpy")
def _has_subnormal(o):
    """Whether the row ``o`` holds a subnormal (a vectorised count, on a row still in cache)."""
    n = 0
    for j in range(o.shape[0]):
        n += 1 if (abs(o[j]) < TINY64) & (o[j] != 0.0) else 0
    return n > 0


@njit(nogil=True, fastmath=FM, cache=True, error_model="numpy")
def softmax_dd(x, out, sub, t, r0, r1):
    """Softmax of float64 rows at temperature ``t``; ``sub[i]`` marks a row whose result has
    subnormals (the caller computes those again: :func:`logmax.kernels.cpu._redo_subnormal_rows`).

    Error: :math:`e^{d_j}` within :math:`2^{-57}` (:func:`exp_dd` of the double-double
    :math:`d_j`), :math:`1/(1+s)` within :math:`2^{-100}`, their double-double product rounded
    once: below 0.51 ULP."""
    lo = np.empty(x.shape[1])
    for i in range(r0, r1):
        row = x[i]
        o = out[i]
        status, m = row_max64(row)
        if status != OK:
            fill = np.nan if status == BAD else 0.0
            for j in range(row.shape[0]):
                o[j] = fill
            continue
        s_hi, s_lo = row_sum_dd(row, m, o, lo, 0, t)  # the terms e^d stay in o and lo
        den_hi, den_lo = two_sum(1.0, s_hi)
        inv_hi, inv_lo = dd_div(1.0, 0.0, den_hi, den_lo + s_lo)
        for j in range(row.shape[0]):
            if row[j] == m:
                o[j] = inv_hi + inv_lo  # the maximum's own term, e^0 = 1 (stored as 0)
            else:
                p, err = two_prod(o[j], inv_hi)  # exact: one rounding of the sum below
                o[j] = p + (err + (lo[j] * inv_hi + o[j] * inv_lo))
        sub[i] = _has_subnormal(o)


@njit(nogil=True, fastmath=FM, cache=True, error_model="numpy")
def log_softmax_dd(x, out, sub, t, r0, r1):
    """log_softmax of float64 rows at temperature ``t``; ``sub`` as in :func:`softmax_dd`.
    :math:`d_j - L` adds two non-positive double-doubles (no cancellation), rounded once."""
    hi = np.empty(CHUNK)
    lo = np.empty(CHUNK)
    for i in range(r0, r1):
        row = x[i]
        o = out[i]
        status, m = row_max64(row)
        if status != OK:
            fill = np.nan if status == BAD else -np.inf
            for j in range(row.shape[0]):
                o[j] = fill
            continue
        s_hi, s_lo = row_sum_dd(row, m, hi, lo, -1, t)
        l_hi, l_lo = log1p_dd(s_hi, s_lo)
        for j in range(row.shape[0]):
            d_hi, d_lo = _shift_dd(row[j], m, t)
            v, err = two_sum(d_hi, -l_hi)
            y = v + ((err + d_lo) - l_lo)
            o[j] = y if d_hi > -np.inf else -np.inf  # the error terms of -inf are NaN
        sub[i] = _has_subnormal(o)


@njit(nogil=True, fastmath=FM, cache=True, error_model="numpy")
def logsumexp_dd(x, out, t, r0, r1):
    """:math:`m/T + L` of float64 rows (``m/T`` a double-double); where the two cancel the
    caller recomputes the row (:func:`logmax.kernels.numba_backend._refine_near_zero`)."""
    hi = np.empty(CHUNK)
    lo = np.empty(CHUNK)
    for i in range(r0, r1):
        row = x[i]
        status, m = row_max64(row)
        if status != OK:
            out[i] = np.nan if status == BAD else -np.inf
            continue
        s_hi, s_lo = row_sum_dd(row, m, hi, lo, -1, t)
        l_hi, l_lo = log1p_dd(s_hi, s_lo)
        q_hi, q_lo = (m, 0.0) if t == 1.0 else dd_div_d(m, 0.0, t)
        v, err = two_sum(q_hi, l_hi)
        # m/T beyond the range (a tiny T): the value is that infinity (its error term is NaN)
        out[i] = v + ((err + q_lo) + l_lo) if abs(q_hi) < np.inf else q_hi
