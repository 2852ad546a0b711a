r"""Column kernels: softmax, log_softmax and logsumexp along the middle axis of a C-contiguous
(pre, K, post) float32 array, without transposing it.

The reduction runs down each column while the inner loops run along ``post``, which is
contiguous: blocks of :data:`BLOCK` columns keep a vector of maxima, sums and tie counts and
every sweep reads rows of the block in order. Over ranges of (pre, block) pairs, one per
thread. Same formulas, precision (float64 compute) and edge rules as
:mod:`logmax.kernels.cpu._rows`; a column holding
NaN, +inf or -inf is classified by a scalar scan (masked entries are legal, only rarer).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from logmax.kernels.cpu._rows import BAD, FM_SUM, MASKED, OK
from logmax.kernels.cpu._scalar import FM, exp_f64

BLOCK = 256  # columns per block: 1 KiB of float32 per row of the block


@njit(fastmath=FM, cache=True, error_model="numpy")
def _column_status(x, p, q, n):
    """Classify column ``q`` of slab ``p`` after a non-finite value was seen in it."""
    has_finite = False
    for k in range(n):
        v = x[p, k, q]
        if np.isnan(v) or v == np.inf:
            return BAD
        if v > -np.inf:
            has_finite = True
    return OK if has_finite else MASKED


@njit(fastmath=FM_SUM, cache=True, error_model="numpy")
def _block_stats(x, p, q0, q1, t, m, s, status):
    """Fill ``m`` (max of z = x / t), ``s`` (the log1p sum) and ``status`` for columns
    ``q0:q1`` of slab ``p``; index ``c`` of the outputs is column ``q0 + c``."""
    n = x.shape[1]
    w = q1 - q0
    flag = np.zeros(w)
    mx = np.full(w, -np.inf, dtype=np.float32)
    for k in range(n):
        xr = x[p, k, q0:q1]
        for c in range(w):
            v = xr[c]
            mx[c] = v if v > mx[c] else mx[c]
            flag[c] += np.float64(v) * 0.0  # NaN once the column holds NaN or an infinity
    for c in range(w):
        st = OK
        if n == 0:
            st = MASKED
        elif flag[c] != 0.0:
            st = _column_status(x, p, q0 + c, n)
        status[c] = st
        m[c] = np.float64(mx[c]) / t if t != 1.0 else np.float64(mx[c])
        s[c] = 0.0
    ties = np.zeros(w)
    for k in range(n):
        xr = x[p, k, q0:q1]
        for c in range(w):
            z = np.float64(xr[c]) / t if t != 1.0 else np.float64(xr[c])
            d = z - m[c]
            s[c] += exp_f64(d) if d < 0.0 else 0.0
            ties[c] += 1.0 if d == 0.0 else 0.0
    for c in range(w):
        s[c] = s[c] + (ties[c] - 1.0)


@njit(nogil=True, fastmath=FM, cache=True, error_model="numpy")
def columns_f32(x, out, t, op, r0, r1):
    """``op``: 0 softmax, 1 log_softmax, 2 logsumexp (``out`` is (pre, 1, post) for logsumexp);
    tasks ``r0 .. r1`` of the (pre, block) pairs."""
    pre, n, post = x.shape
    nb = (post + BLOCK - 1) // BLOCK
    for task in range(r0, r1):
        p = task // nb
        q0 = (task % nb) * BLOCK
        q1 = min(q0 + BLOCK, post)
        w = q1 - q0
        m = np.empty(w)
        s = np.empty(w)
        status = np.empty(w, dtype=np.int64)
        _block_stats(x, p, q0, q1, t, m, s, status)
        if op == 2:
            for c in range(w):
                st = status[c]
                lse = m[c] + np.log1p(s[c])
                out[p, 0, q0 + c] = lse if st == OK else (np.nan if st == BAD else -np.inf)
            continue
        fill = np.empty(w)
        scale = np.empty(w)
        for c in range(w):
            st = status[c]
            if op == 0:
                scale[c] = 1.0 / (1.0 + s[c])
                fill[c] = np.nan if st == BAD else 0.0
            else:
                scale[c] = np.log1p(s[c])
                fill[c] = np.nan if st == BAD else -np.inf
            if st != OK:
                m[c] = np.nan  # marks the column for the fill below
        for k in range(n):
            _write_row(x[p, k, q0:q1], out[p, k, q0:q1], m, scale, fill, t, op)


@njit(fastmath=FM, cache=True, error_model="numpy")
def _write_row(xr, o, m, scale, fill, t, op):
    """One row of a block: softmax (``op == 0``) or log_softmax; ``m`` NaN marks a fill column."""
    w = xr.shape[0]
    if op == 0:
        for c in range(w):
            z = np.float64(xr[c]) / t if t != 1.0 else np.float64(xr[c])
            v = exp_f64(z - m[c]) * scale[c]
            o[c] = v if m[c] == m[c] else fill[c]
    else:
        for c in range(w):
            z = np.float64(xr[c]) / t if t != 1.0 else np.float64(xr[c])
            v = (z - m[c]) - scale[c]
            o[c] = v if m[c] == m[c] else fill[c]
