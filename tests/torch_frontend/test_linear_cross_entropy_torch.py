"""linear_cross_entropy as a PyTorch citizen: torch's signatures, module and state dict, K
dimensions, torch.compile, torch.export, meta tensors, second derivatives; and the hardening
cases (label dtypes, an empty hidden dimension, mixed dtypes)."""

from __future__ import annotations

import inspect
import io
import math

import pytest
import torch
import torch.nn.functional as F

import logmax.torch as lt

D, V = 8, 23


def _data(gen, dtype=torch.float64, n=9, bias=True):
    h = torch.randn(n, D, generator=gen, dtype=dtype, requires_grad=True)
    W = torch.randn(V, D, generator=gen, dtype=dtype, requires_grad=True)
    b = torch.randn(V, generator=gen, dtype=dtype, requires_grad=True) if bias else None
    y = torch.randint(0, V, (n,), generator=gen)
    y[2] = -100
    return h, W, b, y


def _prefix(ours, theirs):
    """torch's parameters come first in ours, same names, kinds and defaults; ours after them
    are keyword-only."""
    a = list(inspect.signature(ours).parameters.values())
    e = list(inspect.signature(theirs).parameters.values())
    for p, q in zip(a, e, strict=False):
        assert (p.name, p.kind, p.default) == (q.name, q.kind, q.default)
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in a[len(e) :])
    return [p.name for p in a[len(e) :]]


def test_signatures_are_torchs():
    extras = _prefix(lt.linear_cross_entropy, F.linear_cross_entropy)
    assert {"softcap", "z_loss", "temperature", "return_lse"} <= set(extras)
    extras = _prefix(lt.LinearCrossEntropyLoss.__init__, torch.nn.LinearCrossEntropyLoss.__init__)
    assert {"softcap", "z_loss", "temperature", "return_lse"} <= set(extras)
    _prefix(lt.LinearCrossEntropyLoss.forward, torch.nn.LinearCrossEntropyLoss.forward)
    assert issubclass(lt.LinearCrossEntropyLoss, torch.nn.LinearCrossEntropyLoss)


@pytest.mark.parametrize("out_features", [(), (2, 3)], ids=["plain", "k_dims"])
@pytest.mark.parametrize("bias", [False, True])
def test_module_is_torchs_and_state_dicts_load_both_ways(out_features, bias, gen):
    w = torch.rand(V, generator=gen, dtype=torch.float64)
    kw = dict(out_features=out_features, bias=bias, dtype=torch.float64, reduction="sum",
              label_smoothing=0.1, weight=w)  # fmt: skip
    ours = lt.LinearCrossEntropyLoss(D, V, **kw, chunk_size=3)
    theirs = torch.nn.LinearCrossEntropyLoss(D, V, **kw)
    theirs.load_state_dict(ours.state_dict())  # ours -> torch
    h = torch.randn(5, D, generator=gen, dtype=torch.float64)
    y = torch.randint(0, V, (5, *out_features), generator=gen)
    torch.testing.assert_close(ours(h, y), theirs(h, y), rtol=1e-12, atol=0)
    buf = io.BytesIO()
    torch.save(theirs.state_dict(), buf)  # a torch checkpoint -> ours
    fresh = lt.LinearCrossEntropyLoss(D, V, **kw)
    fresh.load_state_dict(torch.load(io.BytesIO(buf.getvalue())))
    torch.testing.assert_close(fresh(h, y), theirs(h, y), rtol=1e-12, atol=0)
    assert set(fresh.state_dict()) == set(theirs.state_dict())


