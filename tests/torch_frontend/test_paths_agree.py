"""The two paths (NumPy API on CPU, plain torch elsewhere) give the same answers on any input.

Random logits with masked (-inf), NaN and +inf entries, fully masked rows, ignored labels, every
option: loss, lse and gradient of both paths must agree, NaN where the other has NaN (float32: to
1 ULP, both compute in float64 and round once; float64: to 1e-12 relative). The docstring
examples of the frontend are run here too.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st

import logmax.torch as lt
from logmax.torch import guard


def _both_paths(fn):
    """``fn()`` on the automatic backend (Numba / NumPy) and on plain torch."""
    out = []
    saved = os.environ.get("LOGMAX_BACKEND")
    for backend in ("auto", "torch"):
        os.environ["LOGMAX_BACKEND"] = backend
        try:
            out.append(fn())
        finally:
            if saved is None:
                os.environ.pop("LOGMAX_BACKEND", None)
            else:
                os.environ["LOGMAX_BACKEND"] = saved
    return out


@st.composite
def _case(draw, dtype=torch.float64, softcap=(None, 5.0)):
    n = draw(st.integers(1, 6))
    c = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=draw(st.sampled_from([1.0, 30.0, 400.0])), size=(n, c))
    special = rng.random((n, c))
    x[special < draw(st.sampled_from([0.0, 0.3]))] = -math.inf
    if draw(st.booleans()):
        x[rng.integers(n), :] = -math.inf
    if draw(st.booleans()):
        x[rng.integers(n), rng.integers(c)] = draw(st.sampled_from([math.nan, math.inf]))
    t = rng.integers(0, c, size=n)
    t[rng.random(n) < 0.3] = -100
    options = dict(
        weight=torch.tensor(rng.random(c) + 0.1) if draw(st.booleans()) else None,
        reduction=draw(st.sampled_from(["none", "sum", "mean"])),
        label_smoothing=draw(st.sampled_from([0.0, 0.25])),
        temperature=draw(st.sampled_from([1.0, 0.5])),
        softcap=draw(st.sampled_from(softcap)),
        z_loss=draw(st.sampled_from([0.0, 1e-3])),
    )
    soft = draw(st.booleans())
    target = torch.tensor(rng.dirichlet(np.ones(c), size=n)) if soft else torch.tensor(t)
    if options["weight"] is not None:
        options["weight"] = options["weight"].to(dtype)
    return torch.tensor(x).to(dtype), target.to(dtype) if soft else target, options


def _assert_agree(a, b, scale=0.0, ulps=1):
    """Same NaN and inf pattern; finite values within 1e-12 (float64) or ``ulps`` ULP (float32),
    plus ``1e-14 * scale``: where terms of size ``scale`` cancel (``W p_j - w_j`` in a gradient,
    ``g_i - sum g y`` in a VJP) each path keeps its own float64 rounding of them."""
    assert torch.equal(torch.isnan(a), torch.isnan(b)), (a, b)
    ok = ~torch.isnan(a)
    assert torch.equal(torch.isinf(a[ok]), torch.isinf(b[ok])), (a, b)
    assert torch.equal(a[torch.isinf(a)], b[torch.isinf(a)]), (a, b)
    finite = ok & torch.isfinite(a)
    a, b, dtype = a[finite].double(), b[finite].double(), a.dtype
    if dtype == torch.float64:
        bound = 1e-12 * torch.maximum(a.abs(), b.abs())
    else:
        info = torch.finfo(dtype)
        big = torch.maximum(a.abs(), b.abs()).clamp(min=info.tiny)
        bound = ulps * torch.exp2(torch.floor(torch.log2(big))) * info.eps
    assert ((a - b).abs() <= bound + 1e-14 * scale).all(), (a, b)


@given(_case(torch.float32))
def test_cross_entropy_paths_agree_float32(case):
    _check_cross_entropy(case)


@given(_case(torch.float64))
def test_cross_entropy_paths_agree_float64(case):
    _check_cross_entropy(case)


def test_float64_softcap_gradient_paths_agree():
    # |x / cap| = 10: 1 - tanh^2 would cancel to noise (7000 ULP); sech^2 keeps the digits
    x = torch.tensor([[50.2921, -52.8419]], dtype=torch.float64)
    _check_cross_entropy((x, torch.tensor([0]), dict(softcap=5.0, reduction="none")))


def _check_cross_entropy(case):
    x, target, options = case
    guard.set_input_guard(False)

    def run():
        leaf = x.clone().requires_grad_()
        loss, lse = lt.cross_entropy(leaf, target, return_lse=True, **options)
        loss.sum().backward()
        return loss.detach(), lse, leaf.grad

    try:
        (loss_a, lse_a, grad_a), (loss_b, lse_b, grad_b) = _both_paths(run)
        _assert_agree(loss_a, loss_b)
        _assert_agree(lse_a, lse_b)
        # the gradient sums terms of order 1 (p, w, t) times the row scale (1 / mean denominator)
        scale = float(torch.nan_to_num(grad_b, posinf=0, neginf=0).abs().max()) + 1.0
        _assert_agree(grad_a, grad_b, scale=scale)
    except AssertionError as exc:
        raise AssertionError(f"x={x!r}\ntarget={target!r}\noptions={options!r}") from exc
    finally:
        guard.set_input_guard(True)


@given(_case(torch.float32))
def test_softmax_family_paths_agree(case):
    x = case[0]
    upstream = torch.randn(x.shape, generator=torch.Generator().manual_seed(x.numel()))
    for name in ("softmax", "log_softmax"):

        def run(name=name):
            leaf = x.clone().requires_grad_()
            y = getattr(lt, name)(leaf, 1, temperature=0.5)
            y.backward(upstream)
            return y.detach(), leaf.grad

        (y_a, grad_a), (y_b, grad_b) = _both_paths(run)
        _assert_agree(y_a, y_b)
        # each path's gradient starts from its own y, which may differ by 1 ULP already
        scale = float((torch.nan_to_num(y_b.exp() if name == "log_softmax" else y_b).abs()
                       * upstream.abs()).max())  # fmt: skip
        _assert_agree(grad_a, grad_b, scale=scale, ulps=2)
