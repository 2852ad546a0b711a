"""The fused cross-entropy kernel against the reference: every option, loss, lse and gradient."""

from __future__ import annotations

import itertools

import ml_dtypes
import numpy as np
import pytest
from kernel_compare import assert_within

from logmax._core.dtypes import round_to
from logmax._core.options import LossOptions
from logmax.kernels import cpu
from logmax.kernels.numpy_backend import NumpyBackend

DTYPES = {
    "float16": np.dtype(np.float16),
    "bfloat16": np.dtype(ml_dtypes.bfloat16),
    "float32": np.dtype(np.float32),
    "float64": np.dtype(np.float64),
}


def options(x, axis, rng, *, soft=False, weighted=False, eps=0.0, zl=0.0, cap=None, t=1.0,
            scale="scalar", where=None):  # fmt: skip
    n_cls = x.shape[axis]
    batch = x.shape[:axis] + x.shape[axis + 1 :]
    if soft:
        tgt = rng.random(x.shape)
        tgt /= tgt.sum(axis, keepdims=True)
    else:
        tgt = rng.integers(0, n_cls, batch)
        tgt.flat[0] = -100  # one ignored row
    g = {None: None, "scalar": np.asarray(0.25), "rows": rng.random(batch)}[scale]
    return dict(
        target=tgt, soft=soft, weight=rng.random(n_cls) + 0.5 if weighted else None,
        ignore_index=-100, label_smoothing=eps, temperature=t, softcap=cap, z_loss=zl,
        where=where, grad_scale=g,
    )  # fmt: skip


def check(x, axis, opts):
    got = cpu.run("cross_entropy", x, axis, **opts)
    assert got is not NotImplemented
    want = reference_rows(x, axis, **opts)
    name = x.dtype.name
    # losses and lse come back in compute precision; the promise is on the rounded value
    for g, w, what in ((got[0], want[0], "loss"), (got[1], want[1], "lse")):
        assert g.shape == w.shape
        assert_within(round_to(g, x.dtype), round_to(np.asarray(w, np.float64), x.dtype), name,
                      what)  # fmt: skip
    if opts["grad_scale"] is None:
        assert got[2] is None
    else:
        assert got[2].shape == x.shape and got[2].dtype == want[2].dtype
        assert_within(got[2], want[2], name, "grad")


def reference_rows(x, axis, *, target, soft, weight, ignore_index, label_smoothing, temperature,
                   softcap, z_loss, where, grad_scale):  # fmt: skip
    """The reference backend's per-row loss, lse and gradient for the kernel's arguments."""
    xm = x if where is None else np.where(where, x, x.dtype.type(-np.inf))
    opts = LossOptions(ignore_index, "none", label_smoothing, temperature, softcap, z_loss)
    g = (
        None
        if grad_scale is None
        else np.broadcast_to(grad_scale, x.shape[:axis] + x.shape[axis + 1 :])
    )
    return NumpyBackend().cross_entropy(xm, axis, target, soft, weight, opts, g)


def logits(dtype, shape=(6, 37), scale=8.0, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * scale).astype(dtype)
    return x, rng


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize(
    "soft,weighted,eps,zl,scale",
    list(
        itertools.product(
            (False, True), (False, True), (0.0, 0.1), (0.0, 1e-3), (None, "scalar", "rows")
        )
    ),  # fmt: skip
)
def test_options(dtype, soft, weighted, eps, zl, scale):
    x, rng = logits(DTYPES[dtype])
    x[1, 4] = -np.inf  # a masked class
    opts = options(x, 1, rng, soft=soft, weighted=weighted, eps=eps, zl=zl, scale=scale)
    check(x, 1, opts)  # float64 with these terms: cross_entropy_dd_general


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("t", [1.0, 0.6])
def test_softcap_and_temperature(dtype, t):
    # |x / cap| stays small: the reference's 1 - tanh^2 loses digits further out (the kernel
    # uses sech^2, which does not)
    x, rng = logits(DTYPES[dtype], scale=2.0)
    for soft in (False, True):
        check(x, 1, options(x, 1, rng, soft=soft, cap=30.0, t=t, eps=0.05))


def test_softcap_gradient_far_out_has_no_cancellation():
    x = np.array([[400.0, 0.0, -400.0]], dtype=np.float32)
    opts = options(x, 1, np.random.default_rng(0), cap=10.0)
    opts["target"] = np.array([1])
    grad = cpu.run("cross_entropy", x, 1, **opts)[2]
    # d/dx cap tanh(x/cap) = sech^2(40) = 7.2e-35, and p is 1/2 at both ends
    assert grad[0, 0] == pytest.approx(0.25 * 0.5 / np.cosh(40.0) ** 2, rel=1e-6)
    assert grad[0, 2] == pytest.approx(0.25 * 0.5 / np.cosh(40.0) ** 2, rel=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_edge_rows(dtype):
    x, rng = logits(DTYPES[dtype], shape=(7, 9))
    x[0] = -np.inf  # fully masked, counted
    x[1, 3] = np.nan  # NaN row, counted
    x[2, 0] = np.inf  # +inf row, ignored below
    x[3] = [0.0] + [-40.0] * 8  # confident
    x[4, :] = 7.0  # ties
    opts = options(x, 1, rng, scale="rows")
    opts["target"] = np.array([-100, 2, -100, 0, 4, 1, 3])
    opts["target"][0] = 2  # the masked row is counted: loss +inf, gradient 0
    opts["target"][5] = 3
    x[5, 3] = -np.inf  # label on a masked logit: loss +inf
    check(x, 1, opts)
    loss, lse, grad = cpu.run("cross_entropy", x, 1, **opts)
    assert np.isinf(loss[0]) and np.all(grad[0] == 0)
    assert np.isnan(loss[1]) and np.all(np.isnan(grad[1]))
    assert loss[2] == 0 and np.all(grad[2] == 0) and np.isnan(lse[2])
    assert 0 < loss[3] < 1e-15  # the true loss, not 0
    assert np.isinf(loss[5]) and grad[5, 3] == 0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_class_axis_anywhere(dtype, axis):
    x, rng = logits(DTYPES[dtype], shape=(4, 5, 6))
    check(x, axis, options(x, axis, rng, weighted=True, scale="rows"))
    if dtype == "float32":
        check(x, axis, options(x, axis, rng, soft=True, scale="scalar"))


def test_where_mask():
    x, rng = logits(np.float32, shape=(5, 11))
    where = rng.random((5, 11)) > 0.3
    where[:, 0] = True
    check(x, 1, options(x, 1, rng, where=where, scale="rows"))


def test_large_vocabulary_row():
    x, rng = logits(np.float32, shape=(3, 50_000), scale=3.0)
    check(x, 1, options(x, 1, rng, scale="scalar"))


def test_no_classes_goes_to_the_reference():
    x = np.zeros((3, 0), np.float32)
    opts = options(np.zeros((3, 1), np.float32), 1, np.random.default_rng(0))
    assert cpu.run("cross_entropy", x, 1, **opts) is NotImplemented