def test_module_repr_and_options_checked_at_construction():
    m = lt.LinearCrossEntropyLoss(D, V, softcap=30.0, z_loss=1e-4, chunk_size=64)
    text = repr(m)
    assert "in_features=8" in text and "softcap=30.0" in text and "z_loss=0.0001" in text
    assert "chunk_size=64" in text
    with pytest.raises(ValueError, match="softcap"):
        lt.LinearCrossEntropyLoss(D, V, softcap=-1.0)
    with pytest.raises(ValueError, match="reduction"):
        lt.LinearCrossEntropyLoss(D, V, reduction="avg")


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_k_dimensional_loss_as_torch(reduction, gen):
    h = torch.randn(6, D, generator=gen, dtype=torch.float64, requires_grad=True)
    W = torch.randn(V, 2, 3, D, generator=gen, dtype=torch.float64, requires_grad=True)
    b = torch.randn(V, 2, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, V, (6, 2, 3), generator=gen)
    y[1, 0, 2] = -100
    w = torch.rand(V, generator=gen, dtype=torch.float64) + 0.5
    ours = lt.linear_cross_entropy(h, W, y, linear_bias=b, weight=w, reduction=reduction,
                                   chunk_size=4)  # fmt: skip
    theirs = F.linear_cross_entropy(h, W, y, linear_bias=b, weight=w, reduction=reduction)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-14)
    go = torch.rand(ours.shape, generator=gen, dtype=torch.float64)
    for a, e in zip(torch.autograd.grad(ours, (h, W, b), go),
                    torch.autograd.grad(theirs, (h, W, b), go), strict=True):  # fmt: skip
        torch.testing.assert_close(a, e, rtol=1e-11, atol=1e-13)


def test_unbatched_input_and_batch_dims(gen):
    h, W, b, y = _data(gen)
    one = lt.linear_cross_entropy(h[0], W, y[0], linear_bias=b)
    torch.testing.assert_close(one, F.linear_cross_entropy(h[0], W, y[0], linear_bias=b))
    # beyond torch (2-D input only): batch dimensions, as (B * T, D) rows
    out = lt.linear_cross_entropy(h[:8].reshape(2, 4, D), W, y[:8].reshape(2, 4), reduction="none")
    ref = F.cross_entropy(h[:8] @ W.T, y[:8], reduction="none").reshape(2, 4)
    torch.testing.assert_close(out, ref)


def _model(h, W, b, y):
    return lt.linear_cross_entropy(h, W, y, linear_bias=b, label_smoothing=0.1, z_loss=1e-3) * 3


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_compile_fullgraph_forward_and_backward(reduction, gen):
    """No graph break (fullgraph=True raises on one); the same loss and gradients as eager."""
    torch._dynamo.reset()
    h, W, b, y = _data(gen, torch.float32)

    def model(h, W, b, y):
        loss = lt.linear_cross_entropy(h, W, y, linear_bias=b, reduction=reduction, softcap=5.0)
        return (loss * 3).sum()

    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    got = compiled(h, W, b, y)
    g_got = torch.autograd.grad(got, (h, W, b))
    want = model(h, W, b, y)
    g_want = torch.autograd.grad(want, (h, W, b))
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    for a, e in zip(g_got, g_want, strict=True):
        torch.testing.assert_close(a, e, rtol=0, atol=0)


def test_export(gen):
    class Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(D, V)

        def forward(self, h, y):
            return lt.linear_cross_entropy(h, self.proj.weight, y, linear_bias=self.proj.bias)

    m = Head()
    h, _, _, y = _data(gen, torch.float32)
    ep = torch.export.export(m, (h.detach(), y))
    ops = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert "logmax.linear_cross_entropy.default" in ops
    torch.testing.assert_close(ep.module()(h.detach(), y), m(h.detach(), y), rtol=0, atol=0)


def test_meta_tensors_give_shapes():
    h = torch.empty(7, D, device="meta", requires_grad=True)
    W = torch.empty(V, 2, D, device="meta", requires_grad=True)
    b = torch.empty(V, 2, device="meta", requires_grad=True)
    y = torch.empty(7, 2, dtype=torch.long, device="meta")
    loss, lse = lt.linear_cross_entropy(h, W, y, linear_bias=b, return_lse=True)
    assert loss.shape == () and lse.shape == (7, 2) and loss.device.type == "meta"
    assert lt.linear_cross_entropy(h, W, y, reduction="none").shape == (7, 2)
    loss.backward()
    assert h.grad.shape == h.shape and W.grad.shape == W.shape and b.grad.shape == b.shape


def test_func_grad_is_the_gradient(gen):
    h, W, b, y = _data(gen)
    got = torch.func.grad(lambda W: _model(h.detach(), W, b.detach(), y))(W.detach())
    (want,) = torch.autograd.grad(_model(h.detach(), W, b.detach(), y), W)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)


