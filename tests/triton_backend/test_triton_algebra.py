"""The kernels run the algebra's own source: the Triton copies share the code objects of
:mod:`logmax._core.rowstats` / :mod:`logmax._core.ddarith`, the softcap module is
:func:`logmax.kernels.array.transform` line for line, and the double-double profile agrees with
NumPy's run of the same functions on many rows."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import triton
import triton.language as tl

from logmax._core import ddarith, rowstats
from logmax.kernels import array
from logmax.kernels.numpy_backend import OPS
from logmax.kernels.triton import _algebra

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


@pytest.mark.parametrize("name", ["shift", "merge_max", "rescale", "merge_sum", "merge_dense",
                                  "lse", "lse_cancels", "loss_row", "grad_coefficients",
                                  "grad_entry", "softmax_entry", "log_softmax_entry"])  # fmt: skip
def test_the_kernels_call_the_algebras_own_code(name):
    for profile in (_algebra.plain, _algebra.accurate):
        fn = getattr(profile, name)
        assert fn.fn.__code__ is getattr(rowstats, name).__code__
        assert fn.fn.__globals__ is vars(profile)  # re-bound primitives, not NumPy's
    assert _algebra.accurate.exp_dd.fn.__code__ is ddarith.exp_dd.__code__
    assert _algebra.plain.exp_dd is _algebra.plain_exp_dd  # the plain profile's one change


def test_softcap_is_the_algebras_and_the_drivers_transform():
    x = np.concatenate([np.random.default_rng(0).normal(scale=30, size=200),
                        [0.0, -0.0, 1e-30, np.inf, -np.inf, np.nan, 1e300]])  # fmt: skip
    for cap in (0.5, 20.0):
        u_hi, u_lo, slope = array.transform(OPS, x[None, :], cap)
        with np.errstate(all="ignore"):
            hi, lo = rowstats.softcap(x, cap)
            np.testing.assert_array_equal(hi, u_hi[0])
            np.testing.assert_array_equal(lo, u_lo[0])
            s_hi, s_lo = rowstats.softcap_slope(x, cap)
            np.testing.assert_array_equal(s_hi, slope[0][0])
            np.testing.assert_array_equal(s_lo, slope[1][0])
    assert _algebra.accurate.softcap.fn.__code__ is rowstats.softcap.__code__


@triton.jit
def _finishers(s_ptr, m_ptr, out_ptr, n, BLOCK: tl.constexpr):
    i = tl.arange(0, BLOCK)
    inside = i < n
    s = tl.load(s_ptr + i, mask=inside, other=0.0)
    m = tl.load(m_ptr + i, mask=inside, other=0.0)
    zero = s * 0.0
    alg = _algebra.accurate
    l_hi, l_lo = alg.log1p_s(s, zero)
    v_hi, v_lo = alg.lse(m, zero, l_hi, l_lo, s != s, 1.0)
    e_hi, e_lo = alg.term_accurate(m, zero)
    inv_hi, inv_lo = alg.inverse(s, zero)
    for j, v in enumerate((l_hi, l_lo, v_hi, v_lo, e_hi, e_lo, inv_hi, inv_lo)):
        tl.store(out_ptr + j * BLOCK + i, v, mask=inside)


def test_double_double_finishers_agree_with_numpy_on_many_rows():
    rng = np.random.default_rng(1)
    n = 256
    s = np.concatenate([10.0 ** rng.uniform(-30, 5, n - 4), [0.0, 1e-300, 1.0, 3e5]])
    m = -np.abs(rng.normal(scale=20, size=n))
    m[:8] = -np.log1p(s[:8])  # logsumexp near 0: the cancelling case
    out = torch.zeros(8 * n, dtype=torch.float64)
    _finishers[(1,)](torch.tensor(s), torch.tensor(m), out, n, BLOCK=n)
    got = out.numpy().reshape(8, n)
    z = np.zeros(n)
    l_hi, l_lo = rowstats.log1p_s(s, z)
    v_hi, v_lo = rowstats.lse(m, z, l_hi, l_lo, np.isnan(s), 1.0)
    e_hi, e_lo = rowstats.term_accurate(m, z)
    inv_hi, inv_lo = rowstats.inverse(s, z)
    want = [(l_hi, l_lo), (v_hi, v_lo), (e_hi, e_lo), (inv_hi, inv_lo)]
    for j, (hi, lo) in enumerate(want):
        a = got[2 * j] + got[2 * j + 1]  # compared as double-words, to ~2^-100 of the value
        err = np.abs((got[2 * j] - hi) + (got[2 * j + 1] - lo))
        assert np.all(err <= 2.0**-98 * np.abs(hi) + 1e-300), j
        assert np.all(np.isfinite(a))
