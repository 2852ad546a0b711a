"""Gradients of our extras (softcap, temperature, z_loss, where) against finite differences,
property tests with hypothesis, and the promise that inputs are never modified."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import logmax
import logmax._numpy

RNG = np.random.default_rng(7)


def _numeric_grad(f, x, h=1e-6):
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        g[i] = (f(xp) - f(xm)) / (2 * h)
    return g


@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize(
    "opts",
    [
        dict(softcap=3.0),
        dict(temperature=0.7),
        dict(z_loss=1e-2),
        dict(softcap=5.0, temperature=1.5, z_loss=0.1, label_smoothing=0.1),
        dict(where=np.array([True, True, False, True, True])),
        dict(weight=np.array([1.0, 2.0, 0.5, 1.0, 3.0]), z_loss=0.05, label_smoothing=0.2),
    ],
)
def test_cross_entropy_gradient_matches_finite_differences(opts, soft):
    x = RNG.normal(size=(3, 5)) * 3
    y = RNG.dirichlet(np.ones(5), size=3) if soft else np.array([0, 4, 1])
    if soft and "where" in opts:
        y[:, 2] = 0.0
    for reduction in ("mean", "none"):
        g_out = 1.0 if reduction == "mean" else np.array([0.5, -1.0, 2.0])
        res = logmax.cross_entropy_with_grad(x, y, reduction=reduction, grad_output=g_out, **opts)

        def f(xx, reduction=reduction, g_out=g_out):
            return float(np.sum(logmax.cross_entropy(xx, y, reduction=reduction, **opts) * g_out))

        num = _numeric_grad(f, x)
        np.testing.assert_allclose(res.grad, num, rtol=1e-6, atol=1e-8)


def test_logsumexp_vjp_with_b_matches_finite_differences():
    x = RNG.normal(size=(2, 4))
    b = np.array([1.0, 2.0, 0.0, 0.5])
    g = np.array([1.0, -2.0])
    num = _numeric_grad(lambda xx: float(np.sum(logmax.logsumexp(xx, b=b) * g)), x)
    np.testing.assert_allclose(logmax.logsumexp_vjp(x, g, b=b), num, rtol=1e-6, atol=1e-9)


# --- hypothesis: structure of the results on any finite input -------------------------------
floats = st.floats(-1e4, 1e4, allow_nan=False, width=32)
rows = hnp.arrays(np.float32, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=9),
                  elements=floats)  # fmt: skip


@given(rows)
def test_softmax_is_a_distribution_and_log_softmax_is_its_log(x):
    p = logmax.softmax(x).astype(np.float64)
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, rtol=1e-6)
    lp = logmax.log_softmax(x)
    assert np.all(lp <= 0) and np.all(np.isfinite(lp))
    lse = logmax.logsumexp(x)
    assert np.all(lse >= x.max(axis=-1))


@given(rows, st.data())
def test_cross_entropy_is_nll_of_log_softmax_and_nonnegative(x, data):
    y = data.draw(hnp.arrays(np.int64, x.shape[:1], elements=st.integers(0, x.shape[1] - 1)))
    ce = logmax.cross_entropy(x, y, reduction="none")
    assert np.all(ce >= 0)
    nll = logmax.nll_loss(logmax.log_softmax(x.astype(np.float64)), y, reduction="none")
    np.testing.assert_allclose(ce, nll, rtol=1e-6, atol=1e-30)


# --- inputs are never modified ----------------------------------------------------------------
CALLS = [
    lambda x, y, t: logmax.softmax(x, where=x > -1, temperature=2.0),
    lambda x, y, t: logmax.log_softmax(x, axis=0),
    lambda x, y, t: logmax.logsumexp(x, b=np.abs(x), return_sign=True),
    lambda x, y, t: logmax.cross_entropy(
        x, y, weight=np.ones(x.shape[1]), label_smoothing=0.1, softcap=2.0, z_loss=1e-3
    ),  # fmt: skip
    lambda x, y, t: logmax.cross_entropy_with_grad(x, t, temperature=3.0),
    lambda x, y, t: logmax.nll_loss_with_grad(x, y, reduction="none", grad_output=np.ones(3)),
    lambda x, y, t: logmax.softmax_vjp(t, t),
    lambda x, y, t: logmax.log_softmax_vjp(x, t),
    lambda x, y, t: logmax.logsumexp_vjp(x, y.astype(x.dtype)),
]


@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16, np.float32, np.float64])
@pytest.mark.parametrize("call", range(len(CALLS)))
def test_inputs_are_not_modified(call, dtype):
    x = RNG.normal(size=(3, 4)).astype(dtype)
    x[1, 2] = -np.inf
    y = np.array([0, 1, 3])
    t = logmax.softmax(x)
    copies = [a.copy() for a in (x, y, t)]
    for a in (x, y, t):
        a.setflags(write=False)  # a write would raise
    CALLS[call](x, y, t)
    for a, c in zip((x, y, t), copies, strict=True):
        np.testing.assert_array_equal(a, c)


def test_non_contiguous_and_negative_stride_inputs():
    x = RNG.normal(size=(6, 8))
    view = x[::-2, 1::2]
    np.testing.assert_array_equal(logmax.log_softmax(view), logmax.log_softmax(view.copy()))
    np.testing.assert_array_equal(logmax.softmax(x.T, axis=0), logmax.softmax(x, axis=1).T)
