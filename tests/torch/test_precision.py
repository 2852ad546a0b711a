"""16- and 32-bit tensors: within 1 ULP of the exact value, on both paths; zero-copy on CPU."""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import logmax.torch as lt
from logmax.audit import metric, reference
from logmax.kernels import interop

DTYPES = [torch.float16, torch.bfloat16, torch.float32]


def ulp_error(ours: torch.Tensor, exact) -> float:
    """The largest error of ``ours`` in ULPs of its dtype at the certified exact values."""
    return float(metric.ulp_error(interop.to_numpy(ours), exact).max())


def _ulp_vs_float64(ours: torch.Tensor, exact: torch.Tensor) -> float:
    """|ours - exact| in ULPs of ours' dtype at the float64 values ``exact``."""
    info = torch.finfo(ours.dtype)
    e = exact.double()
    finite = torch.isfinite(e)
    assert torch.equal(ours.double()[~finite], e[~finite])
    a = e[finite].abs()
    ulp = torch.exp2(torch.floor(torch.log2(a.clamp(min=info.tiny)))) * info.eps
    return float(((ours.double()[finite] - e[finite]).abs() / ulp).max())


def _exact(op: str, x: torch.Tensor, *args, **kw):
    return getattr(reference, op)(interop.to_numpy(x), *args, **kw)


def _logits(dtype, gen, shape=(64, 50), scale=8.0):
    x = (scale * torch.randn(shape, generator=gen, dtype=torch.float64)).to(dtype)
    x[0, :] = -math.inf
    x[1, 3] = -math.inf
    return x


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_elementwise_within_one_ulp(path, gen, dtype, name):
    x = _logits(dtype, gen)
    ours = getattr(lt, name)(x, 1)
    assert ours.dtype == dtype
    assert ulp_error(ours, _exact(name, x)) <= 1.0


@pytest.mark.parametrize("dtype", DTYPES)
def test_logsumexp_within_one_ulp(path, gen, dtype):
    x = _logits(dtype, gen)
    assert ulp_error(lt.logsumexp(x, 1), _exact("logsumexp", x)) <= 1.0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_cross_entropy_within_one_ulp(path, gen, dtype, reduction):
    x = _logits(dtype, gen)[1:]
    t = torch.randint(0, 50, (63,), generator=gen)
    t[0] = 0
    ours = lt.cross_entropy(x, t, reduction=reduction, label_smoothing=0.0)
    exact = _exact("cross_entropy", x, t.numpy(), reduction=reduction)
    assert ours.dtype == dtype
    assert ulp_error(ours, exact) <= 1.0


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_gradient_within_one_ulp(path, gen, dtype):
    x = _logits(dtype, gen)[1:].requires_grad_()
    t = torch.randint(0, 50, (63,), generator=gen)
    lt.cross_entropy(x, t, reduction="sum").backward()
    ref = x.detach().double().requires_grad_()
    F.cross_entropy(ref, t, reduction="sum").backward()
    assert x.grad.dtype == dtype
    # no certified reference for gradients: torch's float64 gradient, far more precise than 1 ULP
    # of these formats, stands in for the exact value
    assert _ulp_vs_float64(x.grad, ref.grad) <= 1.0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_bridge_is_zero_copy(dtype):
    t = torch.randn(4, 6).to(dtype)[:, 1:5]  # a strided view
    a = interop.to_numpy(t)
    assert a.ctypes.data == t.data_ptr() and a.shape == (4, 4)
    if dtype == torch.bfloat16:
        assert a.dtype == np.dtype(ml_dtypes.bfloat16)
    back = interop.from_numpy(np.ascontiguousarray(a))
    assert back.dtype == dtype and torch.equal(back, t)
    fresh = np.ascontiguousarray(a)
    assert interop.from_numpy(fresh).data_ptr() == fresh.ctypes.data
