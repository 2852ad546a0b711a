"""Agreement with torch.nn.functional wherever the contract does not deliberately differ, and
each deliberate difference asserted as documented."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import logmax

torch = pytest.importorskip("torch")
F = torch.nn.functional

RNG = np.random.default_rng(20261123)
TOL = {np.float32: dict(rtol=2e-6, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}


def _t(a):
    return torch.from_numpy(np.array(a))  # a copy, 0-d stays 0-d


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,axis", [((5, 7), -1), ((5, 7), 0), ((2, 3, 4), 1)])
def test_elementwise_ops(dtype, shape, axis):
    x = (RNG.normal(size=shape) * 8).astype(dtype)
    x.flat[3] = -np.inf
    np.testing.assert_allclose(
        logmax.softmax(x, axis), F.softmax(_t(x), axis).numpy(), **TOL[dtype]
    )
    np.testing.assert_allclose(
        logmax.log_softmax(x, axis), F.log_softmax(_t(x), axis).numpy(), **TOL[dtype]
    )
    np.testing.assert_allclose(
        logmax.logsumexp(x, axis), torch.logsumexp(_t(x), axis).numpy(), **TOL[dtype]
    )


def _labels(n, c, ignored):
    y = RNG.integers(0, c, size=n)
    if ignored:
        y[::3] = -100
    return y


CE_OPTIONS = list(
    itertools.product(
        ["none", "sum", "mean"],  # reduction
        [False, True],  # weight
        [False, True],  # some rows ignored
        [0.0, 0.2],  # label smoothing
    )
)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction,weighted,ignored,eps", CE_OPTIONS)
def test_cross_entropy_hard_labels(dtype, reduction, weighted, ignored, eps):
    n, c = 9, 6
    x = (RNG.normal(size=(n, c)) * 4).astype(dtype)
    y = _labels(n, c, ignored)
    w = RNG.uniform(0.2, 2.0, size=c) if weighted else None
    kw = dict(weight=w, reduction=reduction, label_smoothing=eps)
    xt = _t(x).requires_grad_()
    ref = F.cross_entropy(
        xt, _t(y), weight=None if w is None else _t(w.astype(dtype)), reduction=reduction,
        label_smoothing=eps,
    )  # fmt: skip
    np.testing.assert_allclose(logmax.cross_entropy(x, y, **kw), ref.detach().numpy(), **TOL[dtype])
    g_out = np.asarray(RNG.normal(size=ref.shape), dtype=dtype)
    ref.backward(_t(g_out))
    loss, grad, _ = logmax.cross_entropy_with_grad(x, y, grad_output=g_out, **kw)
    np.testing.assert_allclose(grad, xt.grad.numpy(), **TOL[dtype])
    assert grad.dtype == dtype
    # nll_loss of log_softmax is the same loss when there is no smoothing
    if eps == 0:
        lp = logmax.log_softmax(x)
        lpt = _t(lp).requires_grad_()
        ref = F.nll_loss(lpt, _t(y), weight=None if w is None else _t(w.astype(dtype)),
                         reduction=reduction)  # fmt: skip
        np.testing.assert_allclose(logmax.nll_loss(lp, y, w, reduction=reduction),
                                   ref.detach().numpy(), **TOL[dtype])  # fmt: skip
        ref.backward(_t(g_out))
        _, g, _ = logmax.nll_loss_with_grad(lp, y, w, reduction=reduction, grad_output=g_out)
        np.testing.assert_allclose(g, lpt.grad.numpy(), **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "reduction,weighted,eps", list(itertools.product(["none", "sum", "mean"], [0, 1], [0.0, 0.3]))
)
def test_cross_entropy_soft_targets(dtype, reduction, weighted, eps):
    n, c = 7, 5
    x = (RNG.normal(size=(n, c)) * 3).astype(dtype)
    t = RNG.dirichlet(np.ones(c), size=n).astype(dtype)
    t[0] = 0.0
    t[0, 2] = 1.0
    w = RNG.uniform(0.5, 2.0, size=c) if weighted else None
    xt = _t(x).requires_grad_()
    ref = F.cross_entropy(xt, _t(t), weight=None if w is None else _t(w.astype(dtype)),
                          reduction=reduction, label_smoothing=eps)  # fmt: skip
    kw = dict(weight=w, reduction=reduction, label_smoothing=eps)
    np.testing.assert_allclose(logmax.cross_entropy(x, t, **kw), ref.detach().numpy(), **TOL[dtype])
    ref.sum().backward()
    g_out = np.ones(ref.shape, dtype)
    _, grad, _ = logmax.cross_entropy_with_grad(x, t, grad_output=g_out, **kw)
    np.testing.assert_allclose(grad, xt.grad.numpy(), **TOL[dtype])


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_spatial_shapes_class_axis_1(reduction):
    x = RNG.normal(size=(2, 4, 3, 5))
    y = RNG.integers(0, 4, size=(2, 3, 5))
    y[0, 1, 2] = -100
    ref = F.cross_entropy(_t(x), _t(y), reduction=reduction)
    got = logmax.cross_entropy(x, y, axis=1, reduction=reduction)
    np.testing.assert_allclose(got, ref.numpy(), rtol=1e-12)
    ref = F.nll_loss(_t(x), _t(y), reduction=reduction)
    np.testing.assert_allclose(logmax.nll_loss(x, y, axis=1, reduction=reduction), ref.numpy())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_vjps_match_autograd(dtype):
    x = (RNG.normal(size=(4, 6)) * 5).astype(dtype)
    g = RNG.normal(size=(4, 6)).astype(dtype)
    for ours_fwd, vjp, theirs in [
        (logmax.softmax, logmax.softmax_vjp, lambda t: F.softmax(t / 2.0, -1)),
        (logmax.log_softmax, logmax.log_softmax_vjp, lambda t: F.log_softmax(t / 2.0, -1)),
    ]:
        xt = _t(x).requires_grad_()
        theirs(xt).backward(_t(g))
        y = ours_fwd(x, temperature=2.0)
        np.testing.assert_allclose(vjp(y, g, temperature=2.0), xt.grad.numpy(), **TOL[dtype])
    xt = _t(x).requires_grad_()
    gl = RNG.normal(size=4).astype(dtype)
    torch.logsumexp(xt / 2.0, -1).backward(_t(gl))
    np.testing.assert_allclose(logmax.logsumexp_vjp(x, gl, temperature=2.0), xt.grad.numpy(),
                               **TOL[dtype])  # fmt: skip


# --- deliberate differences (README "Differences from PyTorch and SciPy") ---------------------
def test_difference_mean_over_no_counted_rows_is_zero():
    x = RNG.normal(size=(3, 4))
    y = np.full(3, -100)
    assert torch.isnan(F.cross_entropy(_t(x), _t(y)))
    res = logmax.cross_entropy_with_grad(x, y)
    assert res.loss == 0 and np.all(res.grad == 0)
    assert logmax.nll_loss(x, y) == 0


def test_difference_confident_loss_is_exact_not_zero():
    x = np.array([[30.0, 0.0, 0.0]], dtype=np.float32)
    assert F.cross_entropy(_t(x), torch.tensor([0])).item() == 0.0
    loss = logmax.cross_entropy(x, np.array([0]))
    assert loss == np.float32(np.log1p(2 * np.exp(-30.0)))


def test_difference_zero_target_on_masked_logit_is_zero_not_nan():
    x = np.array([[0.0, -np.inf, 1.0]])
    t = np.array([[0.5, 0.0, 0.5]])
    assert torch.isnan(F.cross_entropy(_t(x), _t(t)))
    res = logmax.cross_entropy_with_grad(x, t)
    assert np.isfinite(res.loss) and np.all(np.isfinite(res.grad)) and res.grad[0, 1] == 0


def test_difference_ignored_row_of_minus_inf_has_zero_gradient():
    x = np.array([[-np.inf, -np.inf], [0.0, 1.0]])
    y = np.array([-100, 1])
    xt = _t(x).requires_grad_()
    F.cross_entropy(xt, _t(y)).backward()
    assert torch.isnan(xt.grad[0]).all()
    res = logmax.cross_entropy_with_grad(x, y)
    assert np.all(res.grad[0] == 0) and np.isfinite(res.loss)


def test_difference_float16_mean_does_not_overflow():
    n = 100_000
    x = np.zeros((n, 2), dtype=np.float16)
    x[:, 0] = 4.0
    y = np.ones(n, dtype=np.int64)
    expected = np.log1p(np.exp(-4.0)) + 4.0
    assert torch.isnan(F.cross_entropy(_t(x), _t(y)))
    loss = logmax.cross_entropy(x, y)
    assert loss.dtype == np.float16 and loss == np.float16(expected)
