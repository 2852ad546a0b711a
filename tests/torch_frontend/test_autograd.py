"""Autograd: gradcheck, the contract's edge rows, no_grad, retain_graph, the keyword extras."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import logmax.torch as lt

INF = math.inf


def _x(shape, gen):
    return torch.randn(shape, generator=gen, dtype=torch.float64).requires_grad_()


# ---------------------------------------------------------------------------------- gradcheck
@pytest.mark.parametrize(
    "fn",
    [
        lambda x: lt.softmax(x, 1),
        lambda x: lt.log_softmax(x, 1, temperature=0.7),
        lambda x: lt.logsumexp(x, (1, 2)),
        lambda x: lt.cross_entropy(x, torch.tensor([[1, 0], [2, -100]]), label_smoothing=0.1),
        lambda x: lt.cross_entropy(
            x,
            torch.tensor([[1, 0], [2, 1]]),
            reduction="none",
            softcap=2.0,
            temperature=1.5,
            z_loss=0.1,
        ),  # fmt: skip
        lambda x: lt.nll_loss(
            x, torch.tensor([[1, 0], [2, -100]]), torch.tensor([1.0, 2, 3]).double()
        ),
    ],
    ids=["softmax", "log_softmax", "logsumexp", "ce", "ce_extras", "nll"],
)
def test_gradcheck(path, gen, fn):
    assert torch.autograd.gradcheck(fn, (_x((2, 3, 2), gen),))


def test_gradcheck_soft_target(path, gen):
    x = _x((3, 4), gen)
    t = torch.rand(3, 4, generator=gen, dtype=torch.float64).requires_grad_()
    w = torch.tensor([1.0, 0.5, 2.0, 1.5], dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda x, t: lt.cross_entropy(x, t, w, label_smoothing=0.2, softcap=3.0), (x, t)
    )


# ---------------------------------------------------------------------------- contract rows
def test_masked_and_fully_masked_rows_give_zero_gradient(path):
    x = torch.tensor(
        [[0.0, -INF, 1.0], [-INF, -INF, -INF], [2.0, 0.0, -INF]], dtype=torch.float64
    ).requires_grad_()
    for fn in (
        lambda x: lt.softmax(x, 1),
        lambda x: lt.log_softmax(x, 1).clamp(min=-1e300),
        lambda x: lt.logsumexp(x, 1).clamp(min=-1e300),
    ):
        x.grad = None
        fn(x).sum().backward()
        assert torch.isfinite(x.grad).all()
        assert (x.grad[x == -INF] == 0).all()
    y = lt.softmax(x, 1)
    assert torch.equal(y[1], torch.zeros(3, dtype=torch.float64))
    assert (lt.log_softmax(x, 1)[1] == -INF).all()
    assert lt.logsumexp(x, 1)[1] == -INF


def test_ignored_rows_have_zero_loss_and_gradient_even_if_fully_masked(path):
    x = torch.tensor([[0.0, 1.0, -INF], [-INF, -INF, -INF], [2.0, -INF, 0.5]]).requires_grad_()
    t = torch.tensor([1, -100, 0])
    loss = lt.cross_entropy(x, t, reduction="none")
    assert loss[1] == 0
    loss.sum().backward()
    assert torch.equal(x.grad[1], torch.zeros(3))
    assert (x.grad[x == -INF] == 0).all() and torch.isfinite(x.grad).all()
    ref = F.cross_entropy(x.detach()[[0, 2]], t[[0, 2]], reduction="none")
    torch.testing.assert_close(loss.detach()[[0, 2]], ref)


def test_nan_row_propagates_and_raise_names_it(path):
    x = torch.tensor([[0.0, 1.0], [math.nan, 0.0], [INF, 0.0]])
    y = lt.softmax(x, 1)
    assert torch.isnan(y[1:]).all() and torch.isfinite(y[0]).all()
    with pytest.raises(ValueError, match=r"row \[1\]"):
        lt.softmax(x, 1, nan_policy="raise")
    with pytest.raises(ValueError, match=r"row \[2\]"):
        lt.cross_entropy(x, torch.tensor([0, -100, 1]), nan_policy="raise")
    loss = lt.cross_entropy(x, torch.tensor([0, -100, 1]), reduction="none")
    assert loss[1] == 0 and torch.isnan(loss[2])


def test_bad_label_names_position_value_and_classes(path):
    x = torch.zeros(2, 3, 4)
    t = torch.tensor([[0, 1, 2, 0], [0, 5, 1, 2]])
    with pytest.raises(ValueError, match=r"target\[1, 1\] = 5.*3"):
        lt.cross_entropy(x, t)
    with pytest.raises(ValueError, match=r"target\[0\] = -1"):
        lt.nll_loss(torch.zeros(2, 3), torch.tensor([-1, 0]))


# ------------------------------------------------------------------------ autograd plumbing
def test_no_grad_and_detached_inputs(path, gen):
    x = _x((4, 5), gen)
    t = torch.tensor([0, 1, 2, 3])
    with torch.no_grad():
        loss = lt.cross_entropy(x, t)
        y = lt.softmax(x, 1)
    assert loss.grad_fn is None and not loss.requires_grad and y.grad_fn is None
    torch.testing.assert_close(loss, F.cross_entropy(x.detach(), t))
    assert lt.cross_entropy(x.detach(), t).grad_fn is None


def test_retain_graph_backward_twice_accumulates_correctly(path, gen):
    x = _x((4, 5), gen)
    t = torch.tensor([0, 1, 2, 3])
    loss = lt.cross_entropy(x, t)
    loss.backward(retain_graph=True)
    once = x.grad.clone()
    x.grad.mul_(10)  # the saved gradient must not alias the .grad the user may change
    loss.backward(retain_graph=True)
    loss.backward()
    torch.testing.assert_close(x.grad, 12 * once)
    ref = x.detach().clone().requires_grad_()
    F.cross_entropy(ref, t).backward()
    torch.testing.assert_close(once, ref.grad)


@pytest.mark.parametrize("op", ["cross_entropy", "nll_loss"])
@pytest.mark.parametrize("upstream", [1.0, 2.5, "rows"])
def test_autograd_grad_results_alias_nothing(op, upstream, gen):
    # the forward pass's gradient is handed out (as it is, or scaled in place) by the first
    # backward; a result changed by the user changes no later one
    x = _x((4, 5), gen)
    t = torch.tensor([0, 1, 2, 3])
    fn, ref_fn = getattr(lt, op), getattr(F, op)
    none = upstream == "rows"
    g_out = (
        torch.linspace(-1.0, 2.0, 4, dtype=x.dtype)
        if none
        else torch.tensor(upstream, dtype=x.dtype)
    )
    kw = {"reduction": "none"} if none else {}
    loss = fn(x, t, **kw)
    (first,) = torch.autograd.grad(loss, x, g_out, retain_graph=True)
    expect = first.clone()
    first.mul_(7)
    (second,) = torch.autograd.grad(loss, x, g_out, retain_graph=True)
    (third,) = torch.autograd.grad(loss, x, g_out)
    torch.testing.assert_close(second, expect)
    torch.testing.assert_close(third, expect)
    assert second.data_ptr() != third.data_ptr()
    ref = x.detach().clone().requires_grad_()
    (ref_grad,) = torch.autograd.grad(ref_fn(ref, t, **kw), ref, g_out)
    torch.testing.assert_close(expect, ref_grad)


def test_unused_loss_outputs_get_no_gradient_tensor(gen):
    # outputs that carry no derivative are not given zeros of the logits' size
    x = _x((4, 5), gen)
    loss = lt.cross_entropy(x, torch.tensor([0, 1, 2, 3]))
    with torch.profiler.profile() as prof:
        loss.backward()
    names = {e.key for e in prof.key_averages()}
    assert "aten::zeros" not in names and "aten::mul" not in names


def test_upstream_gradient_scales(path, gen):
    x = _x((4, 5), gen)
    t = torch.tensor([0, 1, 2, 3])
    (3.5 * lt.cross_entropy(x, t, reduction="sum")).backward()
    ref = x.detach().clone().requires_grad_()
    (3.5 * F.cross_entropy(ref, t, reduction="sum")).backward()
    torch.testing.assert_close(x.grad, ref.grad)


def test_inputs_are_never_modified(path, gen):
    x = _x((4, 5), gen)
    before = x.detach().clone()
    t = torch.tensor([0, 1, 2, 3])
    lt.cross_entropy(x, t, softcap=2.0, temperature=3.0).backward()
    lt.log_softmax(x, 1).sum().backward()
    assert torch.equal(x.detach(), before)


# ------------------------------------------------------------------------------ the extras
def _ce_extras_torch(x, t, w, temperature, softcap, z_loss, reduction):
    z = x if softcap is None else softcap * torch.tanh(x / softcap)
    z = z / temperature
    lse = torch.logsumexp(z, 1)
    counted = t != -100
    wy = (torch.ones(x.shape[1], dtype=x.dtype) if w is None else w)[t.clamp(min=0)] * counted
    rows = F.cross_entropy(z, t, w, reduction="none") + z_loss * wy * lse**2
    if reduction == "none":
        return rows
    return rows.sum() if reduction == "sum" else rows.sum() / wy.sum()


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_temperature_softcap_z_loss_against_torch(path, gen, reduction):
    x = (4 * torch.randn(6, 5, generator=gen, dtype=torch.float64)).requires_grad_()
    t = torch.tensor([0, 1, -100, 3, 4, 2])
    w = torch.rand(5, generator=gen, dtype=torch.float64) + 0.5
    opts = dict(temperature=1.7, softcap=5.0, z_loss=1e-2)
    ours = lt.cross_entropy(x, t, w, reduction=reduction, **opts)
    ref_x = x.detach().clone().requires_grad_()
    theirs = _ce_extras_torch(ref_x, t, w, reduction=reduction, **opts)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-14)
    up = torch.randn(theirs.shape, generator=gen, dtype=torch.float64)
    (ours * up).sum().backward()
    (theirs * up).sum().backward()
    torch.testing.assert_close(x.grad, ref_x.grad, rtol=1e-12, atol=1e-14)


def test_return_lse(path, gen):
    x = _x((2, 4, 3), gen)
    t = torch.tensor([[0, 1, 2], [3, 3, -100]])
    loss, lse = lt.cross_entropy(x, t, return_lse=True, temperature=2.0)
    torch.testing.assert_close(lse, torch.logsumexp(x.detach() / 2.0, 1), rtol=1e-12, atol=0)
    assert not lse.requires_grad and loss.requires_grad
    loss.backward()
    loss_u, lse_u = lt.cross_entropy(x[0, :, 0], t[0, 0], return_lse=True)  # unbatched
    assert loss_u.shape == () and lse_u.shape == ()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ignored_nan_row_with_softcap_has_zero_gradient(path, dtype):
    x = torch.tensor([[math.nan, 1.0], [0.5, 1.0]], dtype=dtype, requires_grad=True)
    loss = lt.cross_entropy(x, torch.tensor([-100, 1]), softcap=5.0)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.equal(x.grad[0], torch.zeros(2, dtype=dtype))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_label_on_a_masked_class_gives_infinite_loss(path, dtype):
    x = torch.tensor([[-INF, 0.25, -INF, -0.5]], dtype=dtype, requires_grad=True)
    loss = lt.cross_entropy(x, torch.tensor([2]), reduction="none")
    assert loss.item() == INF
    loss.backward()
    expected = torch.softmax(x.detach(), 1)  # p - onehot, 0 on the masked entries
    torch.testing.assert_close(x.grad, expected)