def test_second_derivative_raises_clearly(gen):
    """A gradient penalty through linear_cross_entropy raises instead of silently dropping the
    Hessian term; the first derivative under create_graph is still right."""
    h, W, b, y = _data(gen)
    loss = _model(h, W, b, y)
    (dh,) = torch.autograd.grad(loss, h, create_graph=True)
    (want,) = torch.autograd.grad(_model(h, W, b, y), h)
    torch.testing.assert_close(dh.detach(), want)
    penalty = dh.pow(2).sum() + W.sum()  # W.sum() so that the graph has other leaves
    with pytest.raises(RuntimeError, match="no second derivative"):
        penalty.backward()


def test_backward_once_for_a_scalar_loss_and_retain_graph_for_none(gen):
    h, W, b, y = _data(gen)
    loss = lt.linear_cross_entropy(h, W, y)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="computes its gradients once"):
        loss.backward()
    W.grad = None
    rows = lt.linear_cross_entropy(h, W, y, reduction="none")  # recomputed in backward
    rows.sum().backward(retain_graph=True)
    first = W.grad.clone()
    rows.sum().backward()  # accumulates
    torch.testing.assert_close(W.grad, 2 * first)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int8, torch.int16, torch.int32,
                                   torch.uint16, torch.uint32, torch.uint64])  # fmt: skip
def test_any_integer_label_dtype(dtype, gen):
    h, W, b, y = _data(gen)
    y = y.clamp(min=0)
    out = lt.linear_cross_entropy(h, W, y.to(dtype), linear_bias=b)
    torch.testing.assert_close(out, F.linear_cross_entropy(h, W, y, linear_bias=b))


def test_uint64_label_is_not_wrapped_into_ignore_index(gen):
    """2^64 - 100 is -100 once cast to int64: it must be named as a bad label instead."""
    h, W, b, y = _data(gen)
    labels = y.clamp(min=0).tolist()
    labels[4] = 2**64 - 100
    y = torch.tensor(labels, dtype=torch.uint64)
    with pytest.raises(
        ValueError, match=rf"target\[4\] = {2**64 - 100} is not a class index.*< {V}"
    ):
        lt.linear_cross_entropy(h, W, y)


@pytest.mark.parametrize("bias", [False, True])
def test_empty_hidden_dimension(bias, gen):
    """D = 0: the logits are the bias (or zeros): torch's answer, gradients included."""
    h = torch.randn(5, 0, dtype=torch.float64, requires_grad=True)
    W = torch.randn(V, 0, dtype=torch.float64, requires_grad=True)
    b = torch.randn(V, generator=gen, dtype=torch.float64, requires_grad=True) if bias else None
    y = torch.randint(0, V, (5,), generator=gen)
    ours = lt.linear_cross_entropy(h, W, y, linear_bias=b)
    theirs = F.linear_cross_entropy(h, W, y, linear_bias=b)
    torch.testing.assert_close(ours, theirs)
    if not bias:
        assert ours.item() == pytest.approx(math.log(V))
    else:
        torch.testing.assert_close(
            torch.autograd.grad(ours, b)[0], torch.autograd.grad(theirs, b)[0]
        )


@pytest.mark.parametrize("name", ["linear_weight", "linear_bias", "weight"])
def test_mixed_dtypes_raise_as_torch(name, gen):
    h, W, b, y = _data(gen, torch.float32)
    args = {"linear_weight": W, "linear_bias": b, "weight": torch.ones(V)}
    args[name] = args[name].double()
    with pytest.raises(RuntimeError):
        F.linear_cross_entropy(h, args["linear_weight"], y, linear_bias=args["linear_bias"],
                               weight=args["weight"])  # fmt: skip
    with pytest.raises(
        TypeError, match=f"{name} has dtype torch.float64 but input has torch.float32"
    ):
        lt.linear_cross_entropy(h, args["linear_weight"], y, linear_bias=args["linear_bias"],
                                weight=args["weight"])  # fmt: skip


def test_torch_options_and_old_backend_keyword(gen):
    h, W, b, y = _data(gen)
    want = F.linear_cross_entropy(h, W, y, linear_bias=b)
    opts = torch.nn.LinearCrossEntropyOptions(batch_chunk_size=4)
    torch.testing.assert_close(lt.linear_cross_entropy(h, W, y, linear_bias=b, options=opts), want)
    with pytest.warns(DeprecationWarning, match="backend='core'"):
        old = lt.linear_cross_entropy(h, W, y, linear_bias=b, backend="core")
    torch.testing.assert_close(old, want)
    with pytest.raises(ValueError, match="backend must be"):
        lt.linear_cross_entropy(h, W, y, backend="numba")
