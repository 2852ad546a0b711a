"""logmax.torch as a PyTorch citizen: what works with torch.nn.functional works with us --
torch.export, meta tensors, torch.func (vmap, grad, jacrev, jvp, hessian, per-sample
gradients), double backward, autocast, and the small parity gaps. Each check compares with
torch.nn.functional on the same inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import logmax.torch as lt

X = torch.randn(4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
Y = torch.tensor([0, 1, 5, 2])
V = torch.randn(4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
W6 = torch.tensor([1.0, 0.5, 2.0, 1.5, 0.7, 1.2], dtype=torch.float64)

# (ours, torch's) pairs of scalar-valued functions of the logits
PAIRS = {
    "softmax": (lambda x: lt.softmax(x, 1)[:, 0].sum(), lambda x: F.softmax(x, 1)[:, 0].sum()),
    "log_softmax": (
        lambda x: lt.log_softmax(x, 1, temperature=0.7)[:, 1].sum(),
        lambda x: F.log_softmax(x / 0.7, 1)[:, 1].sum(),
    ),
    "logsumexp": (lambda x: lt.logsumexp(x, 1).sum(), lambda x: torch.logsumexp(x, 1).sum()),
    "cross_entropy": (
        lambda x: lt.cross_entropy(x, Y, label_smoothing=0.1),
        lambda x: F.cross_entropy(x, Y, label_smoothing=0.1),
    ),
    "cross_entropy_z_loss": (
        lambda x: lt.cross_entropy(x, Y, reduction="sum", z_loss=0.1),
        lambda x: F.cross_entropy(x, Y, reduction="sum") + 0.1 * (torch.logsumexp(x, 1) ** 2).sum(),
    ),
    "nll_loss": (
        lambda x: lt.nll_loss(lt.log_softmax(x, 1), Y),
        lambda x: F.nll_loss(F.log_softmax(x, 1), Y),
    ),
}


@pytest.mark.parametrize("name", list(PAIRS))
def test_grad_and_hessian_match_torch(name):
    ours, theirs = PAIRS[name]
    torch.testing.assert_close(torch.func.grad(ours)(X), torch.func.grad(theirs)(X))
    torch.testing.assert_close(torch.func.hessian(ours)(X), torch.func.hessian(theirs)(X))


@pytest.mark.parametrize("name", list(PAIRS))
def test_jvp_matches_torch(name):
    ours, theirs = PAIRS[name]
    torch.testing.assert_close(
        torch.func.jvp(ours, (X,), (V,))[1], torch.func.jvp(theirs, (X,), (V,))[1]
    )


@pytest.mark.parametrize("name", list(PAIRS))
def test_double_backward_gradient_penalty_matches_torch(name):
    ours, theirs = PAIRS[name]
    grads = []
    for f in (ours, theirs):
        x = X.clone().requires_grad_()
        (g,) = torch.autograd.grad(f(x), x, create_graph=True)
        (g**2).sum().backward()
        grads.append(x.grad)
    torch.testing.assert_close(grads[0], grads[1])


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: lt.softmax(x, 1, temperature=1.3),
        lambda x: lt.log_softmax(x, 0),
        lambda x: lt.logsumexp(x, (0, 1)),
        lambda x: lt.cross_entropy(
            x, Y, reduction="none", softcap=2.0, temperature=1.5, z_loss=0.1, label_smoothing=0.2
        ),  # fmt: skip
        lambda x: lt.cross_entropy(x, torch.softmax(V, 1), weight=W6),
        lambda x: lt.nll_loss(x, Y, torch.tensor([1.0, 2, 3, 1, 1, 0.5]).double()),
    ],
    ids=["softmax", "log_softmax", "logsumexp", "ce_extras", "ce_soft_weighted", "nll"],
)
def test_gradgradcheck(fn):
    x = X.clone().requires_grad_()
    assert torch.autograd.gradgradcheck(fn, (x,))


@pytest.mark.parametrize("loss", [lt.cross_entropy, lt.nll_loss], ids=["ce", "nll"])
@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_gradgradcheck_soft_targets_that_require_grad(loss, reduction):
    # second derivatives in the logits, the targets and the upstream gradient
    x = X.clone().requires_grad_()
    t = torch.softmax(V, 1).requires_grad_()
    assert torch.autograd.gradgradcheck(lambda x, t: loss(x, t, reduction=reduction), (x, t))


def test_gradgradcheck_masked_entries():
    x = X.clone()
    x[0, 2] = -math.inf
    x = x.requires_grad_()
    y = torch.tensor([0, 1, 5, 2])
    assert torch.autograd.gradcheck(lambda x: lt.cross_entropy(x, y), (x,))
    assert torch.autograd.gradgradcheck(lambda x: lt.log_softmax(x, 1), (x,))


def test_vmap_and_jacrev_match_torch():
    torch.testing.assert_close(
        torch.func.vmap(lambda r: lt.log_softmax(r, 0))(X), F.log_softmax(X, 1)
    )
    torch.testing.assert_close(
        torch.func.jacrev(lambda x: lt.cross_entropy(x, Y, reduction="none"))(X),
        torch.func.jacrev(lambda x: F.cross_entropy(x, Y, reduction="none"))(X),
    )


def test_per_sample_gradients_match_torch():
    W = torch.randn(6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(2))

    def per_sample(ce):
        loss = lambda W, xi, yi: ce((xi @ W)[None], yi[None])  # noqa: E731
        return torch.func.vmap(torch.func.grad(loss), (None, 0, 0))(W, X, Y)

    torch.testing.assert_close(per_sample(lt.cross_entropy), per_sample(F.cross_entropy))


class _Head(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(6, 6)

    def forward(self, x, y):
        return lt.cross_entropy(self.lin(x), y) + lt.logsumexp(x, 1).sum()


@pytest.mark.skipif(
    tuple(int(v) for v in torch.__version__.split(".")[:2]) < (2, 7),
    reason="torch.export decomposes custom operators before torch 2.7",
)
def test_export_keeps_the_operators():
    head = _Head()
    ep = torch.export.export(head, (torch.randn(4, 6), Y))
    graph = str(ep.graph)
    assert "logmax.cross_entropy" in graph and "logmax.logsumexp" in graph
    x = torch.randn(4, 6)
    torch.testing.assert_close(ep.module()(x, Y), head(x, Y))


def test_meta_tensors_give_shapes():
    x = torch.empty(4, 6, 3, device="meta")
    y = torch.empty(4, 3, dtype=torch.long, device="meta")
    assert lt.cross_entropy(x, y).shape == F.cross_entropy(x, y).shape
    assert lt.cross_entropy(x, y, reduction="none").shape == (4, 3)
    assert lt.softmax(x, 1).shape == x.shape
    assert lt.logsumexp(x, (1, 2), keepdim=True).shape == (4, 1, 1)
    assert lt.nll_loss(x, y, reduction="none").shape == (4, 3)


@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss", "log_softmax", "softmax"])
def test_loss_dtype_under_cpu_autocast_matches_torch(name):
    xb = X.to(torch.bfloat16)
    ours = {
        "cross_entropy": lambda: lt.cross_entropy(xb, Y),
        "nll_loss": lambda: lt.nll_loss(xb, Y),
        "log_softmax": lambda: lt.log_softmax(xb, 1),
        "softmax": lambda: lt.softmax(xb, 1),
    }[name]
    theirs = {
        "cross_entropy": lambda: F.cross_entropy(xb, Y),
        "nll_loss": lambda: F.nll_loss(xb, Y),
        "log_softmax": lambda: F.log_softmax(xb, 1),
        "softmax": lambda: F.softmax(xb, 1),
    }[name]
    with torch.autocast("cpu", torch.bfloat16):
        assert ours().dtype == theirs().dtype


def test_logsumexp_out_and_integer_inputs_like_torch():
    out = torch.empty((), dtype=torch.float64)
    assert lt.logsumexp(X, (0, 1), out=out) is out
    torch.testing.assert_close(out, torch.logsumexp(X, (0, 1)))
    for x in (torch.tensor([1, 2, 3]), torch.tensor([True, False, True])):
        got, want = lt.logsumexp(x, 0), torch.logsumexp(x, 0)
        assert got.dtype == want.dtype
        torch.testing.assert_close(got, want)
    with pytest.raises(RuntimeError, match="Expected out tensor to have dtype"):
        lt.logsumexp(X, 1, out=torch.empty(4))


def test_parity_errors():
    with pytest.raises(TypeError, match="must be a torch.Tensor, got numpy.ndarray"):
        lt.softmax(np.ones((2, 3)), 1)
    with pytest.raises(TypeError, match="must be a torch.Tensor, got numpy.ndarray"):
        lt.cross_entropy(X, Y.numpy())
    with pytest.raises(TypeError, match="weight must be a torch.Tensor"):
        lt.cross_entropy(X, Y, weight=[1.0] * 6)
    with pytest.raises(TypeError, match="weight has dtype torch.float32 but input has"):
        lt.cross_entropy(X, Y, weight=torch.ones(6))
    soft = torch.softmax(V, 1)
    with pytest.raises(RuntimeError, match="ignore_index is not supported for floating point"):
        lt.cross_entropy(X, soft, ignore_index=1)
    with pytest.raises(RuntimeError):  # torch raises the same
        F.cross_entropy(X, soft, ignore_index=1)


def test_modules_validate_options_when_built():
    with pytest.raises(ValueError, match="z_loss must be a non-negative"):
        lt.CrossEntropyLoss(z_loss=-1.0)
    with pytest.raises(ValueError, match="temperature must be a positive"):
        lt.Softmax(1, temperature=0.0)
    with pytest.raises(ValueError, match="reduction must be one of"):
        lt.NLLLoss(reduction="avg")
