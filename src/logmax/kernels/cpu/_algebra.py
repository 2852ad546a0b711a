"""The row-statistics algebra and its double-double arithmetic, compiled by Numba for the kernels.

:mod:`logmax._core.ddarith` and :mod:`logmax._core.rowstats` are re-bound here to Numba's scalar
primitives (:func:`logmax._core.specialise.specialise`) and compiled with the kernels' flags:
the kernels call the same source as the NumPy and torch backends -- ``two_sum``, ``exp_dd``,
``log1p_dd``, the finishers -- on one float at a time. The copies live in this module's globals,
which Numba's on-disk cache needs.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from logmax._core import ddarith, rowstats
from logmax._core.specialise import specialise
from logmax.kernels.cpu._scalar import (
    FM,
    LN2_HI,
    LN2_LO,
    LOG2E,
    LOWEST_F64_PATH,
    SHIFT,
    f64_as_i64,
    fma,
    i64_as_f64,
)

JIT = njit(fastmath=FM, cache=True, error_model="numpy")


@JIT
def where(c, a, b):
    return a if c else b


@JIT
def exp(x):
    return np.exp(x)


@JIT
def log1p(x):
    return np.log1p(x)


@JIT
def rint(x):
    return np.rint(x)


@JIT
def pow2(k):
    """:math:`2^k` for integer-valued ``k`` in ``[-1022, 1023]``, from its bits."""
    return i64_as_f64((np.int64(k) + np.int64(1023)) << np.int64(52))


@JIT
def two_prod(a, b):
    """``(p, e)``, ``p + e = a b`` exactly, with the hardware ``fma``."""
    p = a * b
    return p, fma(a, b, -p)


specialise(
    [ddarith, rowstats],
    into=globals(),
    wrap=JIT,
    where=where, exp=exp, log1p=log1p, rint=rint, pow2=pow2, two_prod=two_prod,
)  # fmt: skip


@JIT
def exp_f64_accurate(d):
    """:math:`e^d` for ``d <= 0`` in float64 to about 1.5 ULP: the reduction of
    :func:`~logmax.kernels.cpu._scalar.exp_f64` with the algebra's degree-13 polynomial
    (``_expm1_core``) in place of its degree-7 one (:math:`6 \\cdot 10^{-11}`); exactly 0 below
    :math:`e^{-708}` and at ``-inf``. For the gradients whose entries cancel (dense loss
    coefficients), where the exponentials' error is what is left."""
    dc = d if d > LOWEST_F64_PATH else LOWEST_F64_PATH
    t = dc * LOG2E + SHIFT
    k = t - SHIFT
    r = (dc - k * LN2_HI) - k * LN2_LO
    q = _expm1_core(r)  # noqa: F821 (the copy that specialise put in this module's globals)
    e = (1.0 + (r + q)) * i64_as_f64((f64_as_i64(t) + np.int64(1023)) << np.int64(52))
    return e if d > LOWEST_F64_PATH else 0.0
