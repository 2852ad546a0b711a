"""softmax, log_softmax, logsumexp and their gradients on the Triton kernels (interpreter), through
the public ``logmax.torch`` functions: within 1 ULP of the certified reference in float16,
bfloat16 and float32, the contract's edge rules, and the same answers as torch."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from triton_helpers import DTYPES, certified_ulps, logits, to_np, ulps

import logmax.torch as lt
from logmax.audit import reference
from logmax.kernels import registry

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the interpreter on inf - inf


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(14)


def test_the_backend_serves_cpu_tensors_only_when_forced(forced, monkeypatch):
    call = registry.Call("softmax", "torch", "cpu", "bfloat16")
    assert registry.select(call).name == "triton"
    f64 = registry.Call("softmax", "torch", "cpu", "float64")
    with pytest.raises(registry.BackendError, match="float64 is served by the torch backend"):
        registry.select(f64)
    with pytest.raises(registry.BackendError, match="no Triton kernel for nll_loss"):
        lt.nll_loss(torch.log_softmax(torch.randn(3, 4), 1), torch.tensor([0, 1, 2]))
    monkeypatch.setenv("LOGMAX_BACKEND", "auto")  # the interpreter is never chosen by itself
    assert registry.select(call).name != "triton"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_elementwise_within_one_ulp(forced, small_blocks, gen, dtype, name):
    x = logits(dtype, gen)
    ours = getattr(lt, name)(x, 1)
    assert ours.dtype == dtype
    exact = getattr(reference, name)(to_np(x), axis=1)
    assert certified_ulps(ours, exact) <= 1.0
    if name == "softmax":
        assert torch.equal(ours[0], torch.zeros_like(ours[0]))  # fully masked row: all 0
    else:
        assert bool((ours[0] == -math.inf).all())
    assert ours[1, 3] == (0.0 if name == "softmax" else -math.inf)


@pytest.mark.parametrize("dtype", DTYPES)
def test_logsumexp_within_one_ulp(forced, small_blocks, gen, dtype):
    x = logits(dtype, gen)
    x[3] = -1.5  # a constant row
    ours = lt.logsumexp(x, 1)
    exact = reference.logsumexp(to_np(x), axis=1)
    assert certified_ulps(ours, exact) <= 1.0
    assert ours[0] == -math.inf


@pytest.mark.parametrize("dtype", DTYPES)
def test_logsumexp_of_log_probabilities_keeps_its_digits(forced, small_blocks, gen, dtype):
    # log-probabilities rounded to the dtype: the logsumexp is a tiny number made of their
    # rounding errors, m + log1p(s) cancels -- those rows are computed again in double-double
    x = F.log_softmax(torch.randn(5, 40, generator=gen, dtype=torch.float64) * 3, 1).to(dtype)
    exact = reference.logsumexp(to_np(x), axis=1)
    assert certified_ulps(lt.logsumexp(x, 1), exact) <= 0.5 + 2**-10


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_temperature_and_a_middle_axis(forced, small_blocks, gen, dtype):
    x = (6 * torch.randn(3, 37, 2, generator=gen)).to(dtype)
    for name in ("softmax", "log_softmax"):
        ours = getattr(lt, name)(x, 1, temperature=0.7)
        exact = getattr(reference, name)(to_np(x), axis=1, temperature=0.7)
        assert certified_ulps(ours, exact) <= 1.0
    ours = lt.logsumexp(x, 1, temperature=1.9)
    assert certified_ulps(ours, reference.logsumexp(to_np(x), axis=1, temperature=1.9)) <= 1.0


def test_nan_and_inf_rows_propagate(forced):
    x = torch.tensor([[0.0, math.nan, 1.0], [math.inf, 0.0, 1.0], [0.0, 1.0, 2.0]])
    for name in ("softmax", "log_softmax"):
        y = getattr(lt, name)(x, 1)
        assert bool(y[:2].isnan().all()) and not bool(y[2].isnan().any())
    assert bool(lt.logsumexp(x, 1)[:2].isnan().all())


@pytest.mark.parametrize("dtype", DTYPES)
def test_gradients_match_the_float64_contract(forced, small_blocks, gen, dtype, monkeypatch):
    x = logits(dtype, gen, (4, 40))
    g = torch.randn(4, 40, generator=gen).to(dtype)
    grads = {}
    for backend in ("triton", "torch"):
        monkeypatch.setenv("LOGMAX_BACKEND", backend)
        out = {}
        for name in ("softmax", "log_softmax"):
            leaf = x.clone().requires_grad_()
            getattr(lt, name)(leaf, 1, temperature=1.3).backward(g)
            out[name] = leaf.grad
        leaf = x.clone().requires_grad_()
        lt.logsumexp(leaf, 1).backward(g[:, 0])
        out["logsumexp"] = leaf.grad
        grads[backend] = out
    for name, ours in grads["triton"].items():
        assert ours.dtype == dtype
        assert not bool(ours.isnan().any())
        assert ulps(ours, grads["torch"][name]) <= 1.0, name
    # and torch's own gradient where the contract agrees with it (finite rows)
    leaf = x[2:].double().requires_grad_()
    torch.log_softmax(leaf / 1.3, 1).backward(g[2:].double())
    assert ulps(grads["triton"]["log_softmax"][2:], leaf.grad) < 64


def test_inputs_are_never_written(forced):
    x = torch.randn(3, 20, dtype=torch.bfloat16)
    before = x.clone()
    lt.softmax(x, 1)
    lt.logsumexp(x, 1)
    assert torch.equal(x, before)
